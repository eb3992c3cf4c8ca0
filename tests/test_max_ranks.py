"""``max_ranks = N``: a cap on preferences, in the election file, the conversation on SMS and
Telegram, the ballot box, and ``count --ballots --max-ranks``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ballots.box import InvalidRanking, check_ranking
from ballots.election import get_election, parse_election, save_election
from ballots.errors import ElectionLocked, FileProblems
from tests.factories import EXAMPLES, stored_ballots
from tests.sms_support import ANN, SmsStack, sms_stack
from tests.telegram_support import ANN as ANN_TG
from tests.telegram_support import telegram_world
from tests.test_count_cli import run

SAMPLE = (EXAMPLES / "election.toml").read_text()


def with_line(line: str) -> str:
    """The sample election file with one more line before its first candidate."""
    return SAMPLE.replace("[[candidates]]", f"{line}\n\n[[candidates]]", 1)


def problems(text: str) -> list[str]:
    with pytest.raises(FileProblems) as caught:
        parse_election(text, "election.toml")
    return [str(p) for p in caught.value.problems]


def test_the_election_file_takes_a_cap_and_says_what_is_wrong_with_a_bad_one() -> None:
    capped = parse_election(with_line("max_ranks = 2"), "election.toml")
    assert (capped.max_ranks, capped.max_preferences) == (2, 2)
    assert parse_election(SAMPLE, "election.toml").max_preferences == 4
    line = with_line("max_ranks = 0").splitlines().index("max_ranks = 0") + 1
    assert problems(with_line("max_ranks = 0")) == [
        f"election.toml:{line}: 'max_ranks' must be a whole number of at least 1"
    ]
    assert problems(with_line("max_ranks = 5")) == [
        f"election.toml:{line}: 'max_ranks' is 5 but there are only 4 candidates"
    ]
    sv = with_line("max_ranks = 3").replace('method = "irv"', 'method = "sv"')
    assert problems(sv) == [
        f"election.toml:{line}: the supplementary vote takes 2 preferences at most: max_ranks <= 2"
    ]


async def test_the_cap_is_kept_with_the_election_and_fixed_once_ballots_are_cast(
    redis: Redis,
) -> None:
    async with sms_stack(redis, max_ranks=2) as stack:
        election = stack.core.election
        assert (await get_election(redis, election.id)).max_ranks == 2
        with pytest.raises(InvalidRanking):
            check_ranking(election, ["patel", "byrne", "green"])
        ann = stack.phone(ANN)
        code = (await ann.text("vote"))[0].split()[0]
        await ann.text(code)
        await ann.text("2 4")
        assert "Vote cast" in (await ann.text("YES"))[0]
        changed = parse_election(with_line("max_ranks = 3"), "election.toml")
        with pytest.raises(ElectionLocked, match="max_ranks"):
            await save_election(redis, changed)


@pytest.fixture
async def capped_sms(redis: Redis) -> AsyncIterator[SmsStack]:
    async with sms_stack(redis, max_ranks=2) as stack:
        yield stack


async def test_by_sms_the_conversation_stops_at_the_cap(redis: Redis, capped_sms: SmsStack) -> None:
    ann = capped_sms.phone(ANN)
    code = (await ann.text("vote"))[0].split()[0]
    first = "\n".join(await ann.text(code))
    assert "Rank up to 2. Your 1st choice?" in first
    assert "2nd choice?" in "\n".join(await ann.text("2"))
    confirm = "\n".join(await ann.text("4"))  # the second choice is the last
    assert confirm.startswith("That's your 2 choices. Your ballot:\n1 Sam Patel\n2 Chris Byrne")
    assert "Vote cast" in "\n".join(await ann.text("YES"))
    assert await stored_ballots(redis, capped_sms.core.election) == {"patel,byrne": 1}


async def test_by_sms_a_longer_ranking_in_one_message_is_refused(
    redis: Redis, capped_sms: SmsStack
) -> None:
    ann = capped_sms.phone(ANN)
    code = (await ann.text("vote"))[0].split()[0]
    await ann.text(code)
    refused = "\n".join(await ann.text("2 4 1"))
    assert refused == "Sorry, you can give at most 2 choices. Reply with a number from the list."
    confirm = "\n".join(await ann.text("2 4"))
    assert "That's your 2 choices" in confirm
    assert "Vote cast" in "\n".join(await ann.text("YES"))
    assert await stored_ballots(redis, capped_sms.core.election) == {"patel,byrne": 1}


async def test_on_telegram_the_buttons_stop_at_the_cap(redis: Redis) -> None:
    async with telegram_world(redis, election_changes={"max_ranks": 2}) as world:
        prompt = await world.say(ANN_TG, await world.voting_code())
        assert "Rank up to 2." in prompt["text"]
        await world.tap(ANN_TG, "Sam Patel")
        confirm = await world.tap(ANN_TG, "Chris Byrne")
        assert "That's your 2 choices. Your ballot:" in confirm["text"]
        await world.tap(ANN_TG, "Cast my vote")
        assert world.api.last_message(ANN_TG.id)["text"].startswith("Vote cast")
        assert await world.ballots() == {"patel,byrne": 1}


async def test_count_refuses_a_ballot_file_with_longer_ballots(
    redis: Redis, tmp_path: Path
) -> None:
    blt = tmp_path / "capped.blt"
    blt.write_text('3 1\n2 1 2 0\n1 1 2 3 0\n1 3 0\n0\n"A"\n"B"\n"C"\n"Capped"\n')
    with pytest.raises(FileProblems) as caught:
        await run(redis, "count", "--ballots", str(blt), "--max-ranks", "2")
    assert [str(p) for p in caught.value.problems] == [
        f"{blt}:3: 3 preferences on one ballot: --max-ranks allows 2"
    ]
    status, out, _ = await run(redis, "count", "--ballots", str(blt), "--max-ranks", "3")
    assert status == 0 and "Elected: A." in out
    csv = tmp_path / "capped.csv"
    csv.write_text("# candidates: A,B,C\nA,B\nB,C,A\nC\n")
    with pytest.raises(FileProblems) as caught:
        await run(redis, "count", "--ballots", str(csv), "--max-ranks", "2")
    assert [str(p) for p in caught.value.problems] == [
        f"{csv}:3: 3 preferences on one ballot: --max-ranks allows 2"
    ]
