"""A rehearsal: the real election, on the real roll and the real channels, before it opens.

``openprimary election rehearse --election ID --testers FILE`` lets the
supporters listed in FILE (and nobody else) vote before ``opens``, through
SMS and Telegram as on the day; every reply and reminder is marked "TEST: ".
``openprimary election finalise --election ID`` then takes the election back
to where it was: every rehearsal ballot, receipt and turnout count, each
tester's record (codes spent, grants, the voted flag, a linked Telegram
account), the chats' states and deliveries, the Telegram links made,
failed-code counters, the SMS counted, alerts and reminder jobs.  The audit
trail keeps the rehearsal, by design, and so do opt-outs: a STOP is a
person's wish, honoured whenever it was sent (START undoes it).

How it stays contained:

- ``rehearse`` refuses once the election has opened, once any ballot exists,
  and while a reminder job is unfinished (it would reach everyone, and see
  testers as voted).  It first records what it will have to put back: each
  tester's voter record, the Telegram and voting-code index entries that
  point at a tester, the reminder jobs and alert marks that exist, the SMS
  counter, and whether the shared sending-rate keys exist.  Only then does it
  mark each shard's ``meta`` (``rehearsal``) and each tester's record
  (``tester``), so the cast script, in one hash slot, lets a tester cast
  before ``opens``, and refuses every cast after ``opens`` until the
  rehearsal is finalised.
- While it runs, the conversation admits only testers (checked before
  anything is written for a supporter), and notes every chat it hears from
  (:func:`note_first`, :func:`note_chat`): its state and the Telegram link of
  the account writing, as they were before its first rehearsal message, and
  the delivery records it writes.  ``roll import`` and ``codes issue`` are
  refused (the finalise puts the testers' records back).
- ``finalise`` first marks the rehearsal "finalising" (nobody is admitted,
  nothing can be cast, no reminder can start), waits for the messages being
  handled to finish, then puts everything back; a crash part way leaves it
  "finalising", and running it again finishes the job.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from ballots import audit, keys
from ballots.clock import Clock
from ballots.connection import Batch
from ballots.election import Election, has_ballots
from ballots.errors import FileProblems, OpenPrimaryError, Problem
from ballots.program import program
from ballots.quiet import local
from ballots.roll import get_supporter
from ballots.trustees import load_count_key
from bot import texts
from bot.alerts import KINDS as ALERT_KINDS
from bot.messages import Channel
from bot.reminders.jobs import Reminders
from bot.reminders.scripts import job_keys

RUNNING = "running"
FINALISING = "finalising"

#: Seconds ``finalise`` waits, once nobody is admitted, for messages being handled to finish.
SETTLE = 3.0

#: The prefix of every outbound message while a rehearsal runs.
MARK = texts.TEST_MARK


class RehearsalError(OpenPrimaryError):
    """A rehearsal cannot start or be finalised now; the message says why."""


@dataclass(frozen=True)
class Finalised:
    """What ``finalise`` wiped."""

    ballots: int
    testers: int
    chats: int
    jobs: int
    sms_segments: int


def read_testers(path: Path) -> list[str]:
    """The supporter ids in a testers file: one a line (its first comma-separated field,
    so a roll or codes CSV works too); blank lines, ``#`` comments and a
    ``supporter_id`` header are skipped.  Problems are ``FILE:LINE: reason``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise OpenPrimaryError(f"cannot read {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise OpenPrimaryError(f"{path}: not UTF-8 text ({err.reason})") from err
    ids: list[str] = []
    seen: dict[str, int] = {}
    problems: list[Problem] = []
    for n, line in enumerate(text.splitlines(), 1):
        sid = line.split("#", 1)[0].split(",", 1)[0].strip().strip('"')
        if not sid or (n == 1 and sid.lower() == "supporter_id"):
            continue
        if sid in seen:
            problems.append(Problem(str(path), n, f"{sid} is listed twice (line {seen[sid]})"))
            continue
        seen[sid] = n
        ids.append(sid)
    if not ids and not problems:
        problems.append(Problem(str(path), 1, "no supporter ids: list one tester a line"))
    if problems:
        raise FileProblems(problems)
    return ids


async def state(redis: Redis, election_id: str) -> str | None:
    """``running``, ``finalising``, or None when no rehearsal is under way."""
    found = await redis.hget(keys.rehearsal(election_id), "state")
    return str(found) if found is not None else None


async def is_tester(redis: Redis, election_id: str, supporter_id: str) -> bool:
    return bool(await redis.sismember(keys.rehearsal_testers(election_id), supporter_id))


def note_chat(batch: Batch, election_id: str, chat_keys: Iterable[str]) -> None:
    """Queue the record of a chat heard from during a rehearsal: the keys it wrote."""
    names = list(chat_keys)
    if names:
        batch.pipe.sadd(keys.rehearsal_keys(election_id), *names)


async def note_first(
    redis: Redis, election_id: str, channel: str, address: str, telegram_user: str
) -> None:
    """Before a chat's first rehearsal step: what it had that a rehearsal step may change (its
    conversation state, and the Telegram index entry of the account writing), to put back."""
    field = f"{channel} {address}"
    chats = keys.rehearsal_chats(election_id)
    if await redis.hexists(chats, field):
        return
    state_key = keys.conversation(channel, address)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(state_key)
        pipe.pttl(state_key)
        if telegram_user:
            pipe.hget(keys.telegram_index(election_id), telegram_user)
        found = await pipe.execute()
    was = {"state": found[0], "ttl": int(found[1]), "user": telegram_user or None}
    if telegram_user:
        was["linked"] = found[2]
    await redis.hsetnx(chats, field, json.dumps(was))


async def rehearse(
    redis: Redis, election: Election, testers: list[str], clock: Clock, actor: str, source: str
) -> None:
    """Start a rehearsal for ``testers`` (supporter ids on the roll); see the module doc."""
    eid = election.id
    now = clock.now()
    if now >= election.opens:
        raise RehearsalError(
            f"election {eid} opened {local(election, election.opens, year=True)}: a rehearsal "
            "must come before real voting"
        )
    if await load_count_key(redis, eid) is None:
        raise RehearsalError(
            f"election {eid} has no count key yet, so no ballot could be cast, not even a "
            f"tester's: the trustees make it first ({program()} trustees init --election "
            f"{eid} --shares N --threshold K --out DIR)"
        )
    current = await state(redis, eid)
    if current is not None:
        raise RehearsalError(
            f"election {eid} already has a rehearsal {current}: finalise it first "
            f"({program()} election finalise --election {eid})"
        )
    if await has_ballots(redis, election):
        raise RehearsalError(f"election {eid} already has ballots: it cannot be rehearsed")
    reminders = Reminders(redis, clock)
    for job in [str(j) for j in await redis.zrange(keys.reminder_jobs(eid), 0, -1)]:
        status = await reminders.status(job)
        if status.status in ("preparing", "running", "paused"):
            raise RehearsalError(
                f"reminder job {job} is {status.status}: a rehearsal would change whom it "
                f"reaches; let it finish or cancel it first ({program()} remind --election "
                f"{eid} --cancel {job})"
            )
    unknown = [sid for sid in testers if not await get_supporter(redis, election, sid)]
    if unknown:
        raise RehearsalError(
            f"not on the roll of {eid}: {', '.join(unknown[:10])}"
            + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
            + f" (in {source}); nothing was started"
        )
    snapshot: dict[FieldT, EncodableT] = {
        "state": "preparing",
        "started": str(int(now.timestamp())),
        "testers": json.dumps(testers),
        "jobs": json.dumps(await redis.zrange(keys.reminder_jobs(eid), 0, -1)),
        "sms_segments": str(await redis.get(keys.sms_segments(eid)) or ""),
        "alerts": json.dumps([k for k in ALERT_KINDS if await redis.exists(keys.alert(eid, k))]),
        "rates": json.dumps(
            [
                key
                for ch in Channel.platforms()
                for key in (keys.send_rate(ch), keys.send_window(ch))
                if await redis.exists(key)
            ]
        ),
    }
    addresses: dict[str, list[str]] = {ch: [] for ch in Channel.platforms()}
    for sid in testers:
        voter = keys.voter(eid, keys.shard_of(sid, election.shards), sid)
        record = {str(k): str(v) for k, v in (await redis.hgetall(voter)).items()}
        snapshot[f"voter:{sid}"] = json.dumps(record)
        if record.get("phone"):
            addresses[Channel.SMS].append(record["phone"])
        if record.get("telegram_id"):
            addresses[Channel.TELEGRAM].append(record["telegram_id"])
    for index in (keys.telegram_index(eid), keys.code_index(eid)):
        snapshot[f"index:{index}"] = json.dumps(await _entries_of(redis, index, set(testers)))
    snapshot["addresses"] = json.dumps(addresses)
    async with redis.pipeline(transaction=False) as pipe:
        for key in (
            keys.rehearsal(eid),
            keys.rehearsal_testers(eid),
            keys.rehearsal_keys(eid),
            keys.rehearsal_chats(eid),
        ):
            pipe.delete(key)
        pipe.hset(keys.rehearsal(eid), mapping=snapshot)
        pipe.sadd(keys.rehearsal_testers(eid), *testers)
        await pipe.execute()
    # Everything to put back is recorded: now the ballot box and the conversation may admit
    # the testers.
    async with redis.pipeline(transaction=False) as pipe:
        for sid in testers:
            pipe.hset(keys.voter(eid, keys.shard_of(sid, election.shards), sid), "tester", "1")
        for shard in range(election.shards):
            pipe.hset(keys.shard_meta(eid, shard), "rehearsal", RUNNING)
        pipe.hset(keys.rehearsal(eid), "state", RUNNING)
        await pipe.execute()
    await audit.record(
        redis, clock, eid, actor, "rehearsal started", testers=len(testers), file=source
    )


async def finalise(
    redis: Redis, election: Election, clock: Clock, actor: str, *, settle: float = SETTLE
) -> Finalised:
    """Wipe a rehearsal; see the module doc.  Safe to run again after a crash.

    ``settle``: how long to wait, once nobody is admitted, for the messages already being
    handled to finish (each holds its chat's lock for a step; see bot/lease.py).
    """
    eid = election.id
    snapshot = {str(k): str(v) for k, v in (await redis.hgetall(keys.rehearsal(eid))).items()}
    if not snapshot:
        raise RehearsalError(f"election {eid} has no rehearsal to finalise")
    # From here no one is admitted, nothing can be cast, and no reminder can start (its plan
    # finds nobody).
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(keys.rehearsal(eid), "state", FINALISING)
        for shard in range(election.shards):
            pipe.hset(keys.shard_meta(eid, shard), "rehearsal", FINALISING)
        await pipe.execute()
    if settle > 0:
        await asyncio.sleep(settle)
    reminders = Reminders(redis, clock)
    before_jobs = set(json.loads(snapshot.get("jobs", "[]")))
    new_jobs = [
        str(j) for j in await redis.zrange(keys.reminder_jobs(eid), 0, -1) if j not in before_jobs
    ]
    for job in new_jobs:
        status = await reminders.status(job)
        if status.status == "running":
            raise RehearsalError(
                f"the rehearsal's reminder job {job} is still running: cancel it (openprimary "
                f"remind --election {eid} --cancel {job}), then run finalise again; until then "
                "nobody can vote"
            )

    testers: list[str] = json.loads(snapshot.get("testers", "[]"))
    ballots = 0
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(election.shards):
            pipe.zcard(keys.sealed(eid, shard))
        ballots = sum(int(n) for n in await pipe.execute())
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(election.shards):
            pipe.delete(keys.sealed(eid, shard), keys.receipts(eid, shard))
            pipe.delete(keys.turnout(eid, shard))
        for sid in testers:
            voter = keys.voter(eid, keys.shard_of(sid, election.shards), sid)
            record = json.loads(snapshot.get(f"voter:{sid}", "{}"))
            pipe.delete(voter)
            if record:
                pipe.hset(voter, mapping=record)
        await pipe.execute()

    for index in (keys.telegram_index(eid), keys.code_index(eid)):
        now_there = await _entries_of(redis, index, set(testers))
        was = json.loads(snapshot.get(f"index:{index}", "{}"))
        gone = [k for k in now_there if k not in was]
        if gone:
            await redis.hdel(index, *gone)
        if was:
            await redis.hset(index, mapping=was)

    chats = {str(k): str(v) for k, v in (await redis.hgetall(keys.rehearsal_chats(eid))).items()}
    async with redis.pipeline(transaction=False) as pipe:
        for field, noted in chats.items():
            channel, address = field.split(" ", 1)
            was = json.loads(noted)
            state_key = keys.conversation(channel, address)
            if was["state"] is not None and was["ttl"] > 0:
                pipe.set(state_key, was["state"], px=was["ttl"])
            else:
                pipe.delete(state_key)
            if was.get("user"):
                index = keys.telegram_index(eid)
                if was.get("linked") is not None:
                    pipe.hset(index, was["user"], was["linked"])
                else:
                    pipe.hdel(index, was["user"])
            for key in (
                keys.copies_trail(channel, address),
                keys.address_failures(eid, channel, address),
                keys.slowed_address(eid, channel, address),
                *(
                    keys.organiser_pending(eid, channel, address, a)
                    for a in ("", "pause", "resume")
                ),
            ):
                pipe.delete(key)  # one key a DEL: on a Cluster these are in different slots
        addresses: dict[str, list[str]] = json.loads(snapshot.get("addresses", "{}"))
        reached = {(ch, a) for ch, found in addresses.items() for a in found}
        reached |= {tuple(field.split(" ", 1)) for field in chats}  # type: ignore[misc]
        for channel, address in reached:
            pipe.delete(keys.chat_rate(channel, address))
        await pipe.execute()
    chat_keys = [str(k) for k in await redis.smembers(keys.rehearsal_keys(eid))]
    for i in range(0, len(chat_keys), 500):
        # One DEL each: on a Cluster the chats' keys are in many slots.
        async with redis.pipeline(transaction=False) as pipe:
            for key in chat_keys[i : i + 500]:
                pipe.delete(key)
            await pipe.execute()

    started = int(snapshot.get("started", "0"))
    hours = range(started // 3600, int(clock.now().timestamp()) // 3600 + 1)
    alerts_before = set(json.loads(snapshot.get("alerts", "[]")))
    rates_before = set(json.loads(snapshot.get("rates", "[]")))
    segments_before = snapshot.get("sms_segments", "")
    spent = int(await redis.get(keys.sms_segments(eid)) or 0) - int(segments_before or 0)
    async with redis.pipeline(transaction=False) as pipe:
        for hour in hours:
            pipe.delete(keys.code_sms_hour(eid, hour))
            pipe.delete(keys.code_guesses_hour(eid, hour))
        for kind in ALERT_KINDS:
            if kind not in alerts_before:
                pipe.delete(keys.alert(eid, kind))
        for ch in Channel.platforms():
            for key in (keys.send_rate(ch), keys.send_window(ch)):
                if key not in rates_before:
                    pipe.delete(key)
        if segments_before:
            pipe.set(keys.sms_segments(eid), segments_before)
        else:
            pipe.delete(keys.sms_segments(eid))
        for job in new_jobs:
            pipe.delete(*job_keys(job))
            pipe.zrem(keys.reminder_jobs(eid), job)
        await pipe.execute()

    # Last: the marks that admitted the testers, then the rehearsal's own record.
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(election.shards):
            pipe.hdel(keys.shard_meta(eid, shard), "rehearsal")
        for key in (
            keys.rehearsal_testers(eid),
            keys.rehearsal_chats(eid),
            keys.rehearsal_keys(eid),
            keys.rehearsal(eid),
        ):
            pipe.delete(key)
        await pipe.execute()
    done = Finalised(ballots, len(testers), len(chats), len(new_jobs), max(spent, 0))
    await audit.record(
        redis,
        clock,
        eid,
        actor,
        "rehearsal finalised",
        ballots_wiped=done.ballots,
        testers=done.testers,
        chats=done.chats,
        reminder_jobs=done.jobs,
        sms_segments=done.sms_segments,
    )
    return done


async def _entries_of(redis: Redis, index: str, testers: set[str]) -> dict[str, str]:
    """The entries of an index hash that point at a tester."""
    found: dict[str, str] = {}
    async for field, value in redis.hscan_iter(index, count=2000):
        if str(value) in testers:
            found[str(field)] = str(value)
    return found
