"""The Telegram channel: a PTB Application run inside the aiohttp server's lifecycle.

``POST /telegram`` checks Telegram's secret token in constant time, stores
the update in Redis (:mod:`channels.telegram.inbox`) and answers 200 once it
is stored, 503 if it could not be.  A body that is not an update the bot can
read (see :func:`malformed`) gets 400 and is not stored; a well-formed update
of a kind the bot does not handle gets 200 and is not stored either, so
Telegram does not send it again.  The inbox hands each update to the
Application's handlers: concurrently, but one chat's updates one at a time
and in the order they came, across every ``serve`` process.  With
``polling`` the Application's Updater fetches updates instead, for
development without a public URL; they go through the inbox too.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError
from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackContext,
    CallbackQueryHandler,
    MessageHandler,
    filters,
)

from ballots.errors import ConfigError
from bot.copies import Remover
from bot.core import Core
from bot.settings import Settings
from channels.appkeys import CORE, TELEGRAM_WEBHOOK, Installer
from channels.telegram import claim
from channels.telegram.handlers import Handlers
from channels.telegram.inbox import Inbox
from channels.telegram.sending import (
    CHANNEL,
    POLL_TIMEOUT,
    Bot,
    TelegramSender,
    check_webhook_secret,
    remove_copy,
)

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: The update types the bot asks for; anything else is not delivered at all.
ALLOWED_UPDATES = ["message", "callback_query"]


TelegramApp = Application[
    Bot,
    CallbackContext[Bot, dict[Any, Any], dict[Any, Any], dict[Any, Any]],
    dict[Any, Any],
    dict[Any, Any],
    dict[Any, Any],
    None,
]


class TelegramChannel:
    """The bot for one server: the Application, its handlers, the webhook and the sender."""

    def __init__(self, core: Core, *, polling: bool = False) -> None:
        settings = core.settings
        self.core = core
        self.polling = polling
        secret = settings.telegram_webhook_secret
        if not polling:
            check_webhook_secret(secret)
        self._secret = secret.encode() if secret else None
        sender = core.senders.get(CHANNEL)
        if not isinstance(sender, TelegramSender):
            raise ConfigError(
                "the core has no Telegram sender: build it with openprimary.app.build_core "
                "and TELEGRAM_BOT_TOKEN set"
            )
        #: The core's sender: its bot is the Application's, so one client and one throttle.
        self.sender = sender
        builder = ApplicationBuilder().bot(sender.bot).job_queue(None)
        if not polling:
            builder = builder.updater(None)
        # Only initialised, never started: updates come from the inbox, not its queue.
        self.application: TelegramApp = builder.build()
        self.handlers = Handlers(
            core.router, core.redis, sender.signer, settings.default_region, core.copies
        )
        self._add_handlers(self.handlers)
        assert settings.telegram_bot_token is not None
        bot_id = settings.telegram_bot_token.split(":", 1)[0]
        self.inbox = Inbox(core.redis, bot_id, self._handle, settings.secret_key)
        self._remover: Remover | None = None
        self._forward: asyncio.Task[None] | None = None

    def _add_handlers(self, h: Handlers) -> None:
        private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
        app = self.application
        app.add_handler(
            MessageHandler(filters.ChatType.GROUPS & filters.UpdateType.MESSAGE, h.in_group)
        )
        app.add_handler(CallbackQueryHandler(h.on_button))
        app.add_handler(MessageHandler(private & filters.CONTACT, h.on_contact))
        app.add_handler(MessageHandler(private & filters.TEXT, h.on_text))
        app.add_handler(MessageHandler(private, h.on_other))
        app.add_error_handler(h.on_error)

    @property
    def bot(self) -> Bot:
        return self.application.bot

    async def start(self) -> None:
        """Start handling updates (the bot's client opens with the Application)."""
        await self.application.initialize()
        await self.inbox.start()
        copies = self.core.copies
        if copies is not None:
            bot = self.bot
            self._remover = Remover(copies, CHANNEL, lambda copy: remove_copy(bot, copy))
            self._remover.start()
        if self.polling:
            updater = self.application.updater
            assert updater is not None
            self._forward = asyncio.create_task(self._forward_polled())
            # Polling and a webhook exclude each other; start_polling deletes the webhook.
            await updater.start_polling(timeout=POLL_TIMEOUT, allowed_updates=ALLOWED_UPDATES)
            log.info("telegram: polling for updates as @%s", self.bot.username)
        else:
            log.info("telegram: taking webhook updates for @%s", self.bot.username)

    async def stop(self) -> None:
        """Finish the updates in hand (the rest wait in Redis), then close the client."""
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self._forward is not None:
            self._forward.cancel()
            await asyncio.gather(self._forward, return_exceptions=True)
            self._forward = None
        await self.inbox.stop()
        if self._remover is not None:
            await self._remover.stop()
            self._remover = None
        # Nothing may still be sending through the bot when its client closes.
        await self.core.stop_background()
        await self.application.shutdown()

    async def drain(self) -> None:
        """Wait until every update taken in so far has been handled (tests, benchmarks)."""
        await self.inbox.drain()

    async def webhook(self, request: web.Request) -> web.Response:
        """POST /telegram: check the secret token, store the update, answer 200."""
        given = request.headers.get(SECRET_HEADER, "").encode()
        if self._secret is None or not hmac.compare_digest(given, self._secret):
            log.warning("telegram webhook: refused a request without the right secret token")
            return web.Response(status=403, text="forbidden\n")
        try:
            data = await request.json()
        except (ValueError, RecursionError):
            return web.Response(status=400, text="not JSON\n")
        problem = malformed(data)
        if problem is not None:
            log.warning("telegram webhook: refused a malformed update: %s", problem)
            return web.Response(status=400, text="not a Telegram update\n")
        if not any(kind in data for kind in ALLOWED_UPDATES):
            return web.Response(text="ok\n")  # nothing the bot does anything with
        try:
            update = Update.de_json(data, self.bot)
        except Exception:  # PTB checks no types: junk raises whatever it first meets
            log.warning("telegram webhook: an update PTB could not read", exc_info=True)
            return web.Response(status=400, text="not a Telegram update\n")
        try:
            await self.inbox.put(_chat_of(update), data)
        except RedisError as err:
            # Not stored, so not acknowledged: Telegram sends it again later.
            log.warning("telegram webhook: update not stored, answered 503: %s", err)
            return web.Response(status=503, text="try again later\n")
        return web.Response(text="ok\n")

    async def _handle(self, data: dict[str, Any], replay: bool) -> bool:
        """Handle one stored update; False if Redis was unavailable and it must be tried again."""
        update = Update.de_json(data, self.bot)
        return await self.handlers.process(self.application, update, replay=replay)

    async def _forward_polled(self) -> None:
        """Polling: move each update the Updater fetched into the inbox."""
        queue = self.application.update_queue
        while True:
            update = await queue.get()
            if not isinstance(update, Update):
                continue
            while True:
                try:
                    await self.inbox.put(_chat_of(update), update.to_dict())
                    break
                except RedisError as err:
                    log.warning("telegram polling: cannot store an update yet: %s", err)
                    await asyncio.sleep(1.0)


# --- what an update must look like -------------------------------------------------

#: Telegram's ids and counts fit in 64 bits (its ids in 52); nothing bigger is taken.
_BIGGEST = 2**63 - 1
#: Dates as seconds since 1970, up to the last second of the year 9999.
_LAST_DATE = 253_402_300_799
#: How deeply an update's JSON may nest (Telegram's go about ten levels down).
_DEPTH = 32

#: The parts of an update the bot reads, as field -> (type, required).  A type is a
#: Python type (exactly: JSON's true is no int), "date", a nested shape (an object), or a
#: one-item list (a list of them).  Other fields are left to PTB.
_Shape = Mapping[str, tuple[Any, bool]]
_USER: _Shape = {
    "id": (int, True),
    "is_bot": (bool, True),
    "first_name": (str, True),
    "last_name": (str, False),
    "username": (str, False),
    "language_code": (str, False),
}
_CHAT: _Shape = {
    "id": (int, True),
    "type": (str, True),
    "title": (str, False),
    "username": (str, False),
    "first_name": (str, False),
    "last_name": (str, False),
}
_ENTITY: _Shape = {
    "type": (str, True),
    "offset": (int, True),
    "length": (int, True),
    "url": (str, False),
    "user": (_USER, False),
}
_CONTACT: _Shape = {
    "phone_number": (str, True),
    "first_name": (str, True),
    "last_name": (str, False),
    "user_id": (int, False),
}
_MESSAGE: dict[str, tuple[Any, bool]] = {
    "message_id": (int, True),
    "date": ("date", True),
    "chat": (_CHAT, True),
    "from": (_USER, False),
    "sender_chat": (_CHAT, False),
    "edit_date": ("date", False),
    "text": (str, False),
    "caption": (str, False),
    "entities": ([_ENTITY], False),
    "caption_entities": ([_ENTITY], False),
    "contact": (_CONTACT, False),
    "new_chat_members": ([_USER], False),
}
_MESSAGE["reply_to_message"] = (_MESSAGE, False)
_QUERY: _Shape = {
    "id": (str, True),
    "from": (_USER, True),
    "chat_instance": (str, True),
    "message": (_MESSAGE, False),
    "data": (str, False),
}
_UPDATE: _Shape = {
    "update_id": (int, True),
    "message": (_MESSAGE, False),
    "callback_query": (_QUERY, False),
}


def malformed(data: object) -> str | None:
    """Why a webhook's JSON is not an update the bot can take in, or None if it is.

    Telegram sends nothing else, but anyone with the secret token could: an id that is
    not a whole number, text that is not Unicode (a lone surrogate), a date no calendar
    holds would otherwise fail later, in the background, or with a 500.
    """
    if not isinstance(data, dict):
        return "not an object"
    return _unreadable(data) or _unlike(data, _UPDATE, "update")


def _unreadable(data: object) -> str | None:
    """Why some value anywhere in the JSON cannot be taken in, or None."""
    stack: list[tuple[object, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > _DEPTH:
            return f"nested more than {_DEPTH} deep"
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in [*value, *value.values()])
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError:
                return "text that is not Unicode"
        elif isinstance(value, float) and not math.isfinite(value):
            return "a number that is not finite"
        elif isinstance(value, int) and not -_BIGGEST <= value <= _BIGGEST:
            return "a number beyond 64 bits"
    return None


def _unlike(value: object, shape: Any, where: str) -> str | None:
    """Why ``value`` does not have ``shape`` (see :data:`_Shape`), or None."""
    if isinstance(shape, Mapping):
        if not isinstance(value, dict):
            return f"{where} is not an object"
        for name, (inner, required) in shape.items():
            if name not in value:
                if required:
                    return f"{where}.{name} is missing"
                continue
            problem = _unlike(value[name], inner, f"{where}.{name}")
            if problem is not None:
                return problem
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where} is not a list"
        for i, item in enumerate(value):
            problem = _unlike(item, shape[0], f"{where}[{i}]")
            if problem is not None:
                return problem
        return None
    if shape == "date":
        ok = type(value) is int and 0 <= value <= _LAST_DATE
        return None if ok else f"{where} is not a date"
    return None if type(value) is shape else f"{where} is not {shape.__name__}"


def _chat_of(update: Update) -> int:
    """The chat an update belongs to, which keeps its place in that chat's order."""
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return 0


#: The channel serving an app (tests and benchmarks use it to wait for updates to be handled).
TELEGRAM_CHANNEL = web.AppKey("telegram_channel", TelegramChannel)


def serve_installers(settings: Settings, *, polling: bool = False) -> list[Installer]:
    """What ``openprimary serve`` adds to its app for Telegram: nothing without a bot token."""
    if not settings.telegram_bot_token:
        if polling:
            raise ConfigError("--telegram-polling: missing setting(s): TELEGRAM_BOT_TOKEN")
        return []
    return [installer(polling=polling)]


def installer(*, polling: bool = False) -> Installer:
    """Plugs Telegram into ``channels.server.make_app``: ``make_app(core, [installer()])``."""

    def install(app: web.Application) -> None:
        token = app[CORE].settings.telegram_bot_token or ""
        # One bot, one set of elections: claimed before the channel takes its updates.
        claim.installer(token.split(":", 1)[0])(app)
        channel = TelegramChannel(app[CORE], polling=polling)
        app[TELEGRAM_CHANNEL] = channel
        app[TELEGRAM_WEBHOOK] = channel.webhook
        app.cleanup_ctx.append(_run_channel)

    return install


async def _run_channel(app: web.Application) -> AsyncIterator[None]:
    """The bot runs, and takes updates, for as long as the web app does."""
    channel = app[TELEGRAM_CHANNEL]
    await channel.start()
    try:
        yield
    finally:
        await channel.stop()
