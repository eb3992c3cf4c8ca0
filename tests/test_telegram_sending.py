"""Sending within Telegram's limits: 429 waited out and retried, 403 marked unreachable."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis
from telegram.error import RetryAfter

from ballots import keys
from bot.messages import Button, OutboundMessage
from bot.ratelimit import limiter_for
from bot.settings import Settings
from channels.rules import TEXT_RULES
from channels.senders import opened_senders
from channels.standins.telegram_api import TelegramAPI
from channels.telegram.sending import TelegramSender, api_urls
from channels.telegram.throttle import Throttle
from tests.factories import settings
from tests.telegram_support import ANN, BILAL, telegram_world

UNREACHABLE = keys.unreachable("telegram")


@asynccontextmanager
async def bot_sender(config: Settings, redis: Redis) -> AsyncIterator[TelegramSender]:
    """The Telegram sender ``remind`` builds, opened."""
    limiter = limiter_for(config, redis)
    async with opened_senders(config, redis, limiter, wanted=["telegram"]) as senders:
        sender = senders["telegram"]
        assert isinstance(sender, TelegramSender)
        yield sender


async def test_a_429_on_a_reply_is_waited_out_and_retried(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        world.api.fail("sendMessage", 429, retry_after=1, chat_id=ANN.id)
        greeting = await world.say(ANN, "hello")
        assert "voting code" in greeting["text"]
        calls = world.api.calls_to("sendMessage")
        assert [c.status for c in calls] == [429, 200]
        assert calls[0].params == calls[1].params


async def test_a_429_on_an_edit_is_retried_too(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        await world.say(ANN, await world.voting_code())
        world.api.fail("editMessageText", 429, retry_after=1)
        after = await world.tap(ANN, "Alex Green")
        assert "So far: Alex Green" in after["text"]
        assert [c.status for c in world.api.calls_to("editMessageText")] == [429, 200]


async def test_a_voter_who_blocked_the_bot_is_marked_unreachable(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        world.api.block(ANN.id)
        await world.deliver(world.updates.text(ANN, "hello"))
        assert [c.status for c in world.api.calls_to("sendMessage")] == [403]
        assert await redis.sismember(UNREACHABLE, str(ANN.id))
        # A reminder is not tried again.
        reminder = OutboundMessage("Voting closes tomorrow.", kind="reminder")
        result = await world.channel.sender.send(str(ANN.id), reminder)
        assert result.status == "unreachable"
        assert len(world.api.calls_to("sendMessage")) == 1
        # Writing to the bot again means they unblocked it.
        world.api.blocked.clear()
        await world.say(ANN, "hello")
        assert not await redis.sismember(UNREACHABLE, str(ANN.id))
        assert (await world.channel.sender.send(str(ANN.id), reminder)).ok


async def test_the_sender_waits_out_429_and_never_retries_403(redis: Redis) -> None:
    async with TelegramAPI() as api:
        config = settings(telegram_bot_token=api.token, telegram_api_base=api.url)
        async with bot_sender(config, redis) as sender:
            api.fail("sendMessage", 429, retry_after=1, times=2)
            message = OutboundMessage(
                "Voting is open.", kind="reminder", buttons=((Button("Vote", "t:0:start"),),)
            )
            result = await sender.send(str(ANN.id), message)
            assert result.ok and result.platform_id == "1"
            assert [c.status for c in api.calls_to("sendMessage")] == [429, 429, 200]
            data = api.last_message(ANN.id)["reply_markup"]["inline_keyboard"][0][0]
            assert sender.signer.verify(str(ANN.id), data["callback_data"]) == "t:0:start"

            api.block(BILAL.id)
            result = await sender.send(str(BILAL.id), message)
            assert result.status == "unreachable"
            assert await redis.sismember(UNREACHABLE, str(BILAL.id))
            assert [c.status for c in api.calls_to("sendMessage")][-1:] == [403]
            assert len(api.calls_to("sendMessage")) == 4

            api.fail("sendMessage", 400, description="Bad Request: chat not found")
            assert (await sender.send("777", message)).status == "unreachable"
            # A 5xx may come after Telegram delivered it: in doubt, and not sent again.
            api.fail("sendMessage", 500, description="Internal Server Error")
            assert (await sender.send("778", message)).status == "in_doubt"
            assert [c.status for c in api.calls_to("sendMessage")][-1:] == [500]
            assert (await sender.send("not-a-chat", message)).status == "failed"


async def test_the_sender_gives_up_when_429s_never_end(redis: Redis) -> None:
    async with TelegramAPI() as api:
        config = settings(telegram_bot_token=api.token, telegram_api_base=api.url)
        async with bot_sender(config, redis) as sender:
            throttle = sender.bot.rate_limiter
            assert isinstance(throttle, Throttle)
            throttle.max_retries = 1
            api.fail("sendMessage", 429, retry_after=1, times=5)
            result = await sender.send(str(ANN.id), OutboundMessage("Hello"))
            assert result.status == "failed"
            assert len(api.calls_to("sendMessage")) == 2


def test_api_base_becomes_ptbs_base_url() -> None:
    assert api_urls(None) == ("https://api.telegram.org/bot", "https://api.telegram.org/file/bot")
    assert api_urls("http://127.0.0.1:8081/") == (
        "http://127.0.0.1:8081/bot",
        "http://127.0.0.1:8081/file/bot",
    )
    assert api_urls("https://api.telegram.org/bot")[0] == "https://api.telegram.org/bot"


# --- the throttle, on a clock that only moves when it sleeps --------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


Log = list[tuple[float, Any]]
Call = Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]]


def make_throttle(t: FakeTime, rate: float = 25.0, chat_rate: float = 1.0) -> Throttle:
    return Throttle(rate, chat_rate, chat_burst=3, sleep=t.sleep, monotonic=t.monotonic)


def recorder(t: FakeTime, log: Log) -> Call:
    async def call(chat: Any) -> bool | dict[str, Any] | list[dict[str, Any]]:
        log.append((t.now, chat))
        return True

    return call


async def send(
    throttle: Throttle,
    call: Call,
    chat: Any,
    endpoint: str = "sendMessage",
) -> None:
    await throttle.process_request(call, (chat,), {}, endpoint, {"chat_id": chat}, None)


async def test_one_chat_gets_a_short_burst_then_one_a_second() -> None:
    t = FakeTime()
    throttle, log = make_throttle(t), Log()
    call = recorder(t, log)
    for _ in range(6):
        await send(throttle, call, 42)
    gaps = [round(b[0] - a[0], 6) for a, b in itertools.pairwise(log)]
    assert gaps == [0.04, 0.04, 0.92, 1.0, 1.0]


async def test_many_chats_share_the_overall_rate() -> None:
    t = FakeTime()
    throttle, log = make_throttle(t, rate=10.0), Log()
    call = recorder(t, log)
    for chat in range(20):
        await send(throttle, call, chat)
    assert round(log[-1][0] - log[0][0], 6) == 1.9  # 20 messages at 10 a second


async def test_a_group_gets_a_third_of_a_chats_rate() -> None:
    t = FakeTime()
    throttle, log = make_throttle(t), Log()
    call = recorder(t, log)
    for _ in range(3):
        await send(throttle, call, -100)
    assert [round(s - log[0][0], 6) for s, _ in log] == [0.0, 3.0, 6.0]


async def test_answers_to_button_taps_are_not_held_back() -> None:
    t = FakeTime()
    throttle, log = make_throttle(t), Log()
    call = recorder(t, log)
    for _ in range(5):
        await send(throttle, call, 42, endpoint="answerCallbackQuery")
    assert {s for s, _ in log} == {1000.0}


async def test_a_429_pauses_every_call_for_retry_after() -> None:
    t = FakeTime()
    throttle = make_throttle(t)
    attempts: list[float] = []

    async def flaky(chat: Any) -> bool | dict[str, Any] | list[dict[str, Any]]:
        attempts.append(t.now)
        if len(attempts) == 1:
            raise RetryAfter(7)
        return True

    await send(throttle, flaky, 42)
    assert attempts == [1000.0, 1007.0]
    log = Log()
    await send(throttle, recorder(t, log), 43)
    assert log[0][0] >= 1007.0


async def test_the_throttle_gives_up_after_max_retries() -> None:
    t = FakeTime()
    throttle = make_throttle(t)
    throttle.max_retries = 2

    async def always(chat: Any) -> bool | dict[str, Any] | list[dict[str, Any]]:
        raise RetryAfter(1)

    with pytest.raises(RetryAfter):
        await send(throttle, always, 42)


async def test_bots_in_two_processes_share_the_overall_rate(redis: Redis) -> None:
    """Each serve process has its own bot; together they keep OPENPRIMARY_TELEGRAM_RATE."""
    from bot.ratelimit import limiter_for
    from channels.standins.telegram_api import TelegramAPI
    from channels.telegram.sending import build_bot
    from tests.factories import settings as make_settings
    from tests.reminders_support import most_in_window

    async with TelegramAPI() as api:
        config = make_settings(
            telegram_bot_token=api.token, telegram_api_base=api.url, telegram_rate=10.0
        )
        first = build_bot(config, shared=limiter_for(config, redis))
        second = build_bot(config, shared=limiter_for(config, redis))
        async with first, second:
            await asyncio.gather(
                *(
                    bot.send_message(chat_id=1000 + i, text="reply")
                    for i, bot in enumerate([first, second] * 15)
                )
            )
        sends = [c.at for c in api.calls_to("sendMessage")]
    assert len(sends) == 30
    # Alone, each bot's own throttle would allow 10 a second: 20 together.
    assert most_in_window(sends) <= 11


async def test_a_reminder_through_the_serve_bot_takes_one_turn_a_message(redis: Redis) -> None:
    """The serve bot already takes a shared turn per message: the worker must not take another."""
    from bot.ratelimit import RateLimiter, limiter_for
    from bot.reminders import Reminders, Worker, plan
    from channels.standins.telegram_api import TelegramAPI
    from channels.telegram.sending import TelegramSender, build_bot
    from channels.telegram.signing import ButtonSigner
    from tests.factories import settings as make_settings
    from tests.reminders_support import clock, election_with_roll

    class Counting(RateLimiter):
        turns = 0

        async def wait_turn(self, channel: str, address: str | None = None) -> None:
            Counting.turns += 1
            await super().wait_turn(channel, address)

    election = await election_with_roll(redis, 8, telegram=lambda i: True)
    job = await Reminders(redis, clock()).create(
        election, await plan(redis, election, "Hi {name}", rules=TEXT_RULES, clock=clock()), "t"
    )
    async with TelegramAPI() as api:
        config = make_settings(
            telegram_bot_token=api.token,
            telegram_api_base=api.url,
            telegram_rate=200.0,
            telegram_chat_rate=50.0,
        )
        base = limiter_for(config, redis)
        limiter = Counting(redis, base.rates, chat_rates=base.chat_rates)
        bot = build_bot(config, shared=limiter)
        async with bot:
            sender = TelegramSender(bot, redis, ButtonSigner(config.secret_key))
            assert sender.paces_itself
            final = await Worker(redis, {"telegram": sender}, limiter, TEXT_RULES).run(job)
    assert final.outcome("sent") == 8
    assert Counting.turns == 8


async def test_a_429_pauses_a_call_that_starts_during_the_wait() -> None:
    """Another chat's call that starts while the first waits out retry_after waits too."""
    import time

    from telegram.error import RetryAfter

    from channels.telegram.throttle import Throttle

    throttle = Throttle(25.0, 1.0, chat_burst=3)
    refused_at: list[float] = []
    other: list[float] = []
    started: list[asyncio.Task[Any]] = []

    async def record(chat: Any) -> bool:
        other.append(time.monotonic())
        return True

    async def flaky(chat: Any) -> bool:
        if not refused_at:
            refused_at.append(time.monotonic())
            started.append(
                asyncio.create_task(
                    throttle.process_request(
                        record, (43,), {}, "sendMessage", {"chat_id": 43}, None
                    )
                )
            )
            raise RetryAfter(1)
        return True

    await throttle.process_request(flaky, (42,), {}, "sendMessage", {"chat_id": 42}, None)
    await started[0]
    assert other[0] - refused_at[0] >= 0.95
