"""The counting rules on small hand-made elections: IRV, SV, STV and the tie-break."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ballots.count import count
from ballots.count.irv import bulk_exclusion_set
from ballots.count.model import Ballots, CountError
from ballots.count.report import to_json
from ballots.count.stv import droop_quota
from ballots.count.ties import break_tie, lot_draw
from bot.count_report import render_text


def ballots(candidates: str, *groups: tuple[int, str]) -> Ballots:
    """Ballots from ``(count, "abc")`` pairs, one letter per candidate."""
    return Ballots(tuple(candidates), {tuple(r): n for n, r in groups})


def test_irv_majority_in_round_one() -> None:
    result = count(ballots("abc", (6, "a"), (3, "bc"), (2, "c")), "irv")
    assert result.winners == ("a",)
    assert len(result.rounds) == 1


def test_irv_transfers_and_exhausts() -> None:
    result = count(ballots("abc", (5, "a"), (4, "bc"), (2, "ca"), (1, "c")), "irv")
    r1, r2 = result.rounds
    assert r1.excluded == ("c",)
    (t,) = r2.transfers
    assert (t.source, dict(t.to), t.exhausted, t.ballots) == ("c", {"a": 2}, 1, 3)
    assert dict(r2.tallies) == {"a": 7, "b": 4}
    assert r2.exhausted == 1
    assert result.winners == ("a",)


def test_irv_majority_is_of_continuing_votes() -> None:
    # After c is excluded, 4 of 7 continuing votes is a majority, though not of all 9.
    result = count(ballots("abc", (4, "a"), (3, "b"), (2, "c")), "irv")
    assert result.winners == ("a",)
    assert "4 of 7 continuing votes" in result.rounds[-1].notes[0]


def test_irv_tie_broken_by_earlier_round() -> None:
    # Round 2: b and c tie on 4; in round 1 c had fewer, so c goes.
    result = count(ballots("abcd", (5, "a"), (4, "b"), (3, "c"), (1, "dc"), (1, "da")), "irv")
    assert result.rounds[1].excluded == ("c",)
    (tie,) = result.tie_breaks
    assert (tie.round, tie.kind, tie.tied, tie.chosen, tie.how) == (
        2,
        "exclusion",
        ("b", "c"),
        "c",
        "earlier round",
    )


def test_irv_tie_by_lot_is_seeded_and_recorded() -> None:
    b = ballots("abc", (4, "a"), (3, "b"), (3, "c"))
    chosen = {s: count(b, "irv", seed=s).rounds[0].excluded[0] for s in range(20)}
    assert set(chosen.values()) == {"b", "c"}  # the seed matters...
    for s in range(20):  # ...and the same seed always draws the same lot
        result = count(b, "irv", seed=s)
        (tie,) = result.tie_breaks
        assert tie.how == "lot"
        assert tie.chosen == chosen[s]
        assert result.seed == s
        expected = min("bc", key=lambda c: lot_draw(s, 1, "exclusion", c))
        assert tie.chosen == expected
        assert f"lot with seed {s}" in tie.detail
        assert to_json(result)["tie_breaks"][0]["how"] == "lot"


def test_tie_break_looks_further_back_among_those_still_tied() -> None:
    history = [{"a": 1, "b": 2, "c": 1}, {"a": 3, "b": 3, "c": 5}]
    chosen, tie = break_tie(
        ["a", "b", "c"], history, lowest=True, seed=0, round_number=3, kind="exclusion"
    )
    # Round 2: a and b lowest (3); round 1: a lower than b.
    assert chosen == "a"
    assert tie is not None and tie.detail == "round 2: a 3, b 3, c 5; round 1: a 1, b 2"


def test_bulk_exclusion() -> None:
    assert bulk_exclusion_set({0: 10, 1: 9, 2: 3, 3: 2, 4: 1}) == [4, 3, 2]
    assert bulk_exclusion_set({0: 10, 1: 3, 2: 2}) == []
    b = ballots("abcde", (10, "a"), (9, "b"), (3, "cb"), (2, "db"), (1, "eb"))
    plain = count(b, "irv")
    bulk = count(b, "irv", bulk_exclusion=True)
    assert plain.winners == bulk.winners == ("b",)
    assert len(bulk.rounds) < len(plain.rounds)
    assert bulk.rounds[0].excluded == ("e", "d", "c")
    assert bulk.rounds[0].notes[0].startswith("bulk exclusion: e, d, c have 6 votes together")
    assert "bulk exclusion" in render_text(bulk)


def test_sv_majority_of_first_choices() -> None:
    result = count(ballots("abc", (6, "ab"), (5, "bc")), "sv")
    assert result.winners == ("a",)
    assert len(result.rounds) == 1


def test_sv_counts_only_second_choices_for_the_top_two() -> None:
    b = ballots("abcd", (5, "a"), (4, "b"), (2, "cdb"), (2, "db"), (1, "ca"))
    result = count(b, "sv")
    r1, r2 = result.rounds
    assert r1.excluded == ("c", "d")
    # "cdb": the 2nd choice d is out, and the 3rd preference never counts.
    assert dict(r2.tallies) == {"a": 6, "b": 6}
    assert r2.exhausted == 2
    (tie,) = result.tie_breaks
    assert (tie.kind, tie.how, tie.round) == ("winner", "lot", 2)
    assert result.winners == (tie.chosen,)


def test_sv_tie_for_second_place_by_lot() -> None:
    result = count(ballots("abc", (5, "a"), (3, "b"), (3, "c")), "sv")
    (tie,) = result.tie_breaks
    assert (tie.kind, tie.tied) == ("top two", ("b", "c"))
    assert result.rounds[0].excluded == tuple(c for c in "bc" if c != tie.chosen)


def test_droop_quota() -> None:
    assert droop_quota(5199, 3) == 1300
    assert droop_quota(100, 1) == 51
    assert droop_quota(99, 2) == 34


def test_stv_surplus_transfer_value_is_truncated() -> None:
    # Quota 4 of 9 ballots for 2 seats; a has 7, surplus 3, value 3/7 = 0.42857.
    b = ballots("abc", (5, "ab"), (2, "ac"), (1, "b"), (1, "c"))
    result = count(b, "stv", seats=2)
    assert result.quota == Decimal("4.00000")
    (t,) = result.rounds[1].transfers
    assert t.transfer_value == Decimal("0.42857")
    assert dict(t.to) == {"b": Decimal("2.14285"), "c": Decimal("0.85714")}
    assert t.loss == Decimal("0.00001")
    assert result.rounds[1].tallies["a"] == Decimal("4.00000")
    assert result.winners[0] == "a"


def test_stv_fills_last_seats_with_the_continuing_candidates() -> None:
    result = count(ballots("abc", (2, "a"), (1, "b"), (1, "c")), "stv", seats=2)
    assert set(result.winners) == {"a", "b"} or set(result.winners) == {"a", "c"}
    assert "rule 52" in result.rounds[-1].notes[-1]


def test_stv_equal_surpluses_go_by_lot_when_always_equal() -> None:
    b = ballots("abcd", (4, "ac"), (4, "bd"), (1, "c"), (1, "d"))
    result = count(b, "stv", seats=3, seed=3)
    assert result.tie_breaks[0].kind == "surplus order"
    assert result.tie_breaks[0].how == "lot"


@pytest.mark.parametrize(
    ("method", "seats", "message"),
    [("irv", 2, "one candidate"), ("sv", 2, "one candidate"), ("borda", 1, "unknown method")],
)
def test_bad_requests(method: str, seats: int, message: str) -> None:
    with pytest.raises(CountError, match=message):
        count(ballots("ab", (1, "a")), method, seats=seats)


def test_no_ballots() -> None:
    for method in ("irv", "sv", "stv"):
        with pytest.raises(CountError, match="no valid ballots"):
            count(Ballots(("a", "b"), {}), method)


def test_text_report_shows_every_round_and_the_rule() -> None:
    text = render_text(count(ballots("abc", (4, "a"), (3, "bc"), (2, "ca")), "irv"))
    assert "Round 1" in text and "Round 2" in text
    assert "c has the fewest votes (2): excluded." in text
    assert "2 ballots of c: 2 to a, 0 exhausted" in text
    assert text.rstrip().endswith("Elected: a.")
