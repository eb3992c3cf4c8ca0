"""Signed requests that Twilio did not send us, and random input at both webhooks.

Twilio signs the URL followed by each field name and value run together, so a
signed request can be re-cut at other boundaries and keep its signature.
Only a request with Twilio's own fields, each once, in Twilio's formats, for
our account and number is taken; anything else is refused and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
from aiohttp import ClientSession
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from ballots.connection import client_from_url
from channels.standins.twilio_phone import ACCOUNT_SID, OUR_NUMBER, inbound_form, message_sid, sign
from tests.conftest import current_redis_url
from tests.sms_support import ANN, PUBLIC_URL, SmsStack, sms_stack
from tests.telegram_support import WEBHOOK_SECRET, telegram_world

SMS_URL = PUBLIC_URL + "/sms/twilio"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
async def stack(redis: Redis) -> AsyncIterator[SmsStack]:
    async with sms_stack(redis) as running:
        yield running


async def snapshot(redis: Redis) -> dict[str, object]:
    return {str(k): await redis.dump(k) for k in sorted(await redis.keys("*"))}


async def post(session: ClientSession, url: str, form: dict[str, str]) -> int:
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, SMS_URL, form)}
    async with session.post(url + "/sms/twilio", data=form, headers=headers) as resp:
        await resp.read()
        return resp.status


def recut(form: dict[str, str], name: str, cut: int) -> dict[str, str]:
    """The same signed string, cut ``cut`` characters later (into the value): a new field
    name Twilio never sends, and the signature still matches."""
    value = form[name]
    out = {k: v for k, v in form.items() if k != name}
    out[name + value[:cut]] = value[cut:]
    return out


async def test_a_recut_or_foreign_signed_request_is_refused_and_changes_nothing(
    stack: SmsStack, redis: Redis
) -> None:
    genuine = inbound_form(ANN, "hello")
    before = await snapshot(redis)
    variants = {
        "recut status": recut(genuine, "SmsStatus", 1),
        "recut sid": recut(genuine, "SmsSid", 2),
        "another account": {**genuine, "AccountSid": "AC" + "9" * 32},
        "another number": {**genuine, "To": "+447700900999"},
        "a made-up MessageSid": {**genuine, "MessageSid": "SMnot-a-sid", "SmsSid": "SMnot-a-sid"},
        "an unknown field": {**genuine, "Digits": "1"},
        "no AccountSid": {k: v for k, v in genuine.items() if k != "AccountSid"},
    }
    statuses = {name: await post(stack.session, stack.url, form) for name, form in variants.items()}
    assert set(statuses.values()) == {403}, statuses
    assert await snapshot(redis) == before
    # The request Twilio did send is taken.
    assert await post(stack.session, stack.url, genuine) == 200


async def test_a_field_given_twice_is_refused(stack: SmsStack, redis: Redis) -> None:
    form = inbound_form(ANN, "hello")
    pairs = [*form.items(), ("Body", "again")]
    flat = {k: v for k, v in pairs}
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, SMS_URL, flat)}
    before = await snapshot(redis)
    async with stack.session.post(stack.url + "/sms/twilio", data=pairs, headers=headers) as resp:
        assert resp.status == 403
    assert await snapshot(redis) == before


async def test_a_body_that_is_not_utf8_gets_400(stack: SmsStack, redis: Redis) -> None:
    before = await snapshot(redis)
    headers = {
        "X-Twilio-Signature": "x",
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    }
    async with stack.session.post(
        stack.url + "/sms/twilio", data=b"Body=%FF%FE&From=%2B44", headers=headers
    ) as resp:
        assert resp.status == 400
    async with stack.session.post(
        stack.url + "/sms/twilio", data=b"Body=\xff\xfe&From=+44", headers=headers
    ) as resp:
        assert resp.status == 400
    assert await snapshot(redis) == before


# --- random input at both webhooks ---------------------------------------------------

_FIELD_NAMES = st.sampled_from(
    ["MessageSid", "SmsSid", "AccountSid", "From", "To", "Body", "NumMedia", "X", "", "Body\x00"]
)
_FORMS = st.dictionaries(_FIELD_NAMES | st.text(max_size=12), st.text(max_size=40), max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.binary(max_size=300),
    form=_FORMS,
    signed=st.booleans(),
    genuine_base=st.booleans(),
)
def test_random_input_at_the_sms_webhook_never_gets_a_500_or_changes_state(
    body: bytes, form: dict[str, str], signed: bool, genuine_base: bool
) -> None:
    asyncio.run(_sms_fuzz(body, form, signed, genuine_base))


async def _sms_fuzz(body: bytes, form: dict[str, str], signed: bool, genuine_base: bool) -> None:
    redis = client_from_url(current_redis_url())
    try:
        await redis.flushdb()
        async with sms_stack(redis) as stack:
            before = await snapshot(redis)
            fields = {**inbound_form(ANN, "hi"), **form} if genuine_base else form
            headers = {
                "X-Twilio-Signature": sign(AUTH_TOKEN, SMS_URL, fields) if signed else "x",
                "Content-Type": "application/x-www-form-urlencoded",
            }
            async with stack.session.post(
                stack.url + "/sms/twilio", data=urlencode(fields).encode(), headers=headers
            ) as resp:
                status = resp.status
                await resp.read()
            async with stack.session.post(
                stack.url + "/sms/twilio",
                data=body,
                headers=headers,
            ) as resp:
                raw_status = resp.status
                await resp.read()
            assert raw_status < 500
            assert status < 500
            if status >= 400 and raw_status >= 400:
                assert await snapshot(redis) == before
    finally:
        await redis.flushdb()
        await redis.aclose()


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.binary(max_size=300) | st.builds(lambda d: json.dumps(d).encode(), _FORMS),
    secret=st.booleans(),
)
def test_random_input_at_the_telegram_webhook_never_gets_a_500_or_changes_state(
    body: bytes, secret: bool
) -> None:
    asyncio.run(_telegram_fuzz(body, secret))


async def _telegram_fuzz(body: bytes, secret: bool) -> None:
    redis = client_from_url(current_redis_url())
    try:
        await redis.flushdb()
        async with telegram_world(redis) as world:
            before = await snapshot(redis)
            headers = {"Content-Type": "application/json"}
            if secret:
                headers["X-Telegram-Bot-Api-Secret-Token"] = WEBHOOK_SECRET
            async with world.session.post(
                world.url + "/telegram", data=body, headers=headers
            ) as resp:
                status = resp.status
                await resp.read()
            assert status < 500
            if status >= 400:
                await world.channel.drain()
                after = await snapshot(redis)
                # The inbox's own bookkeeping (which process holds which shard) moves on
                # by itself; nothing else may change.
                assert _not_inbox_bookkeeping(after) == _not_inbox_bookkeeping(before)
    finally:
        await redis.flushdb()
        await redis.aclose()


def _not_inbox_bookkeeping(found: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in found.items() if ":owner:" not in k and not k.endswith(":workers")}


def test_our_number_and_account_are_what_the_stand_in_phone_sends() -> None:
    form = inbound_form(ANN, "x", sid=message_sid())
    assert (form["AccountSid"], form["To"]) == (ACCOUNT_SID, OUR_NUMBER)
