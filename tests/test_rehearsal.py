"""A rehearsal: testers vote before the opening through the real channels, every message
marked TEST; ``election finalise`` leaves the election as if it had never happened."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from ballots import keys
from ballots.clock import ManualClock
from ballots.errors import FileProblems, OpenPrimaryError
from ballots.turnout import turnout
from bot import texts
from bot.ratelimit import limiter_for
from bot.rehearsal import RehearsalError, read_testers
from bot.reminders import Reminders, Worker, plan
from channels.rules import TEXT_RULES
from channels.senders import opened_senders
from channels.standins.telegram_api import TelegramUser
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, TwilioPhone
from openprimary.cli import build_parser
from openprimary.context import Context
from tests.factories import NOW, sample_election, settings, stored_ballots
from tests.sms_support import AUTH_TOKEN, PUBLIC_URL
from tests.telegram_support import BILAL, CARYS, TelegramWorld, telegram_world, with_sms

#: The sample election, opening two days after the tests' "now".
OPENS = NOW + timedelta(days=2)
ANN_PHONE = "+447700900101"  # S1001, a tester
CARYS_PHONE = "+447700900103"  # S1003, not a tester
DEV_PHONE = "+447700900104"  # S1004, a tester who does not vote
AUDIT = "audit"
ERIN = TelegramUser(310005, "Erin")  # S1005's own Telegram account, not testing


async def everything(redis: Redis) -> dict[str, Any]:
    """Every key in Redis and its value (the audit trail's key by name only).

    The server's own heartbeat as a taker of Telegram updates is there the whole time the
    server runs, rehearsal or not: its member, not its score (when it next runs out).
    """
    found: dict[str, Any] = {}
    async for key in redis.scan_iter(count=1000):
        name = str(key)  # the tests' clients decode replies
        kind = await redis.type(name)
        if name.endswith(":audit"):
            found[name] = AUDIT
        elif kind == "string":
            found[name] = await redis.get(name)
        elif kind == "hash":
            found[name] = await redis.hgetall(name)
        elif kind == "set":
            found[name] = sorted(await redis.smembers(name))
        elif kind == "zset" and name.startswith("op:{tg-in/") and name.endswith(":workers"):
            found[name] = await redis.zrange(name, 0, -1)
        elif kind == "zset":
            found[name] = await redis.zrange(name, 0, -1, withscores=True)
        elif kind == "list":
            found[name] = await redis.lrange(name, 0, -1)
        elif kind == "stream":
            found[name] = await redis.xrange(name)
        else:
            raise AssertionError(f"{name}: a {kind!r} the test does not read")
    return found


async def cli(clock: ManualClock, redis: Redis, *argv: str) -> tuple[int, str]:
    """Run an ``openprimary`` subcommand as the command line would parse it."""
    args = build_parser(list(argv)).parse_args(list(argv))
    out = io.StringIO()
    ctx = Context(
        settings=settings(), redis=redis, clock=clock, out=out, err=io.StringIO(), actor="cli:t"
    )
    return await args.handler(args, ctx), out.getvalue()


async def rehearse(clock: ManualClock, redis: Redis, eid: str, testers: Path) -> tuple[int, str]:
    return await cli(
        clock, redis, "election", "rehearse", "--election", eid, "--testers", str(testers)
    )


@asynccontextmanager
async def rehearsal_world(redis: Redis) -> AsyncIterator[tuple[TelegramWorld, TwilioApiStandIn]]:
    """The sample election before its opening, served with SMS (the Twilio stand-in) and
    Telegram (the Bot API stand-in)."""
    async with (
        TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        telegram_world(redis, election_changes={"opens": OPENS}, **with_sms(twilio)) as world,
    ):
        yield world, twilio


def phone(world: TelegramWorld, number: str) -> TwilioPhone:
    return TwilioPhone(
        world.session, world.url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, number=number
    )


async def copies_removed(world: TelegramWorld) -> None:
    """Wait until the platforms' copies of vote-bearing messages are all gone."""
    copies = world.core.copies
    assert copies is not None
    async with asyncio.timeout(20):
        while True:
            if not (await copies.pending("sms") or await copies.pending("telegram")):
                return
            await asyncio.sleep(0.05)


async def remind(world: TelegramWorld, redis: Redis, template: str) -> str:
    """Plan, start and send a reminder job as ``remind`` does; its id."""
    ready = await plan(redis, world.core.election, template, rules=TEXT_RULES, clock=world.clock)
    job = await Reminders(redis, world.clock).create(world.core.election, ready, "cli:t")
    config = world.core.settings
    limiter = limiter_for(config, redis)
    async with opened_senders(config, redis, limiter, wanted={"sms", "telegram"}) as senders:
        worker = Worker(redis, senders, limiter, TEXT_RULES, clock=world.clock, heartbeat=1.0)
        await worker.run(job)
    return job


def test_the_testers_file_is_checked_line_by_line(tmp_path: Path) -> None:
    good = tmp_path / "testers.csv"
    good.write_text("supporter_id,name\nS1001,Ann\n\n# the Telegram tester\nS1002  # Bilal\n")
    assert read_testers(good) == ["S1001", "S1002"]
    twice = tmp_path / "twice.txt"
    twice.write_text("S1001\nS1002\nS1001\n")
    with pytest.raises(FileProblems) as caught:
        read_testers(twice)
    assert [str(p) for p in caught.value.problems] == [f"{twice}:3: S1001 is listed twice (line 1)"]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody yet\n")
    with pytest.raises(FileProblems, match=r"empty.txt:1: no supporter ids"):
        read_testers(empty)


async def test_a_rehearsal_by_sms_and_telegram_leaves_nothing_but_the_audit(
    redis: Redis, tmp_path: Path
) -> None:
    async with rehearsal_world(redis) as (world, twilio):
        eid = world.core.election.id
        bilal_code = await world.voting_code("S1002")
        carys_code = await world.voting_code("S1003")
        dev_code = await world.voting_code("S1004")
        await redis.hset(keys.telegram_index(eid), str(ERIN.id), "S1005")
        # Bilal's Telegram chat had blocked the bot once: writing to it makes it reachable
        # again, and that is true whatever he wrote, so it stays so.
        await redis.sadd(keys.unreachable("telegram"), str(BILAL.id))
        before = await everything(redis)

        testers = tmp_path / "testers.txt"
        testers.write_text("S1001\nS1002\nS1004\n")
        status, said = await rehearse(world.clock, redis, eid, testers)
        assert status == 0 and "started for 3 testers" in said

        # Ann, a tester, votes by SMS: her phone is on the roll, so her code comes back.
        ann = phone(world, ANN_PHONE)
        sent = await ann.text("vote")
        assert sent[0].startswith("TEST: ") and "is your code" in sent[0]
        code = sent[0].removeprefix("TEST: ").split()[0]
        assert (await ann.text(code))[0].startswith("TEST: ")
        confirm = await ann.text("2 4")
        assert confirm[0].startswith("TEST: Your ballot")
        receipt = await ann.text("YES")
        assert receipt[0].startswith("TEST: Vote cast")

        # Bilal, a tester, votes on Telegram with his voting code.
        prompt = await world.say(BILAL, bilal_code)
        assert prompt["text"].startswith("TEST: ") and "1st choice" in prompt["text"]
        await world.tap(BILAL, "Jo Okafor")
        await world.tap(BILAL, "Done")
        await world.tap(BILAL, "Cast my vote")
        assert world.api.last_message(BILAL.id)["text"].startswith("TEST: Vote cast")

        # Carys is not testing: on either channel she is told when voting opens, and no
        # code is texted to her.
        carys = phone(world, CARYS_PHONE)
        not_yet = f"TEST: {texts.not_open(world.core.election)}"
        assert await carys.text("vote") == [not_yet]
        assert (await world.say(CARYS, carys_code))["text"] == not_yet
        assert not [m for m in twilio.messages if m.to == CARYS_PHONE]

        assert await stored_ballots(redis, world.core.election) == {
            "patel,byrne": 1,
            "okafor": 1,
        }
        assert (await turnout(redis, world.core.election)).voted == 2
        _, shown = await cli(world.clock, redis, "turnout", "--election", eid)
        assert "REHEARSAL RUNNING: these are test ballots" in shown and "voted     2" in shown

        # A reminder reaches the testers who have not voted, and only them, marked.
        job = await remind(world, redis, "Hi {name}, please vote.")
        reminded = [m for m in twilio.messages if m.body.endswith("please vote.")]
        assert [(m.to, m.body) for m in reminded] == [
            (DEV_PHONE, "TEST: Hi Dev Shah, please vote.")
        ]
        # Dev asks for no more reminders, and Carys too: a STOP is honoured whenever it
        # was sent, so it outlasts the rehearsal.
        assert (await phone(world, DEV_PHONE).text("STOP"))[0].startswith("TEST: ")
        assert (await carys.text("STOP"))[0].startswith("TEST: ")
        # Erin (not testing) types Dev's voting code into her own Telegram account: it is
        # a tester's code, so it works, and links her account to Dev's record for now.
        prompt = await world.say(ERIN, dev_code)
        assert prompt["text"].startswith("TEST: ") and "1st choice" in prompt["text"]
        assert await redis.hget(keys.telegram_index(eid), str(ERIN.id)) == "S1004"

        await copies_removed(world)
        status, said = await cli(world.clock, redis, "election", "finalise", "--election", eid)
        assert status == 0 and "wiped 2 ballots" in said
        after = await everything(redis)

        audit_key = keys.audit(eid)
        assert before.pop(audit_key, None) is None  # loading wrote none: no organiser acted
        assert after.pop(audit_key) == AUDIT
        stops = keys.opted_out("sms")
        assert after.pop(stops) == sorted([CARYS_PHONE, DEV_PHONE])
        assert stops not in before
        blocked = keys.unreachable("telegram")
        assert before.pop(blocked) == [str(BILAL.id)] and blocked not in after
        assert after == before
        entries = cast(list[tuple[str, dict[str, str]]], await redis.xrange(audit_key))
        trail = [fields["action"] for _, fields in entries]
        assert trail[0] == "rehearsal started" and trail[-1] == "rehearsal finalised"
        assert job  # the job's keys went with it (compared above)

        # The election is as new: after the opening Ann votes for real with a fresh code,
        # and her replies are no longer marked.
        world.clock.set(OPENS + timedelta(minutes=1))
        sent = await ann.text("vote again")
        assert "is your code" in sent[0] and not sent[0].startswith("TEST")
        await ann.text(sent[0].split()[0])
        await ann.text("1 3")
        assert (await ann.text("YES"))[0].startswith("Vote cast")
        assert await stored_ballots(redis, world.core.election) == {"green,okafor": 1}


async def test_it_cannot_start_once_voting_has_opened_or_twice(
    redis: Redis, tmp_path: Path
) -> None:
    election = await sample_election(redis, opens=OPENS)
    testers = tmp_path / "t.txt"
    testers.write_text("S1001\n")
    late = ManualClock(OPENS)
    with pytest.raises(RehearsalError, match="a rehearsal must come before real voting"):
        await rehearse(late, redis, election.id, testers)
    clock = ManualClock(NOW)
    unknown = tmp_path / "u.txt"
    unknown.write_text("S1001\nS9999\n")
    keys_before = await redis.dbsize()
    with pytest.raises(RehearsalError, match=r"not on the roll of .*: S9999 .*nothing was started"):
        await rehearse(clock, redis, election.id, unknown)
    assert await redis.dbsize() == keys_before
    await rehearse(clock, redis, election.id, testers)
    with pytest.raises(RehearsalError, match="already has a rehearsal running: finalise it first"):
        await rehearse(clock, redis, election.id, testers)
    # While it runs the roll is left alone: finalising puts the testers' records back.
    with pytest.raises(OpenPrimaryError, match="is being rehearsed: finalise the rehearsal first"):
        await cli(clock, redis, "roll", "import", "examples/roll.csv", "--election", election.id)
    await cli(clock, redis, "election", "finalise", "--election", election.id)
    with pytest.raises(RehearsalError, match="has no rehearsal to finalise"):
        await cli(clock, redis, "election", "finalise", "--election", election.id)


async def test_left_unfinalised_past_the_opening_nobody_can_vote(
    redis: Redis, tmp_path: Path
) -> None:
    async with rehearsal_world(redis) as (world, _):
        eid = world.core.election.id
        testers = tmp_path / "testers.txt"
        testers.write_text("S1001\n")
        await rehearse(world.clock, redis, eid, testers)
        ann = phone(world, ANN_PHONE)
        code = (await ann.text("vote"))[0].removeprefix("TEST: ").split()[0]
        await ann.text(code)
        await ann.text("1")
        # The opening passes before she confirms: the rehearsal's ballots are still in the
        # box, so no ballot is taken, hers or anyone's, until it is finalised.
        world.clock.set(OPENS + timedelta(minutes=1))
        refused = await ann.text("YES")
        assert refused == [f"TEST: {texts.rehearsal_unfinished(world.core.election)}"]
        assert await stored_ballots(redis, world.core.election) == {}
        await cli(world.clock, redis, "election", "finalise", "--election", eid)
        sent = await ann.text("hello")
        assert "is your code" in sent[0] and not sent[0].startswith("TEST")


async def test_a_running_reminder_job_must_be_cancelled_before_the_finalise(
    redis: Redis, tmp_path: Path
) -> None:
    clock = ManualClock(NOW)
    election = await sample_election(redis, opens=OPENS)
    testers = tmp_path / "t.txt"
    testers.write_text("S1001\nS1004\n")
    await rehearse(clock, redis, election.id, testers)
    ready = await plan(redis, election, "Vote, {name}", rules=TEXT_RULES, clock=clock)
    assert ready.rehearsal and ready.total == 2
    assert ready.sample["sms"] == "TEST: Vote, Ann Hughes"
    job = await Reminders(redis, clock).create(election, ready, "cli:t")
    with pytest.raises(RehearsalError, match=f"reminder job {job} is still running: cancel it"):
        await cli(clock, redis, "election", "finalise", "--election", election.id)
    await Reminders(redis, clock).cancel(job, "cli:t")
    status, _ = await cli(clock, redis, "election", "finalise", "--election", election.id)
    assert status == 0
    assert not await redis.exists(keys.reminder(job))


async def test_an_unfinished_reminder_or_new_codes_would_spoil_it(
    redis: Redis, tmp_path: Path
) -> None:
    clock = ManualClock(NOW)
    election = await sample_election(redis, opens=OPENS)
    testers = tmp_path / "t.txt"
    testers.write_text("S1001\n")
    # A real reminder still going would reach everyone while testers vote.
    ready = await plan(redis, election, "Polls open soon", rules=TEXT_RULES, clock=clock)
    job = await Reminders(redis, clock).create(election, ready, "cli:t")
    with pytest.raises(RehearsalError, match=f"reminder job {job} is running: .*cancel it first"):
        await rehearse(clock, redis, election.id, testers)
    await Reminders(redis, clock).cancel(job, "cli:t")
    await rehearse(clock, redis, election.id, testers)
    # Codes issued now would be undone by the finalise, which puts testers' codes back.
    with pytest.raises(OpenPrimaryError, match="is being rehearsed: issue codes before"):
        await cli(
            clock, redis, "codes", "issue", "--election", election.id, "--out", str(tmp_path / "c")
        )
    assert not (tmp_path / "c").exists()


async def test_without_a_count_key_it_is_refused_and_finalise_says_what_is_missing(
    redis: Redis, tmp_path: Path
) -> None:
    election = await sample_election(redis, opens=OPENS)
    testers = tmp_path / "t.txt"
    testers.write_text("S1001\n")
    clock = ManualClock(NOW)
    key, key_id = await redis.hmget(keys.election(election.id), ["count_key", "count_key_id"])
    await redis.hdel(keys.election(election.id), "count_key", "count_key_id")
    keys_before = await redis.dbsize()
    with pytest.raises(RehearsalError, match=r"has no count key yet.*trustees init --election"):
        await rehearse(clock, redis, election.id, testers)
    assert await redis.dbsize() == keys_before
    # With the key, it starts; finalised, the election is ready only while the key is there.
    await redis.hset(
        keys.election(election.id), mapping={"count_key": str(key), "count_key_id": str(key_id)}
    )
    await rehearse(clock, redis, election.id, testers)
    await redis.hdel(keys.election(election.id), "count_key", "count_key_id")
    _, out = await cli(clock, redis, "election", "finalise", "--election", election.id)
    assert "The election is NOT ready to open" in out and "no count key (" in out
    assert "is ready to open" not in out
