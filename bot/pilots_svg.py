"""The pilots' report as pictures: one chart per measure, the elections side by side.

Plain SVG strings, as ``ballots/count/svg.py`` makes them: a ``<title>`` and ``<desc>`` for
screen readers, text styles as presentation attributes (the console's Content-Security-Policy
drops ``<style>``), and every bar labelled in words with its figure, so no colour is needed
to read one.  A figure the privacy rule withheld (``bot.pilots``) has no bar, only its
``"<10"`` or ``"hidden"``: a chart never shows more than the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from ballots.count.svg import NAME, PALETTE, ROUND
from ballots.languages import SHIPPED
from bot.pilots import Count, Percent, Pilot, duration

#: What the identity modes are called on a chart.
IDENTITY = {"code": "posted code", "otp": "texted code"}
_WIDTH = 640
_LABEL = 170
_ROW = 20
#: A withheld hour's words, smaller than NAME's, for its narrow column.
_SMALL = 'font-family="sans-serif" font-size="9" fill="#222"'


@dataclass(frozen=True)
class Bar:
    """One bar: what it is, its length (None: withheld or nothing to show) and its text."""

    label: str
    value: float | None
    text: str


@dataclass(frozen=True)
class Chart:
    """One measure's chart, with the heading the page gives it."""

    id: str
    heading: str
    svg: str


def _count(label: str, n: Count) -> Bar:
    return Bar(
        label, float(n) if isinstance(n, int) else None, f"{n:,}" if isinstance(n, int) else n
    )


def _percent(label: str, p: Percent, of: str = "") -> Bar:
    if isinstance(p, float):
        return Bar(label, p, f"{p:.1f}%{of}")
    return Bar(label, None, "—" if p is None else p)


def bars(chart_id: str, title: str, desc: str, groups: Sequence[tuple[str, Sequence[Bar]]]) -> str:
    """Horizontal bars in groups (one an election), each bar named and its figure written
    beside it; a series keeps its colour from group to group."""
    top = max((b.value for _, row in groups for b in row if b.value), default=0.0) or 1.0
    series = list(dict.fromkeys(b.label for _, row in groups for b in row))
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    parts: list[str] = []
    y = 0
    for name, row in groups:
        parts.append(f'<text x="0" y="{y + 16}" {ROUND}>{escape(name)}</text>')
        y += 24
        if not row:
            parts.append(f'<text x="12" y="{y + 14}" {NAME}>nothing to show</text>')
            y += _ROW
        for b in row:
            w = (_WIDTH - _LABEL - 110) * b.value / top if b.value else 0.0
            parts.append(f'<text x="12" y="{y + 14}" {NAME}>{escape(b.label)}</text>')
            if w:
                parts.append(
                    f'<rect x="{_LABEL}" y="{y + 3}" width="{max(w, 1):.1f}" '
                    f'height="{_ROW - 6}" fill="{colour[b.label]}">'
                    f"<title>{escape(f'{name}, {b.label}: {b.text}')}</title></rect>"
                )
            parts.append(
                f'<text x="{_LABEL + w + 6:.1f}" y="{y + 14}" {NAME}>{escape(b.text)}</text>'
            )
            y += _ROW
        y += 8
    return _svg(chart_id, title, desc, _WIDTH, y, parts)


def hours(pilots: Sequence[Pilot]) -> str:
    """Ballots by hour since the poll opened: a row of columns per election, the hours
    along the bottom; each column's figure in its tooltip, the busiest hour written out."""
    last = max((h for p in pilots for h in p.by_hour), default=0)
    first = min((h for p in pilots for h in p.by_hour), default=0)
    span = last - first + 1
    step = (_WIDTH - _LABEL) / max(span, 1)
    band = 70
    parts: list[str] = []
    y = 0
    for p in pilots:
        shown = {h: n for h, n in p.by_hour.items() if isinstance(n, int)}
        top = max(shown.values(), default=0) or 1
        parts.append(f'<text x="0" y="{y + band / 2 + 4:.1f}" {ROUND}>{escape(p.election)}</text>')
        for h, n in p.by_hour.items():
            x = _LABEL + (h - first) * step
            what = f"{p.election}, hour {h}: {n:,}" if isinstance(n, int) else ""
            if isinstance(n, int) and n:
                tall = (band - 20) * n / top
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + band - 14 - tall:.1f}" '
                    f'width="{max(step - 1, 1):.1f}" height="{tall:.1f}" fill="{PALETTE[0]}">'
                    f"<title>{escape(what)}</title></rect>"
                )
            elif not isinstance(n, int):
                parts.append(
                    f'<text x="{x:.1f}" y="{y + band - 16}" {_SMALL}>'
                    f"{escape(n)}<title>{escape(f'{p.election}, hour {h}: {n}')}</title></text>"
                )
        if shown and max(shown.values()):
            busiest = max(shown, key=lambda h: (shown[h], -h))
            parts.append(
                f'<text x="{_LABEL}" y="{y + 12}" {NAME}>busiest: hour {busiest}, '
                f"{shown[busiest]:,} ballots</text>"
            )
        elif not p.by_hour:
            parts.append(f'<text x="{_LABEL}" y="{y + 12}" {NAME}>no ballots yet</text>')
        y += band
    for h in range(first, last + 1, max(span // 8, 1)):
        parts.append(f'<text x="{_LABEL + (h - first) * step:.1f}" y="{y + 12}" {NAME}>{h}</text>')
    parts.append(f'<text x="0" y="{y + 12}" {NAME}>hours since opening</text>')
    desc = "; ".join(
        f"{p.election}: "
        + (
            ", ".join(
                f"hour {h} {n if isinstance(n, str) else f'{n:,}'}" for h, n in p.by_hour.items()
            )
            or "none"
        )
        for p in pilots
    )
    return _svg(
        "pilots-hours",
        "Ballots by hour since the poll opened",
        desc,
        _WIDTH,
        y + 20,
        parts,
    )


def _svg(chart_id: str, title: str, desc: str, width: int, height: float, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0f}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" class="pilots">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>' + "".join(parts) + "</svg>"
    )


def _said(groups: Sequence[tuple[str, Sequence[Bar]]]) -> str:
    """A chart's figures in words, for its ``<desc>``."""
    return "; ".join(
        f"{name}: " + (", ".join(f"{b.label} {b.text}" for b in row) or "nothing to show")
        for name, row in groups
    )


def _chart(chart_id: str, heading: str, groups: Sequence[tuple[str, Sequence[Bar]]]) -> Chart:
    return Chart(chart_id, heading, bars(f"pilots-{chart_id}", heading, _said(groups), groups))


def _amount(label: str, value: Decimal | str | None, unit: str) -> Bar:
    if isinstance(value, Decimal):
        return Bar(label, float(value), f"{unit}{value}")
    return Bar(label, None, "—" if value is None else value)


def charts(pilots: Sequence[Pilot]) -> list[Chart]:
    """Every measure's chart, in the report's order."""
    priced = any(p.price is not None for p in pilots)
    cost = (
        _chart(
            "cost",
            "SMS cost per vote",
            [
                (
                    p.election,
                    [
                        _amount(
                            "per vote",
                            p.cost_per_vote,
                            f"{p.price.currency} " if p.price and p.price.currency else "",
                        )
                    ],
                )
                for p in pilots
            ],
        )
        if priced
        else _chart(
            "segments",
            "SMS segments per vote",
            [(p.election, [_amount("per vote", p.segments_per_vote, "")]) for p in pilots],
        )
    )
    return [
        _chart(
            "turnout",
            "Turnout",
            [(p.election, [_percent("turnout", p.turnout, f" of {p.eligible:,}")]) for p in pilots],
        ),
        _chart(
            "channel",
            "Ballots by channel",
            [(p.election, [_count(k, n) for k, n in p.by_channel.items()]) for p in pilots],
        ),
        Chart("hours", "Ballots by hour since the poll opened", hours(pilots)),
        _chart(
            "reminders",
            "Voted within 24 hours of a reminder",
            [
                (
                    p.election,
                    [
                        _percent(
                            f"job {r.job}",
                            r.percent,
                            f" of {r.sent:,}" if isinstance(r.sent, int) else "",
                        )
                        for r in p.reminders
                    ],
                )
                for p in pilots
            ],
        ),
        _chart(
            "took",
            "Time from first message to cast",
            [
                (
                    p.election,
                    [
                        Bar("median", _seconds(p.took_median), duration(p.took_median)),
                        Bar("90th percentile", _seconds(p.took_p90), duration(p.took_p90)),
                    ],
                )
                for p in pilots
            ],
        ),
        cost,
        _chart(
            "identity",
            "How voters proved who they are",
            [
                (p.election, [_count(IDENTITY.get(k, k), n) for k, n in p.by_identity.items()])
                for p in pilots
            ],
        ),
        _chart(
            "languages",
            "Languages used",
            [
                (p.election, [_count(_language(k), n) for k, n in p.by_language.items()])
                for p in pilots
            ],
        ),
        _chart(
            "abandoned",
            "Proved who they are but did not vote",
            [(p.election, [_count("abandoned", p.abandoned)]) for p in pilots],
        ),
    ]


def _language(code: str) -> str:
    known = SHIPPED.get(code)
    return f"{known.english} ({code})" if known else code


def _seconds(value: int | str | None) -> float | None:
    return float(value) if isinstance(value, int) else None
