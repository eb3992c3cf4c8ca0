"""An electoral college: sections weighted to their shares, counted exactly, end to end.

The hand-computed examples are worked in the comments; the weighted count is also checked
against an independent one (votelib's transferable vote, which takes weighted ballots).
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import pytest
import votelib.evaluate.core
import votelib.evaluate.sequential as votelib_sequential
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from ballots import keys
from ballots.count import count
from ballots.count.college import College, count_college, percent
from ballots.count.formats import parse_blt
from ballots.count.model import Ballots, CountError
from ballots.count.redis_source import count_election, read_ballots, read_college
from ballots.count.report import render_json, to_json
from ballots.count.svg import bars, sankey
from ballots.election import parse_election, read_election_file, save_election
from ballots.errors import ElectionLocked, FileProblems
from ballots.roll import RollImportRefused, Supporter, import_roll, parse_roll
from ballots.turnout import turnout
from ballots.unseal import unseal
from bot import pilots, results
from bot.count_report import render_text
from openprimary.cli import build_parser
from openprimary.context import Context
from tests.console_support import Organiser
from tests.factories import EXAMPLES, TEST_SEED, Harness, Outbox, harness
from tests.factories import settings as factory_settings
from tests.telegram_support import telegram_world

HALF = Fraction(1, 2)
ABC = ("a", "b", "c")
NAMES = {"a": "Ann", "b": "Bob", "c": "Cat"}


def college(shares: dict[str, Fraction], ballots: dict[str, list[list[str]]]) -> College:
    return College(
        shares=shares,
        sections={
            name: Ballots.from_rankings(ABC, rankings, names=NAMES)
            for name, rankings in ballots.items()
        },
    )


# Members (half of the college), 40 ballots, each worth 1/2 / 40 = 1/80:
#   A,C x18   B,C x8   C,A x14
# Affiliates (the other half), 160 ballots, each worth 1/2 / 160 = 1/320:
#   B,C x80   A,C x36   C,B x44
#
# Round 1: A = 18/80 + 36/320 = 108/320 = 27/80  (33.75%)
#          B =  8/80 + 80/320 = 112/320 =  7/20  (35.00%)
#          C = 14/80 + 44/320 = 100/320 =  5/16  (31.25%)   no majority: C excluded
# Round 2: C,A (members) -> A: 14/80 = 56/320;  C,B (affiliates) -> B: 44/320
#          A = 164/320 = 41/80 (51.25%)  B = 156/320 = 39/80 (48.75%)   A elected.
# Unweighted, the same 200 ballots elect C: A 54, B 88, C 58; A out, A,C -> C: C 112.
MEMBERS = [["a", "c"]] * 18 + [["b", "c"]] * 8 + [["c", "a"]] * 14
AFFILIATES = [["b", "c"]] * 80 + [["a", "c"]] * 36 + [["c", "b"]] * 44


def test_a_weighted_irv_count_equals_the_hand_count_exactly_and_changes_the_winner() -> None:
    fifty_fifty = college(
        {"members": HALF, "affiliates": HALF}, {"members": MEMBERS, "affiliates": AFFILIATES}
    )
    result = count_college(fifty_fifty, "irv")
    first, second = result.rounds
    assert dict(first.tallies) == {
        "a": Fraction(27, 80),
        "b": Fraction(7, 20),
        "c": Fraction(5, 16),
    }
    assert first.excluded == ("c",)
    assert dict(second.tallies) == {"a": Fraction(41, 80), "b": Fraction(39, 80)}
    assert second.exhausted == 0
    assert result.winners == ("a",)
    # Each section's own papers, round by round.
    assert first.by_section["members"] == {"a": 18, "b": 8, "c": 14, "": 0}
    assert second.by_section["affiliates"] == {"a": 36, "b": 124, "": 0}
    (moved,) = second.transfers
    assert (moved.source, moved.ballots) == ("c", 58)
    assert dict(moved.to) == {"a": Fraction(56, 320), "b": Fraction(44, 320)}
    assert result.sections["members"].weight == Fraction(1, 80)
    assert result.sections["affiliates"].weight == Fraction(1, 320)

    # The same ballots pooled, one ballot one vote: Cat wins.
    pooled = Ballots.from_rankings(ABC, MEMBERS + AFFILIATES, names=NAMES)
    assert count(pooled, "irv").winners == ("c",)

    # An independent weighted count agrees.
    assert _votelib_irv(fifty_fifty) == "a"

    # The report shows each round's shares as percentages and each section's papers.
    text = render_text(result)
    assert "Ann         33.75%     51.25% E" in text
    assert "Exhausted    0.00%      0.00%" in text
    assert "Cat has the fewest votes (31.25%): excluded." in text
    assert "58 ballots of Cat: 17.50% to Ann, 13.75% to Bob, 0.00% exhausted" in text
    assert "Ann has 51.25% of the college, more than half of the continuing" in text
    assert "Section members: share 50.00%, 40 valid ballots of weight 1/80 each" in text
    report = to_json(result)
    assert report["rounds"][1]["tallies"] == {"a": "41/80", "b": "39/80"}
    assert report["rounds"][1]["percent"] == {"a": "51.25", "b": "48.75"}
    assert report["sections"]["affiliates"] == {
        "share": "1/2",
        "ballots": 160,
        "blank_ballots": 0,
        "weight_per_ballot": "1/320",
    }
    json.loads(render_json(result))


# Members (a third), 21 ballots, each worth 1/3 / 21 = 1/63:  A,B x12  C,B x9
# Affiliates (two thirds), 24 ballots, each worth 2/3 / 24 = 1/36:  B,A x10  C,A x8  A x6
# SV round 1: A = 12/63 + 6/36 = 4/21 + 1/6 = 15/42 = 5/14;  B = 10/36 = 5/18;
#             C = 9/63 + 8/36 = 1/7 + 2/9 = 23/63.  No majority: C and A continue, B out.
# Round 2: B,A (affiliates) -> A: 10/36.  A = 5/14 + 5/18 = 45/126 + 35/126 = 80/126 = 40/63;
#          C = 23/63.  A elected (as a tie would never be: 40/63 vs 23/63).
# Unweighted: A 18, B 10, C 17; top two A, C; B,A -> A 28 against C 17: A too.  With the
# affiliates' C,A ballots as C,B instead the winner is the same: the test below changes the
# shares, which here is what decides.
THIRD = Fraction(1, 3)


def test_a_weighted_sv_count_equals_the_hand_count_with_thirds() -> None:
    thirds = college(
        {"members": THIRD, "affiliates": 1 - THIRD},
        {
            "members": [["a", "b"]] * 12 + [["c", "b"]] * 9,
            "affiliates": [["b", "a"]] * 10 + [["c", "a"]] * 8 + [["a"]] * 6,
        },
    )
    result = count_college(thirds, "sv")
    first, second = result.rounds
    assert dict(first.tallies) == {
        "a": Fraction(5, 14),
        "b": Fraction(5, 18),
        "c": Fraction(23, 63),
    }
    assert first.excluded == ("b",)
    assert dict(second.tallies) == {"a": Fraction(40, 63), "c": Fraction(23, 63)}
    assert result.winners == ("a",)
    assert sum(first.tallies.values()) == 1
    assert _independent_sv(thirds) == (dict(second.tallies), "a")


def test_the_shares_decide_a_supplementary_vote() -> None:
    # Members, 20 ballots: C x14, A x6.  Affiliates, 60 ballots: A x40, C x20.
    # Unweighted: A 46 of 80, more than half: A.  Members 3/4 (weight 3/80 a ballot),
    # affiliates 1/4 (1/240): C = 42/80 + 20/240 = 126/240 + 20/240 = 146/240 = 73/120:
    # more than half in round 1: C.
    ballots = {"members": [["c"]] * 14 + [["a"]] * 6, "affiliates": [["a"]] * 40 + [["c"]] * 20}
    weighted = college({"members": Fraction(3, 4), "affiliates": Fraction(1, 4)}, ballots)
    result = count_college(weighted, "sv")
    assert len(result.rounds) == 1
    assert result.rounds[0].tallies["c"] == Fraction(73, 120)
    assert result.winners == ("c",)
    pooled = Ballots.from_rankings(ABC, ballots["members"] + ballots["affiliates"])
    assert count(pooled, "sv").winners == ("a",)
    assert _independent_sv(weighted)[1] == "c"


def test_a_section_with_too_few_ballots_is_refused_unless_told_otherwise() -> None:
    small = college(
        {"members": HALF, "affiliates": HALF},
        {"members": [["a"]] * 7, "affiliates": AFFILIATES},
    )
    with pytest.raises(CountError, match=r"section members has 7 valid ballots, fewer than the 20"):
        count_college(small, "irv")
    assert count_college(small, "irv", min_ballots=7).winners
    empty = college({"members": HALF, "affiliates": HALF}, {"members": [], "affiliates": [["a"]]})
    with pytest.raises(CountError, match="section members has no valid ballots"):
        count_college(empty, "irv", min_ballots=1)
    with pytest.raises(CountError, match="weighted STV count is not supported"):
        count_college(small, "stv", min_ballots=1)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.permutations(["a", "b", "c", "d"]), st.integers(1, 4)),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 9),
)
def test_weighted_irv_agrees_with_an_independent_weighted_count(
    drawn: list[tuple[int, list[str], int]], tenths: int
) -> None:
    names = ("s0", "s1")
    rankings: dict[str, list[list[str]]] = {n: [] for n in names}
    for i, (section, order, length) in enumerate(drawn):
        rankings[names[i % 2 if section == 2 else section]].append(order[:length])
    assume(all(rankings.values()))
    share = Fraction(tenths, 10)
    weighted = College(
        shares={"s0": share, "s1": 1 - share},
        sections={n: Ballots.from_rankings(("a", "b", "c", "d"), rs) for n, rs in rankings.items()},
    )
    result = count_college(weighted, "irv", min_ballots=1)
    for r in result.rounds:
        assert sum(r.tallies.values(), r.exhausted) == 1  # the whole college, every round
    # Where a tie was broken the two rules may differ (votelib refuses such ties).
    assume(not result.tie_breaks)
    independent = _votelib_irv(weighted)
    assume(independent is not None)
    assert result.winners == (independent,)


def _weighted_profile(weighted: College) -> dict[tuple[str, ...], Fraction]:
    profile: dict[tuple[str, ...], Fraction] = {}
    for name, ballots in weighted.sections.items():
        weight = weighted.shares[name] / ballots.total
        for ranking, n in ballots.items():
            profile[ranking] = profile.get(ranking, Fraction(0)) + n * weight
    return profile


def _votelib_irv(weighted: College) -> str | None:
    """votelib's weighted instant-runoff winner (None where it meets a tie it does not
    break, even among candidates who cannot win, or gives up on one)."""
    try:
        (winner,) = votelib_sequential.TransferableVoteSelector().evaluate(
            _weighted_profile(weighted), 1
        )
    except (NotImplementedError, votelib.evaluate.core.VotingSystemError):
        # Ties it does not break; and on some ties its loop gives up ("infinite loop").
        return None
    return str(winner)


def _independent_sv(weighted: College) -> tuple[dict[str, Fraction], str]:
    """The supplementary vote written out plainly: first choices, top two, second choices."""
    profile = _weighted_profile(weighted)
    first: dict[str, Fraction] = {}
    for ranking, w in profile.items():
        first[ranking[0]] = first.get(ranking[0], Fraction(0)) + w
    top_two = sorted(first, key=lambda c: -first[c])[:2]
    final = {c: first[c] for c in top_two}
    for ranking, w in profile.items():
        if ranking[0] not in final and len(ranking) > 1 and ranking[1] in final:
            final[ranking[1]] += w
    return final, max(final, key=lambda c: final[c])


# --- the election file and the roll ------------------------------------------------------


def _file(extra: str) -> str:
    return (
        (EXAMPLES / "election.toml")
        .read_text()
        .replace('method = "irv"\n', f'method = "irv"\n{extra}\n')
    )


def test_an_election_file_declares_sections_exactly() -> None:
    election = parse_election(_file('sections = { members = 0.5, affiliates = "1/2" }'), "e.toml")
    assert election.sections == (("members", HALF), ("affiliates", HALF))
    assert election.min_section_ballots == 20
    tenths = parse_election(_file("sections = { a = 0.7, b = 0.2, c = 0.1 }"), "e.toml")
    assert tenths.shares == {"a": Fraction(7, 10), "b": Fraction(1, 5), "c": Fraction(1, 10)}
    assert read_election_file(EXAMPLES / "election.toml").sections == ()


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("sections = { members = 0.5, affiliates = 0.4 }", "add up to 9/10, not 1"),
        ("sections = { members = 1 }", "two sections at least"),
        ('sections = { members = "half", b = 0.5 }', "its share must be a number"),
        ("sections = { Members = 0.5, b = 0.5 }", "lower-case letters"),
        ("sections = { a = 0.5, b = 0.5 }\nmin_section_ballots = 0", "at least 1"),
        ("min_section_ballots = 5", "applies only with 'sections'"),
    ],
)
def test_a_bad_sections_table_is_refused_at_its_line(extra: str, reason: str) -> None:
    text = _file(extra)
    with pytest.raises(FileProblems) as caught:
        parse_election(text, "e.toml")
    line = text.splitlines().index(extra.splitlines()[-1]) + 1
    assert any(p.line == line and reason in p.reason for p in caught.value.problems), str(
        caught.value
    )
    assert f"e.toml:{line}:" in str(caught.value)


def test_stv_with_sections_is_refused_with_a_reason() -> None:
    text = _file("sections = { a = 0.5, b = 0.5 }").replace('method = "irv"', 'method = "stv"')
    with pytest.raises(FileProblems, match="weighted STV count is not supported"):
        parse_election(text, "e.toml")


ROLL = "supporter_id,name,phone,section\n"


def test_the_roll_places_each_supporter_in_a_section_and_names_bad_rows() -> None:
    good = parse_roll(
        ROLL + "S1,Ann,07700 900101,members\nS2,Bob,07700 900102,affiliates\n",
        "roll.csv",
        sections=("members", "affiliates"),
    )
    assert [s.section for s in good] == ["members", "affiliates"]
    with pytest.raises(FileProblems) as caught:
        parse_roll(
            ROLL + "S1,Ann,07700 900101,member\nS2,Bob,07700 900102,\n",
            "roll.csv",
            sections=("members", "affiliates"),
        )
    text = str(caught.value)
    assert "roll.csv:2: section 'member' is not one of the election's sections" in text
    assert "roll.csv:3: section is empty; it must be one of: members, affiliates" in text
    with pytest.raises(FileProblems, match=r"roll\.csv:1: missing column section"):
        parse_roll(
            "supporter_id,name,phone\nS1,Ann,07700 900101\n", "roll.csv", sections=("a", "b")
        )
    with pytest.raises(FileProblems, match=r"roll\.csv:1: column section, but this election"):
        parse_roll(ROLL + "S1,Ann,07700 900101,members\n", "roll.csv")


# --- end to end: roll, votes, sealed box, unseal, count, export -----------------------------

SECTIONS = (("members", HALF), ("affiliates", HALF))


def _roll() -> list[Supporter]:
    members = [
        Supporter(f"M{i}", f"Member {i}", f"+4477009002{i:02d}", section="members")
        for i in range(6)
    ]
    affiliates = [
        Supporter(f"A{i}", f"Affiliate {i}", f"+4477009003{i:02d}", section="affiliates")
        for i in range(9)
    ]
    return members + affiliates


async def _vote(h: Harness, sid: str, ranking: str) -> None:
    code = (await h.core.codes.issue_voting_codes(h.core.election, [sid]))[0][3]
    chat = {"channel": "console", "address": f"chat-{sid}"}
    await h.said("hi", **chat)
    await h.said(code, **chat)
    await h.said(ranking, **chat)
    await h.said("0", **chat)  # no more preferences
    assert "Vote cast" in await h.said("YES", **chat)


async def test_an_electoral_college_from_roll_to_weighted_count(
    redis: Redis, tmp_path: Path
) -> None:
    h = await harness(redis, roll=_roll(), sections=SECTIONS, min_section_ballots=5)
    election = h.core.election
    # Members: 5 for Green (1), 1 for Patel (2).  Affiliates: 7 for Patel, 2 for Green.
    for i in range(6):
        await _vote(h, f"M{i}", "1" if i < 5 else "2")
    for i in range(9):
        await _vote(h, f"A{i}", "2" if i < 7 else "1")

    figures = await turnout(redis, election)
    assert figures.by_section == {"members": 6, "affiliates": 9}
    assert figures.eligible_by_section == {"members": 6, "affiliates": 9}
    _, shown = await _run(h, "turnout", "--election", election.id)
    assert "  members     6 of 6 (100.0%), share 50.00%" in shown
    assert "  affiliates  9 of 9 (100.0%), share 50.00%" in shown
    # Each sealed ballot is stored with its section, and nothing else beside it.
    sealed = [str(m) for m in await redis.zrange(keys.sealed(election.id, 0), 0, -1)]
    assert sorted(m.split(":")[0] for m in sealed) == ["affiliates"] * 9 + ["members"] * 6
    assert all(len(m.split(":")) == 2 for m in sealed)

    h.clock.set(election.closes + timedelta(minutes=1))
    report = await unseal(redis, election, TEST_SEED, h.clock, actor="test")
    assert (report.opened, report.invalid) == (15, 0)
    found = await read_college(redis, election)
    assert dict(found.sections["members"].groups) == {("green",): 5, ("patel",): 1}
    with pytest.raises(CountError, match="electoral college"):
        await read_ballots(redis, election)

    # Green = 5/12 + 2/18 = 19/36; Patel = 1/12 + 7/18 = 17/36.  Pooled, Patel has 8 of 15.
    result = await count_election(redis, election)
    assert dict(result.rounds[0].tallies) == {
        "green": Fraction(19, 36),
        "patel": Fraction(17, 36),
        "okafor": Fraction(0),
        "byrne": Fraction(0),
    }
    assert result.winners == ("green",)
    assert percent(Fraction(19, 36)) == "52.78%"

    # The CLI: the election's threshold, then a stricter one refused, then the export.
    status, out = await _run(h, "count", "--election", election.id)
    assert status == 0 and "Alex Green" in out and "52.78%" in out
    with pytest.raises(CountError, match="section members has 6 valid ballots, fewer than the 7"):
        await _run(h, "count", "--election", election.id, "--min-section-ballots", "7")
    with pytest.raises(CountError, match="give --out FILE"):
        await _run(h, "export", "--election", election.id, "--format", "blt")
    out_file = tmp_path / "riverside.csv"
    await _run(h, "export", "--election", election.id, "--format", "csv", "--out", str(out_file))
    members_csv = (tmp_path / "riverside-members.csv").read_text()
    assert members_csv.splitlines()[1:] == ["Alex Green"] * 5 + ["Sam Patel"]
    weights = json.loads((tmp_path / "riverside-weights.json").read_text())
    assert weights["sections"]["affiliates"] == {
        "share": "1/2",
        "ballots": 9,
        "blank_ballots": 0,
        "weight_per_ballot": "1/18",
    }


async def test_a_roll_without_sections_is_refused_by_a_college(redis: Redis) -> None:
    h = await harness(redis, roll=_roll(), sections=SECTIONS)
    with pytest.raises(RollImportRefused, match="in no section"):
        await import_roll(redis, h.core.election, [Supporter("X1", "Xan", "+447700900999")])
    # Moving a supporter to the other section moves the count with them.
    moved = [Supporter("M0", "Member 0", "+447700900200", section="affiliates")]
    await import_roll(redis, h.core.election, moved)
    figures = await turnout(redis, h.core.election)
    assert figures.eligible_by_section == {"members": 5, "affiliates": 10}


async def _run(h: Harness, *argv: str) -> tuple[int, str]:
    ctx = Context(
        settings=factory_settings(),
        redis=h.core.redis,
        clock=h.clock,
        out=io.StringIO(),
        err=io.StringIO(),
    )
    args = build_parser().parse_args(argv)
    status = await args.handler(args, ctx)
    assert isinstance(ctx.out, io.StringIO)
    return status, ctx.out.getvalue()


async def test_the_public_results_of_a_college_show_shares_and_each_sections_files(
    redis: Redis,
) -> None:
    changes = {"roll": _roll(), "sections": SECTIONS, "min_section_ballots": 5}
    async with telegram_world(redis, election_changes=changes) as world:
        election = world.core.election
        h = Harness(world.core, world.clock, Outbox("sms"))
        for i in range(6):
            await _vote(h, f"M{i}", "1" if i < 5 else "2")
        for i in range(9):
            await _vote(h, f"A{i}", "2" if i < 7 else "1")
        world.clock.set(election.closes + timedelta(minutes=1))
        await unseal(redis, election, TEST_SEED, world.clock, actor="trustees")
        await results.publish(redis, election, world.clock, "test")
        outsider = Organiser(world)
        try:
            page = await outsider.get(f"/results/{election.id}")
            assert page.status == 200
            # Green 19/36 and Patel 17/36 of the college, as percentages; each section's papers.
            assert "<td>52.78%</td>" in page.text and "<td>47.22%</td>" in page.text
            assert "Section members: ballot papers in each round" in page.text
            assert "<caption>Share 50.0% of the count; 6 valid ballots</caption>" in page.text
            members = await outsider.get(f"/results/{election.id}/ballots-members.blt")
            assert parse_blt(members.text).groups == {("Alex Green",): 5, ("Sam Patel",): 1}
            weights = await outsider.get(f"/results/{election.id}/weights.json")
            assert json.loads(weights.text)["sections"]["members"]["weight_per_ballot"] == "1/12"
            for missing in ("ballots.blt", "ballots-nobody.blt", "ballots-members.txt"):
                assert (await outsider.get(f"/results/{election.id}/{missing}")).status == 404
        finally:
            await outsider.close()


async def test_a_section_below_the_threshold_is_never_counted_or_published(
    redis: Redis,
) -> None:
    # The default threshold, 20: members cast 6 ballots.
    async with telegram_world(
        redis, election_changes={"roll": _roll(), "sections": SECTIONS}
    ) as world:
        election = world.core.election
        h = Harness(world.core, world.clock, Outbox("sms"))
        for i in range(6):
            await _vote(h, f"M{i}", "1")
        for i in range(9):
            await _vote(h, f"A{i}", "2")
        world.clock.set(election.closes + timedelta(minutes=1))
        await unseal(redis, election, TEST_SEED, world.clock, actor="trustees")
        with pytest.raises(results.ResultsRefused, match="section members has 6 valid ballots"):
            await results.publish(redis, election, world.clock, "test")
        assert not await redis.exists(keys.published(election.id))
        (pilot,) = await pilots.gather(redis, [election])
        assert pilot.count is None and "fewer valid ballots" in (pilot.count_refused or "")
        assert "6" not in (pilot.count_refused or "")  # never the small section's size
        browser = Organiser(world)
        try:
            await browser.sign_in()
            page = await browser.get(f"/organisers/{election.id}/results")
            assert page.status == 200
            assert "Section members has 6 valid ballots, fewer than the 20" in page.text
        finally:
            await browser.close()


def test_the_charts_of_a_weighted_count_label_shares_as_percentages() -> None:
    fifty_fifty = college(
        {"members": HALF, "affiliates": HALF}, {"members": MEMBERS, "affiliates": AFFILIATES}
    )
    result = count_college(fifty_fifty, "irv")
    assert "Ann: 33.75% in round 1" in sankey(result)
    assert "Ann 51.25%" in sankey(result)
    assert "51.25% (elected)" in bars(result)
    assert "31.25% (excluded)" in bars(result)


async def test_sections_cannot_change_once_a_roll_is_imported(redis: Redis) -> None:
    """Found in review: sections added after the roll left every ballot in no section, and
    the unseal refused them all."""
    plain = read_election_file(EXAMPLES / "election.toml")
    await save_election(redis, plain)
    await import_roll(redis, plain, [Supporter("S1", "Ann", "+447700900101")])
    with pytest.raises(ElectionLocked, match="already has a roll: its sections cannot change"):
        await save_election(redis, replace(plain, sections=SECTIONS))
    # Before any roll, sections may still be set.
    other = replace(plain, id="other-2027")
    await save_election(redis, other)
    assert (await save_election(redis, replace(other, sections=SECTIONS))).sections == SECTIONS
