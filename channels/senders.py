"""The channels' senders, built in one place from the settings.

:func:`build_senders` makes them before anything uses them (the composition
root, ``openprimary.app``, hands them to the core, which never changes
them); :func:`open_senders` and :func:`close_senders` bracket their network
clients' lifetime.  ``serve`` and ``remind`` both build theirs here, so a
text takes its turn in the same shared rate whichever process sends it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from bot.messages import Channel
from bot.ports import Sender
from bot.ratelimit import RateLimiter
from bot.settings import Settings
from channels.sms_channel import sms_outbound
from channels.sms_sender import TwilioSender
from channels.telegram.sending import TelegramSender, build_bot
from channels.telegram.signing import ButtonSigner


def build_senders(
    settings: Settings,
    redis: Redis,
    shared: RateLimiter,
    *,
    wanted: Iterable[str] = tuple(Channel),
    connections: int = 32,
    pace_sms: bool = True,
) -> dict[str, Sender]:
    """A sender for each channel in ``wanted`` that the settings can send on.

    ``shared`` is the Redis rate limiter: one rate, and one 429 pause,
    across every process.  Each Telegram call takes its turn in it, and so
    does each SMS with ``pace_sms`` (``serve``: codes, and reminders an
    organiser starts from a chat); ``remind`` turns that off because its
    worker takes the turn itself and then checks the recipient again.
    ``connections`` is the Telegram client's HTTP pool.  Must be called with
    the event loop running (the HTTP clients belong to it).
    """
    wanted = set(wanted)
    senders: dict[str, Sender] = {}
    if Channel.SMS in wanted and sms_outbound(settings):
        senders[Channel.SMS] = TwilioSender.from_settings(
            settings,
            redis,
            pause=shared.backoff_sleep(Channel.SMS),
            turn=shared.wait_turn if pace_sms else None,
        )
    if Channel.TELEGRAM in wanted and settings.telegram_bot_token:
        bot = build_bot(settings, shared=shared, connections=connections)
        senders[Channel.TELEGRAM] = TelegramSender(bot, redis, ButtonSigner(settings.secret_key))
    return senders


@asynccontextmanager
async def opened_senders(
    settings: Settings,
    redis: Redis,
    shared: RateLimiter,
    *,
    wanted: Iterable[str] = tuple(Channel),
    connections: int = 32,
    pace_sms: bool = True,
) -> AsyncIterator[dict[str, Sender]]:
    """:func:`build_senders`, opened, and closed on exit (``remind``, tests)."""
    senders = build_senders(
        settings, redis, shared, wanted=wanted, connections=connections, pace_sms=pace_sms
    )
    try:
        await open_senders(senders)
        yield senders
    finally:
        await close_senders(senders)


async def open_senders(senders: Mapping[str, Sender]) -> None:
    """Open the senders' clients (the Telegram bot checks its token with getMe)."""
    for sender in senders.values():
        if isinstance(sender, TelegramSender):
            await sender.bot.initialize()


async def close_senders(senders: Mapping[str, Sender]) -> None:
    """Close every sender's HTTP client.  Idempotent."""
    for sender in senders.values():
        if isinstance(sender, TwilioSender | TelegramSender):
            await sender.aclose()
