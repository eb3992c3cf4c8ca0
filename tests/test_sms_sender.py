"""Texts that start on our side: the real twilio async client against the stand-in API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from ballots import keys
from bot.messages import OutboundMessage
from bot.settings import Settings
from channels.sms_sender import TwilioSender, masked
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, OUR_NUMBER
from tests.factories import SECRET

TOKEN = "f" * 32
ANN = "+447700900101"
SERVICE = "MG" + "a" * 32


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioApiStandIn]:
    async with TwilioApiStandIn(ACCOUNT_SID, TOKEN) as api:
        yield api


class Sleeps:
    """Records the backoff delays instead of waiting them out: one message's own waits
    (``delays``) and the pauses for the whole channel (``paused``)."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.paused: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)

    async def pause(self, delay: float) -> None:
        self.paused.append(delay)


def config(twilio: TwilioApiStandIn, **overrides: str) -> Settings:
    values = {
        "secret_key": SECRET,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": TOKEN,
        "twilio_from": OUR_NUMBER,
        "twilio_api_base": twilio.base_url,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def sleeps() -> Sleeps:
    return Sleeps()


async def make_sender(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps, **overrides: str
) -> TwilioSender:
    return TwilioSender.from_settings(
        config(twilio, **overrides), redis, pause=sleeps.pause, sleep=sleeps
    )


async def test_sends_plain_gsm_text_from_the_number(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps
) -> None:
    sender = await make_sender(twilio, redis, sleeps)
    try:
        result = await sender.send(
            ANN, OutboundMessage("\u201cVote\u201d now \u2014 it\u2019s open \U0001f5f3")
        )
    finally:
        await sender.aclose()
    assert result.ok
    [sms] = twilio.messages
    assert result.platform_id == sms.sid
    assert (sms.to, sms.from_, sms.messaging_service_sid) == (ANN, OUR_NUMBER, None)
    assert sms.body == '"Vote" now - it\'s open'
    assert sms.segments == 1
    assert sleeps.delays == []


async def test_sends_through_a_messaging_service(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps
) -> None:
    sender = await make_sender(twilio, redis, sleeps, twilio_from=SERVICE)
    try:
        assert (await sender.send(ANN, OutboundMessage("Hello"))).ok
    finally:
        await sender.aclose()
    [sms] = twilio.messages
    assert (sms.from_, sms.messaging_service_sid) == (None, SERVICE)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_retries_429_and_twilios_5xx_with_growing_backoff(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps, status: int
) -> None:
    twilio.fail_next(status, times=3)
    sender = await make_sender(twilio, redis, sleeps)
    try:
        result = await sender.send(ANN, OutboundMessage("Reminder"))
    finally:
        await sender.aclose()
    assert result.ok
    assert [a.status for a in twilio.attempts] == [status, status, status, 201]
    assert len(twilio.messages) == 1
    # Only a 429 pauses the channel; Twilio's 5xx is this message's own retry.
    waits = sleeps.paused if status == 429 else sleeps.delays
    assert len(waits) == 3
    assert (sleeps.delays if status == 429 else sleeps.paused) == []
    # Full jitter within a doubling ceiling: each wait lies in [ceiling/2, ceiling].
    for attempt, delay in enumerate(waits, 1):
        ceiling = 0.5 * 2 ** (attempt - 1)
        assert ceiling / 2 <= delay <= ceiling


async def test_a_held_answer_is_in_doubt_and_not_sent_again(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps
) -> None:
    twilio.hold_next()
    sender = TwilioSender.from_settings(
        config(twilio), redis, pause=sleeps.pause, sleep=sleeps, timeout=0.3
    )
    try:
        result = await sender.send(ANN, OutboundMessage("Reminder"))
    finally:
        await sender.aclose()
    assert result.status == "in_doubt"
    assert not result.ok
    # Twilio took it; sending again would have texted the voter twice.
    assert len(twilio.messages) == 1
    assert len(twilio.attempts) == 1
    assert sleeps.delays == sleeps.paused == []


async def test_a_bare_5xx_from_a_proxy_is_in_doubt(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps
) -> None:
    twilio.gateway_error_next(502)
    sender = await make_sender(twilio, redis, sleeps)
    try:
        result = await sender.send(ANN, OutboundMessage("Reminder"))
    finally:
        await sender.aclose()
    assert result.status == "in_doubt"
    assert "502" in result.detail
    assert len(twilio.attempts) == 1
    assert sleeps.delays == sleeps.paused == []


async def test_gives_up_after_the_last_attempt(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps
) -> None:
    twilio.fail_next(500, times=10)
    sender = await make_sender(twilio, redis, sleeps)
    try:
        result = await sender.send(ANN, OutboundMessage("Reminder"))
    finally:
        await sender.aclose()
    assert result.status == "failed"
    assert "500" in result.detail
    assert len(twilio.attempts) == sender.attempts == 5
    assert twilio.messages == []


async def test_21610_marks_the_number_opted_out_without_retrying(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps
) -> None:
    twilio.opt_out(ANN)
    sender = await make_sender(twilio, redis, sleeps)
    try:
        result = await sender.send(ANN, OutboundMessage("Reminder"))
    finally:
        await sender.aclose()
    assert result.status == "opted_out"
    assert await redis.sismember(keys.opted_out("sms"), ANN)
    assert len(twilio.attempts) == 1
    assert sleeps.delays == []


async def test_a_number_that_cannot_take_sms_is_marked_unreachable(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps
) -> None:
    twilio.unreachable(ANN, 21614)
    sender = await make_sender(twilio, redis, sleeps)
    try:
        result = await sender.send(ANN, OutboundMessage("Reminder"))
    finally:
        await sender.aclose()
    assert result.status == "unreachable"
    assert "21614" in result.detail
    assert await redis.sismember(keys.unreachable("sms"), ANN)
    assert not await redis.sismember(keys.opted_out("sms"), ANN)


async def test_other_errors_fail_at_once_with_the_reason(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    sender = await make_sender(twilio, redis, sleeps, twilio_auth_token="0" * 32)
    try:
        result = await sender.send(ANN, OutboundMessage("Your code is 123456"))
    finally:
        await sender.aclose()
    assert result.status == "failed"
    assert "20003" in result.detail
    assert len(twilio.attempts) == 1
    assert "20003" in caplog.text
    assert "123456" not in caplog.text  # logs carry no code
    assert ANN not in caplog.text


async def test_an_unreachable_api_is_retried_then_reported(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps
) -> None:
    sender = await make_sender(twilio, redis, sleeps)
    await twilio.close()
    try:
        result = await sender.send(ANN, OutboundMessage("Reminder"))
    finally:
        await sender.aclose()
    assert result.status == "failed"
    assert len(sleeps.delays) == sender.attempts - 1


async def test_nothing_left_to_send_is_not_sent(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps
) -> None:
    sender = await make_sender(twilio, redis, sleeps)
    try:
        result = await sender.send(ANN, OutboundMessage("\U0001f600\U0001f600"))
    finally:
        await sender.aclose()
    assert result.status == "failed"
    assert twilio.attempts == []


async def test_aclose_closes_the_http_session(
    twilio: TwilioApiStandIn, redis: Redis, sleeps: Sleeps
) -> None:
    sender = await make_sender(twilio, redis, sleeps)
    session = sender.client.http_client.session
    await sender.aclose()
    assert session.closed


def test_masked_numbers_keep_no_dialable_number() -> None:
    assert masked(ANN) == "+447******101"
