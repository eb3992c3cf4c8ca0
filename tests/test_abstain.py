"""``abstain = true``: a voter may cast a blank ballot, by SMS (ABSTAIN) or Telegram (a
button), confirmed like any ballot; it counts in turnout, sealed like the rest, and in the
count only as "blank", never in a quota or a majority."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from ballots.box import InvalidRanking, check_ranking
from ballots.clock import ManualClock
from ballots.count.formats import parse_csv, parse_preflib
from ballots.election import Candidate, Election, parse_election, save_election
from ballots.errors import ElectionLocked, FileProblems
from ballots.seal import encode_ranking, seal
from ballots.turnout import turnout
from ballots.unseal import unseal
from channels.standins.telegram_api import button_labels
from tests.factories import (
    EXAMPLES,
    TEST_PUBLIC,
    TEST_SEED,
    install_test_key,
    put_sealed,
    stored_ballots,
)
from tests.sms_support import ANN, SmsStack, sms_stack
from tests.telegram_support import ANN as ANN_TG
from tests.telegram_support import telegram_world
from tests.test_count_cli import run

SAMPLE = (EXAMPLES / "election.toml").read_text()


def with_line(line: str) -> str:
    return SAMPLE.replace("[[candidates]]", f"{line}\n\n[[candidates]]", 1)


def test_the_election_file_allows_it_and_says_what_is_wrong() -> None:
    assert parse_election(with_line("abstain = true"), "e.toml").abstain
    assert not parse_election(SAMPLE, "e.toml").abstain
    line = with_line('abstain = "yes"').splitlines().index('abstain = "yes"') + 1
    with pytest.raises(FileProblems) as caught:
        parse_election(with_line('abstain = "yes"'), "e.toml")
    assert [str(p) for p in caught.value.problems] == [
        f"e.toml:{line}: 'abstain' must be true or false"
    ]
    blank_ok = parse_election(with_line("abstain = true"), "e.toml")
    assert check_ranking(blank_ok, []) == ()
    with pytest.raises(InvalidRanking):
        check_ranking(parse_election(SAMPLE, "e.toml"), [])


@pytest.fixture
async def stack(redis: Redis) -> AsyncIterator[SmsStack]:
    async with sms_stack(redis, abstain=True) as running:
        yield running


async def test_by_sms_abstain_is_confirmed_then_cast_as_a_blank_ballot(
    redis: Redis, stack: SmsStack
) -> None:
    ann = stack.phone(ANN)
    code = (await ann.text("vote"))[0].split()[0]
    prompt = "\n".join(await ann.text(code))
    assert "Or ABSTAIN to cast a blank ballot" in prompt
    confirm = "\n".join(await ann.text("abstain"))
    assert confirm.startswith("Your ballot: blank.")
    assert await stored_ballots(redis, stack.core.election) == {}  # nothing yet
    assert "Vote cast" in "\n".join(await ann.text("YES"))
    assert await stored_ballots(redis, stack.core.election) == {"": 1}  # sealed, blank
    counted = await turnout(redis, stack.core.election)
    assert counted.voted == 1
    # Once cast, the election's abstain setting is fixed.
    with pytest.raises(ElectionLocked, match="abstain"):
        await save_election(redis, parse_election(SAMPLE, "election.toml"))


async def test_by_sms_change_from_a_blank_ballot_back_to_ranking(
    redis: Redis, stack: SmsStack
) -> None:
    ann = stack.phone(ANN)
    code = (await ann.text("vote"))[0].split()[0]
    await ann.text(code)
    await ann.text("ABSTAIN")
    assert "1st choice" in "\n".join(await ann.text("CHANGE"))
    await ann.text("2 4")
    assert "Vote cast" in "\n".join(await ann.text("YES"))
    assert await stored_ballots(redis, stack.core.election) == {"patel,byrne": 1}


async def test_where_abstaining_is_not_allowed_the_voter_is_told(redis: Redis) -> None:
    async with sms_stack(redis) as plain:
        ann = plain.phone(ANN)
        code = (await ann.text("vote"))[0].split()[0]
        assert "Or ABSTAIN" not in "\n".join(await ann.text(code))
        refused = "\n".join(await ann.text("ABSTAIN"))
        assert refused == "This ballot has no blank option: please rank at least a 1st choice."
        assert "Reply YES" in "\n".join(await ann.text("2 4"))


async def test_on_telegram_a_button_abstains(redis: Redis) -> None:
    async with telegram_world(redis, election_changes={"abstain": True}) as world:
        prompt = await world.say(ANN_TG, await world.voting_code())
        assert "Abstain: a blank ballot" in button_labels(prompt)
        confirm = await world.tap(ANN_TG, "Abstain: a blank ballot")
        assert confirm["text"].startswith("Your ballot: blank.")
        assert button_labels(confirm) == ["Cast my vote", "Change"]
        await world.tap(ANN_TG, "Cast my vote")
        assert world.api.last_message(ANN_TG.id)["text"].startswith("Vote cast")
        assert await world.ballots() == {"": 1}


async def blank_election(redis: Redis, method: str = "irv") -> Election:
    """Three for A, two for B, four blank: A has a majority of the five who ranked anyone."""
    election = Election(
        id="blanks",
        title="Blanks",
        method=method,
        candidates=(Candidate("a", "A"), Candidate("b", "B"), Candidate("c", "C")),
        opens=datetime(2026, 1, 1, tzinfo=UTC),
        closes=datetime(2026, 2, 1, tzinfo=UTC),
        abstain=True,
    )
    election = await save_election(redis, election)
    await install_test_key(redis, election)
    ids = election.candidate_ids
    records = [["a"]] * 3 + [["b", "c"]] * 2 + [[]] * 4
    await put_sealed(
        redis, election, 0, [seal(TEST_PUBLIC, encode_ranking(ids, r)) for r in records]
    )
    report = await unseal(redis, election, TEST_SEED, ManualClock(election.closes), actor="t")
    assert (report.opened, report.invalid) == (9, 0)
    return election


@pytest.mark.parametrize("method", ["irv", "sv", "stv"])
async def test_the_count_shows_blanks_in_round_1_and_counts_them_in_no_majority(
    redis: Redis, method: str
) -> None:
    election = await blank_election(redis, method)
    status, out, _ = await run(redis, "count", "--election", election.id)
    assert status == 0
    assert "Valid ballots: 5.  Blank ballots (abstentions): 4." in out
    assert "Blank: 4 ballots ranked nobody (abstentions)" in out
    # The majority (or the quota) is of the five who ranked anyone, not the nine.
    decided = {
        "irv": "A has 3 of 5 continuing votes, more than half: elected",
        "sv": "A has 3 of 5 1st choices, more than half: elected",
        "stv": "A has 3.00000, at least the quota: elected",
    }
    assert decided[method] in out, out
    if method == "stv":
        assert "Quota: 3." in out
    _, shown, _ = await run(redis, "count", "--election", election.id, "--json")
    assert json.loads(shown)["blank_ballots"] == 4


async def test_the_exports_carry_the_blanks_as_each_format_allows(redis: Redis) -> None:
    election = await blank_election(redis)
    _, blt, _ = await run(redis, "export", "--election", election.id, "--format", "blt")
    assert "\n4 0\n0\n" in blt  # a ballot with no preference
    _, soi, _ = await run(redis, "export", "--election", election.id, "--format", "preflib")
    assert "# BLANK BALLOTS: 4\n" in soi
    assert parse_preflib(soi).blank == 4
    _, csv, _ = await run(redis, "export", "--election", election.id, "--format", "csv")
    assert "# blank: 4\n" in csv
    back = parse_csv(csv)
    assert (back.total, back.blank) == (5, 4)
    assert io.StringIO(csv).readline().startswith("# candidates:")
