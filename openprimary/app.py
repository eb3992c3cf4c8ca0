"""The composition root: settings, Redis and the channels' parts, wired into the core once.

Every command and test that needs the core gets it from here, so the core
(``bot``) never reaches for a channel: what it needs from them (the text
rules each channel imposes, its senders) is handed in.
"""

from __future__ import annotations

from redis.asyncio import Redis

from ballots.clock import Clock
from ballots.codes import CodePolicy
from bot import core
from bot.core import Core
from bot.settings import Settings
from channels.rules import TEXT_RULES

__all__ = ["TEXT_RULES", "build_core"]


async def build_core(
    settings: Settings,
    redis: Redis,
    clock: Clock | None = None,
    election_id: str | None = None,
    policy: CodePolicy | None = None,
) -> Core:
    """The election's services, with the channels' text rules."""
    return await core.build_core(settings, redis, clock, election_id, policy, rules=TEXT_RULES)
