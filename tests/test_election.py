"""Election files: a good one loads; each kind of bad one is reported at its line."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from ballots.election import get_election, parse_election, save_election
from ballots.errors import FileProblems, UnknownElection
from tests.factories import EXAMPLES

GOOD = (EXAMPLES / "election.toml").read_text()


def problems(text: str) -> list[str]:
    with pytest.raises(FileProblems) as info:
        parse_election(text, "e.toml")
    return [str(p) for p in info.value.problems]


def test_sample_election_loads() -> None:
    e = parse_election(GOOD, "e.toml")
    assert e.id == "riverside-2027"
    assert e.method == "irv"
    assert [c.id for c in e.candidates] == ["green", "patel", "okafor", "byrne"]
    assert e.identity == ("code", "sms-otp")
    assert e.opens.utcoffset() is not None and e.opens < e.closes


def test_bad_toml_names_the_line() -> None:
    text = GOOD.replace('method = "irv"', "method = irv")
    line = GOOD.splitlines().index('method = "irv"') + 1
    (only,) = problems(text)
    assert only.startswith(f"e.toml:{line}: not valid TOML")


def test_unknown_method_names_its_line() -> None:
    text = GOOD.replace('method = "irv"', 'method = "borda"')
    line = GOOD.splitlines().index('method = "irv"') + 1
    assert problems(text) == [f"e.toml:{line}: unknown method 'borda'; use one of: irv, sv, stv"]


def test_every_problem_is_reported_at_once() -> None:
    text = (
        GOOD.replace('id = "riverside-2027"', 'id = "Bad Id"')
        .replace("closes = 2027-12-01T17:00:00Z", "closes = 2026-01-01T00:00:00Z")
        .replace('id = "okafor"', 'id = "green"')
    )
    found = problems(text)
    assert any("election id 'Bad Id'" in p for p in found)
    assert any("'closes' must be later than 'opens'" in p for p in found)
    dup = [p for p in found if "appears twice" in p]
    assert dup and dup[0].startswith("e.toml:")
    # The duplicate is reported at the third [[candidates]] table.
    lines = GOOD.splitlines()
    third = [i for i, x in enumerate(lines) if x.strip() == "[[candidates]]"][2] + 1
    assert dup[0].startswith(f"e.toml:{third}:")


def test_times_need_a_zone() -> None:
    text = GOOD.replace("opens = 2026-11-01T08:00:00Z", "opens = 2026-11-01T08:00:00")
    (only,) = problems(text)
    assert "needs a time zone" in only


def test_unknown_identity_method() -> None:
    text = GOOD.replace('identity = ["code", "sms-otp"]', 'identity = ["email"]')
    (only,) = problems(text)
    assert "unknown identity method 'email'" in only


def test_irv_with_several_seats_is_refused() -> None:
    text = GOOD.replace('method = "irv"', 'method = "irv"\nseats = 2')
    assert any("seats must be 1" in p for p in problems(text))


def test_missing_candidates() -> None:
    text = GOOD.split("[[candidates]]")[0]
    assert any("no candidates" in p for p in problems(text))


async def test_saved_election_round_trips(redis: Redis) -> None:
    e = parse_election(GOOD, "e.toml")
    await save_election(redis, e)
    assert await get_election(redis, e.id) == e


async def test_shard_count_is_fixed_by_the_first_load(redis: Redis) -> None:
    e = parse_election(GOOD, "e.toml")
    await save_election(redis, e)
    wider = parse_election("shards = 4\n" + GOOD, "e.toml")
    assert wider.shards == 4 != e.shards
    again = await save_election(redis, wider)
    assert again.shards == e.shards


async def test_unknown_election(redis: Redis) -> None:
    with pytest.raises(UnknownElection, match="election load"):
        await get_election(redis, "nope")


@pytest.mark.parametrize("entry", ["*", "07700900001", "tg:", "tg:١٢٣", "tg:12 3", "+44 7700"])
def test_organiser_entries_must_be_e164_numbers_or_telegram_ids(entry: str) -> None:
    old = 'organisers = ["+447700900001", "tg:100001"]'
    line = GOOD.splitlines().index(old) + 1
    text = GOOD.replace(old, f'organisers = ["+447700900001", "{entry}"]')
    (only,) = problems(text)
    assert only.startswith(f"e.toml:{line}: organiser '{entry}' is neither a phone number")


def test_a_candidate_name_must_be_one_line_of_printable_text() -> None:
    old = 'name = "Sam Patel"'
    line = GOOD.splitlines().index("[[candidates]]", GOOD.splitlines().index(old) - 3) + 1
    text = GOOD.replace(old, 'name = "Sam Patel\\n1000: 2,1"')
    (only,) = problems(text)
    assert only == f"e.toml:{line}: candidate 'patel': the name must be one line of printable text"


def test_a_misspelt_key_is_refused_with_the_key_it_may_mean() -> None:
    """A typo'd key would otherwise be ignored: max_rank = 3 gave voters no cap at all."""
    text = "max_rank = 3\n" + GOOD.replace('name = "Sam Patel"', 'name = "Sam Patel"\nnmae = "x"')
    line = text.splitlines().index('nmae = "x"') + 1
    assert problems(text) == [
        "e.toml:1: unknown key 'max_rank' (did you mean 'max_ranks'?)",
        f"e.toml:{line}: unknown key 'nmae' in a candidate (did you mean 'name'?)",
    ]
    (only,) = problems("colour = 'red'\n" + GOOD)
    assert only.startswith("e.toml:1: unknown key 'colour'; the keys are abstain, candidates,")


@pytest.mark.parametrize("kept", ["static", "report"])
def test_an_election_may_not_take_a_name_the_console_keeps(kept: str) -> None:
    import re

    text = re.sub(r'(?m)^id = ".*"$', f'id = "{kept}"', GOOD, count=1)
    (only,) = problems(text)
    assert "e.toml:" in only and f"'{kept}' is a name the console keeps" in only
