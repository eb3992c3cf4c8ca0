"""Small charts for the console, as inline SVG.

Presentation attributes only: the console's CSP drops ``<style>`` elements and ``style``
attributes.  Every figure is there as text too (on its bar, and in the ``<desc>``), never
as a colour or a height alone, and no text is smaller than 12 units.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from ballots.election import Election

#: The text style (attributes: the console's CSP drops <style> elements).
FONT = 'font-family="sans-serif" font-size="12" fill="#1a1a1a"'
#: Hours the turnout chart shows, up to now.
HOURS = 48
#: The turnout chart's size, in its own units, and where its bars stand.
WIDTH, HEIGHT = 960, 200
LEFT, RIGHT = 8, 8
BASELINE = 148
#: Room above the tallest bar for its value, written upwards when it is long.
HEADROOM = 40
#: An hour label every this many hours (and a longer tick).
LABEL_EVERY = 3
#: A value this many characters long or shorter is written across its bar, a longer one up.
ACROSS = 2


def _value(n: int) -> str:
    """A bar's value, short enough to stand over a bar: 7, 450, 1.2k, 12k."""
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return f"{n // 1000}k"


def hourly(election: Election, by_hour: dict[str, int], now: datetime, hours: int = HOURS) -> str:
    """Ballots cast in each of the last ``hours`` hours, as bars with their values, over an
    axis of hours (times in the election's zone)."""
    zone = ZoneInfo(election.timezone)
    end = now.replace(minute=0, second=0, microsecond=0)
    slots = [end - timedelta(hours=hours - 1 - i) for i in range(hours)]
    counts = [by_hour.get(s.strftime("%Y-%m-%dT%H"), 0) for s in slots]
    top = max(counts) or 1
    slot = (WIDTH - LEFT - RIGHT) / hours
    tallest = BASELINE - HEADROOM
    parts = [
        # The axis: a baseline under the bars.
        f'<line x1="{LEFT}" y1="{BASELINE}" x2="{WIDTH - RIGHT}" y2="{BASELINE}" '
        'stroke="#1a1a1a" stroke-width="1"/>'
    ]
    day_at: list[tuple[float, str]] = []
    for i, (moment, n) in enumerate(zip(slots, counts, strict=True)):
        at = moment.astimezone(zone)
        x = LEFT + i * slot
        middle = x + slot / 2
        said = f"{at:%a} {at.day} {at:%b} {at:%H}:00: {n} ballot{'s' if n != 1 else ''}"
        if n:
            h = max(tallest * n / top, 2.0)  # the smallest count still shows a bar
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{BASELINE - h:.1f}" width="{slot - 2:.1f}" '
                f'height="{h:.1f}" fill="#1f5fa8"><title>{escape(said)}</title></rect>'
            )
            label = _value(n)
            if len(label) <= ACROSS:
                parts.append(
                    f'<text x="{middle:.1f}" y="{BASELINE - h - 4:.1f}" text-anchor="middle" '
                    f"{FONT}>{label}</text>"
                )
            else:  # written upwards from the bar's top, so that it keeps to its own bar
                y = BASELINE - h - 4
                parts.append(
                    f'<text x="{middle + 4:.1f}" y="{y:.1f}" text-anchor="start" '
                    f'transform="rotate(-90 {middle + 4:.1f} {y:.1f})" {FONT}>{label}</text>'
                )
        labelled = at.hour % LABEL_EVERY == 0
        parts.append(
            f'<line x1="{middle:.1f}" y1="{BASELINE}" x2="{middle:.1f}" '
            f'y2="{BASELINE + (6 if labelled else 3)}" stroke="#1a1a1a" stroke-width="1"/>'
        )
        if labelled:
            parts.append(
                f'<text x="{middle:.1f}" y="{BASELINE + 20}" text-anchor="middle" {FONT}>'
                f"{at:%H}:00</text>"
            )
        if at.hour == 0 or i == 0:
            day_at.append((x, f"{at:%a} {at.day} {at:%b}"))
    # A day's name where it starts (and at the left edge, unless the next day's is too near).
    for n, (x, day) in enumerate(day_at):
        if n == 0 and len(day_at) > 1 and day_at[1][0] - x < 6 * slot:
            continue
        parts.append(f'<text x="{x:.1f}" y="{BASELINE + 40}" {FONT}>{escape(day)}</text>')
    total = sum(counts)
    first, last = slots[0].astimezone(zone), slots[-1].astimezone(zone)
    busiest = max(range(hours), key=lambda i: (counts[i], i))
    title = f"Ballots cast by hour, the last {hours} hours ({election.timezone} time)"
    desc = (
        f"{total} ballot{'s' if total != 1 else ''} from {first:%a} {first.day} {first:%b} "
        f"{first:%H}:00 to {last:%a} {last.day} {last:%b} {last:%H}:59"
    )
    if total:
        at = slots[busiest].astimezone(zone)
        desc += (
            f"; the busiest hour {at:%a} {at:%H}:00 with {counts[busiest]}. By hour: "
            + "; ".join(
                f"{s.astimezone(zone):%a %H}:00 {n}"
                for s, n in zip(slots, counts, strict=True)
                if n
            )
        )
    else:
        desc += "; none in any hour"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="hourly-title hourly-desc">'
        f'<title id="hourly-title">{escape(title)}</title>'
        f'<desc id="hourly-desc">{escape(desc)}.</desc>' + "".join(parts) + "</svg>"
    )
