"""The rounds of a count as a picture: self-contained HTML with inline SVG, or a PNG.

One row per candidate, one column per round; each cell is a bar as long as
the candidate's votes in that round, with a tick at the winning line (the
quota for STV, half the continuing votes for IRV and SV).  Bars turn green
in the round a candidate is elected and stay green; an excluded candidate's
last bar is grey.  The PNG is drawn here, with a small built-in font, so no
plotting library is needed.
"""

from __future__ import annotations

import html
import struct
import zlib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from ballots.count.model import CountError
from ballots.count.result import Result

_PALETTE = (
    "#3465a4",
    "#c17d11",
    "#75507b",
    "#ce5c00",
    "#4e9a06",
    "#a40000",
    "#204a87",
    "#8f5902",
    "#5c3566",
    "#c4a000",
    "#2e3436",
    "#729fcf",
    "#e9b96e",
)
_ELECTED = "#2e8b57"
_EXCLUDED = "#9a9a9a"
_INK = "#222222"
_GRID = "#dddddd"


@dataclass(frozen=True)
class _Rect:
    x: int
    y: int
    w: int
    h: int
    colour: str


@dataclass(frozen=True)
class _Text:
    x: int
    y: int
    text: str
    colour: str = _INK
    right: bool = False


def _layout(result: Result) -> tuple[int, int, list[_Rect | _Text]]:
    """Place every bar and label; both renderers draw the same shapes."""
    ids = list(result.candidates)
    rounds = result.rounds
    label_w = 12 + 6 * max(len(result.name(c)) for c in ids)
    cell_w, row_h, top = 150, 26, 70
    width = label_w + cell_w * len(rounds) + 20
    height = top + row_h * len(ids) + 40
    peak = max((v for r in rounds for v in r.tallies.values()), default=1) or 1
    shapes: list[_Rect | _Text] = []
    title = result.title or "Count"
    shapes.append(_Text(10, 20, f"{title}: {result.method.upper()}"))
    line = "quota" if result.quota is not None else "half the continuing votes"
    shapes.append(_Text(10, 38, f"Winners: {', '.join(result.name(w) for w in result.winners)}"))
    shapes.append(_Text(10, 56, f"Tick: {line}. Green: elected. Grey: excluded."))
    elected_by: dict[str, int] = {}
    for r in rounds:
        for c in r.elected:
            elected_by.setdefault(c, r.number)
    for j, r in enumerate(rounds):
        x0 = label_w + j * cell_w
        shapes.append(_Text(x0 + 4, top - 4, f"Round {r.number}"))
        shapes.append(_Rect(x0, top, 1, row_h * len(ids), _GRID))
        continuing = sum(v for c, v in r.tallies.items() if c not in elected_by)
        threshold = result.quota if result.quota is not None else Decimal(continuing) / 2
        for i, c in enumerate(ids):
            if c not in r.tallies:
                continue
            y = top + i * row_h + 4
            votes = r.tallies[c]
            colour = _PALETTE[i % len(_PALETTE)]
            if c in elected_by and elected_by[c] <= r.number:
                colour = _ELECTED
            elif c in r.excluded:
                colour = _EXCLUDED
            length = int((cell_w - 12) * Decimal(votes) / Decimal(peak))
            shapes.append(_Rect(x0 + 2, y, max(length, 1), row_h - 14, colour))
            tick = x0 + 2 + int((cell_w - 12) * Decimal(threshold) / Decimal(peak))
            shapes.append(_Rect(tick, y - 2, 1, row_h - 10, _INK))
            shapes.append(_Text(x0 + 4, y + row_h - 6, _short(votes), _INK))
    for i, c in enumerate(ids):
        shapes.append(_Text(label_w - 8, top + i * row_h + 14, result.name(c), right=True))
    return width, height, shapes


def _short(votes: int | Decimal) -> str:
    if isinstance(votes, Decimal):
        return f"{votes:,.2f}"
    return f"{votes:,}"


def render_svg(result: Result) -> str:
    """The chart as an SVG element."""
    width, height, shapes = _layout(result)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for s in shapes:
        if isinstance(s, _Rect):
            parts.append(
                f'<rect x="{s.x}" y="{s.y}" width="{s.w}" height="{s.h}" fill="{s.colour}"/>'
            )
        else:
            anchor = ' text-anchor="end"' if s.right else ""
            parts.append(
                f'<text x="{s.x}" y="{s.y}" fill="{s.colour}"{anchor}>{html.escape(s.text)}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(result: Result) -> str:
    """A self-contained HTML page holding the chart (no scripts, no external files)."""
    title = html.escape(result.title or "Count")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n{render_svg(result)}\n</body></html>\n"
    )


# --- PNG, drawn by hand -------------------------------------------------------

# A 5x7 font for capitals, digits and common punctuation; lower case is drawn
# in capitals and anything else as a box.
_GLYPHS = {
    "A": ".###.#...##...#######...##...##...#",
    "B": "####.#...##...#####.#...##...#####.",
    "C": ".###.#...##....#....#....#...#.###.",
    "D": "####.#...##...##...##...##...#####.",
    "E": "######....#....####.#....#....#####",
    "F": "######....#....####.#....#....#....",
    "G": ".###.#...##....#.####...##...#.####",
    "H": "#...##...##...#######...##...##...#",
    "I": ".###...#....#....#....#....#...###.",
    "J": "..###...#....#....#....#.#..#..##..",
    "K": "#...##..#.#.#..##...#.#..#..#.#...#",
    "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##...##...##...##...#",
    "N": "#...###..##.#.##..###...##...##...#",
    "O": ".###.#...##...##...##...##...#.###.",
    "P": "####.#...##...#####.#....#....#....",
    "Q": ".###.#...##...##...##.#.##..#..##.#",
    "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.",
    "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.",
    "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.##.#..#.#..",
    "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..",
    "Z": "#####....#...#...#...#...#....#####",
    "0": ".###.#...##..###.#.###..##...#.###.",
    "1": "..#...##....#....#....#....#...###.",
    "2": ".###.#...#....#...#...#...#...#####",
    "3": "#####...#...#.....#.....##...#.###.",
    "4": "...#...##..#.#.#..#.#####...#....#.",
    "5": "######....####.....#....##...#.###.",
    "6": "..##..#...#....####.#...##...#.###.",
    "7": "#####....#...#...#...#....#....#...",
    "8": ".###.#...##...#.###.#...##...#.###.",
    "9": ".###.#...##...#.####....#...#..##..",
    " ": "...................................",
    ".": "..............................##...",
    ",": ".....................##....#...#...",
    ":": "......##...##........##...##.......",
    "-": "...............#####...............",
    "'": "..#....#...#.......................",
    "(": "...#...#...#....#....#.....#.....#.",
    ")": ".#.....#.....#....#....#...#...#...",
    "/": ".........#...#...#...#...#.........",
    "&": ".##..#..#.#.#...#...#.#.##..#..##.#",
}
_BOX = "######...##...##...##...##...######"


def _glyph(ch: str) -> str:
    pattern = _GLYPHS.get(ch.upper(), _BOX)
    return (pattern + "." * 35)[:35]


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def render_png(result: Result) -> bytes:
    """The chart as PNG bytes."""
    width, height, shapes = _layout(result)
    pixels = bytearray(b"\xff" * (width * height * 3))

    def fill(x: int, y: int, w: int, h: int, colour: str) -> None:
        rgb = bytes(_rgb(colour))
        x1, y1 = max(x, 0), max(y, 0)
        x2, y2 = min(x + w, width), min(y + h, height)
        if x2 <= x1:
            return
        for yy in range(y1, y2):
            start = (yy * width + x1) * 3
            pixels[start : start + (x2 - x1) * 3] = rgb * (x2 - x1)

    for s in shapes:
        if isinstance(s, _Rect):
            fill(s.x, s.y, s.w, s.h, s.colour)
            continue
        advance = 6
        x = s.x - advance * len(s.text) if s.right else s.x
        y = s.y - 8
        for ch in s.text:
            glyph = _glyph(ch)
            for row in range(7):
                for col in range(5):
                    if glyph[row * 5 + col] == "#":
                        fill(x + col, y + row, 1, 1, s.colour)
            x += advance
    raw = b"".join(
        b"\x00" + bytes(pixels[row * width * 3 : (row + 1) * width * 3]) for row in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


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
