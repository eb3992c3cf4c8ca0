"""Read an election's ballots from Redis, shard by shard, straight into the grouped model.

Each shard's ballots are a sorted set of rankings scored by their count
(``keys.ballots``); in an electoral college each ranking is prefixed by its section.
It is read with ZSCAN, a page at a time, and each page is merged into one grouping
as it arrives, so the raw replies are never all held at once.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from ballots import keys
from ballots.count import count
from ballots.count.college import College, count_college
from ballots.count.model import Ballots, CountError, Ranking
from ballots.count.result import Result
from ballots.election import Election

#: Members asked for per ZSCAN call: a page, not the whole set.
SCAN_PAGE = 5_000


async def read_section_groups(redis: Redis, election: Election) -> dict[str, dict[Ranking, int]]:
    """Every shard's ballots merged into section -> ranking -> count (section ``""`` when the
    election has no sections); blank ballots (abstentions) under the empty ranking.

    In an electoral college each member of the box is ``section:ranking``.
    """
    known = set(election.candidate_ids)
    sections = set(election.section_names)
    found: dict[str, dict[Ranking, int]] = {name: {} for name in election.section_names}
    for shard in range(election.shards):
        key = keys.ballots(election.id, shard)
        async for raw, score in redis.zscan_iter(key, count=SCAN_PAGE):
            field = str(raw)
            section, _, listed = field.rpartition(":")
            if section not in sections and (section or sections):
                raise CountError(f"{key}: ranking {field!r} is in no section of the election")
            ranking = tuple(listed.split(",")) if listed else ()
            n = int(score)
            if n != score or n < 0:
                raise CountError(f"{key}: ranking {field!r} has a count {score!r}")
            if not known.issuperset(ranking):
                unknown = ", ".join(sorted(set(ranking) - known))
                raise CountError(f"{key}: ranking {field!r} names unknown candidate(s) {unknown}")
            groups = found.setdefault(section, {})
            groups[ranking] = groups.get(ranking, 0) + n
    return found


async def read_groups(redis: Redis, election: Election) -> dict[Ranking, int]:
    """Every shard's ballots merged into ranking -> count; blank ballots (abstentions) under
    the empty ranking.  (An electoral college's sections merged: unweighted.)"""
    merged: dict[Ranking, int] = {}
    for groups in (await read_section_groups(redis, election)).values():
        for ranking, n in groups.items():
            merged[ranking] = merged.get(ranking, 0) + n
    return merged


def _ballots(election: Election, groups: dict[Ranking, int]) -> Ballots:
    groups = dict(groups)
    blank = groups.pop((), 0)
    return Ballots(
        candidates=election.candidate_ids,
        groups=groups,
        blank=blank,
        names={c.id: c.name for c in election.candidates},
        title=election.title,
        seats=election.seats,
    )


async def read_ballots(redis: Redis, election: Election) -> Ballots:
    """The election's ballots, grouped, with its candidates' names, title and seats.

    An electoral college's ballots are refused here: counted together unweighted they
    would give the wrong answer.  Read them with :func:`read_college`.
    """
    if election.sections:
        raise CountError(
            f"election {election.id} is an electoral college: its sections' ballots are "
            "weighted and counted with read_college, never pooled"
        )
    return _ballots(election, await read_groups(redis, election))


async def read_college(redis: Redis, election: Election) -> College:
    """An electoral college's ballots, one grouping per section, with the sections' shares."""
    found = await read_section_groups(redis, election)
    return College(
        shares=election.shares,
        sections={name: _ballots(election, found[name]) for name in election.section_names},
    )


async def count_election(
    redis: Redis,
    election: Election,
    *,
    seed: int = 0,
    bulk_exclusion: bool = False,
    min_section_ballots: int | None = None,
) -> Result:
    """Count an unsealed election by its own method: weighted by section in an electoral
    college (``min_section_ballots`` overrides the election's own threshold)."""
    if election.sections:
        college = await read_college(redis, election)
        return await asyncio.to_thread(
            count_college,
            college,
            election.method,
            seed=seed,
            bulk_exclusion=bulk_exclusion,
            min_ballots=min_section_ballots or election.min_section_ballots,
        )
    ballots = await read_ballots(redis, election)
    return await asyncio.to_thread(
        count,
        ballots,
        election.method,
        seats=election.seats,
        seed=seed,
        bulk_exclusion=bulk_exclusion,
    )
