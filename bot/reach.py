"""Who can be reached on each channel: the one store of opt-outs and unreachable addresses.

An address is *opted out* when its person asked for no more reminders (STOP,
or Twilio's error 21610 for a number that texted STOP to us), and
*unreachable* when the platform says a message can never get there (blocked
the bot, not a mobile number).  Every module reads and writes this state
through :class:`Reach`, so the rules for it live in one place: an address
that writes to us again is reachable again; START undoes STOP.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from ballots import keys


class Reach:
    """Opt-outs and unreachable addresses, per channel (sets in Redis)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def opt_out(self, channel: str, address: str) -> None:
        """The person asked for no more reminders on this channel."""
        await self.redis.sadd(keys.opted_out(channel), address)

    async def opt_in(self, channel: str, address: str) -> bool:
        """The person asked for reminders again; whether they had opted out."""
        return bool(await self.redis.srem(keys.opted_out(channel), address))

    async def unreachable(self, channel: str, address: str) -> None:
        """The platform says no message can reach this address."""
        await self.redis.sadd(keys.unreachable(channel), address)

    async def reachable(self, channel: str, address: str) -> None:
        """The address wrote to us: whatever blocked it is over."""
        await self.redis.srem(keys.unreachable(channel), address)

    async def is_unreachable(self, channel: str, address: str) -> bool:
        return bool(await self.redis.sismember(keys.unreachable(channel), address))

    async def check(self, channel: str, address: str) -> tuple[bool, bool]:
        """(opted out, unreachable) for one address, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self.check_many(pipe, channel, [address])
            opted_out, unreachable = await pipe.execute()
        return bool(opted_out[0]), bool(unreachable[0])

    @staticmethod
    def check_many(pipe: Pipeline, channel: str, addresses: Sequence[str]) -> None:
        """Queue on ``pipe`` the lookups for many addresses: two replies, one flag each
        (opted out, then unreachable)."""
        pipe.smismember(keys.opted_out(channel), list(addresses))
        pipe.smismember(keys.unreachable(channel), list(addresses))
