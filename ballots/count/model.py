"""The ballots to count: identical rankings grouped, immutable, with the stated marking rules.

A ballot is a ranking: candidate ids, most preferred first.  Ballots that
rank the same candidates in the same order are one group with a count, so a
count of a million ballots works on the (far fewer) distinct rankings.

How a marked ballot becomes a ranking (the same rule for every input):

- a blank position (a skipped ranking) is passed over: the next marked
  preference counts;
- a candidate marked again at a lower position is ignored there: only the
  first (highest) mark counts;
- a position shared by two or more candidates (an overvote, ``{a,b}`` in a
  PrefLib ``.toi`` file, ``a=b`` in BLT) ends the ballot at that position:
  the preferences before it count and the ballot is then exhausted, as if
  the voter had stopped there;
- a ballot with no countable first preference is invalid: it is not counted
  and is reported as such.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from ballots.errors import OpenPrimaryError

Ranking = tuple[str, ...]


class CountError(OpenPrimaryError):
    """A count cannot be carried out as asked (bad options, unknown candidate...)."""


def ranking_from_marks(marks: Iterable[str | Iterable[str]]) -> Ranking:
    """Apply the marking rules to one ballot's positions, first preference first.

    Each position is a candidate id, ``""`` for a blank, or a collection of
    ids for candidates marked at the same position.
    """
    ranking: list[str] = []
    for mark in marks:
        group = {mark} - {""} if isinstance(mark, str) else set(mark) - {""}
        if not group:
            continue
        if len(group) > 1:
            break
        (candidate,) = group
        if candidate not in ranking:
            ranking.append(candidate)
    return tuple(ranking)


@dataclass(frozen=True)
class Ballots:
    """Grouped ballots for one count: candidates, their names, ranking -> count.

    ``invalid`` counts ballots with no countable first preference; they are
    reported but never counted.  ``title`` and ``seats`` carry what a ballot
    file says about the election, when it says it.
    """

    candidates: tuple[str, ...]
    groups: Mapping[Ranking, int]
    names: Mapping[str, str] = field(default_factory=dict)
    invalid: int = 0
    title: str = ""
    seats: int | None = None
    #: Blank ballots (abstentions): counted in turnout, for no candidate, in no quota or
    #: majority.
    blank: int = 0

    def __post_init__(self) -> None:
        known = set(self.candidates)
        if len(known) != len(self.candidates):
            raise CountError("a candidate is listed twice")
        for ranking, n in self.groups.items():
            if not ranking or n <= 0:
                raise CountError(f"empty ranking or non-positive count: {ranking!r} x {n}")
            if len(set(ranking)) != len(ranking):
                raise CountError(f"a ranking names a candidate twice: {','.join(ranking)}")
            if known.issuperset(ranking):
                continue
            unknown = [c for c in ranking if c not in known]
            if unknown:
                raise CountError(f"a ranking names unknown candidate(s): {', '.join(unknown)}")
        object.__setattr__(self, "groups", MappingProxyType(dict(self.groups)))
        names = {c: self.names.get(c, c) for c in self.candidates}
        object.__setattr__(self, "names", MappingProxyType(names))

    @classmethod
    def from_rankings(
        cls,
        candidates: Sequence[str],
        rankings: Iterable[Sequence[str | Iterable[str]]],
        names: Mapping[str, str] | None = None,
        title: str = "",
        seats: int | None = None,
    ) -> Ballots:
        """Group one ranking per ballot, applying the marking rules to each."""
        counts: Counter[Ranking] = Counter()
        invalid = 0
        for marks in rankings:
            ranking = ranking_from_marks(marks)
            if ranking:
                counts[ranking] += 1
            else:
                invalid += 1
        return cls(
            candidates=tuple(candidates),
            groups=counts,
            names=dict(names or {}),
            invalid=invalid,
            title=title,
            seats=seats,
        )

    @property
    def total(self) -> int:
        """The number of valid ballots."""
        return sum(self.groups.values())

    def items(self) -> Iterator[tuple[Ranking, int]]:
        """Each distinct ranking and its count, in a fixed (sorted) order."""
        return iter(sorted(self.groups.items()))

    def __len__(self) -> int:
        return len(self.groups)


def merge_group(groups: dict[Ranking, int], ranking: Ranking, n: int) -> None:
    """Add ``n`` ballots with ``ranking`` to a mutable grouping being built."""
    groups[ranking] = groups.get(ranking, 0) + n


def indexed(ballots: Ballots) -> tuple[list[tuple[int, ...]], list[int]]:
    """The rankings as tuples of candidate positions, and their counts, in a fixed order."""
    position = {c: i for i, c in enumerate(ballots.candidates)}.__getitem__
    # Any order will do: every total is a sum, and sums do not depend on order.
    rankings = [tuple(map(position, ranking)) for ranking in ballots.groups]
    return rankings, list(ballots.groups.values())
