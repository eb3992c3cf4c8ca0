"""A count as pictures for the web: a Sankey diagram of the transfers, and bars per round.

Plain SVG strings made here, with a ``<title>`` and ``<desc>`` for screen
readers and no script or external resource, so a page can inline them and
still work offline under a strict Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from html import escape

from ballots.count.result import Result, Round, Votes

#: Colours for the candidates, in ballot-paper order (readable on white, distinct in print).
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
)
EXHAUSTED = "#b0b0b0"
#: Text styles as presentation attributes, not a <style> element: a page whose
#: Content-Security-Policy has no 'unsafe-inline' for styles drops those.
ROUND = 'font-family="sans-serif" font-size="12" font-weight="bold" fill="#222"'
NAME = 'font-family="sans-serif" font-size="12" fill="#222"'
_EX = "\0exhausted"


def _f(votes: Votes) -> float:
    return float(votes)


def _label(votes: Votes) -> str:
    if isinstance(votes, Fraction):
        return _label_f(float(votes), weighted=True)
    if isinstance(votes, Decimal) and votes != votes.to_integral_value():
        return f"{votes:,.2f}"
    return f"{int(votes):,}"


def colours(candidates: Iterable[str]) -> dict[str, str]:
    """Each candidate's colour, by their ids in ballot-paper order."""
    return {cid: PALETTE[i % len(PALETTE)] for i, cid in enumerate(candidates)}


def sankey(result: Result, width: int = 960, height: int = 420) -> str:
    """The votes round by round as columns, and each transfer as a band to where it went."""
    rounds = result.rounds
    names = dict(result.candidates)
    colour = colours(result.candidates)
    order = [*result.candidates, _EX]
    columns: list[dict[str, float]] = []
    for r in rounds:
        column = {cid: _f(v) for cid, v in r.tallies.items()}
        if _f(r.exhausted) > 0:
            column[_EX] = _f(r.exhausted)
        columns.append(column)
    total = max((sum(c.values()) for c in columns), default=0.0) or 1.0
    gap, top, node_w, label_w = 8.0, 28.0, 14.0, 210.0
    biggest = max(len(c) for c in columns) if columns else 1
    scale = (height - top - 10 - gap * biggest) / total
    step = (width - label_w - node_w) / max(len(columns) - 1, 1)
    # Where each node sits: column -> id -> (x, y, height).
    nodes: list[dict[str, tuple[float, float, float]]] = []
    for i, column in enumerate(columns):
        x, y = 4 + i * step, top
        placed: dict[str, tuple[float, float, float]] = {}
        for cid in order:
            if cid in column:
                h = max(column[cid] * scale, 1.0)
                placed[cid] = (x, y, h)
                y += h + gap
        nodes.append(placed)
    parts: list[str] = []
    for i in range(len(columns) - 1):
        parts.extend(
            _bands(
                rounds[i + 1], columns[i], nodes[i], nodes[i + 1], scale, colour, result.weighted
            )
        )
    for i, placed in enumerate(nodes):
        parts.append(f'<text x="{4 + i * step:.1f}" y="16" {ROUND}>Round {rounds[i].number}</text>')
        for cid, (x, y, h) in placed.items():
            fill = EXHAUSTED if cid == _EX else colour[cid]
            name = "Exhausted" if cid == _EX else names[cid]
            votes = columns[i][cid]
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{node_w}" height="{h:.1f}" '
                f'fill="{fill}"><title>{escape(name)}: '
                f"{_label_f(votes, weighted=result.weighted)} in round "
                f"{rounds[i].number}</title></rect>"
            )
            if i == len(nodes) - 1:
                parts.append(
                    f'<text x="{x + node_w + 4:.1f}" y="{y + h / 2 + 4:.1f}" {NAME}>'
                    f"{escape(name)} {_label_f(votes, weighted=result.weighted)}</text>"
                )
    winners = ", ".join(names[w] for w in result.winners) or "none"
    desc = (
        f"{len(rounds)} rounds of a {result.method.upper()} count; elected: {winners}. "
        "Each column is a round; each band shows votes staying with a candidate or "
        "transferred to another."
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="sankey-title sankey-desc" class="sankey">'
        f'<title id="sankey-title">Transfers round by round</title>'
        f'<desc id="sankey-desc">{escape(desc)}</desc>' + "".join(parts) + "</svg>"
    )


def _label_f(votes: float, *, weighted: bool = False) -> str:
    """Votes as a label: whole numbers, two places for STV's fractions, and an electoral
    college's weighted shares of the whole as percentages."""
    if weighted:
        return f"{votes * 100:.2f}%"
    return f"{votes:,.0f}" if votes == int(votes) else f"{votes:,.2f}"


def _bands(
    nxt: Round,
    before: dict[str, float],
    here: dict[str, tuple[float, float, float]],
    there: dict[str, tuple[float, float, float]],
    scale: float,
    colour: dict[str, str],
    weighted: bool = False,
) -> list[str]:
    """The bands from one round's nodes to the next's: votes kept, and each transfer."""
    moved: dict[str, dict[str, float]] = {}
    for t in nxt.transfers:
        out = moved.setdefault(t.source, {})
        for target, moved_votes in t.to.items():
            out[target] = out.get(target, 0.0) + _f(moved_votes)
        if _f(t.exhausted) > 0:
            out[_EX] = out.get(_EX, 0.0) + _f(t.exhausted)
    out_at = {cid: here[cid][1] for cid in here}
    in_at = {cid: there[cid][1] for cid in there}
    flows: list[tuple[str, str, float]] = []
    for cid, had in before.items():
        sent = sum(moved.get(cid, {}).values())
        kept = had - sent
        if kept > 0 and cid in there:
            flows.append((cid, cid, kept))
        for target, v in moved.get(cid, {}).items():
            if target in there and v > 0:
                flows.append((cid, target, v))
    parts = []
    for source, target, size in flows:
        h = size * scale
        x0 = here[source][0] + 14
        x1 = there[target][0]
        y0, y1 = out_at[source], in_at[target]
        out_at[source] += h
        in_at[target] += h
        mid = (x0 + x1) / 2
        fill = EXHAUSTED if source == _EX else colour[source]
        parts.append(
            f'<path d="M{x0:.1f},{y0:.1f} C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f} '
            f"L{x1:.1f},{y1 + h:.1f} C{mid:.1f},{y1 + h:.1f} {mid:.1f},{y0 + h:.1f} "
            f'{x0:.1f},{y0 + h:.1f} Z" fill="{fill}" fill-opacity="0.35">'
            f"<title>{_label_f(size, weighted=weighted)}</title></path>"
        )
    return parts


def bars(result: Result, width: int = 640) -> str:
    """Each round's votes as horizontal bars, one small chart per round, stacked."""
    names = dict(result.candidates)
    colour = colours(result.candidates)
    row, head, label_w = 22, 26, 150
    top = max((_f(v) for r in result.rounds for v in r.tallies.values()), default=0.0) or 1.0
    parts: list[str] = []
    y = 0
    for r in result.rounds:
        parts.append(f'<text x="0" y="{y + 18}" {ROUND}>Round {r.number}</text>')
        y += head
        for cid, votes in sorted(r.tallies.items(), key=lambda kv: -_f(kv[1])):
            w = (width - label_w - 120) * _f(votes) / top
            mark = " (elected)" if cid in r.elected else " (excluded)" if cid in r.excluded else ""
            parts.append(
                f'<text x="0" y="{y + 15}" {NAME}>{escape(names[cid])}</text>'
                f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 6}" '
                f'fill="{colour[cid]}"/>'
                f'<text x="{label_w + max(w, 1) + 6:.1f}" y="{y + 15}" {NAME}>'
                f"{_label(votes)}{mark}</text>"
            )
            y += row
        y += 8
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {y}" role="img" '
        f'aria-labelledby="bars-title" class="bars"><title id="bars-title">Votes in each '
        "round</title>" + "".join(parts) + "</svg>"
    )
