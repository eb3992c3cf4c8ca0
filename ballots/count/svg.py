"""A count as pictures for the web: a Sankey diagram of the transfers, and bars per round.

Plain SVG strings made here, with a ``<title>`` and ``<desc>`` for screen
readers and no script or external resource, so a page can inline them and
still work offline under a strict Content-Security-Policy.

Every picture is drawn to be shown at its own size in CSS pixels (its ``width`` and
``height`` are those of its ``viewBox``), so no label is ever drawn smaller than its
``font-size``: 14 px, or 15 px for a round's heading.  Each comes in two layouts:

- wide (``sankey``, ``bars``): the Sankey's rounds side by side, for a screen 960 px wide
  or more; a page puts it in a box that scrolls sideways rather than shrink it;
- narrow (``sankey_narrow``, ``bars_narrow``): 320 px wide, one round under another, for a
  phone; a page may let it grow with the screen (never below 320 px).

Every node and bar of every round carries its candidate's name and votes as text, so no
picture needs its colours to be read; the colours are Okabe and Ito's, told apart with
every common kind of colour blindness.  Ballots with no continuing preference are
"Exhausted" everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from fractions import Fraction
from html import escape
from typing import Any

from ballots.count.result import Result, Round, Section, Transfer, Votes

#: Colours for the candidates, in ballot-paper order: Okabe and Ito's palette for colour
#: blindness (blue, orange, bluish green, vermillion, reddish purple, sky blue, yellow,
#: black).  Never the only clue: every node and bar is labelled in words.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
)
EXHAUSTED = "#999999"
#: Text styles as presentation attributes, not a <style> element: a page whose
#: Content-Security-Policy has no 'unsafe-inline' for styles drops those.  (12 px: the
#: pilots' report's charts, ``bot/pilots_svg.py``, use these two.)
ROUND = 'font-family="sans-serif" font-size="12" font-weight="bold" fill="#222"'
NAME = 'font-family="sans-serif" font-size="12" fill="#222"'
#: The results' own labels: 14 px, a round's heading 15 px, drawn at that size.
_SIZE, _HEAD_SIZE = 14, 15
_HEAD = f'font-family="sans-serif" font-size="{_HEAD_SIZE}" font-weight="bold" fill="#1a1a1a"'
_TEXT = f'font-family="sans-serif" font-size="{_SIZE}" fill="#1a1a1a"'
#: A white edge round a label drawn over the Sankey's bands, so it stays readable there.
_HALO = 'stroke="#ffffff" stroke-width="4" stroke-linejoin="round" paint-order="stroke"'
#: A thin dark edge round each bar, so a pale one (yellow) still shows on white.
_EDGE = 'stroke="#1a1a1a" stroke-width="0.75"'
_EX = "\0exhausted"
#: The narrow layout's width: a 360 px phone's page, less its margins, holds it unscaled.
NARROW = 320


def _f(votes: Votes) -> float:
    return float(votes)


def _label(votes: Votes) -> str:
    if isinstance(votes, Fraction):
        return _label_f(float(votes), weighted=True)
    if isinstance(votes, Decimal) and votes != votes.to_integral_value():
        return f"{votes:,.2f}"
    return f"{int(votes):,}"


def _label_f(votes: float, *, weighted: bool = False) -> str:
    """Votes as a label: whole numbers, two places for STV's fractions, and an electoral
    college's weighted shares of the whole as percentages."""
    if weighted:
        return f"{votes * 100:.2f}%"
    return f"{votes:,.0f}" if votes == int(votes) else f"{votes:,.2f}"


def _width(text: str, size: int = _SIZE) -> float:
    """About how wide a line of sans-serif text is drawn (generous: wide letters, bold)."""
    return len(text) * size * 0.62


def _wrap(text: str, width: float, size: int = _SIZE) -> list[str]:
    """Text broken into lines that fit ``width`` (SVG text does not wrap by itself)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        tried = f"{line} {word}" if line else word
        if line and _width(tried, size) > width:
            lines.append(line)
            line = word
        else:
            line = tried
    return [*lines, line] if line else lines


def colours(candidates: Iterable[str]) -> dict[str, str]:
    """Each candidate's colour, by their ids in ballot-paper order."""
    return {cid: PALETTE[i % len(PALETTE)] for i, cid in enumerate(candidates)}


def _fate(result: Result) -> dict[str, str]:
    """Each candidate elected or excluded, in words: ``excluded in round 2``."""
    fate: dict[str, str] = {}
    for r in result.rounds:
        for cid in r.elected:
            fate.setdefault(cid, f"elected in round {r.number}")
        for cid in r.excluded:
            fate.setdefault(cid, f"excluded in round {r.number}")
    return fate


def _svg(kind: str, ident: str, width: float, height: float, title: str, desc: str) -> str:
    """An ``<svg>`` start tag, its title and its description."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" class="{kind}">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(desc)}</desc>'
    )


def _rounds(n: int) -> str:
    """ "1 round", "3 rounds" (IRV, SV and STV all take "an": the letters are said)."""
    return f"{n} round" if n == 1 else f"{n} rounds"


def _sankey_desc(result: Result) -> str:
    names = dict(result.candidates)
    winners = ", ".join(names[w] for w in result.winners) or "none"
    return (
        f"{_rounds(len(result.rounds))} of an {result.method.upper()} count; elected: "
        f"{winners}. "
        "Each round shows every candidate's votes, labelled; the transfers show votes staying "
        "with a candidate or moving to another. Exhausted: ballots with no continuing "
        "preference."
    )


def sankey(result: Result, width: int | None = None, height: int | None = None) -> str:
    """The votes round by round as columns, and each transfer as a band to where it went.

    Every node of every round is labelled with its name and votes.  Without ``width`` (a
    web page's picture), it is at least 880 px wide, and wider when more rounds need the
    room for their labels: a page scrolls it rather than shrink a label.  With ``width`` (a
    picture file, ``chart.py``), it is that wide, drawn smaller to fit if it must.
    ``height`` is that of the tallest column's nodes (by default 300 px); labels are spaced
    so none overlaps."""
    fit = width
    width = width or 880
    rounds = result.rounds
    names = dict(result.candidates)
    colour = colours(result.candidates)
    order = [*result.candidates, _EX]
    weighted = result.weighted
    columns: list[dict[str, float]] = []
    for r in rounds:
        column = {cid: _f(v) for cid, v in r.tallies.items()}
        if _f(r.exhausted) > 0:
            column[_EX] = _f(r.exhausted)
        columns.append(column)

    def text_of(cid: str, votes: float) -> str:
        name = "Exhausted" if cid == _EX else names[cid]
        return f"{name} {_label_f(votes, weighted=weighted)}"

    total = max((sum(c.values()) for c in columns), default=0.0) or 1.0
    gap, top, node_w, line = 8.0, 34.0, 14.0, _SIZE + 6.0
    label_w = max((_width(text_of(c, v)) for col in columns for c, v in col.items()), default=0)
    label_w += 10
    bars_h = float(height) if height is not None else 300.0
    scale = bars_h / total
    n = len(columns)
    least = node_w + label_w + 36  # a node, its label, and a glimpse of the bands
    step = max((width - 8 - node_w - label_w) / max(n - 1, 1), least) if n > 1 else 0.0
    drawn_w = max(float(width), 8 + (n - 1) * step + node_w + label_w)
    # Where each node sits: column -> id -> (x, y, height); each takes at least a line.
    nodes: list[dict[str, tuple[float, float, float]]] = []
    bottom = top
    for i, column in enumerate(columns):
        x, y = 4 + i * step, top
        placed: dict[str, tuple[float, float, float]] = {}
        for cid in order:
            if cid in column:
                h = max(column[cid] * scale, 1.0)
                placed[cid] = (x, y, h)
                y += max(h, line) + gap
        nodes.append(placed)
        bottom = max(bottom, y)
    drawn_h = bottom + 4
    parts: list[str] = []
    for i in range(n - 1):
        parts.extend(
            _bands(rounds[i + 1], columns[i], nodes[i], nodes[i + 1], scale, colour, weighted)
        )
    for i, placed in enumerate(nodes):
        number = rounds[i].number
        parts.append(
            f'<text x="{4 + i * step:.1f}" y="{top - 14:.1f}" data-round="{number}" {_HEAD}>'
            f"Round {number}</text>"
        )
        for cid, (x, y, h) in placed.items():
            fill = EXHAUSTED if cid == _EX else colour[cid]
            name = "Exhausted" if cid == _EX else names[cid]
            votes = columns[i][cid]
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{node_w}" height="{h:.1f}" '
                f'fill="{fill}"><title>{escape(name)}: '
                f"{_label_f(votes, weighted=weighted)} in round {number}</title></rect>"
            )
            middle = y + max(h, line) / 2 + _SIZE * 0.35
            parts.append(
                f'<text x="{x + node_w + 5:.1f}" y="{middle:.1f}" data-round="{number}" '
                f"{_TEXT} {_HALO}>{escape(text_of(cid, votes))}</text>"
            )
    body = "".join(parts)
    if fit is not None and drawn_w > fit:  # a picture file of a set width: the whole, smaller
        shrink = fit / drawn_w
        body = f'<g transform="scale({shrink:.5f})">{body}</g>'
        drawn_w, drawn_h = float(fit), drawn_h * shrink
    return (
        _svg(
            "sankey",
            "sankey",
            drawn_w,
            drawn_h,
            "Transfers round by round",
            _sankey_desc(result),
        )
        + body
        + "</svg>"
    )


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
            f'{x0:.1f},{y0 + h:.1f} Z" fill="{fill}" fill-opacity="0.3">'
            f"<title>{_label_f(size, weighted=weighted)}</title></path>"
        )
    return parts


def _moves(result: Result, r: Round, fate: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """A round's transfers in words: what moved, and a line for each place it went."""
    names = dict(result.candidates)
    said = []
    for t in r.transfers:
        who = names.get(t.source, t.source)
        what = (
            f"Surplus of {who} ({fate.get(t.source, 'elected')}):"
            if t.reason == "surplus"
            else f"From {who} ({fate.get(t.source, 'excluded')}):"
        )
        went = [f"→ {names.get(c, c)} +{_label(v)}" for c, v in t.to.items()]
        if _f(t.exhausted) > 0:
            went.append(f"→ Exhausted +{_label(t.exhausted)}")
        said.append((what, went or ["(nothing moved)"]))
    return said


def sankey_narrow(result: Result, width: int = NARROW) -> str:
    """The transfers for a phone: one round under another, each transfer in words (where
    each moved vote went) and then every candidate's votes, labelled, on a tinted bar."""
    names = dict(result.candidates)
    colour = colours(result.candidates)
    fate = _fate(result)
    top = max(
        (_f(v) for r in result.rounds for v in [*r.tallies.values(), r.exhausted]), default=0.0
    )
    top = top or 1.0
    row, strip = 26, 6
    parts: list[str] = []
    y = 0.0
    for r in result.rounds:
        y += 22
        parts.append(
            f'<text x="0" y="{y:.0f}" data-round="{r.number}" {_HEAD}>Round {r.number}</text>'
        )
        y += 8
        for what, went in _moves(result, r, fate):
            for text in _wrap(what, width):
                y += _SIZE + 6
                parts.append(
                    f'<text x="0" y="{y:.0f}" data-round="{r.number}" {_TEXT}>{escape(text)}</text>'
                )
            for text in went:
                for piece in _wrap(text, width - 12):
                    y += _SIZE + 6
                    parts.append(
                        f'<text x="12" y="{y:.0f}" data-round="{r.number}" {_TEXT}>'
                        f"{escape(piece)}</text>"
                    )
            y += 6
        shown: list[tuple[str, str, Votes]] = [
            (cid, colour[cid], r.tallies[cid]) for cid in result.candidates if cid in r.tallies
        ]
        if _f(r.exhausted) > 0:
            shown.append((_EX, EXHAUSTED, r.exhausted))
        for cid, fill, votes in shown:
            y += 4
            name = "Exhausted" if cid == _EX else names[cid]
            mark = " (elected)" if cid in r.elected else " (excluded)" if cid in r.excluded else ""
            bar = max((width - strip) * _f(votes) / top, 0.0)
            text = f"{name} {_label(votes)}{mark}"
            parts.append(
                f'<rect x="0" y="{y:.0f}" width="{strip}" height="{row - 4}" fill="{fill}" '
                f"{_EDGE}/>"
                f'<rect x="{strip}" y="{y:.0f}" width="{bar:.1f}" height="{row - 4}" '
                f'fill="{fill}" fill-opacity="0.3"/>'
            )
            lines = _wrap(text, width - strip - 8)
            for k, piece in enumerate(lines):
                parts.append(
                    f'<text x="{strip + 6}" y="{y + 16 + k * (_SIZE + 4):.0f}" '
                    f'data-round="{r.number}" {_TEXT}>{escape(piece)}</text>'
                )
            y += row - 4 + (len(lines) - 1) * (_SIZE + 4)
        y += 10
    return (
        _svg(
            "sankey-narrow",
            "sankey-narrow",
            width,
            y + 4,
            "Transfers round by round",
            _sankey_desc(result),
        )
        + "".join(parts)
        + "</svg>"
    )


def _bars_desc(result: Result) -> str:
    return (
        f"{len(result.rounds)} rounds: each candidate's votes in each round as a bar, labelled "
        "with the name and the votes; (elected) and (excluded) say what the round decided. "
        "Exhausted: ballots with no continuing preference."
    )


def _rows(result: Result, r: Round) -> list[tuple[str, str, str, Votes]]:
    """A round's bars, most votes first, then Exhausted: (name, mark, colour, votes)."""
    names = dict(result.candidates)
    colour = colours(result.candidates)
    rows: list[tuple[str, str, str, Votes]] = []
    for cid, votes in sorted(r.tallies.items(), key=lambda kv: -_f(kv[1])):
        mark = " (elected)" if cid in r.elected else " (excluded)" if cid in r.excluded else ""
        rows.append((names[cid], mark, colour[cid], votes))
    if _f(r.exhausted) > 0:
        rows.append(("Exhausted", "", EXHAUSTED, r.exhausted))
    return rows


def bars(result: Result, width: int = 640) -> str:
    """Each round's votes as horizontal bars, one small chart per round, stacked: the name
    beside each bar, its votes after it."""
    row, head = 24, 30
    rounds = [(r, _rows(result, r)) for r in result.rounds]
    top = max((_f(v) for _, rows in rounds for *_, v in rows), default=0.0) or 1.0
    label_w = max((_width(name) for _, rows in rounds for name, *_ in rows), default=0) + 10
    value_w = max(
        (_width(f"{_label(v)}{mark}") for _, rows in rounds for _, mark, _, v in rows),
        default=0,
    )
    width = max(width, int(label_w + value_w + 80))
    parts: list[str] = []
    y = 0
    for r, rows in rounds:
        parts.append(
            f'<text x="0" y="{y + 20}" data-round="{r.number}" {_HEAD}>Round {r.number}</text>'
        )
        y += head
        for name, mark, fill, votes in rows:
            w = max((width - label_w - value_w - 10) * _f(votes) / top, 1.0)
            parts.append(
                f'<text x="0" y="{y + 16}" data-round="{r.number}" {_TEXT}>{escape(name)}</text>'
                f'<rect x="{label_w:.0f}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
                f'fill="{fill}" {_EDGE}/>'
                f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" data-round="{r.number}" {_TEXT}>'
                f"{_label(votes)}{mark}</text>"
            )
            y += row
        y += 8
    return (
        _svg("bars", "bars", width, y, "Votes in each round", _bars_desc(result))
        + "".join(parts)
        + "</svg>"
    )


def bars_narrow(result: Result, width: int = NARROW) -> str:
    """The bars for a phone: each name on a line of its own, its bar and votes under it."""
    rounds = [(r, _rows(result, r)) for r in result.rounds]
    top = max((_f(v) for _, rows in rounds for *_, v in rows), default=0.0) or 1.0
    value_w = max(
        (_width(f"{_label(v)}{mark}") for _, rows in rounds for _, mark, _, v in rows),
        default=0,
    )
    room = max(width - value_w - 10, 40.0)
    parts: list[str] = []
    y = 0.0
    for r, rows in rounds:
        parts.append(
            f'<text x="0" y="{y + 20:.0f}" data-round="{r.number}" {_HEAD}>Round {r.number}</text>'
        )
        y += 30
        for name, mark, fill, votes in rows:
            for piece in _wrap(name, width):
                y += _SIZE + 4
                parts.append(
                    f'<text x="0" y="{y:.0f}" data-round="{r.number}" {_TEXT}>'
                    f"{escape(piece)}</text>"
                )
            w = max(room * _f(votes) / top, 1.0)
            parts.append(
                f'<rect x="0" y="{y + 5:.0f}" width="{w:.1f}" height="16" fill="{fill}" {_EDGE}/>'
                f'<text x="{w + 6:.1f}" y="{y + 18:.0f}" data-round="{r.number}" {_TEXT}>'
                f"{_label(votes)}{mark}</text>"
            )
            y += 28
        y += 8
    return (
        _svg("bars-narrow", "bars-narrow", width, y, "Votes in each round", _bars_desc(result))
        + "".join(parts)
        + "</svg>"
    )


def _votes(value: Any) -> Votes:
    """A figure of the JSON report back as the count had it: whole votes, STV's decimals,
    a college's exact shares (``"41/80"``)."""
    if isinstance(value, int):
        return value
    text = str(value)
    return Fraction(text) if "/" in text else Decimal(text)


def from_report(report: Mapping[str, Any]) -> Result:
    """A published JSON report (``report.to_json``) as a :class:`Result` again, enough to
    draw it: its rounds, transfers, winners and sections (tie-breaks are left out)."""
    weighted = "sections" in report

    def votes(value: Any) -> Votes:
        found = _votes(value)
        return Fraction(found) if weighted else found

    rounds = tuple(
        Round(
            number=int(r["round"]),
            action=str(r.get("action", "")),
            tallies={c: votes(v) for c, v in r["tallies"].items()},
            exhausted=votes(r["exhausted"]),
            transfers=tuple(
                Transfer(
                    source=str(t["from"]),
                    reason=str(t.get("reason", "excluded")),
                    to={c: votes(v) for c, v in t["to"].items()},
                    exhausted=votes(t["exhausted"]),
                    ballots=int(t.get("ballots", 0)),
                    transfer_value=(
                        Decimal(t["transfer_value"]) if "transfer_value" in t else None
                    ),
                )
                for t in r.get("transfers", [])
            ),
            elected=tuple(r.get("elected", [])),
            excluded=tuple(r.get("excluded", [])),
            by_section=r.get("by_section", {}),
        )
        for r in report["rounds"]
    )
    return Result(
        method=str(report["method"]),
        seats=int(report.get("seats", 1)),
        quota=None if report.get("quota") is None else _votes(report["quota"]),
        candidates=dict(report["candidates"]),
        rounds=rounds,
        winners=tuple(report["winners"]),
        tie_breaks=(),
        ballots=int(report.get("ballots", 0)),
        invalid=int(report.get("invalid_ballots", 0)),
        seed=int(report.get("seed", 0)),
        rules=str(report.get("rules", "")),
        title=str(report.get("title", "")),
        blank=int(report.get("blank_ballots", 0)),
        sections={
            name: Section(Fraction(s["share"]), int(s["ballots"]), int(s.get("blank_ballots", 0)))
            for name, s in report.get("sections", {}).items()
        },
    )
