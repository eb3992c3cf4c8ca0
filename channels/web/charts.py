"""Small charts for the console, as inline SVG."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from ballots.election import Election

#: The ticks' text style (attributes: the console's CSP drops <style> elements).
TICK = 'font-family="sans-serif" font-size="10" fill="#333"'
#: Hours the turnout chart shows, up to now.
HOURS = 48


def hourly(election: Election, by_hour: dict[str, int], now: datetime, hours: int = HOURS) -> str:
    """Ballots cast in each of the last ``hours`` hours, as bars (times in the election's zone)."""
    zone = ZoneInfo(election.timezone)
    end = now.replace(minute=0, second=0, microsecond=0)
    slots = [end - timedelta(hours=hours - 1 - i) for i in range(hours)]
    counts = [by_hour.get(s.strftime("%Y-%m-%dT%H"), 0) for s in slots]
    top = max(counts) or 1
    width, height, bar = 600, 120, 600 / hours
    parts = []
    for i, (slot, n) in enumerate(zip(slots, counts, strict=True)):
        h = (height - 20) * n / top
        at = slot.astimezone(zone)
        parts.append(
            f'<rect x="{i * bar:.1f}" y="{height - 16 - h:.1f}" width="{bar - 1:.1f}" '
            f'height="{h:.1f}" fill="#1f5fa8"><title>{at:%a %H}:00: {n} ballots</title></rect>'
        )
        if at.hour == 0 or i == 0:
            parts.append(f'<text x="{i * bar:.1f}" y="{height - 2}" {TICK}>{at:%a %d}</text>')
    total = sum(counts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(f"{total} ballots in the last {hours} hours, by hour")}">'
        + "".join(parts)
        + "</svg>"
    )
