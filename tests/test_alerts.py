"""Alerts: a channel failing for a minute and Redis refusing writes reach the organisers
(audit trail, metric, Telegram), at most once a period."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from ballots import audit
from ballots.clock import ManualClock
from ballots.connection import client_from_url
from ballots.errors import StoreUnavailable
from bot.alerts import Alerts
from bot.messages import InboundMessage
from tests.factories import NOW, Outbox, harness, sample_election
from tests.faults.support import free_port
from tests.telegram_support import ANN, telegram_world

ORGANISER = "100001"  # tg:100001 in the sample election file


async def test_code_sms_failing_for_a_minute_tells_the_organisers(redis: Redis) -> None:
    sms, telegram = Outbox("sms", status="failed"), Outbox("telegram")
    h = await harness(redis, senders={"sms": sms, "telegram": telegram})
    chat = {"channel": "telegram", "address": "555", "user_id": "555"}
    await h.said("hi", **chat)
    # Bilal's code goes by SMS to the phone on the roll; Twilio fails it.
    await h.said("S1002", **chat)
    assert len(sms.sent) == 1
    assert [a for a, m in telegram.sent if m.kind == "alert"] == []  # not a minute yet
    h.clock.advance(61)  # past the code's cooldown too
    await h.said("S1002", **chat)
    assert len(sms.sent) == 2
    alerts = [m for a, m in telegram.sent if m.kind == "alert" and a == ORGANISER]
    assert len(alerts) == 1 and "every sms message has failed for 1 min" in alerts[0].text
    trail = [e.action for e in await audit.read(redis, h.core.election.id)]
    assert trail.count("alert: channel_failing_sms") == 1


async def test_telegram_replies_failing_for_a_minute_tell_the_organisers(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        world.api.fail("sendMessage", 500, chat_id=ANN.id, times=50)
        await world.deliver(world.updates.text(ANN, "/start"))
        world.clock.advance(61)
        await world.deliver(world.updates.text(ANN, "hello"))
        await world.api.wait_until(lambda: bool(world.api.messages(int(ORGANISER))))
        [alert] = world.api.messages(int(ORGANISER))
        assert "every telegram message has failed for 1 min" in alert["text"]


async def test_with_redis_down_an_alert_still_reaches_the_organisers_once(
    redis: Redis,
) -> None:
    election = await sample_election(redis)
    telegram = Outbox("telegram")
    dead = client_from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        alerts = Alerts(dead, ManualClock(NOW), election, {"telegram": telegram})
        assert await alerts.alert("redis_unavailable", "Redis cannot take writes")
        assert not await alerts.alert("redis_unavailable", "Redis cannot take writes")
    finally:
        await dead.aclose()
    assert [a for a, _ in telegram.sent] == [ORGANISER]


async def test_the_router_raises_the_redis_alert_when_a_message_cannot_be_handled(
    redis: Redis,
) -> None:
    telegram = Outbox("telegram")
    h = await harness(redis, senders={"telegram": telegram})
    dead = client_from_url(f"redis://127.0.0.1:{free_port()}/0")
    live, h.core.router.redis = h.core.router.redis, dead
    try:
        msg = InboundMessage("sms", "+447700900101", "hi", message_id="SM-down")
        with pytest.raises(StoreUnavailable):  # the channel answers 503
            await h.core.router.handle(msg)
        await h.core.router.drain()
    finally:
        h.core.router.redis = live
        await dead.aclose()
    [(organiser, alert)] = [(a, m) for a, m in telegram.sent if m.kind == "alert"]
    assert organiser == ORGANISER and "Redis cannot take writes" in alert.text
    trail = [e.action for e in await audit.read(redis, h.core.election.id)]
    assert "alert: redis_unavailable" in trail  # the alerts' own Redis was up here
