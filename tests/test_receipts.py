"""A voter's receipt is never lost: RECEIPT in any state, and "already cast" says it again."""

from __future__ import annotations

import re

from redis.asyncio import Redis

from ballots import keys
from tests.factories import harness

ANN_PHONE = "+447700900101"  # S1001, the only supporter with this phone


def receipt_in(text: str) -> str:
    found = re.search(r"Receipt:? ([0-9A-HJKMNP-TV-Z]{10})\b", text)
    assert found, text
    return found.group(1)


async def test_receipt_again_in_any_state_and_after_the_close(redis: Redis) -> None:
    h = await harness(redis)
    code = (await h.core.codes.issue_voting_codes(h.core.election, ["S1001"]))[0][3]
    await h.say(code, channel="sms", address=ANN_PHONE)
    assert "no receipt yet" in await h.said("RECEIPT", channel="sms", address=ANN_PHONE)
    await h.say("2 4", channel="sms", address=ANN_PHONE)
    given = receipt_in(await h.said("YES", channel="sms", address=ANN_PHONE))

    again = await h.said("receipt", channel="sms", address=ANN_PHONE)
    assert again == f"Your ballot was cast on 20 Nov 2026. Receipt: {given}."
    # From a new chat on the phone on the roll (the chat state gone), and after the close.
    await redis.delete(*[k async for k in redis.scan_iter(match=keys.conversation("*", "*"))])
    h.clock.set(h.core.election.closes)
    assert receipt_in(await h.said("RECEIPT", channel="sms", address=ANN_PHONE)) == given


async def test_already_cast_elsewhere_gives_the_same_receipt(redis: Redis) -> None:
    h = await harness(redis)
    code = (await h.core.codes.issue_voting_codes(h.core.election, ["S1001"]))[0][3]
    await h.say(code, address="chat-a")
    await h.say("1", address="chat-a")
    given = receipt_in(await h.said("0", address="chat-a") + await h.said("YES", address="chat-a"))
    # The same supporter, on Telegram this time, with the same voting code.
    reply = await h.said(code, channel="telegram", address="777", user_id="777")
    assert "already been cast" in reply and receipt_in(reply) == given


async def test_a_cast_whose_reply_was_lost_is_answered_with_its_receipt(redis: Redis) -> None:
    """The ballot went in, then the server died before the reply: YES again gets the receipt."""
    h = await harness(redis)
    code = (await h.core.codes.issue_voting_codes(h.core.election, ["S1001"]))[0][3]
    await h.say(code)
    await h.say("3 1")
    before = await h.core.router.store.load("console", "chat-1")
    first = receipt_in(await h.said("YES"))
    # Put the chat back where it was before the YES, as if the state save had been lost.
    await h.core.router.store.save("console", "chat-1", before)
    reply = await h.said("YES")
    assert "already been cast" in reply and receipt_in(reply) == first


async def test_receipt_tells_nothing_about_a_number_someone_typed(redis: Redis) -> None:
    """RECEIPT after a typed supporter number (not yet proved) must not say whether they voted."""
    h = await harness(redis)
    code = (await h.core.codes.issue_voting_codes(h.core.election, ["S1002"]))[0][3]
    await h.say(code, address="bilal")
    await h.say("1", address="bilal")
    await h.say("0", address="bilal")
    assert "Vote cast" in await h.said("YES", address="bilal")

    stranger = "+447700900999"
    await h.say("S1002", channel="sms", address=stranger)
    voted = await h.said("RECEIPT", channel="sms", address=stranger)
    await h.say("AGAIN", channel="sms", address=stranger)
    await h.say("S1004", channel="sms", address=stranger)
    not_voted = await h.said("RECEIPT", channel="sms", address=stranger)
    assert voted == not_voted
    assert "voting code or supporter number" in voted
