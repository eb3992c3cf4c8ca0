"""Unsealing after the close: the trustees' rebuilt key opens every sealed ballot.

The opened rankings are grouped and written, shard by shard and in bulk, to
the ballot box the count and the export read (``keys.ballots``): a ranking
scored by its number of ballots, in no order the sealed set had.  Until the
whole election is unsealed, counting and exporting are refused, which is
also the results embargo: nobody sees a running tally during the poll.

Opening costs a curve multiplication per ballot (about 35 µs), so a large
election is opened by a pool of processes, one per core, each reading its
own slices of the sealed sets straight from Redis.  A shard's opened
ballots are written under a staging key and renamed over the box when the
shard is complete, and the shard is then marked done, so a crash part-way
followed by a rerun gives the same box.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis as sync_redis
from redis.asyncio import Redis
from redis.asyncio.connection import UnixDomainSocketConnection

from ballots import audit, keys
from ballots.clock import Clock
from ballots.election import Election
from ballots.errors import OpenPrimaryError
from ballots.seal import InvalidBallot, decode_ranking, open_sealed, private_key_from_seed
from ballots.trustees import load_count_key

log = logging.getLogger(__name__)

#: Sealed ballots read (and opened) per slice.
SLICE = 20_000
#: Below this many sealed ballots, open them in this process: a pool costs more than it saves.
POOL_THRESHOLD = 20_000
#: Members written per ZADD.
WRITE_BATCH = 5_000


class UnsealRefused(OpenPrimaryError):
    """Unsealing is not possible (yet), or its result is not there for the count."""


@dataclass(frozen=True)
class UnsealReport:
    """What an unseal found: sealed ballots, opened, and any that would not open."""

    sealed: int
    opened: int
    invalid: int
    rankings: int
    already: bool = False


@dataclass(frozen=True)
class _Slice:
    shard: int
    key: str
    start: int
    stop: int


# --- what each worker process does ------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(
    connection: dict[str, Any], public: bytes, private: bytes, candidates: Sequence[str]
) -> None:
    _worker.update(
        redis=sync_redis.Redis(**connection),
        public=public,
        private=private,
        candidates=tuple(candidates),
    )


def _open_slice(part: _Slice) -> tuple[Counter[str], int, int]:
    """Read one slice of a sealed set and open it: (ranking counts, opened, invalid)."""
    members = _worker["redis"].zrange(part.key, part.start, part.stop - 1)
    return _open_members(members, _worker["public"], _worker["private"], _worker["candidates"])


def _open_members(
    members: Sequence[bytes | str], public: bytes, private: bytes, candidates: Sequence[str]
) -> tuple[Counter[str], int, int]:
    groups: Counter[str] = Counter()
    invalid = 0
    for member in members:
        try:
            ranking = decode_ranking(candidates, open_sealed(public, private, member))
        except InvalidBallot:
            invalid += 1
            continue
        groups[",".join(ranking)] += 1
    return groups, len(members) - invalid, invalid


# --- the unseal -------------------------------------------------------------------


def _sync_connection(redis: Redis) -> dict[str, Any]:
    """Arguments for a synchronous client to the same server (for the worker processes)."""
    pool = redis.connection_pool
    kwargs = dict(pool.connection_kwargs)
    wanted: dict[str, Any] = {"decode_responses": False}
    if issubclass(pool.connection_class, UnixDomainSocketConnection):
        wanted["unix_socket_path"] = kwargs["path"]
    else:
        wanted["host"] = kwargs.get("host", "localhost")
        wanted["port"] = kwargs.get("port", 6379)
        if "ssl" in pool.connection_class.__name__.lower():
            wanted["ssl"] = True
            for name, value in kwargs.items():
                if name.startswith("ssl_"):
                    wanted[name] = value
    for name in ("db", "username", "password"):
        if kwargs.get(name) is not None:
            wanted[name] = kwargs[name]
    return wanted


def _slices(election: Election, sizes: Sequence[int]) -> Iterator[_Slice]:
    for shard, size in enumerate(sizes):
        key = keys.sealed(election.id, shard)
        for start in range(0, size, SLICE):
            yield _Slice(shard, key, start, min(start + SLICE, size))


def require_closed(election: Election, now: datetime) -> None:
    """Refuse to unseal before the close."""
    if now < election.closes:
        raise UnsealRefused(
            f"election {election.id} closes at {election.closes:%Y-%m-%d %H:%M} UTC; the "
            "ballots can be unsealed only after the close"
        )


async def unseal(
    redis: Redis,
    election: Election,
    seed: bytes,
    clock: Clock,
    *,
    actor: str,
    shares_used: Sequence[int] = (),
    workers: int | None = None,
    pool_threshold: int = POOL_THRESHOLD,
) -> UnsealReport:
    """Open every sealed ballot with the rebuilt key and write the ballot box.

    Refused before the close.  Idempotent: a second run reports the first
    run's figures and changes nothing; a run after a crash finishes the
    shards not yet done.  If any ballot does not open, nothing is marked
    done and UnsealRefused says how many.
    """
    now = clock.now()
    require_closed(election, now)
    stored = await load_count_key(redis, election.id)
    if stored is None:
        raise UnsealRefused(f"election {election.id} has no count key, so no sealed ballots")
    private = private_key_from_seed(seed)
    if bytes(private.public_key) != stored.public:
        raise UnsealRefused(f"the key given is not the count key of {election.id}")

    progress = await redis.hgetall(keys.unsealing(election.id))
    if progress.get("done"):
        return UnsealReport(
            int(progress["sealed"]),
            int(progress["opened"]),
            int(progress["invalid"]),
            int(progress["rankings"]),
            already=True,
        )
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(election.shards):
            pipe.zcard(keys.sealed(election.id, shard))
        sizes = [int(n) for n in await pipe.execute()]

    todo = [s for s in range(election.shards) if f"shard:{s}" not in progress]
    groups: dict[int, Counter[str]] = {s: Counter() for s in todo}
    opened = dict.fromkeys(todo, 0)
    invalid = dict.fromkeys(todo, 0)
    parts = [p for p in _slices(election, sizes) if p.shard in groups]
    if sum(sizes[s] for s in todo) < pool_threshold or workers == 1:
        for part in parts:
            members: list[str] = await redis.zrange(  # type: ignore[assignment]
                part.key, part.start, part.stop - 1
            )
            g, n, bad = _open_members(
                members, stored.public, bytes(private), election.candidate_ids
            )
            groups[part.shard].update(g)
            opened[part.shard] += n
            invalid[part.shard] += bad
    else:
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(
            max_workers=workers or os.cpu_count() or 1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(
                _sync_connection(redis),
                stored.public,
                bytes(private),
                election.candidate_ids,
            ),
        ) as pool:
            futures = [(p, loop.run_in_executor(pool, _open_slice, p)) for p in parts]
            for part, future in futures:
                g, n, bad = await future
                groups[part.shard].update(g)
                opened[part.shard] += n
                invalid[part.shard] += bad

    for shard in todo:
        if invalid[shard]:
            continue
        await _write_shard(redis, election, shard, groups[shard])
        await redis.hset(
            keys.unsealing(election.id),
            f"shard:{shard}",
            f"{sizes[shard]}:{opened[shard]}:{len(groups[shard])}",
        )

    bad_total = sum(invalid.values())
    sealed_total = sum(sizes)
    if bad_total:
        await audit.record(
            redis,
            clock,
            election.id,
            actor,
            "unseal failed",
            sealed=sealed_total,
            invalid=bad_total,
            key_id=stored.id,
        )
        raise UnsealRefused(
            f"{bad_total:,} of {sealed_total:,} sealed ballots in {election.id} did not open "
            "with the count key; the unseal is not finished and nothing can be counted. "
            "Keep the Redis data for investigation."
        )
    progress = await redis.hgetall(keys.unsealing(election.id))
    opened_total = 0
    rankings = 0
    for shard in range(election.shards):
        _, n, distinct = (int(x) for x in str(progress[f"shard:{shard}"]).split(":"))
        opened_total += n
        rankings += distinct
    at = now.astimezone(UTC).isoformat(timespec="seconds")
    await redis.hset(
        keys.unsealing(election.id),
        mapping={
            "done": at,
            "by": actor,
            "sealed": sealed_total,
            "opened": opened_total,
            "invalid": 0,
            "rankings": rankings,
        },
    )
    await audit.record(
        redis,
        clock,
        election.id,
        actor,
        "ballots unsealed",
        sealed=sealed_total,
        opened=opened_total,
        invalid=0,
        shares=",".join(str(i) for i in shares_used),
        key_id=stored.id,
    )
    return UnsealReport(sealed_total, opened_total, 0, rankings)


async def _write_shard(redis: Redis, election: Election, shard: int, groups: Counter[str]) -> None:
    """Write one shard's grouped ballots in bulk, then put them in place in one step."""
    staging = keys.unsealed_part(election.id, shard)
    box = keys.ballots(election.id, shard)
    await redis.delete(staging)
    items = sorted(groups.items())
    for start in range(0, len(items), WRITE_BATCH):
        await redis.zadd(staging, dict(items[start : start + WRITE_BATCH]))
    if items:
        await redis.rename(staging, box)
    else:
        await redis.delete(box)


async def unsealed_at(redis: Redis, election: Election) -> datetime | None:
    """When the election was unsealed, or None while its ballots are sealed."""
    done = await redis.hget(keys.unsealing(election.id), "done")
    return datetime.fromisoformat(str(done)) if done else None


async def require_unsealed(redis: Redis, election: Election, what: str) -> None:
    """Refuse ``what`` (count, export) while the election's ballots are still sealed."""
    if await unsealed_at(redis, election) is not None:
        return
    if (await load_count_key(redis, election.id)) is None:
        raise UnsealRefused(
            f"cannot {what} election {election.id}: it has no count key and so no ballots "
            f"(run 'openprimary trustees init --election {election.id} ...' before it opens)"
        )
    raise UnsealRefused(
        f"cannot {what} election {election.id}: its ballots are sealed until the trustees "
        f"unseal them after the close ({election.closes:%Y-%m-%d %H:%M} UTC) with "
        f"'openprimary unseal --election {election.id} --share FILE --share FILE ...'"
    )
