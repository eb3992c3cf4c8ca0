"""The Telegram channel: a PTB Application run inside the aiohttp server's lifecycle.

``POST /telegram`` checks Telegram's secret token in constant time, queues
the update for the Application and answers 200 at once; the Application
handles updates concurrently, but one chat's updates one at a time and in
the order they came.  With ``polling`` the Application's Updater fetches
updates instead, for development without a public URL.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    CallbackContext,
    CallbackQueryHandler,
    MessageHandler,
    filters,
)

from ballots.errors import ConfigError
from bot.copies import Remover
from bot.core import Core
from bot.ratelimit import limiter_for
from bot.settings import Settings
from channels.telegram.handlers import Handlers
from channels.telegram.sending import (
    CHANNEL,
    POLL_TIMEOUT,
    Bot,
    TelegramSender,
    build_bot,
    check_webhook_secret,
    remove_copy,
)
from channels.telegram.signing import ButtonSigner

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: The update types the bot asks for; anything else is not delivered at all.
ALLOWED_UPDATES = ["message", "callback_query"]

#: Plugs a channel into the web app (``channels.server.Installer``).
Installer = Callable[[web.Application], None]

TelegramApp = Application[
    Bot,
    CallbackContext[Bot, dict[Any, Any], dict[Any, Any], dict[Any, Any]],
    dict[Any, Any],
    dict[Any, Any],
    dict[Any, Any],
    None,
]


@dataclass
class _ChatTurns:
    lock: asyncio.Lock
    waiting: int = 0


class PerChatOrder(BaseUpdateProcessor):
    """Updates run concurrently, except that one chat's run one at a time, in arrival order.

    The router's Redis lock already keeps two messages of one voter apart;
    this keeps them in order too (asyncio locks are first come, first
    served), so "1" then "2" typed quickly rank in that order.
    """

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._chats: dict[int, _ChatTurns] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        turns = self._chats.get(chat.id)
        if turns is None:
            turns = self._chats[chat.id] = _ChatTurns(asyncio.Lock())
        turns.waiting += 1
        try:
            async with turns.lock:
                await coroutine
        finally:
            turns.waiting -= 1
            if turns.waiting == 0:
                del self._chats[chat.id]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


class TelegramChannel:
    """The bot for one server: the Application, its handlers, the webhook and the sender."""

    def __init__(
        self, core: Core, *, polling: bool = False, max_concurrent_updates: int = 256
    ) -> None:
        settings = core.settings
        self.core = core
        self.polling = polling
        secret = settings.telegram_webhook_secret
        if not polling:
            check_webhook_secret(secret)
        self._secret = secret.encode() if secret else None
        bot = build_bot(settings, shared=limiter_for(settings, core.redis))
        signer = ButtonSigner(settings.secret_key)
        builder = (
            ApplicationBuilder()
            .bot(bot)
            .concurrent_updates(PerChatOrder(max_concurrent_updates))
            .job_queue(None)
        )
        if not polling:
            builder = builder.updater(None)
        self.application: TelegramApp = builder.build()
        self.sender = TelegramSender(bot, core.redis, signer)
        self._add_handlers(
            Handlers(core.router, core.redis, signer, settings.default_region, core.copies)
        )
        self._remover: Remover | None = None

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
        """Start handling updates, and offer the sender to the router."""
        await self.application.initialize()
        await self.application.start()
        self.core.senders[CHANNEL] = self.sender
        copies = self.core.copies
        if copies is not None:
            bot = self.bot
            self._remover = Remover(copies, CHANNEL, lambda copy: remove_copy(bot, copy))
            self._remover.start()
        if self.polling:
            updater = self.application.updater
            assert updater is not None
            # Polling and a webhook exclude each other; start_polling deletes the webhook.
            await updater.start_polling(timeout=POLL_TIMEOUT, allowed_updates=ALLOWED_UPDATES)
            log.info("telegram: polling for updates as @%s", self.bot.username)
        else:
            log.info("telegram: taking webhook updates for @%s", self.bot.username)

    async def stop(self) -> None:
        """Finish the updates already taken in, then close the client."""
        if self.core.senders.get(CHANNEL) is self.sender:
            del self.core.senders[CHANNEL]
        if self._remover is not None:
            await self._remover.stop()
            self._remover = None
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    async def drain(self) -> None:
        """Wait until every update taken in so far has been handled (tests, benchmarks)."""
        await self.application.update_queue.join()

    async def webhook(self, request: web.Request) -> web.Response:
        """POST /telegram: check the secret token, queue the update, answer 200."""
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
        await self.application.update_queue.put(update)
        return web.Response(text="ok\n")


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
        # Imported here: the server imports this module to build its app.
        from channels.server import CORE, TELEGRAM_WEBHOOK

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
