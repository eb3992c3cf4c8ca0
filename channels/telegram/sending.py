"""Putting OutboundMessages on Telegram: the bot client, keyboards, replies and sends."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redis.asyncio import Redis
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import ExtBot

from ballots.errors import ConfigError
from bot import texts
from bot.alerts import ChannelHealth
from bot.copies import Copy, Kind, Outcome, PlatformCopies
from bot.i18n import speaking
from bot.messages import Channel, OutboundMessage
from bot.metrics import SEND_FAILURES
from bot.ports import SendResult
from bot.reach import Reach
from bot.settings import Settings
from channels.telegram.signing import ButtonSigner
from channels.telegram.throttle import SharedLimit, Throttle
from channels.telegram.transport import AiohttpRequest, NeverSent

log = logging.getLogger(__name__)

CHANNEL = Channel.TELEGRAM
#: The share-phone button's label in English (``texts.share_phone`` in the message's language).
SHARE_PHONE = "Share my phone number"
#: Seconds getUpdates waits for news when polling.
POLL_TIMEOUT = 10

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove
Bot = ExtBot[None]


def api_urls(base: str | None) -> tuple[str, str]:
    """PTB's ``base_url`` and ``base_file_url`` for TELEGRAM_API_BASE (PTB appends the token).

    TELEGRAM_API_BASE is the server's root, such as ``http://localhost:8081``
    for a local Bot API server; unset means api.telegram.org.
    """
    root = (base or "https://api.telegram.org").rstrip("/")
    if root.endswith("/bot"):  # given in PTB's own form
        root = root[: -len("/bot")]
    return f"{root}/bot", f"{root}/file/bot"


def build_bot(
    settings: Settings, shared: SharedLimit | None = None, *, connections: int = 32
) -> Bot:
    """The Bot API client, with the flood-limit throttle every call goes through.

    The one builder: ``serve`` and ``remind`` both use it.  ``shared`` makes
    the bot's overall rate, and 429 pauses, hold across every process that
    sends as this bot (both pass the Redis limiter); ``connections`` is the
    HTTP pool (``remind`` keeps more messages on their way).
    """
    settings.require("telegram_bot_token")
    assert settings.telegram_bot_token is not None
    base_url, base_file_url = api_urls(settings.telegram_api_base)
    return ExtBot(
        settings.telegram_bot_token,
        base_url=base_url,
        base_file_url=base_file_url,
        request=AiohttpRequest(connection_pool_size=connections, pool_timeout=10.0),
        get_updates_request=AiohttpRequest(
            connection_pool_size=1, read_timeout=POLL_TIMEOUT + 10.0
        ),
        rate_limiter=Throttle(settings.telegram_rate, settings.telegram_chat_rate, shared=shared),
    )


def check_webhook_secret(secret: str | None) -> str:
    """TELEGRAM_WEBHOOK_SECRET, checked against what Telegram accepts as a secret_token."""
    if not secret:
        raise ConfigError("missing setting(s): TELEGRAM_WEBHOOK_SECRET")
    if not 16 <= len(secret) <= 256 or not all(
        c.isascii() and (c.isalnum() or c in "_-") for c in secret
    ):
        raise ConfigError(
            "TELEGRAM_WEBHOOK_SECRET: must be 16 to 256 characters of A-Z, a-z, 0-9, _ and - "
            "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return secret


def markup_for(message: OutboundMessage, chat_id: str, signer: ButtonSigner) -> Markup | None:
    """The keyboard for a message: its buttons inline, a share-phone button, or none.

    A message has room for one keyboard.  With a share-phone button, the
    message's buttons join it on that keyboard as words to send (a greeting's
    other languages, each of which switches by its own name).
    """
    if message.ask_contact:
        with speaking(message.language):
            share = texts.share_phone()
        rows = [[KeyboardButton(share, request_contact=True)]]
        rows += [[KeyboardButton(b.label) for b in row] for row in message.buttons]
        return ReplyKeyboardMarkup(rows, one_time_keyboard=True, resize_keyboard=True)
    if message.buttons:
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(b.label, callback_data=signer.sign(chat_id, b.payload))
                    for b in row
                ]
                for row in message.buttons
            ]
        )
    if message.remove_keyboard:
        return ReplyKeyboardRemove()
    return None


async def send_replies(
    bot: Bot,
    redis: Redis,
    signer: ButtonSigner,
    chat_id: str,
    replies: Sequence[OutboundMessage],
    *,
    tapped_message_id: int | None = None,
    copies: PlatformCopies | None = None,
    health: ChannelHealth | None = None,
) -> None:
    """Send the router's replies to one chat; a reply marked ``edit`` updates the tapped message.

    A private reply (it shows the voter's choices) is noted with ``copies``,
    to be removed from the chat once the ballot is cast.  Failures are
    logged and counted, never raised: the conversation has already moved
    on, and the voter can always type AGAIN.  ``health`` hears how each send went.
    """
    for reply in replies:
        markup = markup_for(reply, chat_id, signer)
        try:
            if (
                reply.edit
                and tapped_message_id is not None
                and (markup is None or isinstance(markup, InlineKeyboardMarkup))
            ):
                target, tapped_message_id = tapped_message_id, None
                if await _edit(bot, chat_id, target, reply.text, markup):
                    await _track(copies, chat_id, target, reply)
                    continue
            sent = await bot.send_message(int(chat_id), reply.text, reply_markup=markup)
            await _track(copies, chat_id, sent.message_id, reply)
            if health is not None:
                health.sent(CHANNEL)
        except Forbidden as err:
            await mark_unreachable(redis, chat_id, err)
            return
        except TelegramError as err:
            SEND_FAILURES.labels(CHANNEL, _reason(err)).inc()
            log.warning("telegram reply not delivered: %s", err.message)
            if health is not None and not isinstance(err, BadRequest):
                await health.failed(CHANNEL, err.message)


async def _track(
    copies: PlatformCopies | None, chat_id: str, message_id: int, reply: OutboundMessage
) -> None:
    """Note a message that now shows the voter's choices, or one that no longer does."""
    if copies is None:
        return
    if reply.private:
        kind = Kind.CONFIRM if reply.kind == "confirm" else Kind.BOT
        await copies.note(CHANNEL, chat_id, str(message_id), kind)
    else:
        await copies.replaced(CHANNEL, chat_id, str(message_id))


async def remove_copy(bot: Bot, copy: Copy) -> Outcome:
    """Remove one vote-bearing message from a chat: the ballot to confirm is edited, others go.

    Bots may delete messages in a private chat, their own and the user's,
    for 48 hours; after that, or once the voter deleted it, it is gone.
    """
    chat_id, message_id = int(copy.address), int(copy.ref)
    try:
        if copy.kind is Kind.CONFIRM:
            await bot.edit_message_text(
                texts.choices_removed(), chat_id=chat_id, message_id=message_id, reply_markup=None
            )
        else:
            await bot.delete_message(chat_id, message_id)
    except Forbidden:
        return Outcome.GONE
    except BadRequest as err:
        reason = err.message.lower()
        if "not modified" in reason:
            return Outcome.REMOVED
        if "not found" in reason or "can't be" in reason:
            if copy.kind is Kind.CONFIRM and "can't be edited" in reason:
                return await remove_copy(bot, Copy(Kind.BOT, copy.address, copy.ref))
            return Outcome.GONE
        log.warning("telegram refused to remove a message: %s", err.message)
        return Outcome.FAILED
    except (RetryAfter, NetworkError):
        return Outcome.RETRY
    return Outcome.REMOVED


async def _edit(bot: Bot, chat_id: str, message_id: int, text: str, markup: Markup | None) -> bool:
    """Edit the tapped message; False if it cannot be edited and a new one should go instead."""
    try:
        await bot.edit_message_text(
            text,
            chat_id=int(chat_id),
            message_id=message_id,
            reply_markup=markup if isinstance(markup, InlineKeyboardMarkup) else None,
        )
    except BadRequest as err:
        if "not modified" in err.message.lower():
            return True  # it already says this (a repeated tap)
        log.info("could not edit a telegram message (%s); sending a new one", err.message)
        return False
    return True


async def mark_unreachable(redis: Redis, chat_id: str, err: TelegramError) -> None:
    """Remember that a chat cannot be reached (blocked the bot, deleted account)."""
    await Reach(redis).unreachable(CHANNEL, chat_id)
    SEND_FAILURES.labels(CHANNEL, "unreachable").inc()
    log.info("telegram chat marked unreachable: %s", err.message)


def _never_sent(err: NetworkError) -> bool:
    """Whether the request never left: no connection could be opened, or none was free."""
    return isinstance(err.__cause__, NeverSent)


def _reason(err: TelegramError) -> str:
    if isinstance(err, RetryAfter):
        return "rate_limited"
    if isinstance(err, BadRequest):
        return "bad_request"
    return "error"


class TelegramSender:
    """Sends messages that start with the bot (codes, reminders) to a Telegram chat."""

    channel: str = CHANNEL

    def __init__(self, bot: Bot, redis: Redis, signer: ButtonSigner) -> None:
        self.bot = bot
        self.redis = redis
        self.signer = signer

    @property
    def paces_itself(self) -> bool:
        """Whether every message already takes its turn in the shared rate (``serve``'s bot).

        A reminder worker then must not take a second turn for the same message.
        """
        limiter = self.bot.rate_limiter
        return isinstance(limiter, Throttle) and limiter.shared is not None

    async def aclose(self) -> None:
        """Close the bot's HTTP clients.  Idempotent."""
        await self.bot.shutdown()

    async def send(self, address: str, message: OutboundMessage) -> SendResult:
        """Send one message; a chat that has blocked the bot is marked unreachable, not retried."""
        try:
            chat_id = int(address)
        except ValueError:
            return SendResult("failed", f"not a Telegram chat id: {address!r}")
        if await Reach(self.redis).is_unreachable(CHANNEL, address):
            return SendResult("unreachable", "blocked the bot earlier")
        try:
            sent = await self.bot.send_message(
                chat_id, message.text, reply_markup=markup_for(message, address, self.signer)
            )
        except Forbidden as err:
            await mark_unreachable(self.redis, address, err)
            return SendResult("unreachable", err.message)
        except BadRequest as err:
            if "chat not found" in err.message.lower():
                await mark_unreachable(self.redis, address, err)
                return SendResult("unreachable", err.message)
            SEND_FAILURES.labels(CHANNEL, "bad_request").inc()
            return SendResult("failed", err.message)
        except NetworkError as err:
            if _never_sent(err):
                SEND_FAILURES.labels(CHANNEL, "network").inc()
                return SendResult("failed", err.message)
            # A timeout, a cut connection or a 5xx: Telegram may have delivered it.
            SEND_FAILURES.labels(CHANNEL, "in_doubt").inc()
            log.warning("telegram message in doubt, not retried: %s", err.message)
            return SendResult("in_doubt", err.message)
        except TelegramError as err:
            # RetryAfter here means the throttle already waited and retried, and gave up.
            SEND_FAILURES.labels(CHANNEL, _reason(err)).inc()
            return SendResult("failed", err.message)
        return SendResult("sent", platform_id=str(sent.message_id))
