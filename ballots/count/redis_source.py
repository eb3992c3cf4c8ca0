"""Read an election's ballots from Redis, shard by shard, straight into the grouped model.

Each shard's ballots are a sorted set of rankings scored by their count
(``keys.ballots``).  It is read with ZSCAN, a page at a time, and each page is
merged into one grouping as it arrives, so the raw replies are never all held
at once.
"""

from __future__ import annotations

from redis.asyncio import Redis

from ballots import keys
from ballots.count.model import Ballots, CountError, Ranking
from ballots.election import Election

#: Members asked for per ZSCAN call: a page, not the whole set.
SCAN_PAGE = 5_000


async def read_groups(redis: Redis, election: Election) -> dict[Ranking, int]:
    """Every shard's ballots merged into ranking -> count; blank ballots (abstentions) under
    the empty ranking."""
    known = set(election.candidate_ids)
    groups: dict[Ranking, int] = {}
    for shard in range(election.shards):
        key = keys.ballots(election.id, shard)
        async for field, score in redis.zscan_iter(key, count=SCAN_PAGE):
            ranking = tuple(str(field).split(",")) if field else ()
            n = int(score)
            if n != score or n < 0:
                raise CountError(f"{key}: ranking {field!r} has a count {score!r}")
            if not known.issuperset(ranking):
                unknown = ", ".join(sorted(set(ranking) - known))
                raise CountError(f"{key}: ranking {field!r} names unknown candidate(s) {unknown}")
            groups[ranking] = groups.get(ranking, 0) + n
    return groups


async def read_ballots(redis: Redis, election: Election) -> Ballots:
    """The election's ballots, grouped, with its candidates' names, title and seats."""
    groups = await read_groups(redis, election)
    blank = groups.pop((), 0)
    return Ballots(
        candidates=election.candidate_ids,
        groups=groups,
        blank=blank,
        names={c.id: c.name for c in election.candidates},
        title=election.title,
        seats=election.seats,
    )
