"""Ballot files other counting tools read and write: BLT, PrefLib (.soi/.toi) and CSV.

Reading applies the marking rules of ``model.py`` (blanks passed over,
repeats ignored, a shared position ends the ballot).  A candidate's id is
its name as written in the file (runs of spaces read as one).  A malformed file raises
:class:`~ballots.errors.FileProblems`, every bad line as ``FILE:LINE: reason``.

- **BLT** (OpenSTV, Droop, the Scottish election data): a line
  ``candidates seats``; optionally a line of withdrawn candidates as negative
  numbers; one line per ballot group ``count pref pref ... 0`` (``-`` is a
  skipped position, ``2=3`` two candidates at one position); a line ``0``;
  each candidate's name in double quotes; the title in double quotes.  A BLT
  name cannot hold a double quote, so one in a name or the title is written
  as ``＂`` (U+FF02 FULLWIDTH QUOTATION MARK): other readers show it as a
  quote, and ours reads it back as ``"``.  (So a name that holds ``＂``
  itself cannot be written as BLT.)
- **PrefLib** (the 2022 format): ``# KEY: value`` header lines, with
  ``# ALTERNATIVE NAME i: name``, then ``count: 1,2,3`` lines; in ``.toi``
  files ``{2,3}`` is a position shared by candidates 2 and 3.
- **CSV**: one ballot per row, candidates in order of preference, most
  preferred first; blank cells are skipped positions and ``a=b`` is a shared
  position.  Lines starting with ``#`` are comments, except an optional
  ``# candidates: a,b,c`` line that lists every candidate (so one with no
  votes is still counted); otherwise the candidates are those named, in order
  of first appearance.

Writing produces files that read back to the same ballots, sorted by
ranking, so the file says nothing about the order in which ballots were cast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from ballots.count.formats.blt import BLT_QUOTE, parse_blt, write_blt
from ballots.count.formats.common import MAX_CANDIDATES, clean_name
from ballots.count.formats.csv_ballots import parse_csv, raw_cells, write_csv
from ballots.count.formats.preflib import parse_preflib, write_preflib
from ballots.count.model import Ballots, CountError
from ballots.errors import FileProblems, Problem

__all__ = [
    "FORMATS",
    "MAX_CANDIDATES",
    "check_writable",
    "clean_name",
    "format_of",
    "parse_blt",
    "parse_csv",
    "parse_preflib",
    "raw_cells",
    "read_ballots",
    "write_ballots",
    "write_blt",
    "write_csv",
    "write_preflib",
]

FORMATS = ("blt", "preflib", "csv")
_SUFFIXES = {
    ".blt": "blt",
    ".soi": "preflib",
    ".toi": "preflib",
    ".soc": "preflib",
    ".toc": "preflib",
    ".csv": "csv",
}


def format_of(path: Path) -> str:
    """The ballot format a file's name says it holds."""
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise FileProblems(
            [Problem(str(path), 1, "unknown ballot file type: use .blt, .soi, .toi or .csv")]
        )
    return fmt


def read_ballots(path: Path, max_ranks: int | None = None) -> Ballots:
    """Read a ballot file of any supported format, chosen by its suffix; ``max_ranks``:
    refuse a ballot with more preferences (``FILE:LINE: reason``)."""
    fmt = format_of(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise FileProblems([Problem(str(path), 1, f"cannot read file: {err}")]) from err
    if fmt == "blt":
        return parse_blt(text, str(path), max_ranks)
    if fmt == "preflib":
        return parse_preflib(text, str(path), max_ranks)
    return parse_csv(text, str(path), max_ranks)


_CANNOT_HOLD = {
    "blt": (BLT_QUOTE, f"{BLT_QUOTE!r} (U+FF02, which BLT files here write for '\"')"),
    "csv": ("=", "'='"),
    "preflib": ("", ""),
}


def check_writable(ballots: Ballots, fmt: str) -> None:
    """Refuse a name or title the format cannot hold, rather than write a file that reads
    back differently (or with ballots of its own: a newline in a PrefLib name would)."""
    texts = [("candidate name", ballots.names[c]) for c in ballots.candidates]
    texts.append(("title", ballots.title))
    bad_char, what = _CANNOT_HOLD.get(fmt, ("", ""))
    for kind, text in texts:
        if not text.isprintable():
            raise CountError(f"{kind} {text!r} is not one line of printable text; nothing written")
        if bad_char and bad_char in text:
            raise CountError(
                f"{kind} {text!r} holds {what}, which {fmt.upper()} cannot; nothing written"
            )


def write_ballots(ballots: Ballots, fmt: str, out: TextIO, seats: int | None = None) -> None:
    """Write ballots in one of :data:`FORMATS` (CountError if the format cannot hold them)."""
    check_writable(ballots, fmt)
    if fmt == "blt":
        write_blt(ballots, out, seats)
    elif fmt == "preflib":
        write_preflib(ballots, out)
    elif fmt == "csv":
        write_csv(ballots, out)
    else:
        raise CountError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
