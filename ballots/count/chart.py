"""The count as a picture file (``count --chart FILE``): the results page's own pictures.

The Sankey diagram of the transfers and the bars for each round come from
``svg.py``, the renderer the public results page uses, so a chart file and the
page always match.  ``.svg`` holds both pictures in one drawing; ``.html`` is
a self-contained page (no script, nothing fetched); ``.png`` is that SVG
rendered by resvg (the ``resvg-py`` wheel: a Rust SVG renderer with no system
library to install, where cairosvg needs libcairo; text is drawn in the
machine's own fonts).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from ballots.count.model import CountError
from ballots.count.result import Result
from ballots.count.svg import bars, sankey

#: The drawing's width; the Sankey is this wide, the bars are scaled to it.
WIDTH = 960
_VIEWBOX = re.compile(r'viewBox="0 0 ([\d.]+) ([\d.]+)"')


def _size(svg: str) -> tuple[float, float]:
    found = _VIEWBOX.search(svg)
    assert found is not None
    return float(found.group(1)), float(found.group(2))


def render_svg(result: Result) -> str:
    """One SVG: a title, the Sankey of the transfers, then the bars for each round."""
    flows = sankey(result, width=WIDTH)
    rounds = bars(result)
    fw, fh = _size(flows)
    bw, bh = _size(rounds)
    bars_height = bh * WIDTH / bw
    top = 40
    height = top + fh + 24 + bars_height
    winners = ", ".join(result.candidates[w] for w in result.winners) or "none"
    title = html.escape(f"{result.title or 'Count'}: elected {winners}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'width="{WIDTH}" height="{height:.0f}" role="img" aria-label="{title}">'
        f'<rect width="100%" height="100%" fill="#ffffff"/>'
        f'<text x="4" y="26" font-family="sans-serif" font-size="20" font-weight="bold" '
        f'fill="#1a1a1a">{title}</text>'
        f'<svg x="0" y="{top}" width="{fw:.0f}" height="{fh:.0f}">{_inner(flows)}</svg>'
        f'<svg x="0" y="{top + fh + 24:.0f}" width="{WIDTH}" height="{bars_height:.0f}" '
        f'viewBox="0 0 {bw:.0f} {bh:.0f}">{_inner(rounds)}</svg>'
        "</svg>"
    )


def _inner(svg: str) -> str:
    """A picture's content without its own ``<svg>`` wrapper."""
    return svg[svg.index(">") + 1 : svg.rindex("</svg>")]


def render_html(result: Result) -> str:
    """A self-contained HTML page holding the chart (no scripts, no external files)."""
    title = html.escape(result.title or "Count")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head>\n<body>\n{render_svg(result)}\n</body></html>\n"
    )


def render_png(result: Result) -> bytes:
    """The chart as a PNG, twice the SVG's size for sharp text."""
    import resvg_py  # (only here: counting without a chart loads no renderer)

    try:
        return bytes(resvg_py.svg_to_bytes(svg_string=render_svg(result), zoom=2.0))
    except ValueError as err:
        raise CountError(f"the chart could not be drawn: {err}") from err


def write_chart(result: Result, path: Path) -> None:
    """Write the chart to ``path``: PNG, HTML or SVG, chosen by the file's suffix."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".png":
            path.write_bytes(render_png(result))
        elif suffix in (".html", ".htm"):
            path.write_text(render_html(result), encoding="utf-8")
        elif suffix == ".svg":
            path.write_text(render_svg(result) + "\n", encoding="utf-8")
        else:
            raise CountError(f"--chart {path}: name the file .png, .html or .svg")
    except OSError as err:
        raise CountError(f"cannot write the chart to {path}: {err}") from err
