"""Quiet hours: when an election sends no reminders, in its own time zone.

``quiet_hours = "21:00-09:00"`` in the election file is a daily window,
local to ``timezone``; it may cross midnight.  Reminder workers hold their
sends inside it and resume at its end; a voter's own conversation is never
held.  The times are wall-clock times, so a window keeps its local hours
across a change to or from summer time.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ballots.election import Election

#: How far ahead :func:`sending_finishes` looks before it calls a job endless.
_HORIZON = timedelta(days=3650)


def _window(election: Election) -> tuple[ZoneInfo, time, time] | None:
    if election.quiet_hours is None:
        return None
    start, end = (time.fromisoformat(t) for t in election.quiet_hours)
    return ZoneInfo(election.timezone), start, end


def quiet_until(election: Election, now: datetime) -> datetime | None:
    """When the quiet hours around ``now`` end (UTC), or None if ``now`` is not in them."""
    window = _window(election)
    if window is None:
        return None
    zone, start, end = window
    local = now.astimezone(zone)
    at = local.time().replace(tzinfo=None)
    if start < end:
        inside, end_day = start <= at < end, local.date()
    elif at >= start:
        inside, end_day = True, local.date() + timedelta(days=1)
    else:
        inside, end_day = at < end, local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC)


def next_quiet(election: Election, now: datetime) -> datetime | None:
    """When the next quiet hours begin at or after ``now`` (UTC); None if there are none."""
    window = _window(election)
    if window is None:
        return None
    zone, start, _ = window
    local = now.astimezone(zone)
    begins = datetime.combine(local.date(), start, tzinfo=zone)
    if begins < local:
        begins = datetime.combine(local.date() + timedelta(days=1), start, tzinfo=zone)
    return begins.astimezone(UTC)


def sending_finishes(election: Election, start: datetime, messages: int, rate: float) -> datetime:
    """When ``messages`` sent at ``rate`` a second from ``start`` are all out, holding every
    send in the quiet hours."""
    now, left = start, messages / rate if rate > 0 else 0.0
    while left > 0:
        held = quiet_until(election, now)
        if held is not None:
            now = held
        quiet = next_quiet(election, now)
        if quiet is None or (quiet - now).total_seconds() >= left:
            return now + timedelta(seconds=left)
        left -= (quiet - now).total_seconds()
        now = quiet
        if now - start > _HORIZON:
            raise ValueError("quiet hours leave no time to send")
    return now


def describe(election: Election) -> str:
    """The quiet hours as organisers wrote them, with the zone: "21:00-09:00 Europe/London"."""
    if election.quiet_hours is None:
        return "none"
    return f"{election.quiet_hours[0]}-{election.quiet_hours[1]} {election.timezone}"


def local(election: Election, moment: datetime, *, year: bool = False) -> str:
    """A moment as the election's organisers read it: "Tue 1 Dec 09:00 GMT" (with ``year``:
    "Tue 1 Dec 2026 09:00 GMT")."""
    at = moment.astimezone(ZoneInfo(election.timezone))
    day = f"{at:%a} {at.day} {at:%b %Y}" if year else f"{at:%a} {at.day} {at:%b}"
    return f"{day} {at:%H:%M %Z}"
