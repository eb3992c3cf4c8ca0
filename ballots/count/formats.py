"""Ballot files other counting tools read and write: BLT, PrefLib (.soi/.toi) and CSV.

Reading applies the marking rules of ``model.py`` (blanks passed over,
repeats ignored, a shared position ends the ballot).  A candidate's id is
its name as written in the file (runs of spaces read as one).  A malformed file raises
:class:`~ballots.errors.FileProblems`, every bad line as ``FILE:LINE: reason``.

- **BLT** (OpenSTV, Droop, the Scottish election data): a line
  ``candidates seats``; optionally a line of withdrawn candidates as negative
  numbers; one line per ballot group ``count pref pref ... 0`` (``-`` is a
  skipped position, ``2=3`` two candidates at one position); a line ``0``;
  each candidate's name in double quotes; the title in double quotes.
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

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TextIO

from ballots.count.model import Ballots, CountError, Ranking, ranking_from_marks
from ballots.errors import FileProblems, Problem

FORMATS = ("blt", "preflib", "csv")
_SUFFIXES = {
    ".blt": "blt",
    ".soi": "preflib",
    ".toi": "preflib",
    ".soc": "preflib",
    ".toc": "preflib",
    ".csv": "csv",
}
_MAX_PROBLEMS = 50


class _Problems:
    """Collects one file's problems and raises them together."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.found: list[Problem] = []

    def add(self, line: int, reason: str) -> None:
        if len(self.found) < _MAX_PROBLEMS:
            self.found.append(Problem(self.path, line, reason))

    def raise_any(self) -> None:
        if self.found:
            raise FileProblems(self.found)


def format_of(path: Path) -> str:
    """The ballot format a file's name says it holds."""
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise FileProblems(
            [Problem(str(path), 1, "unknown ballot file type: use .blt, .soi, .toi or .csv")]
        )
    return fmt


def read_ballots(path: Path) -> Ballots:
    """Read a ballot file of any supported format, chosen by its suffix."""
    fmt = format_of(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise FileProblems([Problem(str(path), 1, f"cannot read file: {err}")]) from err
    if fmt == "blt":
        return parse_blt(text, str(path))
    if fmt == "preflib":
        return parse_preflib(text, str(path))
    return parse_csv(text, str(path))


Marks = tuple[tuple[str, ...], ...]


class _Rows:
    """Marked ballots as read, counted; plain rankings (one mark a position) kept apart.

    Real files are mostly plain rankings, which need no marking rules beyond
    a check for repeats, so they take a fast path.
    """

    def __init__(self) -> None:
        self.plain: Counter[tuple[str, ...]] = Counter()
        self.marked: Counter[Marks] = Counter()

    def total(self) -> int:
        return sum(self.plain.values()) + sum(self.marked.values())

    def tokens(self) -> set[str]:
        """Every candidate token used."""
        used = {x for ranking in self.plain for x in ranking}
        used.update(x for marks in self.marked for mark in marks for x in mark)
        return used

    def grouped(self, label: Mapping[str, str | None]) -> tuple[dict[Ranking, int], int]:
        """Name the candidates (None: withdrawn, passed over) and apply the marking rules."""
        groups: dict[Ranking, int] = {}
        invalid = 0
        kept = {x: c for x, c in label.items() if c is not None}
        skip = len(kept) < len(label)
        for plain, n in self.plain.items():
            if skip:
                ranking = tuple(kept[x] for x in plain if x in kept)
            else:
                ranking = tuple(map(kept.__getitem__, plain))
            if len(set(ranking)) != len(ranking):
                ranking = ranking_from_marks(ranking)
            if ranking:
                groups[ranking] = groups.get(ranking, 0) + n
            else:
                invalid += n
        for marks, n in self.marked.items():
            named = [tuple(kept[x] for x in mark if x in kept) for mark in marks]
            # A position holding only withdrawn candidates is a blank.
            ranking = ranking_from_marks(named)
            if ranking:
                groups[ranking] = groups.get(ranking, 0) + n
            else:
                invalid += n
        return groups, invalid


#: The most candidates a ballot file may declare: a file that says more is refused
#: before anything is allocated for them.
MAX_CANDIDATES = 1000
#: Counts and candidate numbers: ASCII digits, at most 12 of them.
_NUMBER = re.compile(r"[0-9]{1,12}")


def _num(text: str) -> bool:
    """Whether ``text`` is a number this parser takes (never '²', never 5,000 digits)."""
    return _NUMBER.fullmatch(text) is not None


# --- BLT ------------------------------------------------------------------


def _uncomment(raw: str) -> str:
    """A BLT line without its comment: '#' starts one, except inside a quoted name."""
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
    return clean_name(line)


def clean_name(name: str) -> str:
    """A name as written, with runs of spaces made one and the ends trimmed."""
    return " ".join(name.split())


def parse_blt(text: str, path: str = "<blt>") -> Ballots:
    """Parse a BLT file (see the module docstring)."""
    problems = _Problems(path)
    lines = [(i + 1, _uncomment(raw)) for i, raw in enumerate(text.splitlines())]
    lines = [(n, line) for n, line in lines if line]
    if not lines:
        raise FileProblems([Problem(path, 1, "empty file: expected 'candidates seats'")])
    first_no, first = lines[0]
    head = first.split()
    if len(head) != 2 or not all(_num(h) for h in head) or int(head[0]) < 1:
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
    rows = _Rows()
    ended = False
    for line_no, line in lines[pos:]:
        pos += 1
        toks = line.split()
        if toks == ["0"]:
            ended = True
            break
        if toks and toks[0].startswith("("):
            toks = toks[1:]  # an optional ballot id, "(id) count prefs... 0"
        if not toks or not _num(toks[0]):
            problems.add(line_no, f"expected 'count pref pref ... 0', got {line!r}")
            continue
        if toks[-1] != "0":
            problems.add(line_no, "a ballot line must end with 0")
            continue
        prefs = toks[1:-1]
        bad = [t for t in prefs for p in t.split("=") if not (_num(p) and 0 < int(p) <= n_cand)]
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
    for ranking, n in _sorted(ballots, number):
        out.write(f"{n} {' '.join(str(number[c]) for c in ranking)} 0\n")
    out.write("0\n")
    for c in ballots.candidates:
        out.write(f'"{_safe(ballots.names[c])}"\n')
    out.write(f'"{_safe(ballots.title)}"\n')


def _safe(text: str) -> str:
    return text.replace('"', "'").replace("\n", " ")


def _sorted(ballots: Ballots, number: dict[str, int]) -> Iterator[tuple[Ranking, int]]:
    """Groups sorted by ranking (as candidate numbers): an order that says nothing."""
    return iter(sorted(ballots.groups.items(), key=lambda g: [number[c] for c in g[0]]))


# --- PrefLib ----------------------------------------------------------------

_HEADER = re.compile(r"^#\s*([A-Z ]+?)\s*([0-9]{1,12})?\s*:\s*(.*)$")
_ITEM = re.compile(r"\s*(\{[^}]*\}|[^,{}]+)\s*(?:,|$)")
_PLAIN = re.compile(r"\s*[0-9]{1,12}\s*(?:,\s*[0-9]{1,12}\s*)*")


def parse_preflib(text: str, path: str = "<preflib>") -> Ballots:
    """Parse a PrefLib .soi/.toi/.soc/.toc file (see the module docstring)."""
    problems = _Problems(path)
    names: dict[int, str] = {}
    header: dict[str, tuple[int, str]] = {}
    rows = _Rows()
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
        if not sep or not _num(count_text.strip()):
            problems.add(line_no, f"expected 'count: 1,2,3', got {line!r}")
            continue
        ranking = body.strip()
        if _PLAIN.fullmatch(ranking):  # the common case: no shared positions
            rows.plain[tuple(x.strip() for x in ranking.split(",") if x.strip())] += int(count_text)
            continue
        marks = _preflib_marks(ranking)
        if isinstance(marks, str):
            problems.add(line_no, marks)
        else:
            rows.marked[marks] += int(count_text)
    declared = header.get("NUMBER ALTERNATIVES")
    if declared is None or not _num(declared[1]):
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
    if voters and _num(voters[1]) and int(voters[1]) != rows.total():
        problems.add(
            voters[0],
            f"the header says {voters[1]} voters but the file holds {rows.total()} ballots",
        )
    problems.raise_any()
    groups, invalid = rows.grouped({x: labels[int(x) - 1] for x in used})
    title = header.get("TITLE", (0, ""))[1]
    return Ballots(tuple(labels), groups, invalid=invalid, title=title)


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
        if not all(_num(x) for x in members):
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
    for c in ballots.candidates:
        out.write(f"# ALTERNATIVE NAME {number[c]}: {ballots.names[c]}\n")
    for ranking, n in _sorted(ballots, number):
        out.write(f"{n}: {','.join(str(number[c]) for c in ranking)}\n")


# --- CSV ------------------------------------------------------------------

_CANDIDATES = re.compile(r"^#\s*candidates\s*:(.*)$", re.IGNORECASE)


def parse_csv(text: str, path: str = "<csv>") -> Ballots:
    """Parse a CSV file with one ballot per row (see the module docstring)."""
    problems = _Problems(path)
    declared: list[str] | None = None
    lines: Counter[str] = Counter()
    first_line: dict[str, int] = {}
    for line_no, raw in enumerate(text.splitlines(), start=1):
        if raw.startswith("#"):
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
    rows = _Rows()
    first_seen: dict[str, int] = {}
    for raw, n in lines.items():
        marks = tuple(
            tuple(clean_name(p) for p in cell.split("=") if p.strip()) for cell in raw_cells(raw)
        )
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
    return Ballots(tuple(candidates), groups, invalid=invalid)


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
    for ranking, n in _sorted(ballots, number):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([ballots.names[c] for c in ranking])
        out.write(buf.getvalue() * n)


#: What each format cannot hold in a name or title, and why.
_CANNOT_HOLD = {"blt": ('"', "a double quote"), "csv": ("=", "'='"), "preflib": ("", "")}


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
