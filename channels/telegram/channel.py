"""The Telegram channel: a PTB Application run inside the aiohttp server's lifecycle.

``POST /telegram`` checks Telegram's secret token in constant time, stores
the update in Redis (:mod:`channels.telegram.inbox`) and answers 200 once it
is stored, 503 if it could not be.  The inbox hands each update to the
Application's handlers: concurrently, but one chat's updates one at a time
and in the order they came, across every ``serve`` process.  With
``polling`` the Application's Updater fetches updates instead, for
development without a public URL; they go through the inbox too.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
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
        except ValueError:
            return web.Response(status=400, text="not JSON\n")
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return web.Response(status=400, text="not a Telegram update\n")
        try:
            update = Update.de_json(data, self.bot)
        except (TypeError, ValueError, KeyError, AttributeError):
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
