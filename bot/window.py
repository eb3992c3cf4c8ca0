"""Closing and extending a poll while it runs: the rules, the save and the audit entry.

Both the command line (``openprimary election close|extend``) and the organisers' console use
these.  A change is saved with :func:`ballots.election.save_election`, which writes the new
window where the cast script reads it (so no ballot gets in after a close, whatever a server
holds) and bumps the election's version, which every running server follows within a second
(``bot.live``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from ballots import audit, keys
from ballots.clock import Clock
from ballots.election import Election, save_election
from ballots.errors import OpenPrimaryError
from ballots.quiet import local

#: A close "at" a moment this little in the past is taken as now (a clock a little behind).
GRACE = timedelta(seconds=60)


class WindowRefused(OpenPrimaryError):
    """A close or an extension that would be unsafe or make no sense; nothing was changed."""


def when(election: Election, moment: datetime) -> str:
    """A moment in the election's own zone, as organisers read it: Sun 13 Dec 2026 21:00 GMT."""
    return local(election, moment, year=True)


def changes(before: Election, after: Election) -> list[str]:
    """What differs between two versions of an election, as a person reads it:
    ``closes: Sun 13 Dec 21:00 GMT -> Sun 13 Dec 22:00 GMT``."""

    def shown(election: Election, name: str) -> str:
        value = getattr(election, name)
        if isinstance(value, datetime):
            return local(election, value, year=True)
        if name == "candidates":
            return ", ".join(f"{c.id} ({c.name})" for c in value)
        if name == "quiet_hours" and value:
            return "-".join(value)
        if isinstance(value, tuple):
            return ", ".join(map(str, value)) or "none"
        if isinstance(value, dict):
            return ", ".join(f"{k} = {v}" for k, v in sorted(value.items())) or "none"
        return "none" if value is None or value == "" else str(value)

    found = []
    for name in (
        "title", "method", "seats", "opens", "closes", "candidates", "identity", "help",
        "organisers", "max_ranks", "timezone", "quiet_hours", "abstain", "languages", "sms_text",
    ):  # fmt: skip
        old, new = shown(before, name), shown(after, name)
        if old != new:
            found.append(f"{name}: {old} -> {new}")
    return found


def parse_time(text: str, election: Election, clock: Clock) -> datetime:
    """``now``, or an ISO 8601 date and time; without a zone, in the election's own zone."""
    if text.strip().lower() == "now":
        return clock.now()
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise WindowRefused(
            f"{text!r} is not a time: give one such as 2026-12-13T22:00 (in the election's "
            f"zone, {election.timezone}) or 2026-12-13T22:00:00Z, or 'now'"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(election.timezone))
    return moment


async def _unsealing(redis: Redis, election: Election) -> bool:
    return bool(await redis.exists(keys.unsealing(election.id)))


async def close(
    redis: Redis,
    election: Election,
    clock: Clock,
    actor: str,
    at: datetime | None = None,
    **details: object,
) -> Election:
    """Close the poll now, or at ``at`` (before the current close); the new election.
    ``details`` go to the audit entry (the console's factor)."""
    now = clock.now()
    at = now if at is None or now - GRACE <= at <= now else at
    eid = election.id
    if await _unsealing(redis, election):
        raise WindowRefused(f"election {eid} has been unsealed (or the unseal has begun)")
    if now >= election.closes:
        raise WindowRefused(f"election {eid} closed {when(election, election.closes)} already")
    if at < now:
        raise WindowRefused(
            f"{when(election, at)} has passed: close now (leave out --at) or at a later time"
        )
    if at >= election.closes:
        raise WindowRefused(
            f"{when(election, at)} is not before the current close, "
            f"{when(election, election.closes)}: to close later, extend the poll"
        )
    if at <= election.opens:
        raise WindowRefused(
            f"election {eid} opens {when(election, election.opens)}: it cannot close before "
            "it opens"
        )
    after = replace(election, closes=at)
    return await _save(redis, election, after, clock, actor, "closed", details)


async def extend(
    redis: Redis,
    election: Election,
    closes: datetime,
    clock: Clock,
    actor: str,
    *,
    reopen: bool = False,
    **details: object,
) -> Election:
    """Move the close later; once closed only with ``reopen``, and never once the unseal has
    begun (its ballots are being counted)."""
    now = clock.now()
    eid = election.id
    if await _unsealing(redis, election):
        raise WindowRefused(
            f"election {eid} has been unsealed (or the unseal has begun): it cannot reopen"
        )
    if closes <= election.closes:
        raise WindowRefused(
            f"{when(election, closes)} is not after the current close, "
            f"{when(election, election.closes)}: to close earlier, close the poll"
        )
    if closes <= now:
        raise WindowRefused(f"{when(election, closes)} has passed already")
    closed = now >= election.closes
    if closed and not reopen:
        raise WindowRefused(
            f"election {eid} closed {when(election, election.closes)}: extending it reopens "
            "voting, so say so (--reopen)"
        )
    what = "reopened" if closed else "extended"
    after = replace(election, closes=closes)
    return await _save(redis, election, after, clock, actor, what, details)


async def _save(
    redis: Redis,
    before: Election,
    after: Election,
    clock: Clock,
    actor: str,
    what: str,
    details: dict[str, object],
) -> Election:
    saved = await save_election(redis, after)
    await audit.record(
        redis, clock, saved.id, actor, f"election {what}", changes=changes(before, saved), **details
    )
    return saved
