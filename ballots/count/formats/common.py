"""What the ballot file formats share: problems by line, ballots as read, numbers, names."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping

from ballots.count.model import Ballots, Ranking, ranking_from_marks
from ballots.errors import FileProblems, Problem

MAX_PROBLEMS = 50


class Problems:
    """Collects one file's problems and raises them together."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.found: list[Problem] = []

    def add(self, line: int, reason: str) -> None:
        if len(self.found) < MAX_PROBLEMS:
            self.found.append(Problem(self.path, line, reason))

    def raise_any(self) -> None:
        if self.found:
            raise FileProblems(self.found)


Marks = tuple[tuple[str, ...], ...]


class Rows:
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
NUMBER = re.compile(r"[0-9]{1,12}")


def over_cap(positions: int, max_ranks: int | None) -> str | None:
    """Why a ballot of ``positions`` preferences is refused under ``--max-ranks`` (or None)."""
    if max_ranks is not None and positions > max_ranks:
        return f"{positions} preferences on one ballot: --max-ranks allows {max_ranks}"
    return None


def num(text: str) -> bool:
    """Whether ``text`` is a number this parser takes (never '²', never 5,000 digits)."""
    return NUMBER.fullmatch(text) is not None


def clean_name(name: str) -> str:
    """A name as written, with runs of spaces made one and the ends trimmed."""
    return " ".join(name.split())


def in_ranking_order(ballots: Ballots, number: dict[str, int]) -> Iterator[tuple[Ranking, int]]:
    """Groups sorted by ranking (as candidate numbers): an order that says nothing."""
    return iter(sorted(ballots.groups.items(), key=lambda g: [number[c] for c in g[0]]))
