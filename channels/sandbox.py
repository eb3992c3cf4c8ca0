"""The sandbox's simulated phones: supporters texting and chatting through the stand-ins.

``openprimary sandbox`` runs the real server against the platform stand-ins
(:mod:`channels.standins`), in one process, so that a volunteer can try a whole election
without a phone number, a bot or a public URL.  This module is what the sandbox adds to the
server's app: a :class:`Sandbox` under :data:`SANDBOX`.  Only the sandbox sets that key, and
the console reads it to mark every page ("Sandbox: nothing here reaches a real phone") and to
offer what only a sandbox has: the phone simulator and an unseal with the trustees' shares
the sandbox made itself.

A simulated phone does what the platform would do, over real HTTP to the server:

- **SMS**: each text becomes the form Twilio posts for an inbound SMS, signed with the
  server's auth token for its public URL (:class:`~channels.standins.twilio_phone.TwilioPhone`);
  the TwiML answer is read back into the texts the phone receives, and Twilio's status
  callbacks follow.  Texts the server sends through the REST API (a code asked for from
  Telegram, reminders, a console sign-in code) reach the Twilio stand-in, and the phone shows
  them too.
- **Telegram**: each message or button tap becomes the update Telegram would post to the
  webhook, with its secret token; the bot answers through the Bot API stand-in, which keeps
  the chat as Telegram would show it (edits applied, deleted messages gone).

The phone's own side (what it sent, the TwiML replies it got) is kept here, because Twilio's
log loses the messages the server deletes once they have shown a voter's choices, while the
phone keeps them.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, web
from redis.asyncio import Redis

from ballots.clock import Clock
from ballots.election import Election
from ballots.trustees import combine, load_count_key, read_share
from ballots.unseal import UnsealRefused, UnsealReport, require_closed, unseal
from channels.appkeys import Installer
from channels.gsm import encoding, segments
from channels.standins.telegram_api import TelegramAPI, TelegramUser, UpdateFactory
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import OUR_NUMBER, TwilioPhone, inbound_form

#: The headline every page of a sandbox carries.
BANNER = "Sandbox: nothing here reaches a real phone"
#: A console sign-in code as ``bot.signin`` words it: its first six digits are the code.
SIGNIN_CODE = re.compile(r"^(\d{6}) is your code to sign in to the ")
#: The longest text a simulated phone sends (Twilio takes 1,600 characters, Telegram 4,096).
LONGEST = {"sms": 1600, "telegram": 4096}
#: A phone number as the simulator takes it: E.164.
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
#: Telegram's user ids fit in 52 bits.
_LARGEST_TELEGRAM_ID = 2**52
#: The header Telegram sends its webhook secret in.
_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: How long a simulated phone waits for the server to answer a text or take an update.
_TIMEOUT = 30.0


class SimulatorError(Exception):
    """What a simulated phone cannot do, said for the person using it."""


@dataclass(frozen=True)
class Person:
    """Someone on the sandbox's roll, as the simulator offers them."""

    supporter_id: str
    name: str
    phone: str
    #: Their Telegram account: the roll's ``telegram_id`` when ``linked``, else an account
    #: of their own the roll does not know (they identify with a code, or share their phone).
    telegram_id: int
    linked: bool
    language: str = ""
    #: The voting code the party "posted" them at the start ("" if the election takes none).
    voting_code: str = ""

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name else "Supporter"


@dataclass(frozen=True)
class Phone:
    """One simulated phone: SMS from a number, or a Telegram account (its user id)."""

    channel: str
    address: str

    @property
    def telegram_id(self) -> int:
        return int(self.address)


@dataclass(frozen=True)
class _Text:
    """One SMS on a simulated phone: sent by it, or received in the webhook's answer."""

    #: ``time.monotonic()``, as the Twilio stand-in times what it takes.
    at: float
    sent: bool
    body: str
    note: str = ""


@dataclass
class Sandbox:
    """The stand-ins and the simulated phones of one sandbox; see the module docstring.

    ``url`` is the server's own address, which is also its public URL (what Twilio signs).
    ``trustees`` holds the shares the sandbox made (``share-1.key`` ...), any ``threshold``
    of which unseal.
    """

    twilio: TwilioApiStandIn
    telegram: TelegramAPI
    url: str
    auth_token: str
    webhook_secret: str
    trustees: Path
    threshold: int
    people: Sequence[Person] = ()
    #: The election's organisers, as its file lists them (``+44...``, ``tg:...``).
    organisers: Sequence[str] = ()
    _texts: dict[str, list[_Text]] = field(default_factory=dict, init=False)
    _updates: UpdateFactory = field(init=False)
    _session: ClientSession | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._updates = UpdateFactory(api=self.telegram)

    # --- running ---------------------------------------------------------------

    async def open(self) -> None:
        """Open the phones' HTTP client (the app does it at start-up: :func:`installer`)."""
        if self._session is None:
            self._session = ClientSession()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> ClientSession:
        if self._session is None:
            raise RuntimeError("the sandbox's phones are not open: start the app first")
        return self._session

    # --- who is who --------------------------------------------------------------

    def phone(self, channel: str, address: str) -> Phone:
        """The phone a page names, checked: SMS from an E.164 number, or a Telegram user id."""
        text = address.strip()
        if channel == "sms":
            number = re.sub(r"[\s()-]", "", text)
            if not _E164.match(number):
                raise SimulatorError(
                    f"{address!r} is not a phone number in international form, such as "
                    "+447700900123"
                )
            if number == OUR_NUMBER:
                raise SimulatorError(f"{OUR_NUMBER} is the election's own number")
            return Phone("sms", number)
        if channel == "telegram":
            if not text.isascii() or not text.isdigit() or not 0 < int(text) < _LARGEST_TELEGRAM_ID:
                raise SimulatorError(
                    f"{address!r} is not a Telegram user id (digits, such as 12345)"
                )
            if int(text) == self.telegram.bot_id:
                raise SimulatorError(f"{text} is the bot's own account")
            return Phone("telegram", str(int(text)))
        raise SimulatorError(f"{channel!r} is not a channel: sms or telegram")

    def person(self, phone: Phone) -> Person | None:
        """The supporter a phone belongs to, if it is one of theirs."""
        for person in self.people:
            if phone.channel == "sms" and person.phone == phone.address:
                return person
            if phone.channel == "telegram" and person.telegram_id == phone.telegram_id:
                return person
        return None

    def organiser(self, phone: Phone) -> str | None:
        """The organiser a phone is, as the election file lists them, if it is one."""
        wanted = phone.address if phone.channel == "sms" else f"tg:{phone.address}"
        return wanted if wanted in self.organisers else None

    # --- what a phone does ---------------------------------------------------------

    async def text(self, phone: Phone, body: str) -> None:
        """Text ``body`` from an SMS phone, as Twilio posts it (signed); keep the replies."""
        body = _checked(phone, body)
        sms = TwilioPhone(
            self.session,
            self.url,
            public_url=self.url,
            auth_token=self.auth_token,
            number=phone.address,
            twilio=self.twilio,
        )
        thread = self._texts.setdefault(phone.address, [])
        thread.append(_Text(time.monotonic(), True, body))
        try:
            async with asyncio.timeout(_TIMEOUT):
                answer = await sms.post(inbound_form(phone.address, body))
        except (ClientError, TimeoutError) as err:
            thread.append(_Text(time.monotonic(), False, "", f"the server did not answer: {err!r}"))
            return
        if answer.status != 200:
            thread.append(
                _Text(
                    time.monotonic(),
                    False,
                    "",
                    f"the server answered {answer.status}: {answer.text}",
                )
            )
            return
        now = time.monotonic()
        thread.extend(_Text(now, False, reply) for reply in answer.bodies)

    async def say(self, phone: Phone, text: str) -> None:
        """Send ``text`` in a Telegram account's private chat with the bot."""
        text = _checked(phone, text)
        await self._post_update(self._updates.text(self._user(phone), text))

    async def tap(self, phone: Phone, message_id: int, data: str) -> None:
        """Tap an inline button of one of the bot's messages in the chat: the callback query
        Telegram would send.  Only a button the message shows can be tapped."""
        try:
            message = self.telegram.message(phone.telegram_id, message_id)
        except KeyError:
            raise SimulatorError("that message is no longer in the chat") from None
        shown = [
            str(button.get("callback_data"))
            for row in message.get("reply_markup", {}).get("inline_keyboard", [])
            for button in row
        ]
        if data not in shown:
            raise SimulatorError("that button is no longer on the message")
        await self._post_update(self._updates.tap(self._user(phone), message, data))

    async def share_phone(self, phone: Phone, number: str) -> None:
        """Share the account's phone number, as Telegram's share-phone button does."""
        shared = self.phone("sms", number).address
        await self._post_update(self._updates.contact(self._user(phone), shared))

    def _user(self, phone: Phone) -> TelegramUser:
        if phone.channel != "telegram":
            raise SimulatorError("that is done in a Telegram chat")
        person = self.person(phone)
        if person is None:
            return TelegramUser(phone.telegram_id, f"User {phone.address}")
        return TelegramUser(
            phone.telegram_id, person.first_name, language_code=person.language or "en"
        )

    async def _post_update(self, update: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json", _SECRET_HEADER: self.webhook_secret}
        try:
            async with (
                asyncio.timeout(_TIMEOUT),
                self.session.post(
                    f"{self.url}/telegram", data=json.dumps(update), headers=headers
                ) as resp,
            ):
                answer = await resp.text()
        except (ClientError, TimeoutError) as err:
            raise SimulatorError(f"the server did not take the update: {err!r}") from err
        if resp.status != 200:
            raise SimulatorError(f"the server answered {resp.status}: {answer.strip()}")

    # --- what a phone shows ----------------------------------------------------------

    def screen(self, phone: Phone) -> dict[str, Any]:
        """What the phone shows, oldest first, as the simulator page draws it (JSON)."""
        if phone.channel == "sms":
            return {"channel": "sms", "address": phone.address, "messages": self._sms(phone)}
        messages, keyboard = self._chat(phone)
        return {
            "channel": "telegram",
            "address": phone.address,
            "messages": messages,
            "keyboard": keyboard,
        }

    def _sms(self, phone: Phone) -> list[dict[str, Any]]:
        """The phone's texts: what it sent, the webhook's replies, and what the server sent it
        through the Messages API (codes, reminders, sign-in codes), by the time each went."""
        # Ordered on the monotonic clock (the stand-in's), shown on the wall clock.
        offset = time.time() - time.monotonic()
        lines: list[tuple[float, dict[str, Any]]] = []
        for line in self._texts.get(phone.address, []):
            shown = line.at + offset
            if line.note:
                lines.append((line.at, {"from": "note", "text": line.note, "time": _clock(shown)}))
                continue
            sender, how = ("phone", "you sent") if line.sent else ("bot", "reply (TwiML)")
            lines.append((line.at, _sms_json(shown, sender, how, line.body)))
        for sms in self.twilio.sent_to(phone.address):
            how = "sent through the Messages API"
            lines.append((sms.at, _sms_json(sms.at + offset, "bot", how, sms.body)))
        # A stable sort: texts of the same moment stay in the order they came.
        return [entry for _, entry in sorted(lines, key=lambda item: item[0])]

    def _chat(self, phone: Phone) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
        """The chat as Telegram shows it (edits applied, deleted messages gone), oldest
        first, and the reply keyboard the app shows under it (if any)."""
        chat = phone.telegram_id
        found: list[tuple[int, dict[str, Any]]] = []
        for message in self.telegram.messages(chat):
            found.append((int(message["message_id"]), message))
        for message in self.telegram.user_messages(chat):
            found.append((int(message["message_id"]), message))
        found.sort(key=lambda pair: pair[0])
        shown: list[dict[str, Any]] = []
        keyboard: list[list[dict[str, Any]]] = []
        one_time = False
        for message_id, message in found:
            mine = message.get("from", {}).get("id") == chat
            entry: dict[str, Any] = {
                "id": message_id,
                "from": "phone" if mine else "bot",
                "text": message.get("text", ""),
                "edited": "edit_date" in message,
                "time": _clock(float(message.get("date", time.time()))),
                "buttons": [
                    [
                        {"label": str(b.get("text", "")), "data": str(b.get("callback_data", ""))}
                        for b in row
                    ]
                    for row in message.get("reply_markup", {}).get("inline_keyboard", [])
                ],
            }
            contact = message.get("contact")
            if isinstance(contact, dict):
                entry["text"] = f"Shared a phone number: {contact.get('phone_number', '')}"
            shown.append(entry)
            markup = message.get("_keyboard")
            if not mine and isinstance(markup, dict):
                keyboard = [
                    [
                        {"label": str(b.get("text", "")), "contact": bool(b.get("request_contact"))}
                        for b in row
                    ]
                    for row in markup.get("keyboard", [])
                ]
                one_time = bool(markup.get("one_time_keyboard"))
            elif mine and keyboard and one_time:
                keyboard = []  # a one-time keyboard hides once the user has answered
        return shown, keyboard

    # --- the console's sandbox-only parts ---------------------------------------------

    def signin_code(self, actor: str) -> tuple[str, str] | None:
        """The latest console sign-in code a simulated phone of organiser ``actor``
        (``tg:<id>`` or ``sms:<E.164>``) received, and when (``HH:MM:SS``); None if none."""
        kind, _, address = actor.partition(":")
        offset = time.time() - time.monotonic()
        if kind == "tg" and address.isdigit():
            for message in reversed(self.telegram.messages(int(address))):
                found = SIGNIN_CODE.match(str(message.get("text", "")))
                if found:
                    return found.group(1), _clock(float(message["date"]))
        elif kind == "sms":
            for sms in reversed(self.twilio.sent_to(address)):
                found = SIGNIN_CODE.match(sms.body)
                if found:
                    return found.group(1), _clock(sms.at + offset)
        return None

    def shares(self) -> list[Path]:
        """The trustees' share files the sandbox unseals with: the first ``threshold``."""
        return [self.trustees / f"share-{i}.key" for i in range(1, self.threshold + 1)]

    async def unseal(
        self, redis: Redis, election: Election, clock: Clock, actor: str
    ) -> UnsealReport:
        """Unseal the election with the sandbox trustees' shares, as ``openprimary unseal``
        does (the same checks, and the same entry in the audit trail, with ``actor``)."""
        require_closed(election, clock.now())
        stored = await load_count_key(redis, election.id)
        if stored is None:
            raise UnsealRefused(f"election {election.id} has no count key, so no sealed ballots")
        shares = [read_share(path) for path in self.shares()]
        seed = combine(shares, election.id, stored)
        return await unseal(
            redis,
            election,
            seed,
            clock,
            actor=actor,
            shares_used=sorted({s.index for s in shares}),
            workers=1,
        )


def _checked(phone: Phone, text: str) -> str:
    """A message a phone may send: not empty, not longer than its platform takes."""
    if not text.strip():
        raise SimulatorError("type a message first")
    longest = LONGEST[phone.channel]
    if len(text) > longest:
        raise SimulatorError(f"a message can be at most {longest:,} characters")
    return text


def _sms_json(at: float, sender: str, how: str, body: str) -> dict[str, Any]:
    """One SMS as the simulator shows it: with what a network would bill for it."""
    return {
        "from": sender,
        "text": body,
        "how": how,
        "time": _clock(at),
        "segments": segments(body),
        "encoding": encoding(body),
    }


def _clock(at: float) -> str:
    """A moment as the phone shows it: hours, minutes and seconds, local time."""
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")


#: On the app: the sandbox, in a sandbox only.
SANDBOX = web.AppKey("sandbox", Sandbox)


def installer(sandbox: Sandbox) -> Installer:
    """Plugs a sandbox into ``channels.server.make_app``: it marks the app as a sandbox (the
    console reads :data:`SANDBOX`) and opens the phones' client with the app."""

    def install(app: web.Application) -> None:
        app[SANDBOX] = sandbox
        app.cleanup_ctx.append(_phones)

    return install


async def _phones(app: web.Application) -> AsyncIterator[None]:
    sandbox = app[SANDBOX]
    await sandbox.open()
    try:
        yield
    finally:
        await sandbox.aclose()
