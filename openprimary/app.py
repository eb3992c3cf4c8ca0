"""The composition root: settings, Redis and the channels' parts, wired into the core once.

Every command and test that needs the core gets it from here, so the core
(``bot``) never reaches for a channel: what it needs from them (the text
rules each channel imposes, its senders) is built first and handed in, and
never changed after.  The channels' web parts (``channels.server.make_app``
with their installers) then open and close the senders with the app.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from ballots.clock import Clock
from ballots.codes import CodePolicy
from bot import core
from bot.core import Core
from bot.messages import Channel
from bot.ports import Sender
from bot.ratelimit import limiter_for
from bot.settings import Settings
from channels.rules import TEXT_RULES
from channels.senders import build_senders

__all__ = ["TEXT_RULES", "build_core"]


async def build_core(
    settings: Settings,
    redis: Redis,
    clock: Clock | None = None,
    election_id: str | None = None,
    policy: CodePolicy | None = None,
    *,
    senders: Mapping[str, Sender] | None = None,
) -> Core:
    """The election's services, with the channels' text rules and senders.

    The senders are the ones the settings call for (Twilio with TWILIO_*,
    the Bot API with TELEGRAM_BOT_TOKEN); ``senders`` puts others in their
    place, channel by channel (the demo's console, tests' recorders).
    """
    given = dict(senders or {})
    wanted = [ch for ch in Channel if ch not in given]
    built = build_senders(settings, redis, limiter_for(settings, redis), wanted=wanted)
    built.update(given)
    return await core.build_core(
        settings, redis, clock, election_id, policy, rules=TEXT_RULES, senders=built
    )
