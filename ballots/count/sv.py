"""The supplementary vote, as for the Mayor of London from 2000 to 2021.

The rules:

1. Each voter marks a 1st and a 2nd choice.  Only the first two
   preferences of a ranking count; any later ones are ignored.  (A ballot
   with only a 1st choice is valid.)
2. Round 1: every ballot counts for its 1st choice.  A candidate with more
   than half of the valid ballots is elected.
3. Otherwise the two candidates with the most votes continue and every other
   candidate is excluded at once.  A tie for a place in the top two is
   decided by lot from the recorded seed (there is no earlier round to look
   back at), as the London rules decide ties by lot.
4. Round 2: a ballot whose 1st choice was excluded counts for its 2nd
   choice if that is one of the two continuing candidates; otherwise it is
   exhausted.  The candidate with more votes is elected; a tie is decided by
   lot.
"""

from __future__ import annotations

from collections.abc import Mapping

from ballots.count.model import Ballots, CountError
from ballots.count.result import Result, Round, TieBreak, Transfer
from ballots.count.ties import V, break_tie, by_lot, lot_draw

RULES = (
    "supplementary vote: 1st and 2nd choices only; more than half of 1st choices wins; "
    "else top two continue and 2nd choices for them are added; ties by lot"
)


def count_sv(ballots: Ballots, *, seed: int = 0) -> Result:
    """Count ``ballots`` by the supplementary vote; see the module docstring."""
    if len(ballots.candidates) < 1:
        raise CountError("there are no candidates to count")
    if ballots.total == 0:
        raise CountError("there are no valid ballots to count")
    ids = ballots.candidates
    first = dict.fromkeys(ids, 0)
    for ranking, n in ballots.groups.items():
        first[ranking[0]] += n
    total = ballots.total
    ties: list[TieBreak] = []
    order = sorted(ids, key=lambda c: -first[c])
    top = order[0]
    if 2 * first[top] > total or len(ids) == 1:
        round1 = Round(
            number=1,
            action="1st choices",
            tallies=first,
            exhausted=0,
            elected=(top,),
            notes=(f"{top} has {first[top]:,} of {total:,} 1st choices, more than half: elected",),
        )
        return _result(ballots, (round1,), (top,), ties, seed)

    top_two = top_two_of(first, seed, ties)
    out = [c for c in ids if c not in top_two]
    round1 = Round(
        number=1,
        action="1st choices",
        tallies=first,
        exhausted=0,
        excluded=tuple(out),
        notes=(
            "no candidate has more than half of the 1st choices: "
            f"{top_two[0]} and {top_two[1]} continue, every other candidate is excluded",
        ),
    )
    second = {c: first[c] for c in ids if c in top_two}
    moved = {c: dict.fromkeys(top_two, 0) for c in out}
    lost = dict.fromkeys(out, 0)
    papers = dict.fromkeys(out, 0)
    for ranking, n in ballots.groups.items():
        if ranking[0] in second:
            continue
        papers[ranking[0]] += n
        if len(ranking) > 1 and ranking[1] in second:
            second[ranking[1]] += n
            moved[ranking[0]][ranking[1]] += n
        else:
            lost[ranking[0]] += n
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
        why = f"{winner} has more votes ({second[winner]:,}): elected"
    else:
        winner = winner_by_lot(top_two, seed, ties)
        why = f"{a} and {b} have {second[a]} votes each; by lot: {winner} elected"
    round2 = Round(
        number=2,
        action="2nd choices for the top two added",
        tallies=second,
        exhausted=sum(lost.values()),
        transfers=transfers,
        elected=(winner,),
        notes=(why,),
    )
    return _result(ballots, (round1, round2), (winner,), ties, seed)


def winner_by_lot(top_two: tuple[str, str], seed: int, ties: list[TieBreak]) -> str:
    """Round 2's winner when the top two have equal votes: by lot, recorded in ``ties``."""
    winner = by_lot(seed, 2, "winner", top_two)
    draws = tuple((c, lot_draw(seed, 2, "winner", c)[:12]) for c in top_two)
    shown = ", ".join(f"{c} {draw}" for c, draw in draws)
    ties.append(
        TieBreak(
            2,
            "winner",
            tuple(sorted(top_two)),
            winner,
            "lot",
            f"lot with seed {seed}, lowest draw chosen: {shown}",
            seed=seed,
            draws=draws,
        )
    )
    return winner


def top_two_of(first: Mapping[str, V], seed: int, ties: list[TieBreak]) -> tuple[str, str]:
    """The two candidates with the most 1st choices (whole or weighted), ties for a place
    decided by lot."""
    chosen: list[str] = []
    left = dict(first)
    while len(chosen) < 2:
        most = max(left.values())
        tied = [c for c in left if left[c] == most]
        if len(tied) <= 2 - len(chosen):
            chosen.extend(sorted(tied, key=list(first).index))
            for c in tied:
                del left[c]
            continue
        pick, tie = break_tie(tied, [], lowest=False, seed=seed, round_number=1, kind="top two")
        if tie is not None:
            ties.append(tie)
        chosen.append(pick)
        del left[pick]
    return chosen[0], chosen[1]


def _result(
    ballots: Ballots,
    rounds: tuple[Round, ...],
    winners: tuple[str, ...],
    ties: list[TieBreak],
    seed: int,
) -> Result:
    return Result(
        method="sv",
        seats=1,
        quota=None,
        candidates=dict(ballots.names),
        rounds=rounds,
        winners=winners,
        tie_breaks=tuple(ties),
        ballots=ballots.total,
        invalid=ballots.invalid,
        blank=ballots.blank,
        seed=seed,
        rules=RULES,
        title=ballots.title,
    )
