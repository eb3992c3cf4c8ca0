"""PrefLib (the 2022 format, .soi/.toi/.soc/.toc): see :mod:`ballots.count.formats`."""

from __future__ import annotations

import re
from typing import TextIO

from ballots.count.formats.common import (
    MAX_CANDIDATES,
    Problems,
    Rows,
    clean_name,
    in_ranking_order,
    num,
    over_cap,
)
from ballots.count.model import Ballots

# --- PrefLib ----------------------------------------------------------------

_HEADER = re.compile(r"^#\s*([A-Z ]+?)\s*([0-9]{1,12})?\s*:\s*(.*)$")
_ITEM = re.compile(r"\s*(\{[^}]*\}|[^,{}]+)\s*(?:,|$)")
_PLAIN = re.compile(r"\s*[0-9]{1,12}\s*(?:,\s*[0-9]{1,12}\s*)*")


def parse_preflib(text: str, path: str = "<preflib>", max_ranks: int | None = None) -> Ballots:
    """Parse a PrefLib .soi/.toi/.soc/.toc file (see the module docstring); ``max_ranks``:
    refuse longer ballots."""
    problems = Problems(path)
    names: dict[int, str] = {}
    header: dict[str, tuple[int, str]] = {}
    rows = Rows()
    for i, raw in enumerate(text.splitlines()):
        line_no, line = i + 1, raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = _HEADER.match(line)
            if m and m.group(1) == "ALTERNATIVE NAME" and m.group(2):
                if int(m.group(2)) <= MAX_CANDIDATES:
                    names[int(m.group(2))] = clean_name(m.group(3))
            elif m and not m.group(2):
                header[m.group(1)] = (line_no, m.group(3).strip())
            continue
        count_text, sep, body = line.partition(":")
        if not sep or not num(count_text.strip()):
            problems.add(line_no, f"expected 'count: 1,2,3', got {line!r}")
            continue
        ranking = body.strip()
        if _PLAIN.fullmatch(ranking):  # the common case: no shared positions
            plain = tuple(x.strip() for x in ranking.split(",") if x.strip())
            if refused := over_cap(len(plain), max_ranks):
                problems.add(line_no, refused)
            else:
                rows.plain[plain] += int(count_text)
            continue
        marks = _preflib_marks(ranking)
        if isinstance(marks, str):
            problems.add(line_no, marks)
        elif refused := over_cap(len(marks), max_ranks):
            problems.add(line_no, refused)
        else:
            rows.marked[marks] += int(count_text)
    declared = header.get("NUMBER ALTERNATIVES")
    if declared is None or not num(declared[1]):
        n_alt = max(names, default=0)
        if n_alt == 0:
            problems.add(1, "missing '# NUMBER ALTERNATIVES: n' header")
    else:
        n_alt = int(declared[1])
        if n_alt > MAX_CANDIDATES:
            problems.add(declared[0], f"{n_alt} alternatives: at most {MAX_CANDIDATES} are taken")
    problems.raise_any()
    used = rows.tokens()
    out_of_range = [x for x in sorted(used, key=int) if not 1 <= int(x) <= n_alt]
    if out_of_range:
        lines = _first_lines(text, set(out_of_range[:20]))
        for x in out_of_range[:20]:
            problems.add(lines.get(x, 1), f"candidate number {x} is not 1 to {n_alt}")
    labels = [names.get(i, str(i)) for i in range(1, n_alt + 1)]
    if len(set(labels)) != len(labels):
        problems.add(1, "two alternatives have the same name")
    voters = header.get("NUMBER VOTERS")
    if voters and num(voters[1]) and int(voters[1]) != rows.total():
        problems.add(
            voters[0],
            f"the header says {voters[1]} voters but the file holds {rows.total()} ballots",
        )
    problems.raise_any()
    groups, invalid = rows.grouped({x: labels[int(x) - 1] for x in used})
    title = header.get("TITLE", (0, ""))[1]
    blank_line, blank_text = header.get("BLANK BALLOTS", (0, "0"))
    if not num(blank_text):
        problems.add(blank_line, f"'# BLANK BALLOTS: {blank_text}' is not a whole number")
        problems.raise_any()
    return Ballots(tuple(labels), groups, invalid=invalid, title=title, blank=int(blank_text))


def _preflib_marks(text: str) -> tuple[tuple[str, ...], ...] | str:
    """One PrefLib ranking's positions, or the reason it cannot be read."""
    marks: list[tuple[str, ...]] = []
    at = 0
    while at < len(text):
        m = _ITEM.match(text, at)
        if not m or m.end() == at:
            return f"cannot read the ranking {text!r}"
        item = m.group(1).strip()
        members = item[1:-1].split(",") if item.startswith("{") else [item]
        members = [x.strip() for x in members if x.strip()]
        if not all(num(x) for x in members):
            return f"{item!r} is not a candidate number"
        marks.append(tuple(members))
        at = m.end()
    return tuple(marks)


def _first_lines(text: str, numbers: set[str]) -> dict[str, int]:
    """The first ballot line naming each of ``numbers`` (for error messages): one pass."""
    found: dict[str, int] = {}
    for i, line in enumerate(text.splitlines()):
        if line.startswith("#") or ":" not in line:
            continue
        for x in re.findall(r"[0-9]+", line.partition(":")[2]):
            if x in numbers and x not in found:
                found[x] = i + 1
        if len(found) == len(numbers):
            break
    return found


def write_preflib(ballots: Ballots, out: TextIO, name: str = "ballots.soi") -> None:
    """Write ballots as a PrefLib .soi file (strict orders: the marking rules leave no ties)."""
    number = {c: i + 1 for i, c in enumerate(ballots.candidates)}
    out.write(f"# FILE NAME: {name}\n")
    out.write(f"# TITLE: {ballots.title}\n")
    out.write("# DATA TYPE: soi\n")
    out.write(f"# NUMBER ALTERNATIVES: {len(ballots.candidates)}\n")
    out.write(f"# NUMBER VOTERS: {ballots.total}\n")
    out.write(f"# NUMBER UNIQUE ORDERS: {len(ballots)}\n")
    if ballots.blank:
        # PrefLib has no empty order: the abstentions are told in a header line of their own.
        out.write(f"# BLANK BALLOTS: {ballots.blank}\n")
    for c in ballots.candidates:
        out.write(f"# ALTERNATIVE NAME {number[c]}: {ballots.names[c]}\n")
    for ranking, n in in_ranking_order(ballots, number):
        out.write(f"{n}: {','.join(str(number[c]) for c in ranking)}\n")
