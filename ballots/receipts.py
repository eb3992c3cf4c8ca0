"""Receipts: the random ids voters were given at the cast, listed for publication after the close.

A receipt carries no vote and no voter: it lets a voter see that a ballot
was counted for them, as the published list holds every receipt once.
"""

from __future__ import annotations

import secrets

from redis.asyncio import Redis

from ballots import keys
from ballots.election import Election

#: Members asked for per ZSCAN call.
SCAN_PAGE = 5_000
#: Crockford's base 32: no I, L, O or U, so a receipt read aloud or copied by hand is not
#: mistaken for another.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: 10 characters of 5 bits: 50 random bits, as long as an SMS receipt line allows (an Urdu
#: receipt fills one UCS-2 segment).  The cast refuses a receipt its shard has given already
#: (and draws another), so receipts within a shard never repeat: with one shard (the
#: default) no two voters ever share one.  Across shards two equal receipts among 1,000,000
#: voters have a chance of about 1 in 2,250; both ballots are counted all the same.
LENGTH = 10


def new_receipt() -> str:
    """A fresh random receipt id."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


async def all_receipts(redis: Redis, election: Election) -> list[str]:
    """Every receipt given in the election, sorted."""
    found: list[str] = []
    for shard in range(election.shards):
        async for member, _ in redis.zscan_iter(keys.receipts(election.id, shard), count=SCAN_PAGE):
            found.append(str(member))
    return sorted(found)
