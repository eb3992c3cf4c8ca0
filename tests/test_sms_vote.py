"""Voting by SMS end to end: signed webhooks over HTTP, TwiML back, ballots in Redis."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from ballots import keys
from ballots.box import ballot_count
from bot.messages import InboundMessage
from channels.gsm import is_gsm, segments
from channels.standins.twilio_phone import TwilioPhone
from tests.factories import stored_ballots
from tests.sms_support import ANN, BILAL, CARYS, SmsStack, sms_stack

OPT_OUT_WORDS = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]
OPT_IN_WORDS = ["START", "UNSTOP", "YES"]


@pytest.fixture
async def stack(redis: Redis) -> AsyncIterator[SmsStack]:
    async with sms_stack(redis) as running:
        yield running


class Voter:
    """A phone that keeps every SMS it was sent, for the segment bill."""

    def __init__(self, phone: TwilioPhone) -> None:
        self.phone = phone
        self.received: list[str] = []

    async def text(self, body: str) -> str:
        replies = await self.phone.text(body)
        assert all(is_gsm(r) for r in replies), replies
        self.received.extend(replies)
        return "\n".join(replies)

    @property
    def segments(self) -> int:
        return sum(segments(r) for r in self.received)

    def code(self) -> str:
        for body in reversed(self.received):
            found = re.search(r"\b(\d{6})\b", body)
            if found:
                return found.group(1)
        raise AssertionError("no code was texted")


async def rankings(redis: Redis, stack: SmsStack) -> dict[str, int]:
    return await stored_ballots(redis, stack.core.election)


async def vote_step_by_step(voter: Voter, order: list[str]) -> str:
    assert "code" in await voter.text("Hi")
    assert "1st choice" in await voter.text(voter.code())
    for n in order[:-1]:
        assert "choice?" in await voter.text(n)
    assert "Your ballot" in await voter.text(order[-1])
    return await voter.text("YES")


async def test_a_whole_vote_step_by_step(stack: SmsStack, redis: Redis) -> None:
    voter = Voter(stack.phone(ANN))
    receipt = await vote_step_by_step(voter, ["2", "4", "1", "3"])
    assert "Vote cast" in receipt
    assert await rankings(redis, stack) == {"patel,byrne,green,okafor": 1}
    # Every reply is one SMS; the whole vote fits the budget.
    assert voter.segments <= 8, voter.received
    assert stack.twilio.attempts == []  # all replies went back as TwiML


async def test_a_whole_vote_in_one_message(stack: SmsStack, redis: Redis) -> None:
    voter = Voter(stack.phone(ANN))
    await voter.text("Hi")
    await voter.text(voter.code())
    assert "Your ballot" in await voter.text("2 4 1 3")
    assert "Vote cast" in await voter.text("YES")
    assert await rankings(redis, stack) == {"patel,byrne,green,okafor": 1}
    assert voter.segments <= 5, voter.received


async def test_candidate_list_is_short_lines_on_a_small_screen(stack: SmsStack) -> None:
    voter = Voter(stack.phone(ANN))
    await voter.text("Hi")
    prompt = await voter.text(voter.code())
    assert all(len(line) <= 40 for line in prompt.splitlines()), prompt
    assert re.search(r"^1 Alex Green$", prompt, re.M)


async def test_a_cast_ballot_is_final(stack: SmsStack, redis: Redis) -> None:
    voter = Voter(stack.phone(ANN))
    await vote_step_by_step(voter, ["1", "0"])
    assert "already been cast" in await voter.text("Hi")
    assert await ballot_count(redis, stack.core.election) == 1


@pytest.mark.parametrize("word", OPT_OUT_WORDS)
async def test_stop_words_opt_out_of_reminders(stack: SmsStack, redis: Redis, word: str) -> None:
    voter = Voter(stack.phone(ANN))
    reply = await voter.text(word.lower() if word == "STOP" else word)
    assert "no more reminders" in reply
    assert "START" in reply  # how to come back
    assert await redis.sismember(keys.opted_out("sms"), ANN)


@pytest.mark.parametrize("word", OPT_IN_WORDS)
async def test_start_words_opt_back_in(stack: SmsStack, redis: Redis, word: str) -> None:
    voter = Voter(stack.phone(ANN))
    await voter.text("STOP")
    assert "Reminders are back on" in await voter.text(word)
    assert not await redis.sismember(keys.opted_out("sms"), ANN)


async def test_yes_at_the_confirmation_casts_and_does_not_opt_in(
    stack: SmsStack, redis: Redis
) -> None:
    voter = Voter(stack.phone(ANN))
    await voter.text("Hi")
    await voter.text(voter.code())
    await voter.text("STOP")
    await voter.text("1 2")
    assert "Vote cast" in await voter.text("YES")
    assert await redis.sismember(keys.opted_out("sms"), ANN)


@pytest.mark.parametrize("word", ["HELP", "help", "INFO"])
async def test_help_says_who_runs_it_how_to_vote_and_how_to_stop(
    stack: SmsStack, word: str
) -> None:
    voter = Voter(stack.phone(CARYS))
    reply = await voter.text(word)
    assert "Run by Riverside Party HQ" in reply
    assert "STOP" in reply
    assert "rank" in reply
    assert voter.segments <= 2


async def test_an_opted_out_voter_can_still_vote(stack: SmsStack, redis: Redis) -> None:
    voter = Voter(stack.phone(ANN))
    await voter.text("STOP")
    receipt = await vote_step_by_step(voter, ["3", "0"])
    assert "Vote cast" in receipt
    assert await ballot_count(redis, stack.core.election) == 1


async def test_two_supporters_voting_at_once(stack: SmsStack, redis: Redis) -> None:
    ann, bilal = Voter(stack.phone(ANN)), Voter(stack.phone(BILAL))
    receipts = await asyncio.gather(
        vote_step_by_step(ann, ["1", "2", "3", "4"]),
        vote_step_by_step(bilal, ["4", "3", "0"]),
    )
    assert all("Vote cast" in r for r in receipts)
    assert await rankings(redis, stack) == {"green,patel,okafor,byrne": 1, "byrne,okafor": 1}


async def test_one_phone_sending_two_messages_at_once(stack: SmsStack, redis: Redis) -> None:
    voter = Voter(stack.phone(ANN))
    await voter.text("Hi")
    await voter.text(voter.code())
    replies = await asyncio.gather(voter.text("2"), voter.text("3"))
    # Handled one after the other: both choices are kept, in some order.
    assert all("So far" in reply for reply in replies)
    raw = await redis.get(keys.conversation("sms", ANN))
    assert raw is not None and "patel" not in raw  # the ranking so far is sealed
    state = stack.core.router.store.open("sms", ANN, str(raw))
    assert sorted(state.ranking) == ["okafor", "patel"]


# --- texts that start on our side --------------------------------------------------


async def test_a_code_for_a_telegram_voter_goes_out_through_the_twilio_api(
    stack: SmsStack,
) -> None:
    replies = await stack.core.router.handle(
        InboundMessage(channel="telegram", address="200002", text="S1002", message_id="u1")
    )
    [sms] = await stack.twilio.wait_for(1)
    assert sms.to == BILAL
    assert re.search(r"\b\d{6}\b", sms.body) and is_gsm(sms.body)
    assert any("code" in r.text for r in replies)


async def test_a_code_to_an_opted_out_phone_is_reported_and_nothing_is_lost(
    stack: SmsStack, redis: Redis
) -> None:
    stack.twilio.opt_out(BILAL)
    # A shared phone number (a typed supporter number gets the same answer whatever happens).
    msg = InboundMessage(
        channel="telegram", address="200002", contact=BILAL, user_id="200002", message_id="u2"
    )
    replies = await stack.core.router.handle(msg)
    assert any("START" in r.text for r in replies)  # told how to get codes again
    assert await redis.sismember(keys.opted_out("sms"), BILAL)
    assert stack.twilio.messages == []
    # The conversation carries on: the voter is waiting for a code, not thrown out.
    assert await redis.get(keys.conversation("telegram", "200002")) is not None


async def test_a_failing_api_is_retried_and_the_code_still_arrives(stack: SmsStack) -> None:
    stack.twilio.fail_next(500)
    stack.twilio.fail_next(429)
    sender = stack.core.senders["sms"]
    sender.backoff = 0.001  # type: ignore[attr-defined]
    await stack.core.router.handle(
        InboundMessage(channel="telegram", address="200002", text="S1002", message_id="u3")
    )
    await stack.core.router.aclose()  # after a typed number, the code goes after the reply
    assert [a.status for a in stack.twilio.attempts] == [500, 429, 201]
    assert len(stack.twilio.messages) == 1


async def test_code_sms_take_their_turn_in_the_shared_sms_rate(redis: Redis) -> None:
    """Six people asking for a code at once from Telegram: the texts go at the SMS rate."""
    from tests.reminders_support import most_in_window

    async with sms_stack(redis, sms_rate=2.0) as stack:
        roll = await redis.hgetall(keys.phone_index(stack.core.election.id))
        phones = sorted(str(p) for p in roll)
        await asyncio.gather(
            *(
                stack.core.router.handle(
                    InboundMessage(
                        channel="telegram",
                        address=str(700 + i),
                        contact=phone,
                        user_id=str(700 + i),
                        message_id=f"u-rate-{i}",
                    )
                )
                for i, phone in enumerate(phones)
            )
        )
        sent = [m.at for m in stack.twilio.messages]
    assert len(sent) == len(phones) >= 5
    assert most_in_window(sent) <= 3  # two a second, and one more for the window's edges
