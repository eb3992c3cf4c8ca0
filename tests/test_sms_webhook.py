"""The Twilio webhook: signatures, repeated deliveries, odd messages, and the other routes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession, web
from redis.asyncio import Redis
from twilio.request_validator import RequestValidator

from ballots.connection import client_from_url, is_cluster
from bot.messages import InboundMessage, OutboundMessage
from bot.metrics import REGISTRY
from channels.appkeys import TELEGRAM_WEBHOOK
from channels.gsm import is_gsm, segments
from channels.server import make_app
from channels.sms import SmsWebhook, sms_bodies, sms_text, to_e164
from channels.standins.twilio_phone import TwilioPhone, inbound_form, message_sid, sign
from tests.factories import Outbox, settings
from tests.sms_support import ANN, PUBLIC_URL, STRANGER, SmsStack, sms_stack, start_app

# Twilio's published example (docs: "Secure your webhooks"; the libraries' tests).
VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


@pytest.fixture
async def stack(redis: Redis) -> AsyncIterator[SmsStack]:
    async with sms_stack(redis) as running:
        yield running


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    client = client_from_url(redis_url, decode_responses=False)
    yield client
    await client.aclose()


async def snapshot(raw: Redis) -> dict[bytes | str, object]:
    """Every key and its serialised value: to show that nothing changed."""
    return {key: await raw.dump(key) for key in sorted(await raw.keys("*"))}


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- signatures --------------------------------------------------------------------


def test_twilios_published_signature_vector() -> None:
    validator = RequestValidator(VECTOR_TOKEN)
    assert validator.compute_signature(VECTOR_URL, VECTOR_PARAMS) == VECTOR_SIGNATURE
    assert validator.validate(VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE)


async def test_the_webhook_accepts_the_published_vector_and_nothing_else() -> None:
    """Served at the vector's URL, our handler takes its signature, and refuses it
    once any parameter is changed."""
    seen: list[InboundMessage] = []

    async def route(msg: InboundMessage) -> list[OutboundMessage]:
        seen.append(msg)
        return [OutboundMessage("ok")]

    app = web.Application()
    app.router.add_post(
        "/myapp.php",
        SmsWebhook(public_url="https://mycompany.com", auth_token=VECTOR_TOKEN, route=route).handle,
    )
    runner, url = await start_app(app)
    try:
        async with ClientSession() as session:
            target = url + "/myapp.php?foo=1&bar=2"
            headers = {"X-Twilio-Signature": VECTOR_SIGNATURE}
            async with session.post(target, data=VECTOR_PARAMS, headers=headers) as resp:
                assert resp.status == 200
            forged = {**VECTOR_PARAMS, "Digits": "1235"}
            async with session.post(target, data=forged, headers=headers) as resp:
                assert resp.status == 403
            async with session.post(
                url + "/myapp.php?foo=1&bar=3", data=VECTOR_PARAMS, headers=headers
            ) as resp:
                assert resp.status == 403
    finally:
        await runner.cleanup()
    # A voice-call example has no MessageSid: authenticated, but nothing to route.
    assert seen == []


@pytest.mark.parametrize("forgery", ["missing", "bad", "other_url", "arrival_url", "json"])
async def test_forged_requests_get_403_and_change_nothing(
    stack: SmsStack, raw: Redis, forgery: str
) -> None:
    phone = stack.phone(ANN)
    before = await snapshot(raw)
    in_before = metric("openprimary_messages_in_total", channel="sms")
    form = inbound_form(ANN, "Hi")
    if forgery == "missing":
        answer = await phone.post(form, unsigned=True)
    elif forgery == "bad":
        answer = await phone.post(form, signature=sign("not-the-token", phone.signed_url, form))
    elif forgery == "other_url":
        answer = await phone.post(form, sign_for="https://evil.example.org/sms/twilio")
    elif forgery == "arrival_url":
        # Signed for the URL the request arrived on, not the one Twilio was given.
        answer = await phone.post(form, sign_for=stack.url + "/sms/twilio")
    else:
        headers = {"X-Twilio-Signature": sign("x", phone.signed_url, {})}
        async with stack.session.post(
            stack.url + "/sms/twilio", json=form, headers=headers
        ) as resp:
            answer_status = resp.status
        assert answer_status == 403
        answer = None
    if answer is not None:
        assert answer.status == 403
    assert await snapshot(raw) == before
    assert metric("openprimary_messages_in_total", channel="sms") == in_before
    assert stack.twilio.attempts == []


async def test_a_query_string_in_the_configured_url_is_part_of_what_is_signed(
    stack: SmsStack,
) -> None:
    phone = stack.phone(ANN)
    phone.path = "/sms/twilio?region=uk"
    assert (await phone.post(inbound_form(ANN, "HELP"))).status == 200
    form = inbound_form(ANN, "HELP")
    answer = await phone.post(form, sign_for=PUBLIC_URL + "/sms/twilio")
    assert answer.status == 403


# --- deliveries ----------------------------------------------------------------------


async def test_the_same_message_sid_three_times_is_handled_once(
    stack: SmsStack, raw: Redis
) -> None:
    phone = stack.phone(ANN)
    sid = message_sid()
    first = await phone.text("Hi", sid=sid)
    assert len(first) == 1 and re.search(r"\b\d{6}\b", first[0])
    after_first = await snapshot(raw)
    dupes = metric("openprimary_duplicate_deliveries_total", channel="sms")
    # Twilio retries when it did not get the answer: it gets the same answer again.
    assert await phone.text("Hi", sid=sid) == first
    assert await phone.text("Hi", sid=sid) == first
    assert await snapshot(raw) == after_first
    assert metric("openprimary_duplicate_deliveries_total", channel="sms") == dupes + 2


async def test_1600_characters_of_emoji_get_a_short_plain_reply(stack: SmsStack) -> None:
    phone = stack.phone(STRANGER)
    errors = metric("openprimary_errors_total", where="router")
    replies = await phone.text("\U0001f600" * 1600)
    assert replies and all(is_gsm(body) for body in replies)
    assert sum(segments(body) for body in replies) <= 2
    # And again in the middle of a vote.
    ann = stack.phone(ANN)
    code = re.search(r"\b(\d{6})\b", (await ann.text("Hi"))[0])
    assert code is not None
    await ann.text(code.group(1))
    replies = await ann.text("\U0001f5f3\ufe0f" * 800)
    assert replies and all(is_gsm(body) for body in replies)
    assert sum(segments(body) for body in replies) <= 2
    assert metric("openprimary_errors_total", where="router") == errors


async def test_a_sender_that_is_not_a_phone_number_gets_no_reply(stack: SmsStack) -> None:
    phone = stack.phone("CARRIER")
    answer = await phone.post(inbound_form("CARRIER", "Hi"))
    assert answer.status == 200 and answer.bodies == []


async def test_local_numbers_are_normalised_to_e164() -> None:
    assert to_e164("+447700900101") == "+447700900101"
    assert to_e164("07700 900101") == "+447700900101"
    assert to_e164("00447700900101") == "+447700900101"
    assert to_e164("Vodafone") is None


def test_replies_share_an_sms_when_that_costs_no_more() -> None:
    short = [OutboundMessage("One."), OutboundMessage("Two.")]
    assert sms_bodies(short) == ["One.\n\nTwo."]
    # 2 segments either way: one SMS, which cannot arrive out of order.
    two = [OutboundMessage("a" * 150), OutboundMessage("b" * 150)]
    assert sms_bodies(two) == ["a" * 150 + "\n\n" + "b" * 150]
    # Together they would take 3 segments: kept apart.
    full = [OutboundMessage("a" * 160), OutboundMessage("b" * 160)]
    assert sms_bodies(full) == ["a" * 160, "b" * 160]
    assert sms_bodies([OutboundMessage("\u201cQuoted\u201d \U0001f44d")]) == ['"Quoted"']
    assert sms_bodies([OutboundMessage("\U0001f44d")]) == []


async def texted_late(replies: list[OutboundMessage]) -> list[tuple[str, OutboundMessage]]:
    """What the webhook texts Ann when her message's ``replies`` take longer than it waits:
    it answers Twilio with nothing, then sends them through its SMS sender."""
    release = asyncio.Event()
    outbox = Outbox("sms")

    async def slow_route(msg: InboundMessage) -> list[OutboundMessage]:
        await release.wait()
        return replies

    webhook = SmsWebhook(
        public_url=PUBLIC_URL, auth_token="t", route=slow_route, sender=outbox, reply_within=0.01
    )
    app = web.Application()
    app.router.add_post("/sms/twilio", webhook.handle)
    runner, url = await start_app(app)
    try:
        async with ClientSession() as session:
            phone = TwilioPhone(session, url, public_url=PUBLIC_URL, auth_token="t", number=ANN)
            assert await phone.text("Hi") == []
        release.set()
        await webhook.aclose()
    finally:
        await runner.cleanup()
    return outbox.sent


async def test_a_slow_reply_is_texted_when_ready() -> None:
    """Twilio waits 15 s at most: past the limit the webhook answers empty and the
    replies go by the REST API once they are ready."""
    sent = await texted_late([OutboundMessage("Done \u2014 at last")])
    assert [(a, m.text) for a, m in sent] == [(ANN, "Done - at last")]


async def test_a_slow_reply_in_a_faithful_language_keeps_its_letters() -> None:
    """A reply texted late goes as the TwiML answer would have: Urdu stays Urdu."""
    urdu = "ووٹ ڈال دیا گیا، شکریہ!"
    sent = await texted_late([OutboundMessage(urdu, faithful=True, language="ur")])
    assert [(a, sms_text(m)) for a, m in sent] == [(ANN, urdu)]


async def test_a_slow_reply_without_an_sms_sender_is_left_for_twilios_retry() -> None:
    """SMS-only (no REST credentials): never a silent 200; a 503 brings Twilio back for it."""
    release = asyncio.Event()
    calls: list[str] = []

    async def slow_route(msg: InboundMessage) -> list[OutboundMessage]:
        calls.append(msg.message_id or "")
        await release.wait()
        return [OutboundMessage("Your ballot: ...")]

    webhook = SmsWebhook(public_url=PUBLIC_URL, auth_token="t", route=slow_route, reply_within=0.01)
    app = web.Application()
    app.router.add_post("/sms/twilio", webhook.handle)
    runner, url = await start_app(app)
    try:
        async with ClientSession() as session:
            phone = TwilioPhone(session, url, public_url=PUBLIC_URL, auth_token="t", number=ANN)
            answer = await phone.post(inbound_form(ANN, "2 4 1"))
            assert answer.status == 503
        # The message is still being handled, not dropped, and finishes in the background.
        assert len(calls) == 1
        release.set()
        await webhook.aclose()
    finally:
        await runner.cleanup()


async def test_while_redis_refuses_writes_twilio_is_told_to_come_back(
    stack: SmsStack, redis: Redis
) -> None:
    """503, not 200 "Sorry": Twilio's retry or fallback URL gets the message handled."""
    phone = stack.phone(ANN)
    before: dict[str, str] = await redis.config_get("maxmemory*")  # type: ignore[assignment]
    every: dict[str, Any] = {"target_nodes": "all"} if is_cluster(redis) else {}
    sid = message_sid()
    try:
        await redis.config_set("maxmemory-policy", "noeviction", **every)
        await redis.config_set("maxmemory", "1", **every)
        answer = await phone.post(inbound_form(ANN, "Hi", sid=sid))
        assert answer.status == 503
    finally:
        await redis.config_set("maxmemory", before["maxmemory"], **every)
        await redis.config_set("maxmemory-policy", before["maxmemory-policy"], **every)
    # Twilio's retry of the same message, once Redis takes writes again, is handled.
    [code_sms] = await phone.text("Hi", sid=sid)
    assert re.search(r"\b\d{6}\b", code_sms)


# --- the other routes ----------------------------------------------------------------


async def test_healthz_checks_redis(stack: SmsStack) -> None:
    async with stack.session.get(stack.url + "/healthz") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "ok"


async def test_healthz_is_503_when_redis_is_down(stack: SmsStack) -> None:
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    core = stack.core.deployment
    assert core is not None
    up = core.redis
    try:
        core.redis = down
        async with stack.session.get(stack.url + "/healthz") as resp:
            assert resp.status == 503
            assert (await resp.json())["status"] == "unavailable"
    finally:
        core.redis = up
        await down.aclose()


async def test_healthz_is_503_when_redis_answers_but_refuses_writes(
    stack: SmsStack, redis: Redis
) -> None:
    """Out of memory: PING still answers, but no ballot could be cast, so not healthy."""
    before: dict[str, str] = await redis.config_get("maxmemory*")  # type: ignore[assignment]
    every: dict[str, Any] = {"target_nodes": "all"} if is_cluster(redis) else {}
    try:
        await redis.config_set("maxmemory-policy", "noeviction", **every)
        await redis.config_set("maxmemory", "1", **every)
        assert await redis.ping()
        async with stack.session.get(stack.url + "/healthz") as resp:
            assert resp.status == 503
            body = await resp.json()
            assert (body["redis"], body["reason"]) == ("refuses writes", "OOM")
    finally:
        await redis.config_set("maxmemory", before["maxmemory"], **every)
        await redis.config_set("maxmemory-policy", before["maxmemory-policy"], **every)
    async with stack.session.get(stack.url + "/healthz") as resp:
        assert resp.status == 200


async def test_metrics_are_in_prometheus_text_format(stack: SmsStack) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    seen = sample("openprimary_messages_in_total", channel="sms")
    replied = sample("openprimary_messages_out_total", channel="sms", kind="reply")
    await stack.phone(STRANGER).text("Hi")
    async with stack.session.get(stack.url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    assert sample("openprimary_messages_in_total", channel="sms") == seen + 1
    assert sample("openprimary_messages_out_total", channel="sms", kind="reply") == replied + 1
    for name in (
        'openprimary_messages_in_total{channel="sms"}',
        'openprimary_messages_out_total{channel="sms",kind="reply"}',
        'openprimary_handling_seconds_bucket{channel="sms",le="0.1"}',
    ):
        assert name in text
    for family in ("openprimary_ballots_cast", "openprimary_errors"):
        assert f"# TYPE {family}_total counter" in text


async def test_telegram_is_404_until_a_channel_plugs_in(stack: SmsStack, redis: Redis) -> None:
    async with stack.session.post(stack.url + "/telegram", json={"update_id": 1}) as resp:
        assert resp.status == 404
        assert "Telegram is not configured" in await resp.text()

    async def telegram(request: web.Request) -> web.Response:
        return web.json_response({"seen": (await request.json())["update_id"]})

    def install(app: web.Application) -> None:
        app[TELEGRAM_WEBHOOK] = telegram

    runner, url = await start_app(make_app(stack.core, [install]))
    try:
        async with stack.session.post(url + "/telegram", json={"update_id": 7}) as resp:
            assert resp.status == 200
            assert await resp.json() == {"seen": 7}
    finally:
        await runner.cleanup()


async def test_sms_is_404_when_not_configured(redis: Redis) -> None:
    from ballots.clock import ManualClock
    from openprimary.app import build_core
    from tests.factories import NOW, sample_election

    election = await sample_election(redis)
    core = await build_core(
        settings(telegram_bot_token="1:x"), redis, ManualClock(NOW), election.id
    )
    runner, url = await start_app(make_app(core))
    try:
        async with (
            ClientSession() as session,
            session.post(url + "/sms/twilio", data={"From": ANN}) as resp,
        ):
            assert resp.status == 404
            assert "SMS is not configured" in await resp.text()
    finally:
        await runner.cleanup()
    assert "sms" not in core.senders
