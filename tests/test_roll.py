"""The roll: phone numbers in E.164, every bad row reported, all or nothing, updates in place."""

from __future__ import annotations

import argparse
import io

import pytest
from redis.asyncio import Redis

from ballots import keys
from ballots.errors import FileProblems
from ballots.roll import get_supporter, import_roll, parse_roll, roll_size, supporters_for_phone
from openprimary import commands
from openprimary.context import Context
from tests.factories import EXAMPLES, sample_election, settings

HEADER = "supporter_id,name,phone,telegram_id,language\n"


def test_phones_are_normalised_to_e164() -> None:
    rows = parse_roll(
        HEADER
        + "A1,Ann,07700 900101,,en\nA2,Bo,+44 (0)7700-900102,42,\nA3,Cy,0044 7700 900103,,\n",
        "r.csv",
    )
    assert [r.phone for r in rows] == ["+447700900101", "+447700900102", "+447700900103"]
    assert rows[1].telegram_id == "42"


def test_region_is_settable() -> None:
    (row,) = parse_roll("supporter_id,name,phone\nA1,Ann,(202) 555-0101\n", "r.csv", region="US")
    assert row.phone == "+12025550101"


def test_every_bad_row_is_reported_with_its_line() -> None:
    text = (
        HEADER
        + "A1,Ann,07700 900101,,\n"
        + "A2,Bo,12345,,\n"
        + "A1,Cy,07700 900103,,\n"
        + "A4,,07700 900104,,\n"
        + "A5,Di,07700 900105,tg5,\n"
        + "A6,Ed,07700 900106\n"
    )
    with pytest.raises(FileProblems) as info:
        parse_roll(text, "r.csv")
    found = [str(p) for p in info.value.problems]
    assert found[0].startswith("r.csv:3: phone '12345'")
    assert found[1] == "r.csv:4: duplicate supporter_id 'A1' (first on line 2)"
    assert found[2] == "r.csv:5: name is empty"
    assert found[3] == "r.csv:6: telegram_id 'tg5' must be a number (digits 0-9)"
    assert found[4] == "r.csv:7: expected 5 fields, found 3"


def test_a_telegram_account_belongs_to_one_supporter() -> None:
    with pytest.raises(FileProblems) as info:
        parse_roll(HEADER + "A1,Ann,07700 900101,42,\nA2,Bo,07700 900102,42,\n", "r.csv")
    (only,) = info.value.problems
    assert str(only).startswith("r.csv:3: telegram_id 42 is already on line 2")


def test_missing_column() -> None:
    with pytest.raises(FileProblems) as info:
        parse_roll("supporter_id,name\nA1,Ann\n", "r.csv")
    (only,) = info.value.problems
    assert str(only).startswith("r.csv:1: missing column(s) phone")


def test_quoted_fields_and_bom() -> None:
    rows = parse_roll('\ufeffsupporter_id,name,phone\nA1,"Hughes, Ann",07700900101\n', "r.csv")
    assert rows[0].name == "Hughes, Ann"


async def test_reimport_updates_in_place(redis: Redis) -> None:
    election = await sample_election(redis)
    assert await roll_size(redis, election) == 6
    moved = parse_roll(
        "supporter_id,name,phone,telegram_id\nS1001,Ann Hughes-Jones,07700 900199,777\n",
        "r.csv",
    )
    summary = await import_roll(redis, election, moved)
    assert (summary.added, summary.updated, summary.total) == (0, 1, 6)
    record = await get_supporter(redis, election, "S1001")
    assert record["name"] == "Ann Hughes-Jones"
    assert record["phone"] == "+447700900199"
    assert await supporters_for_phone(redis, election, "+447700900101") == []
    assert await supporters_for_phone(redis, election, "+447700900199") == ["S1001"]
    assert await redis.hget(keys.telegram_index(election.id), "777") == "S1001"


async def test_a_shared_phone_lists_both_supporters(redis: Redis) -> None:
    election = await sample_election(redis)
    rows = parse_roll("supporter_id,name,phone\nS2001,Ann's son,07700 900101\n", "r.csv")
    await import_roll(redis, election, rows)
    assert sorted(await supporters_for_phone(redis, election, "+447700900101")) == [
        "S1001",
        "S2001",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "supporter_id,name,phone\nA1,Ann\x00,07700900101\n",
            "r.csv:2: a NUL character: this is not a text CSV file",
        ),
        (
            "supporter_id,name,phone,phone\nA1,Ann,07700900101,07700900102\n",
            "r.csv:1: column(s) phone appear more than once",
        ),
        (
            "supporter_id,name,phone,telegram_id\nA1,Ann,07700900101,١٢٣\n",
            "r.csv:2: telegram_id '١٢٣' must be a number (digits 0-9)",
        ),
        (
            'supporter_id,name,phone\nA1,"Ann\nHughes",07700900101\n',
            "r.csv:3: name must be one line of printable text",
        ),
    ],
)
def test_input_that_is_not_a_clean_roll_is_refused(text: str, expected: str) -> None:
    with pytest.raises(FileProblems) as info:
        parse_roll(text, "r.csv")
    assert str(info.value.problems[0]) == expected


async def test_an_import_redis_refuses_changes_nothing() -> None:
    from ballots.connection import client_from_url
    from ballots.roll import RollImportRefused, Supporter
    from tests.faults.support import RedisProcess

    server = RedisProcess()
    server.start()
    redis = client_from_url(server.url)
    try:
        election = await sample_election(redis)
        before = {str(k): await redis.dump(k) for k in sorted(await redis.keys("*"))}
        roll = [Supporter(f"N{i:05d}", f"New {i}", f"+4477009{i % 1000:05d}") for i in range(5000)]
        await redis.config_set("maxmemory", "1")
        with pytest.raises(RollImportRefused, match="nothing was changed"):
            await import_roll(redis, election, roll)
        await redis.config_set("maxmemory", "0")
        after = {str(k): await redis.dump(k) for k in sorted(await redis.keys("*"))}
        assert after == before
        # Once Redis takes writes again, the same import goes through whole.
        summary = await import_roll(redis, election, roll)
        assert summary.added == 5000 and await roll_size(redis, election) == 5006
    finally:
        await redis.aclose()
        server.close()


async def test_an_import_refused_part_way_through_staging_changes_nothing() -> None:
    """The roll is staged in batches; Redis filling up after some of them leaves the roll as
    it was and no staged batch behind, and a switch Redis has no room for is refused before
    it starts."""
    from ballots.connection import client_from_url
    from ballots.roll import RollImportRefused, Supporter
    from tests.faults.support import RedisProcess

    server = RedisProcess()
    server.start()
    redis = client_from_url(server.url)
    try:
        election = await sample_election(redis)
        before = {str(k): await redis.dump(k) for k in sorted(await redis.keys("*"))}
        roll = [
            Supporter(f"N{i:05d}", f"New supporter {i}", f"+4477009{i % 1000:05d}")
            for i in range(20_000)
        ]
        used = int((await redis.info("memory"))["used_memory"])
        # Room for a few staged batches of 2,000, not for all ten.
        await redis.config_set("maxmemory", str(used + 400_000))
        with pytest.raises(
            RollImportRefused, match=r"Redis refused the import.*used memory > 'maxmemory'"
        ):
            await import_roll(redis, election, roll)
        after = {str(k): await redis.dump(k) for k in sorted(await redis.keys("*"))}
        assert after == before

        # Room for the whole staging, not for the switch: refused before it, saying why.
        await redis.config_set("maxmemory", str(used + 2_500_000))
        with pytest.raises(RollImportRefused, match="KiB left under its maxmemory"):
            await import_roll(redis, election, roll)
        after = {str(k): await redis.dump(k) for k in sorted(await redis.keys("*"))}
        assert after == before

        await redis.config_set("maxmemory", "0")
        summary = await import_roll(redis, election, roll)
        assert summary.added == 20_000 and await roll_size(redis, election) == 20_006
        assert await redis.keys("*roll-stage*") == []
    finally:
        await redis.aclose()
        server.close()


def test_a_roll_language_must_be_a_language() -> None:
    text = (
        "supporter_id,name,phone,telegram_id,language\n"
        "A1,Ann,07700 900101,,cy-GB\n"
        "A2,Ben,07700 900102,,xx\n"
        "A3,Cat,07700 900103,,sco\n"
    )
    with pytest.raises(FileProblems) as info:
        parse_roll(text, "r.csv")
    assert [str(p) for p in info.value.problems] == [
        "r.csv:3: language 'xx' is not a language code (BCP 47, such as 'en', 'cy' or 'cy-GB')"
    ]


async def test_a_roll_language_the_election_does_not_offer_is_said(redis: Redis) -> None:
    """The sample election speaks English only; Carys is Welsh on the sample roll: she is
    imported, and the organiser is told she will be answered in English."""
    election = await sample_election(redis)
    err = io.StringIO()
    ctx = Context(settings=settings(), redis=redis, out=io.StringIO(), err=err)
    args = argparse.Namespace(file=str(EXAMPLES / "roll.csv"), election=election.id, region=None)
    assert await commands.roll_import(args, ctx) == 0
    assert (
        f"{EXAMPLES / 'roll.csv'}: 1 supporter(s) with language 'cy', which riverside-2027 "
        "does not offer (en): they are answered in English"
    ) in err.getvalue()
