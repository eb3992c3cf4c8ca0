"""One Telegram bot serves one election: a server claims its bot in Redis, and a server of
another election started with the same bot token is refused.

Updates reach a bot's inbox in Redis whatever the election (``keys.telegram_inbox``), so two
elections' servers sharing a bot and a Redis would answer each other's voters.  Each server
claims the bot for its election for :data:`CLAIM_TTL` seconds and renews the claim while it
runs; the servers of one election (``--workers``, several machines) share it.
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
from channels.appkeys import CORE, Installer

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


async def claim(redis: Redis, bot_id: str, election_id: str) -> None:
    """Claim the bot for the election, or ConfigError naming the election that holds it."""
    held = str(await redis.eval(_CLAIM, 1, keys.telegram_bot(bot_id), election_id, CLAIM_TTL))
    if held != election_id:
        raise ConfigError(
            f"the Telegram bot {bot_id} already serves election {held} from this Redis (a "
            f"server of it ran in the last {CLAIM_TTL} s). One bot serves one election: give "
            f"{election_id} a bot of its own (TELEGRAM_BOT_TOKEN), or stop {held}'s servers "
            "first"
        )


def installer(bot_id: str) -> Installer:
    """Claims the bot before the Telegram channel starts, and keeps the claim while it runs."""

    def install(app: web.Application) -> None:
        async def claimed(app: web.Application) -> AsyncIterator[None]:
            core = app[CORE]
            await claim(core.redis, bot_id, core.election.id)
            renewing = asyncio.create_task(_renew(core.redis, bot_id, core.election.id))
            try:
                yield
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
                with contextlib.suppress(Exception):  # it lapses by itself anyway
                    await core.redis.eval(_RELEASE, 1, keys.telegram_bot(bot_id), core.election.id)

        app.cleanup_ctx.append(claimed)

    return install


async def _renew(redis: Redis, bot_id: str, election_id: str) -> None:
    while True:
        await asyncio.sleep(RENEW_EVERY)
        try:
            await claim(redis, bot_id, election_id)
        except ConfigError as err:  # taken over while this server could not renew
            log.error("telegram: %s", err)
        except Exception as err:  # Redis away for a moment: the next renewal tries again
            log.warning("telegram: could not renew the bot's claim: %s", err)
