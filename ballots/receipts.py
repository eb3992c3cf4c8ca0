"""Receipts: the random ids voters were given at the cast, listed for publication after the close.

A receipt carries no vote and no voter: it lets a voter see that a ballot
was counted for them, as the published list holds every receipt once.
"""

from __future__ import annotations

from redis.asyncio import Redis

from ballots import keys
from ballots.election import Election

#: Members asked for per ZSCAN call.
SCAN_PAGE = 5_000


async def all_receipts(redis: Redis, election: Election) -> list[str]:
    """Every receipt given in the election, sorted."""
    found: list[str] = []
    for shard in range(election.shards):
        async for member, _ in redis.zscan_iter(keys.receipts(election.id, shard), count=SCAN_PAGE):
            found.append(str(member))
    return sorted(found)
