"""Reminder jobs as organisers see them: create, status, pause, resume, cancel."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from ballots import audit, keys
from ballots.clock import Clock, SystemClock
from ballots.election import Election
from bot.reminders.common import BATCH, CHANNELS, OUTCOMES, SYSTEM_ACTOR, ReminderError
from bot.reminders.plan import Plan
from bot.reminders.scripts import RESEND_DOUBT, SET_STATUS, job_keys

log = logging.getLogger(__name__)


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


class Reminders:
    """Creates reminder jobs and changes their status; :class:`Worker` sends them."""

    def __init__(self, redis: Redis, clock: Clock | None = None) -> None:
        self.redis = redis
        self.clock = clock or SystemClock()
        self._set_status = redis.register_script(SET_STATUS)
        self._resend = redis.register_script(RESEND_DOUBT)

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
            for i in range(0, len(sids), 10 * BATCH):
                await self.redis.rpush(keys.reminder_recipients(job, ch), *sids[i : i + 10 * BATCH])
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
        counts = {
            ch: {o.value: int(meta.get(f"n:{o}:{ch}", 0)) for o in OUTCOMES} for ch in CHANNELS
        }
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
        n = int(await self._resend(keys=job_keys(job), args=[]))
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
        before = str(await self._set_status(keys=job_keys(job), args=[to, *allowed]))
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
