"""The ballot box: one voter one ballot, valid rankings only, no link from voter to ranking."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from ballots import keys
from ballots.box import BallotBox, InvalidRanking, ballot_count
from ballots.clock import ManualClock
from ballots.codes import Codes
from ballots.election import Election
from tests.factories import NOW, SECRET, harness, sample_election, stored_ballots
from tests.test_codes import everything_stored


async def granted(redis: Redis, sid: str = "S1001") -> tuple[Election, BallotBox, str, ManualClock]:
    clock = ManualClock(NOW)
    election = await sample_election(redis)
    codes = Codes(redis, SECRET, clock)
    code = (await codes.issue_voting_codes(election, [sid]))[0][3]
    check = await codes.check_voting_code(election, code, "console", "x")
    assert check.grant is not None
    return election, BallotBox(redis, codes, clock), check.grant, clock


async def test_first_ballot_is_final(redis: Redis) -> None:
    election, box, grant, _ = await granted(redis)
    first = await box.cast(election, "S1001", grant, ["patel", "green"], "sms")
    assert first.ok and first.receipt
    again = await box.cast(election, "S1001", grant, ["green"], "sms")
    assert again.status == "already_voted"
    assert await ballot_count(redis, election) == 1
    assert await box.has_voted(election, "S1001")


async def test_a_grant_opens_only_its_own_supporter(redis: Redis) -> None:
    election, box, grant, _ = await granted(redis, "S1001")
    assert (await box.cast(election, "S1002", grant, ["green"], "sms")).status == "no_grant"
    assert (await box.cast(election, "S9999", grant, ["green"], "sms")).status == "ineligible"


@pytest.mark.parametrize(
    ("ranking", "reason"),
    [
        ([], "at least one"),
        (["green", "green"], "twice"),
        (["mayor"], "unknown candidate"),
    ],
)
async def test_invalid_rankings_are_refused(redis: Redis, ranking: list[str], reason: str) -> None:
    election, box, grant, _ = await granted(redis)
    with pytest.raises(InvalidRanking, match=reason):
        await box.cast(election, "S1001", grant, ranking, "sms")
    assert not await box.has_voted(election, "S1001")


async def test_supplementary_vote_takes_two_preferences(redis: Redis) -> None:
    clock = ManualClock(NOW)
    election = await sample_election(redis, method="sv")
    codes = Codes(redis, SECRET, clock)
    code = (await codes.issue_voting_codes(election, ["S1001"]))[0][3]
    grant = (await codes.check_voting_code(election, code, "c", "x")).grant
    assert grant
    with pytest.raises(InvalidRanking, match="at most 2"):
        await BallotBox(redis, codes, clock).cast(
            election, "S1001", grant, ["green", "patel", "byrne"], "c"
        )


async def test_the_window_is_checked_in_the_cast(redis: Redis) -> None:
    election, box, grant, clock = await granted(redis)
    clock.set(election.closes)
    assert (await box.cast(election, "S1001", grant, ["green"], "sms")).status == "closed"
    clock.set(election.opens - timedelta(seconds=1))
    assert (await box.cast(election, "S1001", grant, ["green"], "sms")).status == "not_open"
    clock.set(NOW)
    assert (await box.cast(election, "S1001", grant, ["green"], "sms")).ok


async def test_a_grant_runs_out(redis: Redis) -> None:
    election, box, grant, clock = await granted(redis)
    clock.advance(3601)
    assert (await box.cast(election, "S1001", grant, ["green"], "sms")).status == "no_grant"


async def test_nothing_stored_links_a_voter_to_a_ranking(redis: Redis) -> None:
    election, box, grant, _ = await granted(redis)
    await box.cast(election, "S1001", grant, ["okafor", "byrne"], "sms")
    shard = keys.shard_of("S1001", election.shards)
    assert await stored_ballots(redis, election) == {"okafor,byrne": 1}
    # What Redis holds is the sealed ballot, score 0; no ballot box until the unseal.
    rows: list[tuple[str, float]] = await redis.zrange(  # type: ignore[assignment]
        keys.sealed(election.id, shard), 0, -1, withscores=True
    )
    [(sealed, score)] = rows
    assert score == 0 and "okafor" not in sealed
    assert not await redis.exists(keys.ballots(election.id, shard))
    voter = await redis.hgetall(keys.voter(election.id, shard, "S1001"))
    assert voter["voted"] == "sms"
    assert not any("okafor" in v or "byrne" in v for v in voter.values())
    # The code and the grant are gone with the cast.
    assert not {"code", "grant", "otp"} & set(voter)
    # No key or value anywhere holds the supporter id next to the ranking.
    stored = await everything_stored(redis)
    for line_key in [k async for k in redis.scan_iter()]:
        if "S1001" in line_key:
            kind = await redis.type(line_key)
            assert kind == "hash"
            assert "okafor" not in str(await redis.hgetall(line_key))
    assert "okafor,byrne" not in stored


async def test_ballots_carry_no_order_of_casting(redis: Redis) -> None:
    h = await harness(redis)
    election = h.core.election
    rows = await h.core.codes.issue_voting_codes(election)
    for i, (sid, _name, _phone, code) in enumerate(rows):
        check = await h.core.codes.check_voting_code(election, code, "console", sid)
        assert check.grant
        ranking = ["green", "patel"] if i % 2 else ["patel", "green"]
        assert (await h.core.box.cast(election, sid, check.grant, ranking, "console")).ok
    assert await stored_ballots(redis, election) == {"patel,green": 3, "green,patel": 3}
    # Sealed ballots all score 0, so a sorted set keeps them in the order of their random
    # bytes, whatever order they came in.
    for shard in range(election.shards):
        sealed: list[tuple[str, float]] = await redis.zrange(  # type: ignore[assignment]
            keys.sealed(election.id, shard), 0, -1, withscores=True
        )
        assert [m for m, _ in sealed] == sorted(m for m, _ in sealed)
        assert all(score == 0 for _, score in sealed)
        receipts = [r async for r in redis.zscan_iter(keys.receipts(election.id, shard))]
        assert [r for r, _ in receipts] == sorted(r for r, _ in receipts)
        assert all(score == 0 for _, score in receipts)


async def test_200_concurrent_casts_from_two_addresses_give_one_ballot(redis: Redis) -> None:
    h = await harness(redis)
    election = h.core.election
    code = (await h.core.codes.issue_voting_codes(election, ["S1001"]))[0][3]
    # Two chats (an SMS phone and a Telegram chat) both get to the confirmation step.
    for address, channel in (("+447700900101", "sms"), ("555", "telegram")):
        await h.say("hi", channel=channel, address=address)
        await h.say(code, channel=channel, address=address)
        await h.say("2 1", channel=channel, address=address)
    h.clock.advance(1)

    async def attempt(i: int) -> str:
        channel, address = (("sms", "+447700900101"), ("telegram", "555"))[i % 2]
        return "\n".join(r.text for r in await h.say("YES", channel=channel, address=address))

    replies = await asyncio.gather(*(attempt(i) for i in range(200)))
    assert sum("Vote cast" in r for r in replies) == 1
    assert await ballot_count(redis, election) == 1


async def test_an_election_with_ballots_keeps_its_candidates_and_method(redis: Redis) -> None:
    from dataclasses import replace as change

    from ballots.election import save_election
    from ballots.errors import ElectionLocked

    election, box, grant, _ = await granted(redis)
    renamed = change(election, title="New title", candidates=election.candidates[::-1])
    # Before any ballot, anything may change.
    await save_election(redis, renamed)
    await save_election(redis, election)
    assert (await box.cast(election, "S1001", grant, ["green"], "sms")).ok
    with pytest.raises(ElectionLocked, match="candidate ids cannot change"):
        await save_election(redis, renamed)
    with pytest.raises(ElectionLocked, match="method cannot change"):
        await save_election(redis, change(election, method="sv"))
    later = change(election, title="Renamed", closes=election.closes + timedelta(days=1))
    assert (await save_election(redis, later)).title == "Renamed"
