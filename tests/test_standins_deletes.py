"""Deleting messages from the platforms: the real twilio and python-telegram-bot
libraries against the stand-ins, and a phone's TwiML replies with status callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession, web
from redis.asyncio import Redis
from telegram.error import BadRequest
from telegram.ext import ExtBot
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels.standins.telegram_api import TelegramAPI, TelegramUser, UpdateFactory
from channels.standins.twilio_api import DeleteAttempt, TwilioApiStandIn
from channels.standins.twilio_phone import (
    ACCOUNT_SID,
    OUR_NUMBER,
    SIGNATURE_HEADER,
    TwilioPhone,
    inbound_form,
)
from channels.telegram.sending import api_urls
from tests.telegram_support import ANN, telegram_world

TOKEN = "f" * 32
PHONE = "+447700900101"
PUBLIC_URL = "https://vote.example.org"
STATUS_URL = PUBLIC_URL + "/sms/status?ref=abc"

# --- Twilio: the REST API ---------------------------------------------------


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioApiStandIn]:
    async with TwilioApiStandIn(ACCOUNT_SID, TOKEN) as api:
        yield api


@pytest.fixture
async def unsettled() -> AsyncIterator[TwilioApiStandIn]:
    async with TwilioApiStandIn(ACCOUNT_SID, TOKEN, auto_settle=False) as api:
        yield api


def twilio_client(standin: TwilioApiStandIn, token: str = TOKEN) -> Client:
    """The twilio library's client pointed at the stand-in, as ``channels/sms_sender.py`` does."""
    client = Client(
        ACCOUNT_SID,
        token,
        http_client=AsyncTwilioHttpClient(),
        environment={"TWILIO_ACCOUNT_SID": ACCOUNT_SID},
    )
    client.api.base_url = standin.base_url
    return client


@pytest.fixture
async def client(twilio: TwilioApiStandIn) -> AsyncIterator[Client]:
    made = twilio_client(twilio)
    yield made
    await made.http_client.close()


async def send(client: Client, body: str = "Your ballot: 1 Ann 2 Bilal") -> str:
    message = await client.messages.create_async(to=PHONE, from_=OUR_NUMBER, body=body)
    return str(message.sid)


async def test_a_sent_message_can_be_deleted(twilio: TwilioApiStandIn, client: Client) -> None:
    sid = await send(client)
    assert twilio.holds(sid)
    assert twilio.log[sid].direction == "outbound-api"
    assert twilio.log[sid].status == "sent"  # auto_settle
    assert twilio.bodies_held(PHONE) == ["Your ballot: 1 Ann 2 Bilal"]

    assert await client.messages(sid).delete_async() is True

    assert twilio.deleted == [sid]
    assert twilio.delete_attempts == [(sid, 204)]
    assert not twilio.holds(sid)
    assert twilio.bodies_held(PHONE) == []
    assert [m.sid for m in twilio.messages] == [sid]  # still counted as sent


async def test_deleting_twice_or_an_unknown_sid_is_20404(
    twilio: TwilioApiStandIn, client: Client
) -> None:
    sid = await send(client)
    await client.messages(sid).delete_async()
    with pytest.raises(TwilioRestException) as again:
        await client.messages(sid).delete_async()
    assert (again.value.status, again.value.code) == (404, 20404)
    with pytest.raises(TwilioRestException) as unknown:
        await client.messages("SM" + "0" * 32).delete_async()
    assert unknown.value.code == 20404
    assert twilio.deleted == [sid]
    assert [a.status for a in twilio.delete_attempts] == [204, 404, 404]


async def test_a_message_in_flight_cannot_be_deleted_until_settled(
    unsettled: TwilioApiStandIn,
) -> None:
    client = twilio_client(unsettled)
    try:
        first, second = await send(client, "one"), await send(client, "two")
        assert unsettled.log[first].status == "queued"
        with pytest.raises(TwilioRestException) as early:
            await client.messages(first).delete_async()
        assert (early.value.status, early.value.code) == (409, 20009)
        assert "before it is complete" in early.value.msg
        assert unsettled.holds(first)

        unsettled.settle(first, "undelivered")
        assert await client.messages(first).delete_async()
        unsettled.settle()  # the rest: delivered
        assert unsettled.log[second].status == "delivered"
        assert await client.messages(second).delete_async()
        assert unsettled.deleted == [first, second]
        assert unsettled.delete_attempts == [
            DeleteAttempt(first, 409),
            DeleteAttempt(first, 204),
            DeleteAttempt(second, 204),
        ]
    finally:
        await client.http_client.close()


async def test_planned_delete_failures(twilio: TwilioApiStandIn, client: Client) -> None:
    sid = await send(client)
    twilio.fail_next_delete(429)
    twilio.fail_next_delete(500)
    twilio.fail_next_delete(20009)
    got = []
    for _ in range(3):
        with pytest.raises(TwilioRestException) as err:
            await client.messages(sid).delete_async()
        got.append((err.value.status, err.value.code))
    assert got == [(429, 20429), (500, 20500), (409, 20009)]
    assert await client.messages(sid).delete_async()
    assert twilio.deleted == [sid]
    with pytest.raises(ValueError):
        twilio.fail_next_delete(418)


async def test_planned_create_failures_leave_deletes_alone(
    twilio: TwilioApiStandIn, client: Client
) -> None:
    sid = await send(client)
    twilio.fail_next(500)
    assert await client.messages(sid).delete_async()
    with pytest.raises(TwilioRestException) as err:
        await send(client)
    assert err.value.status == 500


async def test_delete_needs_the_account_credentials(twilio: TwilioApiStandIn) -> None:
    good, bad = twilio_client(twilio), twilio_client(twilio, token="0" * 32)
    try:
        sid = await send(good)
        with pytest.raises(TwilioRestException) as err:
            await bad.messages(sid).delete_async()
        assert (err.value.status, err.value.code) == (401, 20003)
        assert twilio.holds(sid)
    finally:
        await good.http_client.close()
        await bad.http_client.close()


async def test_wait_deleted(twilio: TwilioApiStandIn, client: Client) -> None:
    sids = [await send(client), await send(client)]
    waiter = asyncio.create_task(twilio.wait_deleted(2))
    for sid in sids:
        assert not waiter.done()
        await client.messages(sid).delete_async()
    async with asyncio.timeout(5):
        assert await waiter == sids


async def test_settle_rejects_what_it_cannot_do(twilio: TwilioApiStandIn) -> None:
    sid = twilio.record_inbound("SM" + "1" * 32, PHONE, OUR_NUMBER, "VOTE 1 2").sid
    with pytest.raises(ValueError):
        twilio.settle(sid)
    with pytest.raises(ValueError):
        twilio.settle(status="received")
    with pytest.raises(KeyError):
        twilio.settle("SM" + "2" * 32)
    twilio.settle()  # leaves inbound messages alone
    assert twilio.log[sid].status == "received"


# --- Twilio: a phone, the TwiML replies and their status callbacks ----------


class SmsApp:
    """A tiny SMS webhook: replies with TwiML, and deletes from Twilio on "delivered"."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.validator = RequestValidator(TOKEN)
        self.inbound: list[str] = []
        self.callbacks: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_post("/sms/twilio", self.webhook)
        self.app.router.add_post("/sms/status", self.status)

    def _valid(self, request: web.Request, form: dict[str, str]) -> bool:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        return bool(self.validator.validate(PUBLIC_URL + request.raw_path, form, signature))

    async def webhook(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not self._valid(request, form):
            return web.Response(status=403)
        self.inbound.append(form["MessageSid"])
        twiml = (
            '<?xml version="1.0" encoding="UTF-8"?><Response>'
            f'<Message action="{STATUS_URL.replace("&", "&amp;")}">You voted: 1 Ann</Message>'
            "<Message>Thanks</Message></Response>"
        )
        return web.Response(text=twiml, content_type="text/xml")

    async def status(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not self._valid(request, form):
            return web.Response(status=403)
        self.callbacks.append(form | {"_query": request.query_string})
        if form["MessageStatus"] == "delivered":
            await self.client.messages(form["MessageSid"]).delete_async()
            for sid in self.inbound:
                await self.client.messages(sid).delete_async()
            self.inbound.clear()
        return web.Response(status=204)


@pytest.fixture
async def sms_app(client: Client) -> AsyncIterator[tuple[SmsApp, str]]:
    sms = SmsApp(client)
    runner = web.AppRunner(sms.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield sms, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_phone_logs_texts_and_replies_and_calls_back(
    twilio: TwilioApiStandIn, sms_app: tuple[SmsApp, str]
) -> None:
    app, url = sms_app
    async with ClientSession() as session:
        phone = TwilioPhone(session, url, PUBLIC_URL, TOKEN, PHONE, twilio=twilio)
        replies = await phone.text("VOTE 1")

    assert replies == ["You voted: 1 Ann", "Thanks"]  # the return value is unchanged
    inbound, (voted, thanks) = phone.sent[0], phone.reply_sids
    assert [(c["MessageSid"], c["MessageStatus"]) for c in app.callbacks] == [
        (voted, "sent"),
        (voted, "delivered"),
    ]
    first = app.callbacks[0]
    assert first["SmsSid"] == voted and first["SmsStatus"] == "sent"
    assert (first["To"], first["From"]) == (PHONE, OUR_NUMBER)
    assert (first["AccountSid"], first["ApiVersion"]) == (ACCOUNT_SID, "2010-04-01")
    assert first["_query"] == "ref=abc"
    assert [(c.url, c.status) for c in phone.callbacks] == [(STATUS_URL, 204)] * 2

    # The app deleted the reply carrying the choices and the inbound text, on "delivered".
    assert twilio.deleted == [voted, inbound]
    assert twilio.bodies_held(PHONE) == ["Thanks"]
    held = twilio.log[thanks]
    assert (held.direction, held.status, held.to, held.from_) == (
        "outbound-reply",
        "sent",
        PHONE,
        OUR_NUMBER,
    )
    assert held.action is None


async def test_phone_without_twilio_still_calls_back(sms_app: tuple[SmsApp, str]) -> None:
    _, url = sms_app
    async with ClientSession() as session:
        phone = TwilioPhone(session, url, PUBLIC_URL, TOKEN, PHONE)
        await phone.text("VOTE 1")
    assert len(phone.reply_sids) == 2
    # The app's DELETE gets 20404 (the stand-in never saw these): its handler fails.
    assert [c.status for c in phone.callbacks] == [204, 500]


async def test_forged_texts_are_not_logged(
    twilio: TwilioApiStandIn, sms_app: tuple[SmsApp, str]
) -> None:
    _, url = sms_app
    async with ClientSession() as session:
        phone = TwilioPhone(session, url, PUBLIC_URL, TOKEN, PHONE, twilio=twilio)
        answer = await phone.post(inbound_form(PHONE, "VOTE 9"), unsigned=True)
    assert answer.status == 403
    assert twilio.log == {}
    assert phone.reply_sids == []


def test_callbacks_go_to_the_server_for_the_public_url() -> None:
    phone = TwilioPhone(None, "http://127.0.0.1:9", PUBLIC_URL, TOKEN, PHONE)  # type: ignore[arg-type]
    assert phone.server_url_for(STATUS_URL) == "http://127.0.0.1:9/sms/status?ref=abc"
    with pytest.raises(AssertionError):
        phone.server_url_for("https://elsewhere.example.org/sms/status")


# --- Telegram -----------------------------------------------------------------

USER = TelegramUser(310001, "Ann")


@pytest.fixture
async def api() -> AsyncIterator[TelegramAPI]:
    async with TelegramAPI() as standin:
        yield standin


@pytest.fixture
async def bot(api: TelegramAPI) -> AsyncIterator[ExtBot[None]]:
    base_url, base_file_url = api_urls(api.url)
    made: ExtBot[None] = ExtBot(api.token, base_url=base_url, base_file_url=base_file_url)
    async with made:
        yield made


async def test_telegram_deletes_the_bots_message(api: TelegramAPI, bot: ExtBot[None]) -> None:
    keep = await bot.send_message(USER.id, "Welcome")
    sent = await bot.send_message(USER.id, "You ranked: 1 Ann 2 Bilal")
    assert await bot.delete_message(USER.id, sent.message_id) is True
    assert api.deleted(USER.id) == [sent.message_id]
    assert [m["text"] for m in api.messages(USER.id)] == ["Welcome"]
    assert api.last_message(USER.id)["message_id"] == keep.message_id
    with pytest.raises(KeyError, match="deleted"):
        api.message(USER.id, sent.message_id)
    with pytest.raises(BadRequest, match=r"[Mm]essage to delete not found"):
        await bot.delete_message(USER.id, sent.message_id)
    with pytest.raises(BadRequest, match=r"[Mm]essage to edit not found"):
        await bot.edit_message_text("edited", chat_id=USER.id, message_id=sent.message_id)
    assert [c.status for c in api.calls_to("deleteMessage")] == [200, 400]


async def test_telegram_unknown_chat_or_message(api: TelegramAPI, bot: ExtBot[None]) -> None:
    with pytest.raises(BadRequest, match=r"[Cc]hat not found"):
        await bot.delete_message(424242, 1)
    await bot.send_message(USER.id, "hello")
    with pytest.raises(BadRequest, match=r"[Mm]essage to delete not found"):
        await bot.delete_message(USER.id, 999)


async def test_telegram_deletes_many_skipping_unknown(api: TelegramAPI, bot: ExtBot[None]) -> None:
    ids = [(await bot.send_message(USER.id, f"message {n}")).message_id for n in range(3)]
    assert await bot.delete_messages(USER.id, [ids[2], 777, ids[0]]) is True
    assert api.deleted(USER.id) == [ids[2], ids[0]]
    assert [m["message_id"] for m in api.messages(USER.id)] == [ids[1]]
    assert await bot.delete_messages(USER.id, [777]) is True  # nothing found: still true
    call = api.calls_to("deleteMessages")[0]
    assert call.params["message_ids"] == [ids[2], 777, ids[0]]


async def test_telegram_delete_messages_limits(api: TelegramAPI, bot: ExtBot[None]) -> None:
    await bot.send_message(USER.id, "hello")
    with pytest.raises(BadRequest, match=r"[Tt]oo many message identifiers"):
        await bot.delete_messages(USER.id, list(range(1, 102)))
    with pytest.raises(BadRequest, match=r"[Mm]essage identifiers are not specified"):
        await bot.delete_messages(USER.id, [])


async def test_telegram_deletes_a_users_message(api: TelegramAPI, bot: ExtBot[None]) -> None:
    updates = UpdateFactory(api=api)
    update = updates.text(USER, "/vote 1 2 3")
    typed = update["message"]["message_id"]
    reply = await bot.send_message(USER.id, "Vote cast")
    assert reply.message_id == typed + 1  # one sequence of ids per chat, as Telegram's
    assert api.message(USER.id, typed)["text"] == "/vote 1 2 3"
    assert [m["text"] for m in api.user_messages(USER.id)] == ["/vote 1 2 3"]
    assert [m["text"] for m in api.messages(USER.id)] == ["Vote cast"]  # the bot's only
    with pytest.raises(BadRequest, match=r"[Mm]essage can't be edited"):
        await bot.edit_message_text("changed", chat_id=USER.id, message_id=typed)

    assert await bot.delete_messages(USER.id, [typed, reply.message_id])
    assert api.deleted(USER.id) == [typed, reply.message_id]
    assert api.user_messages(USER.id) == [] and api.messages(USER.id) == []


async def test_telegram_notes_queued_and_hand_noted_messages(
    api: TelegramAPI, bot: ExtBot[None]
) -> None:
    api.queue_update(UpdateFactory().text(USER, "hello"))  # polling
    api.note_user_message(-100123, 55, "in a group")
    (queued,) = api.user_messages(USER.id)
    assert queued["text"] == "hello"
    assert await bot.delete_message(USER.id, queued["message_id"])
    assert await bot.delete_message(-100123, 55)
    api.note_user_message(-100123, 55, "again")  # a deleted message does not come back
    assert api.user_messages(-100123) == []
    assert api.deleted(-100123) == [55]


async def test_telegram_edits_show_in_message(api: TelegramAPI, bot: ExtBot[None]) -> None:
    sent = await bot.send_message(USER.id, "Rank the candidates")
    await bot.edit_message_text("Your ranking: 1 Ann", chat_id=USER.id, message_id=sent.message_id)
    current: dict[str, Any] = api.message(USER.id, sent.message_id)
    assert current["text"] == "Your ranking: 1 Ann"
    assert "edit_date" in current
    await bot.edit_message_text("Vote cast", chat_id=USER.id, message_id=sent.message_id)
    assert api.message(USER.id, sent.message_id)["text"] == "Vote cast"


async def test_telegram_world_knows_users_messages_once_attached(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        world.updates.attach(world.api)
        await world.say(ANN, "/start")
        (typed,) = world.api.user_messages(ANN.id)
        assert typed["text"] == "/start"
        assert all(m["message_id"] > typed["message_id"] for m in world.api.messages(ANN.id))
