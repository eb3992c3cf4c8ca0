"""One Telegram bot serves one deployment: a server claims its bot in Redis, and a server of
other elections started with the same bot token is refused.

Updates reach a bot's inbox in Redis whatever the election (``keys.telegram_inbox``), so two
servers sharing a bot and a Redis but serving different elections would answer each other's
voters.  Each server claims the bot for what it serves (:func:`scope`: every election loaded,
or the ones ``--election`` names) for :data:`CLAIM_TTL` seconds and renews the claim while it
runs; the servers of one deployment (``--workers``, several machines) share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from ballots import keys
from ballots.errors import ConfigError
from bot.core import Deployment
from channels.appkeys import DEPLOYMENT, Installer

log = logging.getLogger(__name__)

#: How long a claim lasts without renewal, and how often a running server renews it.
CLAIM_TTL = 30
RENEW_EVERY = 10

#: Let the claim go, if it is still the election's (another server of it claims it again at
#: its next renewal).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

#: Claim the bot for an election unless another election holds it; returns the holder.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return held end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
"""


#: What a deployment that serves every loaded election claims its bot as.
EVERY_ELECTION = "*"


def scope(deployment: Deployment) -> str:
    """What a deployment claims its bot for: ``*`` (every election loaded), or the ids of
    the ones it was told to serve."""
    return EVERY_ELECTION if deployment.only is None else ",".join(sorted(deployment.only))


def _named(held: str) -> str:
    if held == EVERY_ELECTION:
        return "every loaded election"
    return f"election{'s' if ',' in held else ''} {held.replace(',', ', ')}"


async def claim(redis: Redis, bot_id: str, serving: str) -> None:
    """Claim the bot for what a deployment serves, or ConfigError naming who holds it."""
    held = str(await redis.eval(_CLAIM, 1, keys.telegram_bot(bot_id), serving, CLAIM_TTL))
    if held != serving:
        raise ConfigError(
            f"the Telegram bot {bot_id} already serves {_named(held)} from this Redis (a "
            f"server of it ran in the last {CLAIM_TTL} s). One bot serves one set of "
            f"elections: serve {_named(serving)} with a bot of its own (TELEGRAM_BOT_TOKEN), "
            "give every server the same --election, or stop the other servers first"
        )


def installer(bot_id: str) -> Installer:
    """Claims the bot before the Telegram channel starts, and keeps the claim while it runs."""

    def install(app: web.Application) -> None:
        async def claimed(app: web.Application) -> AsyncIterator[None]:
            deployment = app[DEPLOYMENT]
            serving = scope(deployment)
            await claim(deployment.redis, bot_id, serving)
            renewing = asyncio.create_task(_renew(deployment.redis, bot_id, serving))
            try:
                yield
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
                with contextlib.suppress(Exception):  # it lapses by itself anyway
                    await deployment.redis.eval(_RELEASE, 1, keys.telegram_bot(bot_id), serving)

        app.cleanup_ctx.append(claimed)

    return install


async def _renew(redis: Redis, bot_id: str, serving: str) -> None:
    while True:
        await asyncio.sleep(RENEW_EVERY)
        try:
            await claim(redis, bot_id, serving)
        except ConfigError as err:  # taken over while this server could not renew
            log.error("telegram: %s", err)
        except Exception as err:  # Redis away for a moment: the next renewal tries again
            log.warning("telegram: could not renew the bot's claim: %s", err)
