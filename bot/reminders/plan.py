"""Who a reminder reaches, on which channel, and what it costs: checked before it starts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from ballots import keys
from ballots.clock import Clock, SystemClock
from ballots.election import Election
from ballots.quiet import local, sending_finishes
from ballots.roll import CHOSEN_LANGUAGE
from bot import texts
from bot.messages import Channel
from bot.ports import TextRules
from bot.reach import Reach
from bot.reminders.common import BATCH, CHANNELS, MAX_SMS_SEGMENTS, ReminderError
from bot.reminders.text import marked, render, rendered, template_problems

# --- who gets it -------------------------------------------------------------------


@dataclass
class Plan:
    """Who a reminder would reach and what it would cost, before anything is sent."""

    election: str
    template: str
    channel: str
    recipients: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CHANNELS})
    skipped: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("voted", "opted_out", "unreachable", "other_channel"), 0
        )
    )
    sms_segments: int = 0
    max_sms_segments: int = 0
    problems: list[str] = field(default_factory=list)
    sample: dict[str, str] = field(default_factory=dict)
    #: Per language the reminder goes in: recipients by channel, and SMS segments.
    languages: dict[str, dict[str, int]] = field(default_factory=dict)
    #: A rehearsal is under way: only its testers are reminded, and the text says "TEST".
    rehearsal: bool = False

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.recipients.values())

    def count(self, channel: str) -> int:
        return len(self.recipients[channel])

    def to_dict(self) -> dict[str, Any]:
        return {
            "election": self.election,
            "channel": self.channel,
            "recipients": {c: len(v) for c, v in self.recipients.items()},
            "total": self.total,
            "sms_segments": self.sms_segments,
            "max_sms_segments": self.max_sms_segments,
            "skipped": dict(self.skipped),
            "problems": list(self.problems),
            "sample": dict(self.sample),
            "languages": {code: dict(counts) for code, counts in self.languages.items()},
            "rehearsal": self.rehearsal,
        }


async def plan(
    redis: Redis,
    election: Election,
    template: str,
    channel: str = "all",
    *,
    rules: Mapping[str, TextRules],
    clock: Clock | None = None,
    max_segments: int = MAX_SMS_SEGMENTS,
) -> Plan:
    """Work out the recipients and check every message before anything is sent.

    Telegram where linked and reachable, otherwise SMS.  Opting out on the
    channel a supporter would be reminded on skips them (it is their
    wish); a Telegram chat that blocked the bot falls back to SMS.  Each
    channel's ``rules`` say what its messages become, cost and cannot carry.
    """
    if channel not in (*CHANNELS, "all"):
        raise ReminderError(f"unknown channel {channel!r}; use sms, telegram or all")
    result = Plan(election.id, template, channel, problems=template_problems(template, election))
    if result.problems:
        return result
    now = (clock or SystemClock()).now()
    too_long: dict[str, list[str]] = {c: [] for c in CHANNELS}  # channel -> problems
    mark = await redis.hget(keys.rehearsal(election.id), "state")
    testing = None if mark is None else str(mark)
    if testing is not None:
        # A rehearsal: its testers only (none while it is being finalised), marked.
        result.rehearsal = True
        result.template = marked(template, election, texts.TEST_MARK)
    async for shard, sids in _supporters(redis, election, testing):
        await _plan_batch(redis, election, sids, shard, result, now, too_long, max_segments, rules)
    for ch in CHANNELS:
        # Each language's version, as it would go (faithful or folded), checked once.
        versions = [
            (render(result.template, election, "", now, code), election.sms_faithful(code))
            for code in result.languages
        ]
        dropped = sorted({c for text, keep in versions for c in rules[ch].dropped(text, keep)})
        if result.count(ch) and dropped:
            result.problems.append(
                f"these characters cannot go by {ch.upper() if ch == 'sms' else ch.title()} "
                "and would vanish: " + " ".join(dropped)
            )
    for ch, found in too_long.items():
        if found:
            result.problems.append(f"{len(found)} {ch} message(s) cannot go: {found[0]}")
    return result


async def _supporters(
    redis: Redis, election: Election, testing: str | None
) -> AsyncIterator[tuple[int, list[str]]]:
    """Whom to consider, a shard's batch at a time: the roll, or in a rehearsal its testers."""
    if testing is not None:
        testers: dict[int, list[str]] = {}
        if testing == "running":
            found = await redis.smembers(keys.rehearsal_testers(election.id))
            for sid in sorted(str(s) for s in found):
                testers.setdefault(keys.shard_of(sid, election.shards), []).append(sid)
        for shard, sids in sorted(testers.items()):
            for i in range(0, len(sids), BATCH):
                yield shard, sids[i : i + BATCH]
        return
    for shard in range(election.shards):
        cursor = 0
        seen: set[str] = set()  # SSCAN may return a member twice (while the set rehashes)
        while True:
            cursor, page = await redis.sscan(keys.members(election.id, shard), cursor, count=2000)
            members = sorted({str(m) for m in page} - seen)
            seen.update(members)
            for i in range(0, len(members), BATCH):
                yield shard, members[i : i + BATCH]
            if cursor == 0:
                break


async def _plan_batch(
    redis: Redis,
    election: Election,
    sids: list[str],
    shard: int,
    result: Plan,
    now: datetime,
    too_long: dict[str, list[str]],
    max_segments: int,
    rules: Mapping[str, TextRules],
) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for sid in sids:
            pipe.hmget(
                keys.voter(election.id, shard, sid),
                ["name", "phone", "telegram_id", "voted", "language", CHOSEN_LANGUAGE],
            )
        # A language the voter chose in the chat wins over the roll's.
        records = [(*r[:4], r[5] or r[4]) for r in await pipe.execute()]
    phones = [r[1] or "" for r in records]
    chats = [r[2] or "" for r in records]
    async with redis.pipeline(transaction=False) as pipe:
        Reach.check_many(pipe, Channel.SMS, phones)
        Reach.check_many(pipe, Channel.TELEGRAM, chats)
        sms_out, sms_dead, tg_out, tg_dead = await pipe.execute()
    for i, (sid, (name, phone, chat, voted, wanted)) in enumerate(zip(sids, records, strict=True)):
        if voted:
            result.skipped["voted"] += 1
            continue
        if chat and tg_out[i]:
            result.skipped["opted_out"] += 1
            continue
        if chat and not tg_dead[i]:
            ch = Channel.TELEGRAM
        elif not phone or sms_dead[i]:
            result.skipped["unreachable"] += 1
            continue
        elif sms_out[i]:
            result.skipped["opted_out"] += 1
            continue
        else:
            ch = Channel.SMS
        if result.channel not in ("all", ch):
            result.skipped["other_channel"] += 1
            continue
        one = rendered(result.template, election, name or "", wanted, now, rules[ch], max_segments)
        if one.problem:
            too_long[ch].append(f"{one.problem} (supporter {sid})")
        counts = result.languages.setdefault(
            one.language, {Channel.SMS: 0, Channel.TELEGRAM: 0, "sms_segments": 0}
        )
        counts[ch] += 1
        if ch == Channel.SMS:
            result.sms_segments += one.parts
            counts["sms_segments"] += one.parts
            result.max_sms_segments = max(result.max_sms_segments, one.parts)
        result.sample.setdefault(ch, one.body)
        result.recipients[ch].append(sid)


def finishes(p: Plan, election: Election, rates: Mapping[str, float], now: datetime) -> datetime:
    """When the plan's messages would all be out, sent from ``now`` at ``rates`` (messages a
    second, by channel, side by side) and held in the quiet hours."""
    ends = [sending_finishes(election, now, p.count(ch), rates[ch]) for ch in CHANNELS]
    return max(ends, default=now)


def after_the_close(p: Plan, election: Election, finish: datetime) -> str | None:
    """A warning when the messages would not all be out before voting closes: the job stops
    at the close, and those not reached by then are not reminded."""
    if p.total and finish > election.closes:
        return (
            f"at these rates it would finish {local(election, finish)}, after voting closes "
            f"{local(election, election.closes)}: whoever is not reached by then is not "
            "reminded (the job stops at the close)"
        )
    return None
