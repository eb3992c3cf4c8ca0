"""An electoral college: sections of voters whose ballots are weighted to the sections' shares.

Labour's 2010 London Mayoral selection weighted individual members and affiliated
members 50/50: each section's ballots together count for its share of the whole,
however many voted in it.  The rules here:

1. A section's weight per ballot is its share divided by its valid ballots (blank
   ballots, abstentions, count in turnout and in no section's weight).  So every
   section's ballots total exactly its share, and the whole count totals 1.
2. The count is then the method's own (``irv.py``, ``sv.py``), each ballot counting
   for its weight instead of 1.  Every tally is an exact ``Fraction``: nothing is
   rounded in any round, so a tally of 1/2 is exactly half, and "more than half"
   means it.  Reports show each tally as a percentage of the whole, and each
   section's whole papers beside it.
3. A section with fewer valid ballots than ``min_ballots`` (the election's
   ``min_section_ballots``, default 20) is refused: its weighted result would say
   how its few voters voted.  The organisers may lower it knowingly.  A section with
   no ballots at all cannot be counted: its share would belong to nobody.
4. Ties are broken as ``ties.py`` says (earlier rounds, then lot), on the weighted
   tallies.  STV is not offered with sections: the election file refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from ballots.count.model import Ballots, CountError, Ranking
from ballots.count.result import Result, Round, Section, TieBreak, Transfer
from ballots.count.sv import top_two_of, winner_by_lot
from ballots.count.ties import choose

if TYPE_CHECKING:
    from ballots.election import Election

RULES = {
    "irv": (
        "electoral college, instant-runoff: each section's ballots weighted to its share; "
        "more than half of continuing weighted votes wins; lowest excluded; ties by earlier "
        "rounds, then lot"
    ),
    "sv": (
        "electoral college, supplementary vote: each section's ballots weighted to its share; "
        "1st and 2nd choices only; more than half of weighted 1st choices wins; else top two "
        "continue; ties by lot"
    ),
}


@dataclass(frozen=True)
class College:
    """The ballots of each section, and each section's share (in the election file's order)."""

    shares: Mapping[str, Fraction]
    sections: Mapping[str, Ballots]

    def __post_init__(self) -> None:
        if set(self.shares) != set(self.sections):
            raise CountError("every section needs both a share and its ballots")
        if sum(self.shares.values()) != 1:
            raise CountError(f"the sections' shares add up to {sum(self.shares.values())}, not 1")
        candidate_lists = {b.candidates for b in self.sections.values()}
        if len(candidate_lists) != 1:
            raise CountError("every section must have the same candidates")

    @property
    def first(self) -> Ballots:
        return next(iter(self.sections.values()))


def weights_json(election: Election, college: College) -> str:
    """The weights an electoral college's ballot files are counted with: each section's
    share, valid and blank ballots, and the weight of one ballot, all exact."""
    sections = {}
    for name, share in college.shares.items():
        ballots = college.sections[name]
        sections[name] = {
            "share": str(share),
            "ballots": ballots.total,
            "blank_ballots": ballots.blank,
            "weight_per_ballot": str(share / ballots.total) if ballots.total else None,
        }
    rule = (
        "each section's valid ballots together count for its share of the whole: one "
        "ballot's weight is the share divided by the section's valid ballots"
    )
    return (
        json.dumps(
            {
                "election": election.id,
                "method": election.method,
                "min_section_ballots": election.min_section_ballots,
                "sections": sections,
                "rule": rule,
            },
            indent=2,
        )
        + "\n"
    )


def percent(share: Fraction, places: int = 2) -> str:
    """An exact share of the whole as a percentage, rounded half up for display only."""
    scaled = share * 100 * 10**places
    whole = (scaled.numerator * 2 + scaled.denominator) // (2 * scaled.denominator)
    text = f"{whole // 10**places}.{whole % 10**places:0{places}d}" if places else str(whole)
    return f"{text}%"


def section_figures(college: College, min_ballots: int) -> dict[str, Section]:
    """Each section's share, ballots and so weight; CountError for a section too small."""
    figures: dict[str, Section] = {}
    for name, share in college.shares.items():
        ballots = college.sections[name]
        n = ballots.total
        if n == 0:
            raise CountError(
                f"section {name} has no valid ballots: its share ({percent(share)}) would "
                "belong to nobody, so the college cannot be counted"
            )
        if n < min_ballots:
            raise CountError(
                f"section {name} has {n} valid ballots, fewer than the {min_ballots} the "
                "election requires (min_section_ballots): its weighted result would show how "
                f"its few voters voted; to count it anyway, give --min-section-ballots {n}"
            )
        figures[name] = Section(share=share, ballots=n, blank=ballots.blank)
    return figures


@dataclass
class _Pile:
    """Ballots of one section with one ranking, where they now sit in it."""

    section: str
    ranking: Ranking
    papers: int
    votes: Fraction
    at: int = 0


def count_college(
    college: College,
    method: str,
    *,
    seed: int = 0,
    min_ballots: int = 20,
    bulk_exclusion: bool = False,
) -> Result:
    """Count an electoral college by ``irv`` or ``sv`` with exact weights; see the module
    docstring."""
    if method not in RULES:
        raise CountError(
            f"an electoral college is counted by irv or sv, not {method!r}: a weighted STV "
            "count is not supported"
        )
    if bulk_exclusion:
        raise CountError("bulk exclusion is not offered in a weighted count")
    figures = section_figures(college, min_ballots)
    base = college.first
    if not base.candidates:
        raise CountError("there are no candidates to count")
    piles = [
        _Pile(name, ranking, n, n * figures[name].weight)
        for name, ballots in college.sections.items()
        for ranking, n in ballots.items()
    ]
    counter = _irv if method == "irv" else _sv
    rounds, winners, ties = counter(base.candidates, list(college.shares), piles, seed)
    return Result(
        method=method,
        seats=1,
        quota=None,
        candidates=dict(base.names),
        rounds=tuple(rounds),
        winners=winners,
        tie_breaks=tuple(ties),
        ballots=sum(f.ballots for f in figures.values()),
        invalid=sum(b.invalid for b in college.sections.values()),
        blank=sum(f.blank for f in figures.values()),
        seed=seed,
        rules=RULES[method],
        title=base.title,
        sections=figures,
    )


def _by_section(
    names: list[str], ids: tuple[str, ...], piles: list[_Pile], live: set[str]
) -> dict[str, dict[str, int]]:
    """Each section's whole papers with each continuing candidate, and exhausted (``""``)."""
    table = {s: {**dict.fromkeys(c for c in ids if c in live), "": 0} for s in names}
    counts: dict[str, dict[str, int]] = {s: dict.fromkeys(table[s], 0) for s in names}
    for pile in piles:
        where = pile.ranking[pile.at] if pile.at < len(pile.ranking) else ""
        counts[pile.section][where] += pile.papers
    return counts


def _irv(
    ids: tuple[str, ...], names: list[str], piles: list[_Pile], seed: int
) -> tuple[list[Round], tuple[str, ...], list[TieBreak]]:
    continuing = set(ids)
    rounds: list[Round] = []
    ties: list[TieBreak] = []
    history: list[dict[str, Fraction]] = []
    transfers: tuple[Transfer, ...] = ()
    action = "first preferences, weighted"
    exhausted = Fraction(0)
    while True:
        number = len(rounds) + 1
        tallies = {c: Fraction(0) for c in ids if c in continuing}
        for pile in piles:
            if pile.at < len(pile.ranking):
                tallies[pile.ranking[pile.at]] += pile.votes
        active = sum(tallies.values(), Fraction(0))
        top = max(tallies, key=lambda c: tallies[c])
        notes: list[str] = []
        excluded: tuple[str, ...] = ()
        winner = None
        if len(tallies) == 1:
            winner = top
            notes.append(f"{top} is the only continuing candidate: elected")
        elif 2 * tallies[top] > active:
            winner = top
            notes.append(
                f"{top} has {percent(tallies[top])} of the college, "
                f"{percent(tallies[top] / active)} of continuing weighted votes, more than "
                "half: elected"
            )
        else:
            chosen, fewest, tie = choose(
                tallies,
                history,
                ties,
                lowest=True,
                seed=seed,
                round_number=number,
                kind="exclusion",
                show=percent,
            )
            excluded = (chosen,)
            why = "fewest votes" if tie is None else f"fewest votes, tie broken by {tie.how}"
            notes.append(f"{chosen} has the {why} ({percent(fewest)}): excluded")
        rounds.append(
            Round(
                number=number,
                action=action,
                tallies=tallies,
                exhausted=exhausted,
                transfers=transfers,
                elected=(winner,) if winner else (),
                excluded=excluded,
                notes=tuple(notes),
                by_section=_by_section(names, ids, piles, continuing),
            )
        )
        history.append(tallies)
        if winner is not None:
            return rounds, (winner,), ties
        (out,) = excluded
        continuing.discard(out)
        to: dict[str, Fraction] = {}
        lost = Fraction(0)
        papers = 0
        for pile in piles:
            if pile.at >= len(pile.ranking) or pile.ranking[pile.at] != out:
                continue
            papers += pile.papers
            pile.at += 1
            while pile.at < len(pile.ranking) and pile.ranking[pile.at] not in continuing:
                pile.at += 1
            if pile.at < len(pile.ranking):
                d = pile.ranking[pile.at]
                to[d] = to.get(d, Fraction(0)) + pile.votes
            else:
                lost += pile.votes
        exhausted += lost
        transfers = (
            Transfer(
                source=out,
                reason="excluded",
                to={c: to[c] for c in ids if c in to},
                exhausted=lost,
                ballots=papers,
            ),
        )
        action = f"ballots of excluded {out} transferred"


def _sv(
    ids: tuple[str, ...], names: list[str], piles: list[_Pile], seed: int
) -> tuple[list[Round], tuple[str, ...], list[TieBreak]]:
    ties: list[TieBreak] = []
    first = {c: Fraction(0) for c in ids}
    for pile in piles:
        first[pile.ranking[0]] += pile.votes
    total = sum(first.values(), Fraction(0))
    top = max(ids, key=lambda c: first[c])
    everyone = set(ids)
    if 2 * first[top] > total or len(ids) == 1:
        round1 = Round(
            number=1,
            action="1st choices, weighted",
            tallies=first,
            exhausted=Fraction(0),
            elected=(top,),
            notes=(
                f"{top} has {percent(first[top])} of weighted 1st choices, more than half: elected",
            ),
            by_section=_by_section(names, ids, piles, everyone),
        )
        return [round1], (top,), ties
    top_two = top_two_of(first, seed, ties)
    out = tuple(c for c in ids if c not in top_two)
    round1 = Round(
        number=1,
        action="1st choices, weighted",
        tallies=first,
        exhausted=Fraction(0),
        excluded=out,
        notes=(
            "no candidate has more than half of the weighted 1st choices: "
            f"{top_two[0]} and {top_two[1]} continue, every other candidate is excluded",
        ),
        by_section=_by_section(names, ids, piles, everyone),
    )
    second = {c: first[c] for c in ids if c in top_two}
    moved = {c: {d: Fraction(0) for d in top_two} for c in out}
    lost = dict.fromkeys(out, Fraction(0))
    papers = dict.fromkeys(out, 0)
    for pile in piles:
        if pile.ranking[0] in second:
            continue
        papers[pile.ranking[0]] += pile.papers
        if len(pile.ranking) > 1 and pile.ranking[1] in second:
            second[pile.ranking[1]] += pile.votes
            moved[pile.ranking[0]][pile.ranking[1]] += pile.votes
            pile.at = 1
        else:
            lost[pile.ranking[0]] += pile.votes
            pile.at = len(pile.ranking)
    transfers = tuple(
        Transfer(
            source=c,
            reason="excluded",
            to={d: v for d, v in moved[c].items() if v},
            exhausted=lost[c],
            ballots=papers[c],
        )
        for c in out
    )
    a, b = top_two
    if second[a] != second[b]:
        winner = a if second[a] > second[b] else b
        why = f"{winner} has more weighted votes ({percent(second[winner])}): elected"
    else:
        winner = winner_by_lot(top_two, seed, ties)
        why = f"{a} and {b} have {percent(second[a])} each; by lot: {winner} elected"
    round2 = Round(
        number=2,
        action="2nd choices for the top two added, weighted",
        tallies=second,
        exhausted=sum(lost.values(), Fraction(0)),
        transfers=transfers,
        elected=(winner,),
        notes=(why,),
        by_section=_by_section(names, ids, piles, set(top_two)),
    )
    return [round1, round2], (winner,), ties
