"""Reminder jobs: one message to every supporter who has not voted, once each.

A job lives in Redis, never in a process.  When it starts, its recipients
are fixed: each supporter on the roll who has not voted, has not opted out
and can be reached, on their own channel (Telegram where linked and
reachable, otherwise SMS).  They are stored as one list of supporter ids per
channel; a recipient is known by its index in that list, and its progress
is 4 bits at that index (:class:`Progress`), so a job for 100,000
supporters takes about a megabyte.

Any number of worker processes drain one job.  Each message goes through
three atomic steps, every one a Lua script on the job's hash slot:

1. **claim** an index (from the retry list, else the next one in order);
2. **begin**, just before the platform call: the claim becomes "sending";
3. **finish** with the outcome (sent, skipped because they voted, ...).

A worker's claims are tied to a heartbeat.  When a worker dies (``kill
-9``), its claims that never began go back to the queue; a message that
had begun but not finished may or may not have reached the platform, so it
is marked *in doubt* and **not sent again**: reminders are at most once.
See the README section for why, and ``--resend-in-doubt`` for the choice
the other way.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import secrets
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from ballots import audit, keys
from ballots.clock import Clock, SystemClock
from ballots.election import Election, get_election
from ballots.errors import OpenPrimaryError
from bot import texts
from bot.messages import OutboundMessage
from bot.metrics import MESSAGES_OUT
from bot.ratelimit import RateLimiter
from channels.base import Sender, SendResult
from channels.gsm import MAX_BODY, is_gsm, segments, to_gsm

log = logging.getLogger(__name__)

CHANNELS = ("sms", "telegram")
#: Telegram's limit on the text of one message (in UTF-16 code units).
TELEGRAM_MAX = 4096
#: A reminder longer than this many SMS segments is refused (each one is billed).
MAX_SMS_SEGMENTS = 4
#: Placeholders a reminder may use.
FIELDS = ("name", "days_left", "closes")
#: What the actor is called in audit entries the job writes by itself.
SYSTEM_ACTOR = "openprimary"
#: Seconds a worker's claims outlive its last heartbeat.
HEARTBEAT = 15.0
_BATCH = 1000


class ReminderError(OpenPrimaryError):
    """A reminder that cannot be started, resumed or changed as asked."""


class Progress(enum.IntEnum):
    """The state of one recipient's message (4 bits per recipient)."""

    PENDING = 0
    CLAIMED = 1
    SENDING = 2
    SENT = 3
    VOTED = 4
    OPTED_OUT = 5
    UNREACHABLE = 6
    FAILED = 7
    IN_DOUBT = 8
    SENT_BY_SMS = 9


#: Outcomes a recipient can end in, as counted in the job hash (``n:<outcome>:<channel>``).
OUTCOMES = ("sent", "sent_by_sms", "voted", "opted_out", "unreachable", "failed", "in_doubt")
_STATUS_OUTCOME = {
    "sent": "sent",
    "opted_out": "opted_out",
    "unreachable": "unreachable",
    "in_doubt": "in_doubt",
}


# --- the Lua steps --------------------------------------------------------------
#
# Every script takes the same KEYS (see _job_keys): the job hash, claims,
# workers, doubt, then list/retry/progress for sms and for telegram.

#: How long a finished or cancelled job's keys stay in Redis.
JOB_RETENTION = 30 * 24 * 3600

_COMMON = (
    f"""
local JOB_RETENTION_MS = {JOB_RETENTION * 1000}
"""
    + """
local job, claims, workers, doubt = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local CHANNELS = {'sms', 'telegram'}
local function base(ch) if ch == 'sms' then return 5 end return 8 end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- A finished or cancelled job is kept for JOB_RETENTION (for --status), then
-- Redis drops it; the audit trail keeps its outcome for good.
local function retire()
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], JOB_RETENTION_MS) end
end
local function set_progress(ch, idx, value)
  redis.call('BITFIELD', KEYS[base(ch) + 2], 'SET', 'u4', '#' .. idx, value)
end
local function finish_if_done()
  if redis.call('HGET', job, 'status') ~= 'running' then return 'no' end
  if redis.call('HLEN', claims) > 0 then return 'no' end
  for _, ch in ipairs(CHANNELS) do
    if redis.call('LLEN', KEYS[base(ch) + 1]) > 0 then return 'no' end
    local n = tonumber(redis.call('HGET', job, 'next:' .. ch) or '0')
    if n < tonumber(redis.call('HGET', job, 'total:' .. ch) or '0') then return 'no' end
  end
  redis.call('HSET', job, 'status', 'finished', 'finished_at', math.floor(now_ms() / 1000))
  retire()
  return 'finished'
end
"""
)

# ARGV: channel, worker.  -> {'ok', index, supporter id} | {'empty'} | {status}
_CLAIM = (
    _COMMON
    + """
local ch, worker = ARGV[1], ARGV[2]
local status = redis.call('HGET', job, 'status')
if status ~= 'running' then return {status or 'missing'} end
local idx = redis.call('LPOP', KEYS[base(ch) + 1])
if not idx then
  local n = tonumber(redis.call('HGET', job, 'next:' .. ch) or '0')
  if n >= tonumber(redis.call('HGET', job, 'total:' .. ch) or '0') then return {'empty'} end
  redis.call('HSET', job, 'next:' .. ch, n + 1)
  idx = n
end
idx = tonumber(idx)
local sid = redis.call('LINDEX', KEYS[base(ch)], idx)
redis.call('HSET', claims, ch .. ':' .. idx, worker .. ':c')
set_progress(ch, idx, 1)
return {'ok', idx, sid}
"""
)

# ARGV: channel, index, worker.  -> 'ok' | 'lost' | the job's status (claim handed back)
_BEGIN = (
    _COMMON
    + """
local ch, idx, worker = ARGV[1], ARGV[2], ARGV[3]
local field = ch .. ':' .. idx
if redis.call('HGET', claims, field) ~= worker .. ':c' then return 'lost' end
local status = redis.call('HGET', job, 'status')
if status ~= 'running' then
  redis.call('HDEL', claims, field)
  redis.call('LPUSH', KEYS[base(ch) + 1], idx)
  set_progress(ch, idx, 0)
  return status
end
redis.call('HSET', claims, field, worker .. ':s')
set_progress(ch, idx, 2)
return 'ok'
"""
)

# ARGV: channel, index, worker, progress value, outcome name.  -> 'finished' | 'no' | 'lost'
_FINISH = (
    _COMMON
    + """
local ch, idx, worker = ARGV[1], ARGV[2], ARGV[3]
local field = ch .. ':' .. idx
local owner = redis.call('HGET', claims, field)
if owner == worker .. ':c' or owner == worker .. ':s' then
  redis.call('HDEL', claims, field)
else
  local current = redis.call('BITFIELD', KEYS[base(ch) + 2], 'GET', 'u4', '#' .. idx)[1]
  if current ~= 8 then return 'lost' end
  -- Marked in doubt while this worker was slow but alive: now we know.
  redis.call('HINCRBY', job, 'n:in_doubt:' .. ch, -1)
  redis.call('LREM', doubt, 1, field)
end
set_progress(ch, idx, tonumber(ARGV[4]))
redis.call('HINCRBY', job, 'n:' .. ARGV[5] .. ':' .. ch, 1)
if ARGV[5] == 'in_doubt' then redis.call('RPUSH', doubt, field) end
return finish_if_done()
"""
)

# ARGV: none.  Claims of workers whose heartbeat ran out: unbegun ones go back
# to the queue, begun ones are marked in doubt.  -> {requeued, in doubt, 'finished'|'no'}
_RECOVER = (
    _COMMON
    + """
local now = now_ms()
local held = redis.call('HGETALL', claims)
local requeued, doubted = 0, 0
for i = 1, #held, 2 do
  local field, value = held[i], held[i + 1]
  local worker, phase = string.sub(value, 1, -3), string.sub(value, -1)
  local expiry = redis.call('ZSCORE', workers, worker)
  if (not expiry) or tonumber(expiry) < now then
    local sep = string.find(field, ':', 1, true)
    local ch, idx = string.sub(field, 1, sep - 1), string.sub(field, sep + 1)
    redis.call('HDEL', claims, field)
    if phase == 'c' then
      redis.call('LPUSH', KEYS[base(ch) + 1], idx)
      set_progress(ch, idx, 0)
      requeued = requeued + 1
    else
      set_progress(ch, idx, 8)
      redis.call('HINCRBY', job, 'n:in_doubt:' .. ch, 1)
      redis.call('RPUSH', doubt, field)
      doubted = doubted + 1
    end
  end
end
redis.call('ZREMRANGEBYSCORE', workers, '-inf', '(' .. now)
return {requeued, doubted, finish_if_done()}
"""
)

# ARGV: worker, ttl (ms), '1' to join or '0' to leave.
_HEARTBEAT = (
    _COMMON
    + """
if ARGV[3] == '0' then redis.call('ZREM', workers, ARGV[1]) return 0 end
redis.call('ZADD', workers, now_ms() + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)

# ARGV: new status, allowed current statuses...  -> the status before
_SET_STATUS = (
    _COMMON
    + """
local status = redis.call('HGET', job, 'status')
if not status then return 'missing' end
for i = 2, #ARGV do
  if status == ARGV[i] then
    redis.call('HSET', job, 'status', ARGV[1])
    if ARGV[1] == 'running' then finish_if_done() end
    if ARGV[1] == 'cancelled' then retire() end
    return status
  end
end
return status
"""
)

# ARGV: none.  In-doubt messages go back to the queue (the organiser chose
# at-least-once for them); a finished job runs again.  -> how many
_RESEND_DOUBT = (
    _COMMON
    + """
local status = redis.call('HGET', job, 'status')
if status ~= 'running' and status ~= 'paused' and status ~= 'finished' then return -1 end
local n = 0
while true do
  local field = redis.call('LPOP', doubt)
  if not field then break end
  local sep = string.find(field, ':', 1, true)
  local ch, idx = string.sub(field, 1, sep - 1), string.sub(field, sep + 1)
  redis.call('LPUSH', KEYS[base(ch) + 1], idx)
  set_progress(ch, idx, 0)
  redis.call('HINCRBY', job, 'n:in_doubt:' .. ch, -1)
  n = n + 1
end
if n > 0 and status == 'finished' then
  redis.call('HSET', job, 'status', 'running')
  for i = 1, #KEYS do redis.call('PERSIST', KEYS[i]) end
end
return n
"""
)


def _job_keys(job_id: str) -> list[str]:
    out = [
        keys.reminder(job_id),
        keys.reminder_claims(job_id),
        keys.reminder_workers(job_id),
        keys.reminder_doubt(job_id),
    ]
    for ch in CHANNELS:
        out += [
            keys.reminder_recipients(job_id, ch),
            keys.reminder_retry(job_id, ch),
            keys.reminder_progress(job_id, ch),
        ]
    return out


# --- the text --------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def template_problems(template: str) -> list[str]:
    """What is wrong with a reminder's text as a template (empty: nothing)."""
    if not template.strip():
        return ["the message is empty"]
    problems: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        return [f"the message has a stray brace ({err}); write {{{{ or }}}} for a literal one"]
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in FIELDS:
            problems.append(
                f"unknown placeholder {{{name}}}; use {', '.join('{' + f + '}' for f in FIELDS)}"
            )
        elif spec or conversion:
            problems.append(f"placeholder {{{name}}} takes no format or conversion")
    return problems


def days_left(election: Election, now: datetime) -> int:
    """Whole days (rounded up) until the election closes; 0 once closed."""
    seconds = (election.closes - now).total_seconds()
    return max(0, math.ceil(seconds / 86400))


def render(template: str, election: Election, name: str, now: datetime) -> str:
    """The reminder for one supporter."""
    return template.format(
        name=name.strip() or "supporter",
        days_left=days_left(election, now),
        closes=texts.when(election.closes),
    )


def sms_body(text: str) -> str:
    """A reminder as it goes by SMS: plain GSM-7 (what the SMS sender makes of it)."""
    return to_gsm(text)


def dropped_by_sms(text: str) -> list[str]:
    """Characters SMS cannot carry even approximately (emoji...): they would vanish."""
    return sorted(
        {
            ch
            for ch in text
            if not is_gsm(ch)
            and not ch.isspace()
            and unicodedata.category(ch)[0] not in "CM"
            and to_gsm(f"<{ch}>") == "<>"
        }
    )


def text_problem(channel: str, text: str, max_segments: int = MAX_SMS_SEGMENTS) -> str | None:
    """Why ``text`` cannot go on ``channel`` (None: it can)."""
    if channel == "sms":
        body = sms_body(text)
        if not body:
            return "the SMS would be empty"
        n = segments(body)
        if len(body) > MAX_BODY or n > max_segments:
            return f"the SMS would be {n} segments ({len(body)} characters); at most {max_segments}"
        return None
    if utf16_len(text) > TELEGRAM_MAX:
        return f"the Telegram message would be {utf16_len(text)} characters; at most {TELEGRAM_MAX}"
    return None


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
    longest_telegram: int = 0
    problems: list[str] = field(default_factory=list)
    sample: dict[str, str] = field(default_factory=dict)

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
        }


async def plan(
    redis: Redis,
    election: Election,
    template: str,
    channel: str = "all",
    *,
    clock: Clock | None = None,
    max_segments: int = MAX_SMS_SEGMENTS,
) -> Plan:
    """Work out the recipients and check every message before anything is sent.

    Telegram where linked and reachable, otherwise SMS.  Opting out on the
    channel a supporter would be reminded on skips them (it is their
    wish); a Telegram chat that blocked the bot falls back to SMS.
    """
    if channel not in (*CHANNELS, "all"):
        raise ReminderError(f"unknown channel {channel!r}; use sms, telegram or all")
    result = Plan(election.id, template, channel, problems=template_problems(template))
    if result.problems:
        return result
    now = (clock or SystemClock()).now()
    too_long: dict[str, list[str]] = {c: [] for c in CHANNELS}  # channel -> problems
    for shard in range(election.shards):
        cursor = 0
        seen: set[str] = set()  # SSCAN may return a member twice (while the set rehashes)
        while True:
            cursor, page = await redis.sscan(keys.members(election.id, shard), cursor, count=2000)
            members = sorted({str(m) for m in page} - seen)
            seen.update(members)
            for i in range(0, len(members), _BATCH):
                await _plan_batch(
                    redis,
                    election,
                    members[i : i + _BATCH],
                    shard,
                    result,
                    now,
                    too_long,
                    max_segments,
                )
            if cursor == 0:
                break
    dropped = dropped_by_sms(template)
    if result.count("sms") and dropped:
        result.problems.append(
            "these characters cannot go by SMS and would vanish: " + " ".join(dropped)
        )
    for ch, found in too_long.items():
        if found:
            result.problems.append(f"{len(found)} {ch} message(s) cannot go: {found[0]}")
    return result


async def _plan_batch(
    redis: Redis,
    election: Election,
    sids: list[str],
    shard: int,
    result: Plan,
    now: datetime,
    too_long: dict[str, list[str]],
    max_segments: int,
) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for sid in sids:
            pipe.hmget(
                keys.voter(election.id, shard, sid), ["name", "phone", "telegram_id", "voted"]
            )
        records = await pipe.execute()
    phones = [r[1] or "" for r in records]
    chats = [r[2] or "" for r in records]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.smismember(keys.opted_out("sms"), phones)
        pipe.smismember(keys.unreachable("sms"), phones)
        pipe.smismember(keys.opted_out("telegram"), chats)
        pipe.smismember(keys.unreachable("telegram"), chats)
        sms_out, sms_dead, tg_out, tg_dead = await pipe.execute()
    for i, (sid, (name, phone, chat, voted)) in enumerate(zip(sids, records, strict=True)):
        if voted:
            result.skipped["voted"] += 1
            continue
        if chat and tg_out[i]:
            result.skipped["opted_out"] += 1
            continue
        if chat and not tg_dead[i]:
            ch = "telegram"
        elif not phone or sms_dead[i]:
            result.skipped["unreachable"] += 1
            continue
        elif sms_out[i]:
            result.skipped["opted_out"] += 1
            continue
        else:
            ch = "sms"
        if result.channel not in ("all", ch):
            result.skipped["other_channel"] += 1
            continue
        text = render(result.template, election, name or "", now)
        problem = text_problem(ch, text, max_segments)
        if problem:
            too_long[ch].append(f"{problem} (supporter {sid})")
        if ch == "sms":
            n = segments(sms_body(text))
            result.sms_segments += n
            result.max_sms_segments = max(result.max_sms_segments, n)
            result.sample.setdefault("sms", sms_body(text))
        else:
            result.longest_telegram = max(result.longest_telegram, utf16_len(text))
            result.sample.setdefault("telegram", text)
        result.recipients[ch].append(sid)


# --- the job as organisers see it ---------------------------------------------------


@dataclass(frozen=True)
class JobStatus:
    """A reminder job's progress."""

    job: str
    election: str
    status: str
    template: str
    channel: str
    actor: str
    started_at: datetime | None
    finished_at: datetime | None
    totals: dict[str, int]
    counts: dict[str, dict[str, int]]
    claimed: int
    skipped_at_start: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    def outcome(self, name: str) -> int:
        return sum(c.get(name, 0) for c in self.counts.values())

    @property
    def done(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    @property
    def remaining(self) -> int:
        return self.total - self.done

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "election": self.election,
            "status": self.status,
            "channel": self.channel,
            "actor": self.actor,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "total": self.total,
            "done": self.done,
            "remaining": self.remaining,
            "recipients": dict(self.totals),
            "outcomes": {o: self.outcome(o) for o in OUTCOMES},
            "by_channel": {c: dict(v) for c, v in self.counts.items()},
            "in_flight": self.claimed,
            "skipped_at_start": dict(self.skipped_at_start),
        }

    def summary(self) -> str:
        """One line for a person."""
        parts = [f"{self.done}/{self.total} done"]
        parts += [f"{self.outcome(o)} {o.replace('_', ' ')}" for o in OUTCOMES if self.outcome(o)]
        return f"job {self.job} {self.status}: " + ", ".join(parts)


def _when(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def new_job_id(now: datetime) -> str:
    """A job id that sorts by start time and cannot be guessed."""
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


async def record_finished(redis: Redis, clock: Clock, status: JobStatus) -> None:
    """Audit a job's end (called once: by whoever's step finished it)."""
    log.info("%s", status.summary())
    await audit.record(
        redis,
        clock,
        status.election,
        SYSTEM_ACTOR,
        "reminder finished",
        job=status.job,
        **{o: status.outcome(o) for o in OUTCOMES},
    )


def default_concurrency(rate: float) -> int:
    """Messages on their way at once per process: a second's worth.

    A call takes ~200 ms, but one whose answer never comes holds its place
    until the sender's timeout: a second's worth keeps the rate with a few
    percent of answers held, as the fault-injection tests measure.
    """
    return max(4, min(256, math.ceil(rate)))


class Reminders:
    """Creates reminder jobs and changes their status; :class:`Worker` sends them."""

    def __init__(self, redis: Redis, clock: Clock | None = None) -> None:
        self.redis = redis
        self.clock = clock or SystemClock()
        self._set_status = redis.register_script(_SET_STATUS)
        self._resend = redis.register_script(_RESEND_DOUBT)

    async def create(
        self, election: Election, ready: Plan, actor: str, *, factor: str = "cli"
    ) -> str:
        """Store a checked plan as a running job; its recipients are now fixed.

        ``factor`` is how the organiser confirmed it, for the audit trail: the
        command line, or a code sent to their Telegram chat.
        """
        if ready.problems:
            raise ReminderError("; ".join(ready.problems))
        if not ready.total:
            raise ReminderError("nobody to remind: every supporter has voted or cannot be reached")
        now = self.clock.now()
        job = new_job_id(now)
        meta: dict[FieldT, EncodableT] = {
            "status": "preparing",
            "election": election.id,
            "template": ready.template,
            "channel": ready.channel,
            "actor": actor,
            "started_at": int(now.timestamp()),
        }
        for ch in CHANNELS:
            meta[f"total:{ch}"] = ready.count(ch)
            meta[f"next:{ch}"] = 0
        for reason, n in ready.skipped.items():
            meta[f"skipped:{reason}"] = n
        await self.redis.hset(keys.reminder(job), mapping=meta)
        for ch in CHANNELS:
            sids = ready.recipients[ch]
            for i in range(0, len(sids), 10 * _BATCH):
                await self.redis.rpush(
                    keys.reminder_recipients(job, ch), *sids[i : i + 10 * _BATCH]
                )
        # Only now can workers see it: a crash above leaves a "preparing" job
        # that never sent anything.
        await self.redis.hset(keys.reminder(job), "status", "running")
        await self.redis.zadd(keys.reminder_jobs(election.id), {job: now.timestamp()})
        await audit.record(
            self.redis,
            self.clock,
            election.id,
            actor,
            "reminder started",
            job=job,
            channel=ready.channel,
            message=ready.template,
            recipients={c: ready.count(c) for c in CHANNELS},
            sms_segments=ready.sms_segments,
            factor=factor,
        )
        return job

    async def status(self, job: str) -> JobStatus:
        """The job's progress, or ReminderError if there is no such job."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.reminder(job))
            pipe.hlen(keys.reminder_claims(job))
            meta, claimed = await pipe.execute()
        if not meta:
            raise ReminderError(f"no reminder job {job!r}")
        counts = {ch: {o: int(meta.get(f"n:{o}:{ch}", 0)) for o in OUTCOMES} for ch in CHANNELS}
        return JobStatus(
            job=job,
            election=meta["election"],
            status=meta["status"],
            template=meta.get("template", ""),
            channel=meta.get("channel", "all"),
            actor=meta.get("actor", ""),
            started_at=_when(meta.get("started_at")),
            finished_at=_when(meta.get("finished_at")),
            totals={ch: int(meta.get(f"total:{ch}", 0)) for ch in CHANNELS},
            counts=counts,
            claimed=int(claimed),
            skipped_at_start={
                k.split(":", 1)[1]: int(v) for k, v in meta.items() if k.startswith("skipped:")
            },
        )

    async def in_doubt(self, job: str) -> list[tuple[str, str]]:
        """(channel, supporter id) of each message in doubt: sent or not, nobody knows."""
        found: list[tuple[str, str]] = []
        for entry in await self.redis.lrange(keys.reminder_doubt(job), 0, -1):
            channel, _, index = str(entry).partition(":")
            sid = await self.redis.lindex(keys.reminder_recipients(job, channel), int(index))
            found.append((channel, str(sid)))
        return found

    async def latest(self, election_id: str) -> str | None:
        """The most recently started job of an election."""
        found = await self.redis.zrange(keys.reminder_jobs(election_id), -1, -1)
        return str(found[0]) if found else None

    async def pause(self, job: str, actor: str, *, factor: str = "cli") -> JobStatus:
        """Stop handing out messages; those already on their way finish."""
        return await self._change(job, actor, "paused", ("running",), "reminder paused", factor)

    async def cancel(self, job: str, actor: str, *, factor: str = "cli") -> JobStatus:
        """Stop for good: nobody left is sent the reminder."""
        return await self._change(
            job,
            actor,
            "cancelled",
            ("running", "paused", "preparing"),
            "reminder cancelled",
            factor,
        )

    async def resume(self, job: str, actor: str, *, factor: str = "cli") -> JobStatus:
        """Let a paused job run again (a crashed one is still running: just start a worker)."""
        current = await self.status(job)
        if current.status == "preparing":
            raise ReminderError(
                f"job {job} stopped while it was being prepared and sent nothing; "
                "start a new reminder"
            )
        if current.status == "cancelled":
            raise ReminderError(f"job {job} was cancelled; start a new reminder instead")
        if current.status in ("running", "paused"):
            after = await self._change(
                job, actor, "running", ("paused", "running"), "reminder resumed", factor
            )
            if after.status == "finished":
                await record_finished(self.redis, self.clock, after)
        return await self.status(job)

    async def resend_in_doubt(self, job: str, actor: str) -> int:
        """Queue the in-doubt messages again (at least once for them: some may arrive twice)."""
        status = await self.status(job)
        n = int(await self._resend(keys=_job_keys(job), args=[]))
        if n < 0:
            raise ReminderError(f"job {job} is {status.status}; in-doubt messages stay unsent")
        if n:
            await audit.record(
                self.redis,
                self.clock,
                status.election,
                actor,
                "reminder in-doubt requeued",
                job=job,
                messages=n,
            )
        return n

    async def _change(
        self,
        job: str,
        actor: str,
        to: str,
        allowed: Sequence[str],
        action: str,
        factor: str = "cli",
    ) -> JobStatus:
        before = str(await self._set_status(keys=_job_keys(job), args=[to, *allowed]))
        if before == "missing":
            raise ReminderError(f"no reminder job {job!r}")
        if before not in allowed:
            raise ReminderError(
                f"job {job} is {before}; it cannot be {to.replace('running', 'resumed')}"
            )
        after = await self.status(job)
        await audit.record(
            self.redis,
            self.clock,
            after.election,
            actor,
            action,
            job=job,
            was=before,
            sent=after.outcome("sent"),
            remaining=after.remaining,
            factor=factor,
        )
        return after


# --- sending --------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One recipient a worker has claimed."""

    channel: str
    index: int
    supporter_id: str


class Worker:
    """Drains one reminder job in this process, alongside any others.

    ``senders`` maps channel to :class:`channels.base.Sender`; ``concurrency``
    is how many messages per channel may be on their way at once here (the
    rate limiter keeps all of them, in all processes, within the rate).
    """

    def __init__(
        self,
        redis: Redis,
        senders: Mapping[str, Sender],
        limiter: RateLimiter,
        *,
        clock: Clock | None = None,
        concurrency: Mapping[str, int] | None = None,
        heartbeat: float = HEARTBEAT,
        max_segments: int = MAX_SMS_SEGMENTS,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.redis = redis
        self.senders = senders
        self.limiter = limiter
        self.clock = clock or SystemClock()
        self.id = secrets.token_hex(6)
        self.heartbeat = heartbeat
        self.max_segments = max_segments
        self.concurrency = dict(concurrency or {})
        self.on_progress = on_progress
        self.reminders = Reminders(redis, self.clock)
        self._claim = redis.register_script(_CLAIM)
        self._begin = redis.register_script(_BEGIN)
        self._finish = redis.register_script(_FINISH)
        self._recover = redis.register_script(_RECOVER)
        self._beat = redis.register_script(_HEARTBEAT)

    async def run(self, job: str) -> JobStatus:
        """Send until the job is finished, paused or cancelled; returns its status then."""
        status = await self.reminders.status(job)
        if status.status != "running":
            return status
        election = await get_election(self.redis, status.election)
        missing = [ch for ch in CHANNELS if status.totals[ch] and ch not in self.senders]
        if missing:
            raise ReminderError(
                f"job {job} has {' and '.join(missing)} recipients but no {' or '.join(missing)} "
                "sender is configured (see TWILIO_* and TELEGRAM_BOT_TOKEN)"
            )
        keys_ = _job_keys(job)
        await self._beat(keys=keys_, args=[self.id, int(self.heartbeat * 1000), "1"])
        beating = asyncio.create_task(self._keep_beating(keys_))
        drains: list[asyncio.Task[None]] = []
        try:
            await self._recover_dead(job, election.id, keys_)
            while True:
                drains = [
                    asyncio.create_task(self._drain(job, election, status.template, ch))
                    for ch in CHANNELS
                    if status.totals[ch]
                    for _ in range(self.concurrency.get(ch, 1))
                ]
                draining: asyncio.Future[list[None]] = asyncio.ensure_future(
                    asyncio.gather(*drains)
                )
                watched: set[asyncio.Future[Any]] = {draining, beating}
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if beating.done():
                    # Without a heartbeat other workers take this one for dead and
                    # mark its sends in doubt: stop sending at once.
                    draining.cancel()
                    await asyncio.gather(draining, return_exceptions=True)
                    beating.result()  # raises why it stopped
                await draining
                requeued, held = await self._recover_dead(job, election.id, keys_)
                now = await self.reminders.status(job)
                if now.status != "running":
                    break
                if requeued:
                    continue
                if now.remaining > now.claimed:
                    # Work nobody holds: put back by a worker that stopped (or a
                    # pause and resume) after our drains ran dry.  Take it.
                    await asyncio.sleep(min(1.0, self.heartbeat / 3))
                    continue
                # Claims left are another worker's: a live one finishes them in a
                # moment; a dead one's are taken over once its heartbeat runs out.
                if not held:
                    break
                await asyncio.sleep(min(1.0, self.heartbeat / 3))
        finally:
            # Every task must have stopped before the claims are handed back.
            for task in (*drains, beating):
                task.cancel()
            await asyncio.gather(*drains, beating, return_exceptions=True)
            # Leave: what this worker claimed but never began goes back to the
            # queue; a send cut off mid-call is in doubt.
            await asyncio.shield(self._leave(job, election.id, keys_))
        return await self.reminders.status(job)

    async def _leave(self, job: str, election_id: str, keys_: list[str]) -> None:
        await self._beat(keys=keys_, args=[self.id, 0, "0"])
        await self._recover_dead(job, election_id, keys_)

    async def _keep_beating(self, keys_: list[str]) -> None:
        """Beat every third of the heartbeat; a failed beat is tried again at the next.

        If no beat has landed for a whole heartbeat, the others may already
        count this worker as dead, so it raises and the worker stops sending.
        """
        loop = asyncio.get_running_loop()
        landed = loop.time()
        while True:
            await asyncio.sleep(self.heartbeat / 3)
            try:
                await self._beat(keys=keys_, args=[self.id, int(self.heartbeat * 1000), "1"])
                landed = loop.time()
            except (RedisError, OSError) as err:
                if loop.time() - landed >= self.heartbeat:
                    raise ReminderError(
                        f"worker {self.id}: no heartbeat for {self.heartbeat:.0f} s ({err}); "
                        "stopping so that nothing is sent twice"
                    ) from err
                log.warning("worker %s: heartbeat failed (%s); trying again", self.id, err)

    async def _recover_dead(self, job: str, election_id: str, keys_: list[str]) -> tuple[int, int]:
        requeued, doubted, finished = await self._recover(keys=keys_, args=[])
        if int(doubted):
            log.warning(
                "job %s: %d message(s) were on their way when their worker died; "
                "marked in doubt, not sent again",
                job,
                int(doubted),
            )
        if str(finished) == "finished":
            await self._finished(job, election_id)
        held = int(await self.redis.hlen(keys_[1]))
        return int(requeued), held

    async def _finished(self, job: str, election_id: str) -> None:
        await record_finished(self.redis, self.clock, await self.reminders.status(job))

    async def _drain(self, job: str, election: Election, template: str, channel: str) -> None:
        """Claim and send, one message at a time, until nothing is left to claim."""
        keys_ = _job_keys(job)
        while True:
            reply = await self._claim(keys=keys_, args=[channel, self.id])
            if reply[0] != "ok":
                return
            claim = Claim(channel, int(reply[1]), str(reply[2]))
            progress, outcome = await self._deliver(job, election, template, claim, keys_)
            if progress is None:
                continue
            done = await self._finish(
                keys=keys_, args=[channel, claim.index, self.id, int(progress), outcome]
            )
            if self.on_progress is not None:
                self.on_progress()
            if str(done) == "finished":
                await self._finished(job, election.id)

    async def _deliver(
        self, job: str, election: Election, template: str, claim: Claim, keys_: list[str]
    ) -> tuple[Progress | None, str]:
        """Check the recipient again, wait for a turn, send.  (None: the claim went back.)"""
        skip, name, address = await self._recipient(election, claim)
        if skip is not None:
            return skip
        text = render(template, election, name, self.clock.now())
        problem = text_problem(claim.channel, text, self.max_segments)
        if problem:
            log.warning("job %s: reminder to %s not sent: %s", job, claim.supporter_id, problem)
            return Progress.FAILED, "failed"
        if claim.channel == "sms":
            text = sms_body(text)

        sender = self.senders[claim.channel]
        if not getattr(sender, "paces_itself", False):
            await self.limiter.wait_turn(claim.channel, address)
            # The wait can be long (a 429 pause, a queue of turns): whoever
            # voted or opted out meanwhile is not messaged.
            skip, _, _ = await self._recipient(election, claim)
            if skip is not None:
                return skip
        began = str(await self._begin(keys=keys_, args=[claim.channel, claim.index, self.id]))
        if began != "ok":
            return None, began
        message = OutboundMessage(text, channel=claim.channel, address=address, kind="reminder")
        result = await self._send(job, sender, address, message)
        if claim.channel == "telegram" and result.status == "unreachable":
            # Blocked the bot, or left Telegram: their phone may still take it.
            return await self._by_sms(job, election, template, claim)
        return self._outcome(claim.channel, result)

    async def _send(
        self, job: str, sender: Sender, address: str, message: OutboundMessage
    ) -> SendResult:
        try:
            return await sender.send(address, message)
        except Exception as err:
            # The platform may or may not have taken it: in doubt, like a crash.
            log.exception("job %s: the %s sender raised", job, sender.channel)
            return SendResult("in_doubt", f"{type(err).__name__}: {err}")

    async def _by_sms(
        self, job: str, election: Election, template: str, claim: Claim
    ) -> tuple[Progress, str]:
        """Send a Telegram recipient's reminder by SMS instead (the chat is unreachable)."""
        sms = self.senders.get("sms")
        if sms is None:
            return Progress.UNREACHABLE, "unreachable"
        skip, name, phone = await self._recipient(election, replace(claim, channel="sms"))
        if skip is not None:
            return skip
        text = render(template, election, name, self.clock.now())
        if text_problem("sms", text, self.max_segments):
            return Progress.UNREACHABLE, "unreachable"
        if not getattr(sms, "paces_itself", False):
            await self.limiter.wait_turn("sms", phone)
        message = OutboundMessage(sms_body(text), channel="sms", address=phone, kind="reminder")
        result = await self._send(job, sms, phone, message)
        progress, outcome = self._outcome("sms", result)
        if outcome == "sent":
            return Progress.SENT_BY_SMS, "sent_by_sms"
        return progress, outcome

    async def _recipient(
        self, election: Election, claim: Claim
    ) -> tuple[tuple[Progress, str] | None, str, str]:
        """(why to skip, or None; name; address) for a claimed recipient, as of now."""
        shard = keys.shard_of(claim.supporter_id, election.shards)
        name, phone, chat, voted = await self.redis.hmget(
            keys.voter(election.id, shard, claim.supporter_id),
            ["name", "phone", "telegram_id", "voted"],
        )
        if voted:
            return (Progress.VOTED, "voted"), "", ""
        address = str((chat if claim.channel == "telegram" else phone) or "")
        if not address:
            return (Progress.UNREACHABLE, "unreachable"), "", ""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sismember(keys.opted_out(claim.channel), address)
            pipe.sismember(keys.unreachable(claim.channel), address)
            opted_out, unreachable = await pipe.execute()
        if opted_out:
            return (Progress.OPTED_OUT, "opted_out"), "", ""
        if unreachable:
            return (Progress.UNREACHABLE, "unreachable"), "", ""
        return None, str(name or ""), address

    @staticmethod
    def _outcome(channel: str, result: SendResult) -> tuple[Progress, str]:
        outcome = _STATUS_OUTCOME.get(result.status, "failed")
        if outcome == "sent":
            MESSAGES_OUT.labels(channel, "reminder").inc()
        elif outcome == "failed":
            log.warning("a %s reminder was not delivered: %s", channel, result.detail)
        return Progress[outcome.upper()], outcome
