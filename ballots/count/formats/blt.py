"""BLT (OpenSTV, Droop, the Scottish election data): see :mod:`ballots.count.formats`."""

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
from ballots.errors import FileProblems, Problem

# --- BLT ------------------------------------------------------------------

#: What a double quote in a name or the title is written as (BLT quotes names and has no
#: escape): FULLWIDTH QUOTATION MARK, which other readers show as a quote.
BLT_QUOTE = "\uff02"


def _uncomment(raw: str) -> str:
    """A BLT line without its comment: '#' starts one, except inside a quoted name."""
    if "#" not in raw:
        return raw.strip()
    line = raw.strip()
    if line.startswith('"'):
        end = line.find('"', 1)
        if end > 0:
            return line[: end + 1]
    return line.split("#", 1)[0].strip()


def _unquote(line: str) -> str:
    line = line.strip()
    if len(line) >= 2 and line[0] == line[-1] == '"':
        line = line[1:-1]
    return clean_name(line).replace(BLT_QUOTE, '"')


def parse_blt(text: str, path: str = "<blt>", max_ranks: int | None = None) -> Ballots:
    """Parse a BLT file (see the module docstring); ``max_ranks``: refuse longer ballots."""
    problems = Problems(path)
    lines = [(i + 1, _uncomment(raw)) for i, raw in enumerate(text.splitlines())]
    lines = [(n, line) for n, line in lines if line]
    if not lines:
        raise FileProblems([Problem(path, 1, "empty file: expected 'candidates seats'")])
    first_no, first = lines[0]
    head = first.split()
    if len(head) != 2 or not all(num(h) for h in head) or int(head[0]) < 1:
        raise FileProblems(
            [
                Problem(
                    path,
                    first_no,
                    f"expected 'candidates seats' (two whole numbers), got {first!r}",
                )
            ]
        )
    n_cand, seats = int(head[0]), int(head[1])
    if n_cand > MAX_CANDIDATES:
        raise FileProblems(
            [Problem(path, first_no, f"{n_cand} candidates: at most {MAX_CANDIDATES} are taken")]
        )
    pos = 1
    withdrawn: set[int] = set()
    if pos < len(lines) and lines[pos][1].startswith("-"):
        line_no, line = lines[pos]
        for tok in line.split():
            if re.fullmatch(r"-[0-9]{1,12}", tok) and 1 <= -int(tok) <= n_cand:
                withdrawn.add(-int(tok))
            else:
                problems.add(line_no, f"withdrawn candidate {tok!r} is not -1 to -{n_cand}")
        pos += 1
    rows = Rows()
    candidate_numbers = frozenset(str(i) for i in range(1, n_cand + 1))
    ended = False
    for line_no, line in lines[pos:]:
        pos += 1
        toks = line.split()
        if toks == ["0"]:
            ended = True
            break
        if toks and toks[0].startswith("("):
            toks = toks[1:]  # an optional ballot id, "(id) count prefs... 0"
        if not toks or not num(toks[0]):
            problems.add(line_no, f"expected 'count pref pref ... 0', got {line!r}")
            continue
        if toks[-1] != "0":
            problems.add(line_no, "a ballot line must end with 0")
            continue
        prefs = toks[1:-1]
        if max_ranks is not None and (refused := over_cap(len(prefs), max_ranks)):
            problems.add(line_no, refused)
            continue
        if candidate_numbers.issuperset(prefs):  # the usual line: plain candidate numbers
            rows.plain[tuple(prefs)] += int(toks[0])
            continue
        bad = [t for t in prefs for p in t.split("=") if not (num(p) and 0 < int(p) <= n_cand)]
        bad = [t for t in bad if t != "-"]
        if bad:
            problems.add(line_no, f"preference {bad[0]!r} is not a candidate number 1 to {n_cand}")
        elif any("=" in t or t == "-" for t in prefs):
            marks = tuple(() if t == "-" else tuple(t.split("=")) for t in prefs)
            rows.marked[marks] += int(toks[0])
        else:
            rows.plain[tuple(prefs)] += int(toks[0])
    if not ended:
        problems.add(lines[-1][0], "missing the '0' line that ends the ballots")
        problems.raise_any()
    names_lines = lines[pos : pos + n_cand]
    if len(names_lines) < n_cand:
        problems.add(lines[-1][0], f"expected {n_cand} candidate names after the ballots")
    problems.raise_any()
    names = [_unquote(line) for _, line in names_lines]
    seen: set[str] = set()
    for (line_no, _), name in zip(names_lines, names, strict=True):
        if not name:
            problems.add(line_no, "a candidate's name is empty")
        elif name in seen:
            problems.add(line_no, f"candidate name {name!r} appears twice")
        seen.add(name)
    problems.raise_any()
    title = _unquote(lines[pos + n_cand][1]) if pos + n_cand < len(lines) else ""
    label: dict[str, str | None] = {
        x: None if int(x) in withdrawn else names[int(x) - 1] for x in rows.tokens()
    }
    kept = [name for i, name in enumerate(names) if i + 1 not in withdrawn]
    groups, invalid = rows.grouped(label)
    return Ballots(tuple(kept), groups, invalid=invalid, title=title, seats=seats)


def write_blt(ballots: Ballots, out: TextIO, seats: int | None = None) -> None:
    """Write ballots as BLT, with names as the candidates and one line per ranking."""
    number = {c: i + 1 for i, c in enumerate(ballots.candidates)}
    out.write(f"{len(ballots.candidates)} {seats or ballots.seats or 1}\n")
    for ranking, n in in_ranking_order(ballots, number):
        out.write(f"{n} {' '.join(str(number[c]) for c in ranking)} 0\n")
    if ballots.blank:
        # A ballot with no preference: BLT's only way to carry an abstention (a reader
        # counts it as a ballot for nobody).
        out.write(f"{ballots.blank} 0\n")
    out.write("0\n")
    for c in ballots.candidates:
        out.write(f'"{_safe(ballots.names[c])}"\n')
    out.write(f'"{_safe(ballots.title)}"\n')


def _safe(text: str) -> str:
    return text.replace('"', BLT_QUOTE).replace("\n", " ")
