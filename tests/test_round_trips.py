"""An inbound message costs at most three Redis round trips on the common path.

*begin* (the delivery's record, the chat's lock and state, and the roll
lookups the step may need), the step's own atomic operation when it has one
(a code request or check, a cast), and *commit* (the state, the replies, the
lock's release and the step's other writes).  Counted on the client's
connections: one command or one pipeline is one round trip.  Each test
counts a second voter: the first one's messages also load the scripts into
the fresh server, as happens once after a start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from ballots import keys
from bot.messages import InboundMessage
from tests.factories import Harness, harness
from tests.round_trips import RoundTrips, counting_client

SMS_VOTERS = ("+447700900101", "+447700900103")  # S1001 and S1003 on the sample roll


@pytest.fixture
async def counted(redis: Redis, redis_url: str) -> AsyncIterator[tuple[Harness, RoundTrips]]:
    client, trips = counting_client(redis_url)
    try:
        h = await harness(client)
        assert h.core.copies is not None
        h.core.copies.channels.update(("sms", "telegram"))  # as when serve removes copies
        yield h, trips
    finally:
        await client.aclose()


async def trips_for(
    h: Harness, trips: RoundTrips, text: str, *, channel: str, address: str
) -> tuple[int, str]:
    """The round trips one message took, and its replies."""
    h.counter += 1
    msg = InboundMessage(
        channel,
        address,
        text,
        message_id=f"m{h.counter}",
        ref=f"r{h.counter}",
        user_id=address if channel == "telegram" else None,
    )
    before = trips.count
    replies = await h.core.router.handle(msg)
    return trips.since(before), "\n".join(r.text for r in replies)


async def test_a_vote_by_sms_takes_three_round_trips_a_message_at_most(
    counted: tuple[Harness, RoundTrips],
) -> None:
    h, trips = counted
    for phone in SMS_VOTERS:
        counts = {}
        n, said = await trips_for(h, trips, "vote", channel="sms", address=phone)
        assert "is your code to vote" in said, said
        counts["vote"] = n
        code = said.split()[0]
        steps = [(code, "1st choice"), ("2", "2nd choice"), ("4", "3rd choice")]
        steps += [("0", "Reply YES"), ("YES", "Receipt")]
        for text, expected in steps:
            n, said = await trips_for(h, trips, text, channel="sms", address=phone)
            assert expected in said, (text, said)
            counts[text] = n
    # begin, the code request / the code check / the cast, commit:
    assert counts["vote"] == counts[code] == counts["YES"] == 3, counts
    # a choice has no atomic operation of its own: begin and commit.
    assert counts["2"] == counts["4"] == counts["0"] == 2, counts
    # A repeat of a done delivery: begin finds its replies, and that is all.
    before = trips.count
    repeat = InboundMessage("sms", SMS_VOTERS[1], "YES", message_id=f"m{h.counter}")
    assert "Receipt" in "\n".join(r.text for r in await h.core.router.handle(repeat))
    assert trips.since(before) == 1


async def test_a_vote_with_a_voting_code_takes_three_round_trips_a_message_at_most(
    counted: tuple[Harness, RoundTrips],
) -> None:
    h, trips = counted
    for sid, user in (("S1002", "4242"), ("S1004", "4343")):
        [(_, _, _, code)] = await h.core.codes.issue_voting_codes(h.core.election, [sid])
        counts = {}
        for text, expected in ((code, "1st choice"), ("2 4 1", "Reply YES"), ("YES", "Receipt")):
            n, said = await trips_for(h, trips, text, channel="telegram", address=user)
            assert expected in said, (text, said)
            counts[text] = n
    assert counts[code] == counts["YES"] == 3 and counts["2 4 1"] == 2, counts
    # The code linked the Telegram account to the voter, on the record and in the index.
    assert await h.core.redis.hget(keys.telegram_index(h.core.election.id), "4343") == "S1004"
    shard = keys.shard_of("S1004", h.core.election.shards)
    voter = keys.voter(h.core.election.id, shard, "S1004")
    assert await h.core.redis.hget(voter, "telegram_id") == "4343"
