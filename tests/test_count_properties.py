"""Properties every count must have, checked on generated elections (hypothesis)."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ballots.count import count
from ballots.count.model import Ballots
from ballots.count.report import to_json

CANDIDATES = ("a", "b", "c", "d", "e", "f")


@st.composite
def elections(draw: st.DrawFn, min_candidates: int = 2) -> tuple[tuple[str, ...], list[list[str]]]:
    """A candidate list and one ranking per ballot (every ballot ranks someone)."""
    n = draw(st.integers(min_candidates, len(CANDIDATES)))
    candidates = CANDIDATES[:n]
    ranking = st.permutations(candidates).flatmap(
        lambda p: st.integers(1, len(p)).map(lambda k: list(p[:k]))
    )
    rankings = draw(st.lists(ranking, min_size=1, max_size=80))
    return candidates, rankings


@st.composite
def first_round_majority(
    draw: st.DrawFn,
) -> tuple[tuple[str, ...], list[list[str]], str]:
    candidates, rankings = draw(elections())
    leader = draw(st.sampled_from(candidates))
    # Add enough ballots for the leader to hold a strict majority of first preferences.
    others = sum(1 for r in rankings if r[0] != leader)
    mine = sum(1 for r in rankings if r[0] == leader)
    extra = max(0, others - mine + 1)
    return candidates, rankings + [[leader]] * extra, leader


@given(first_round_majority())
def test_irv_majority_of_first_preferences_wins_in_round_one(
    case: tuple[tuple[str, ...], list[list[str]], str],
) -> None:
    candidates, rankings, leader = case
    result = count(Ballots.from_rankings(candidates, rankings), "irv")
    assert result.winners == (leader,)
    assert len(result.rounds) == 1


@given(elections(), st.sampled_from(["irv", "sv", "stv"]), st.randoms(use_true_random=False))
def test_ballot_order_never_changes_the_result(
    election: tuple[tuple[str, ...], list[list[str]]], method: str, rnd: random.Random
) -> None:
    candidates, rankings = election
    seats = 2 if method == "stv" and len(candidates) > 2 else 1
    shuffled = list(rankings)
    rnd.shuffle(shuffled)
    a = count(Ballots.from_rankings(candidates, rankings), method, seats=seats, seed=5)
    b = count(Ballots.from_rankings(candidates, shuffled), method, seats=seats, seed=5)
    assert to_json(a) == to_json(b)


@given(elections())
def test_stv_for_one_seat_elects_the_irv_winner(
    election: tuple[tuple[str, ...], list[list[str]]],
) -> None:
    candidates, rankings = election
    ballots = Ballots.from_rankings(candidates, rankings)
    irv = count(ballots, "irv")
    stv = count(ballots, "stv", seats=1)
    if not irv.tie_breaks and not stv.tie_breaks:
        assert stv.winners == irv.winners


@settings(max_examples=200)
@given(elections(min_candidates=3), st.integers(1, 3), st.sampled_from(["irv", "sv", "stv"]))
def test_votes_are_conserved_in_every_round(
    election: tuple[tuple[str, ...], list[list[str]]], seats: int, method: str
) -> None:
    candidates, rankings = election
    ballots = Ballots.from_rankings(candidates, rankings)
    if method != "stv":
        seats = 1
    seats = min(seats, len(candidates) - 1)
    result = count(ballots, method, seats=seats)
    total = ballots.total
    papers_moved_by_surplus = 0
    for rnd in result.rounds:
        for t in rnd.transfers:
            if t.reason == "surplus":
                papers_moved_by_surplus += t.ballots
        continuing: Any = sum(rnd.tallies.values(), start=rnd.exhausted)
        assert continuing + rnd.loss == total
        # Truncating each paper's transfer value loses less than 0.00001 a paper.
        assert 0 <= rnd.loss <= Decimal("0.00001") * papers_moved_by_surplus
    assert len(result.winners) == seats
    assert len(set(result.winners)) == seats
