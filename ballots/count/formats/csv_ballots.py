"""CSV, one ballot per row: see :mod:`ballots.count.formats`."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from typing import TextIO

from ballots.count.formats.common import Problems, Rows, clean_name, in_ranking_order, over_cap
from ballots.count.model import Ballots

# --- CSV ------------------------------------------------------------------

_CANDIDATES = re.compile(r"^#\s*candidates\s*:(.*)$", re.IGNORECASE)
#: Blank ballots (abstentions), which a row cannot show: ``# blank: 12``.
_BLANK = re.compile(r"^#\s*blank\s*:\s*([0-9]{1,12})\s*$", re.IGNORECASE)


def parse_csv(text: str, path: str = "<csv>", max_ranks: int | None = None) -> Ballots:
    """Parse a CSV file with one ballot per row (see the module docstring); ``max_ranks``:
    refuse longer ballots."""
    problems = Problems(path)
    declared: list[str] | None = None
    blank = 0
    lines: Counter[str] = Counter()
    first_line: dict[str, int] = {}
    for line_no, raw in enumerate(text.splitlines(), start=1):
        if raw.startswith("#"):
            if found := _BLANK.match(raw):
                blank += int(found.group(1))
                continue
            m = _CANDIDATES.match(raw)
            if m:
                if declared is not None:
                    problems.add(line_no, "a second '# candidates:' line")
                declared = [clean_name(c) for c in raw_cells(m.group(1))]
                if any(not c for c in declared) or len(set(declared)) != len(declared):
                    problems.add(line_no, "'# candidates:' names a blank or repeated candidate")
            continue
        if not raw.strip():
            continue
        # Identical lines are parsed once: a big file repeats rankings a lot.
        if raw not in first_line:
            first_line[raw] = line_no
        lines[raw] += 1
    rows = Rows()
    first_seen: dict[str, int] = {}
    for raw, n in lines.items():
        marks = tuple(
            tuple(clean_name(p) for p in cell.split("=") if p.strip()) for cell in raw_cells(raw)
        )
        if refused := over_cap(sum(1 for mark in marks if mark), max_ranks):
            problems.add(first_line[raw], refused)
            continue
        rows.marked[marks] += n
        for mark in marks:
            for name in mark:
                first_seen.setdefault(name, first_line[raw])
    candidates = declared if declared is not None else list(first_seen)
    known = set(candidates)
    for name, line_no in first_seen.items():
        if name not in known:
            problems.add(line_no, f"{name!r} is not in the '# candidates:' line")
    problems.raise_any()
    groups, invalid = rows.grouped({c: c for c in candidates})
    return Ballots(tuple(candidates), groups, invalid=invalid, blank=blank)


def raw_cells(line: str) -> list[str]:
    """The cells of one CSV line, quoted cells allowed."""
    if '"' not in line:
        return line.split(",")
    return next(csv.reader([line]), [])


def write_csv(ballots: Ballots, out: TextIO) -> None:
    """Write ballots as CSV, one row per ballot, candidates named by display name."""
    number = {c: i + 1 for i, c in enumerate(ballots.candidates)}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([ballots.names[c] for c in ballots.candidates])
    header = buf.getvalue()
    out.write(f"# candidates: {header}")
    if ballots.blank:
        out.write(f"# blank: {ballots.blank}\n")
    for ranking, n in in_ranking_order(ballots, number):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([ballots.names[c] for c in ranking])
        out.write(buf.getvalue() * n)


#: What each format cannot hold in a name or title, and why.
