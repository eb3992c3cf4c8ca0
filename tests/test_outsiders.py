"""Outsiders cannot spend what the roll's supporters need: SMS replies to phones the roll does
not know are few and paid from a reserve of their own, codes asked for by typed numbers take
only part of the hourly ceiling, and no reply says a code was sent when none was."""

from __future__ import annotations

from dataclasses import replace

from redis.asyncio import Redis

from ballots import keys
from ballots.codes import CodePolicy
from bot import texts
from bot.outsiders import REPLIES_PER_HOUR, SHARE
from tests.factories import harness, settings

ANN = "+447700900101"  # S1001, on the roll
STRANGER = "+447700900999"  # not on the roll
BUDGET = 400


async def test_one_phone_off_the_roll_gets_a_few_replies_an_hour_then_silence(
    redis: Redis,
) -> None:
    h = await harness(redis, config=replace(settings(), sms_budget_segments=BUDGET))
    answered = [await h.said("hi", channel="sms", address=STRANGER) for _ in range(66)]
    assert sum(1 for reply in answered if reply) == REPLIES_PER_HOUR
    assert answered[-1] == ""
    spent = int(await redis.get(keys.sms_segments(h.core.election.id)) or 0)
    assert spent == REPLIES_PER_HOUR  # one segment each
    # The next hour the phone is answered again.
    h.clock.advance(3600)
    assert await h.said("hi", channel="sms", address=STRANGER)
    # A supporter texting from their phone on the roll is never held back by it: the code
    # comes back as the reply.
    assert "is your code to vote" in await h.said("hi", channel="sms", address=ANN)


async def test_many_phones_off_the_roll_spend_only_their_reserve_of_the_budget(
    redis: Redis,
) -> None:
    h = await harness(redis, config=replace(settings(), sms_budget_segments=BUDGET))
    strangers = [f"+4477009009{i:02d}" for i in range(40)]
    for phone in strangers:
        await h.said("hi", channel="sms", address=phone)
    eid = h.core.election.id
    outsiders = int(await redis.get(keys.sms_segments_outsiders(eid)) or 0)
    assert outsiders == int(BUDGET * SHARE) == 20
    assert int(await redis.get(keys.sms_segments(eid)) or 0) == 20
    # The roll's supporters still get their codes and their replies.
    reply = await h.said("hi", channel="sms", address=ANN)
    assert "is your code to vote" in reply
    assert "1st choice" in await h.said(reply.split()[0], channel="sms", address=ANN)


async def test_typed_numbers_take_only_their_share_of_the_hour_and_never_a_false_claim(
    redis: Redis,
) -> None:
    """Telegram accounts typing supporter numbers can use half the hour's code SMS; then
    everyone typing a number (on the roll or not) is told no code can be texted now, and
    supporters asking from their own phone still get theirs."""
    h = await harness(redis, CodePolicy(code_sms_per_hour=4))
    for i, number in enumerate(("S1002", "S1003")):
        reply = await h.said(number, channel="telegram", address=f"70{i}", user_id=f"70{i}")
        assert reply == texts.supporter_number_sent(number)
    await h.core.router.drain()  # after a typed number the code goes after the reply
    assert len(h.sms.sent) == 2
    on_roll = await h.said("S1004", channel="telegram", address="710", user_id="710")
    off_roll = await h.said("S9999", channel="telegram", address="711", user_id="711")
    # S1002 again: in the minute's cooldown of the code just sent, and told the same.
    cooling = await h.said("S1002", channel="telegram", address="700", user_id="700")
    assert on_roll == off_roll == cooling == texts.code_sms_paused()
    await h.core.router.drain()
    assert len(h.sms.sent) == 2  # nothing was sent, and nothing was said to be
    # A supporter on their own phone: the reserve is theirs.
    assert "is your code to vote" in await h.said("hi", channel="sms", address=ANN)


async def test_with_the_budget_spent_a_typed_number_is_told_so_whatever_the_number(
    redis: Redis,
) -> None:
    h = await harness(redis, config=replace(settings(), sms_budget_segments=BUDGET))
    await redis.set(keys.sms_segments(h.core.election.id), BUDGET)
    on_roll = await h.said("S1002", channel="telegram", address="720", user_id="720")
    off_roll = await h.said("S9999", channel="telegram", address="721", user_id="721")
    assert on_roll == off_roll == texts.sms_budget_spent(h.core.election)
    await h.core.router.drain()
    assert h.sms.sent == []
