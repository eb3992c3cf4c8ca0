"""What a count found: its rounds, transfers, tie-breaks and winners, as plain immutable data.

Every method returns a :class:`Result`; ``report.py`` turns it into the
table for people and the JSON for scripts, ``chart.py`` into a picture.
Votes are ``int`` (IRV, SV), ``Decimal`` with five places (STV), or exact ``Fraction``
shares of the whole in an electoral college's weighted count (``college.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

Votes = int | Decimal | Fraction


@dataclass(frozen=True)
class TieBreak:
    """One tie and how the stated rule resolved it."""

    round: int
    kind: str
    """What was being decided: ``exclusion``, ``surplus order``, ``top two`` or ``winner``."""
    tied: tuple[str, ...]
    chosen: str
    how: str
    """``earlier round`` (looked back at earlier rounds' votes) or ``lot``."""
    detail: str
    #: The rounds looked back at, newest first: (round, ((candidate, votes shown), ...)).
    looked: tuple[tuple[int, tuple[tuple[str, str], ...]], ...] = ()
    #: By lot: the seed and each tied candidate's draw (the first 12 hex digits).
    seed: int | None = None
    draws: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Transfer:
    """Ballots moved from one candidate: where each share went and how much was lost."""

    source: str
    reason: str
    """``excluded`` or ``surplus``."""
    to: Mapping[str, Votes]
    exhausted: Votes
    ballots: int
    """How many ballot papers were examined."""
    transfer_value: Decimal | None = None
    """For a surplus: the value of a paper received at full value (STV)."""
    loss: Votes = 0
    """Votes lost to fractions by truncating transfer values (STV)."""


@dataclass(frozen=True)
class Round:
    """One round (a stage, in STV): how it began, the votes, and what was decided."""

    number: int
    action: str
    """What produced this round's votes, in words."""
    tallies: Mapping[str, Votes]
    """Votes of every candidate not excluded before this round."""
    exhausted: Votes
    """Votes on ballots with no continuing preference left, so far."""
    transfers: tuple[Transfer, ...] = ()
    """The moves that produced this round's votes from the previous round's."""
    elected: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """Why each candidate was elected or excluded in this round."""
    loss: Votes = 0
    """Votes lost to fractions so far (STV)."""
    by_section: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """An electoral college: section -> candidate -> ballots (whole papers) with them;
    the exhausted papers under ``""``."""


@dataclass(frozen=True)
class Section:
    """One section of an electoral college, as counted."""

    share: Fraction
    ballots: int
    blank: int = 0

    @property
    def weight(self) -> Fraction:
        """What one of its ballots is worth: its share spread over its valid ballots."""
        return self.share / self.ballots


@dataclass(frozen=True)
class Result:
    """The full record of one count."""

    method: str
    seats: int
    quota: Votes | None
    candidates: Mapping[str, str]
    """Candidate id -> display name, in ballot-paper order."""
    rounds: tuple[Round, ...]
    winners: tuple[str, ...]
    tie_breaks: tuple[TieBreak, ...]
    ballots: int
    """Valid ballots counted."""
    invalid: int
    seed: int
    """The seed any lot was drawn from; a recount with it gives the same answer."""
    rules: str
    """The rules applied, in one line."""
    title: str = ""
    options: Mapping[str, object] = field(default_factory=dict)
    #: Blank ballots (abstentions): in turnout, for no candidate, in no quota or majority.
    blank: int = 0
    #: An electoral college: each section's share, its valid ballots and the weight of one
    #: of them (share / ballots); empty for an unweighted count.
    sections: Mapping[str, Section] = field(default_factory=dict)

    @property
    def weighted(self) -> bool:
        """A weighted count: every vote is an exact share of the whole (tally 1 = 100%)."""
        return bool(self.sections)

    def name(self, candidate: str) -> str:
        """A candidate's display name."""
        return self.candidates.get(candidate, candidate)
