"""Reminders through the real twilio and python-telegram-bot clients, against the stand-ins.

Rates are checked on the stand-ins' own timestamps: the most messages that
arrive in any one-second window (one more than the rate is allowed for the
window's edges and for loopback jitter).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from ballots.connection import client_from_url
from ballots.election import Election
from bot.ratelimit import limiter_for
from bot.reminders import Reminders, Worker, plan
from bot.settings import Settings
from channels.rules import TEXT_RULES
from channels.senders import opened_senders
from channels.standins.telegram_api import TelegramAPI
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID
from tests.factories import settings
from tests.reminders_support import chat, clock, election_with_roll, most_in_window, phone
from tests.sms_support import AUTH_TOKEN, twilio_settings

TEXT = "Hi {name}, {days_left} days left to vote."


async def start_job(redis: Redis, election: Election) -> str:
    ready = await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock())
    return await Reminders(redis, clock()).create(election, ready, "cli:test")


@asynccontextmanager
async def worker_for(
    config: Settings, redis: Redis, channels: set[str], concurrency: int = 4
) -> AsyncIterator[Worker]:
    limiter = limiter_for(config, redis)
    async with opened_senders(
        config, redis, limiter, wanted=channels, connections=128, pace_sms=False
    ) as senders:
        yield Worker(
            redis,
            senders,
            limiter,
            TEXT_RULES,
            concurrency=dict.fromkeys(channels, concurrency),
            heartbeat=1.0,
        )


async def test_sms_rate_is_kept_by_two_workers_together(redis: Redis, redis_url: str) -> None:
    election = await election_with_roll(redis, 60)
    job = await start_job(redis, election)
    other = client_from_url(redis_url)
    try:
        async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
            config = twilio_settings(twilio, sms_rate=20.0)
            async with (
                worker_for(config, redis, {"sms"}) as a,
                worker_for(config, other, {"sms"}) as b,
            ):
                await asyncio.gather(a.run(job), b.run(job))
    finally:
        await other.aclose()
    assert sorted(m.to for m in twilio.messages) == sorted(phone(i) for i in range(60))
    assert most_in_window([m.at for m in twilio.messages]) <= 21
    assert twilio.messages[0].body.startswith("Hi Supporter ")


async def test_sms_429_pauses_everyone_then_slows_down(redis: Redis) -> None:
    election = await election_with_roll(redis, 40)
    job = await start_job(redis, election)
    async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        config = twilio_settings(twilio, sms_rate=20.0)

        async def throttle_after_ten() -> None:
            await twilio.wait_for(10)
            twilio.fail_next(429)

        async with worker_for(config, redis, {"sms"}, concurrency=6) as worker:
            _, final = await asyncio.gather(throttle_after_ten(), worker.run(job))
    assert final.outcome("sent") == 40
    assert Counter(m.to for m in twilio.messages).most_common(1)[0][1] == 1
    refused = [a.at for a in twilio.attempts if a.status == 429]
    assert len(refused) == 1
    t = refused[0]
    # TwilioSender's first backoff is at least 0.25 s; nobody may send in it
    # (a request already on the wire when the 429 came back may still land).
    assert not [a for a in twilio.attempts if t + 0.05 < a.at < t + 0.25]
    # Afterwards the rate is halved (10/s) for a while.
    after = [m.at for m in twilio.messages if m.at > t]
    assert most_in_window(after) <= 11


async def test_telegram_rate_and_one_per_chat(redis: Redis) -> None:
    election = await election_with_roll(redis, 30, telegram=lambda i: True)
    job = await start_job(redis, election)
    async with TelegramAPI() as api:
        config = settings(
            telegram_bot_token=api.token,
            telegram_api_base=api.url,
            telegram_rate=15.0,
        )
        async with worker_for(config, redis, {"telegram"}) as worker:
            final = await worker.run(job)
            sends = api.calls_to("sendMessage")
            assert final.outcome("sent") == 30
            assert sorted(str(c.params["chat_id"]) for c in sends) == sorted(
                chat(i) for i in range(30)
            )
            assert most_in_window([c.at for c in sends]) <= 16

            # One chat, three messages: at most one a second reaches it.
            from bot.messages import OutboundMessage

            sender = worker.senders["telegram"]
            for _ in range(3):
                await worker.limiter.wait_turn("telegram", chat(0))
                await sender.send(chat(0), OutboundMessage("again"))
            to_one = [
                c.at for c in api.calls_to("sendMessage") if str(c.params["chat_id"]) == chat(0)
            ]
            assert len(to_one) == 4
            assert most_in_window(to_one[1:], 0.9) == 1


async def test_telegram_retry_after_pauses_everyone(redis: Redis) -> None:
    election = await election_with_roll(redis, 30, telegram=lambda i: True)
    job = await start_job(redis, election)
    async with TelegramAPI() as api:
        config = settings(
            telegram_bot_token=api.token, telegram_api_base=api.url, telegram_rate=20.0
        )

        finished = 0

        def flood_after_eight() -> None:
            nonlocal finished
            finished += 1
            if finished == 8:
                api.fail("sendMessage", 429, retry_after=1)

        async with worker_for(config, redis, {"telegram"}, concurrency=5) as worker:
            worker.on_progress = flood_after_eight
            final = await worker.run(job)
    assert final.outcome("sent") == 30
    calls = api.calls_to("sendMessage")
    refused = [c.at for c in calls if c.status == 429]
    assert len(refused) == 1
    t = refused[0]
    assert not [c for c in calls if t + 0.05 < c.at < t + 0.95]
    delivered = Counter(str(c.params["chat_id"]) for c in calls if c.status == 200)
    assert sorted(delivered) == sorted(chat(i) for i in range(30))
    assert delivered.most_common(1)[0][1] == 1


async def test_a_chat_that_blocked_the_bot_gets_its_reminder_by_sms(redis: Redis) -> None:
    election = await election_with_roll(redis, 6, telegram=lambda i: True)
    job = await start_job(redis, election)
    async with TelegramAPI() as api, TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        # Blocked after the job started: the plan still sends them by Telegram.
        api.block(int(chat(1)))
        api.block(int(chat(4)))
        config = twilio_settings(twilio, telegram_bot_token=api.token, telegram_api_base=api.url)
        async with worker_for(config, redis, {"sms", "telegram"}) as worker:
            final = await worker.run(job)
    delivered = sorted(
        str(c.params["chat_id"]) for c in api.calls_to("sendMessage") if c.status == 200
    )
    assert delivered == [chat(i) for i in (0, 2, 3, 5)]
    assert sorted(m.to for m in twilio.messages) == [phone(1), phone(4)]
    assert twilio.messages[0].body.startswith("Hi Supporter ")
    assert final.status == "finished"
    assert (final.outcome("sent"), final.outcome("sent_by_sms")) == (4, 2)
    assert final.outcome("unreachable") == 0
    assert "2 sent by sms" in final.summary()
