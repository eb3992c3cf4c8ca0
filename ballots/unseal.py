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
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.cluster import ClusterNode
from redis.sentinel import Sentinel

from ballots import audit, keys
from ballots.clock import Clock
from ballots.connection import is_cluster
from ballots.election import Election
from ballots.errors import OpenPrimaryError
from ballots.program import program
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
    #: Receipts given to two voters each (a clash from before receipts were checked at the
    #: cast): the ballots are all there, but those voters cannot tell their receipts apart.
    shared_receipts: int = 0


@dataclass(frozen=True)
class _Slice:
    shard: int
    key: str
    start: int
    stop: int


# --- what each worker process does ------------------------------------------------

_worker: dict[str, Any] = {}


@dataclass(frozen=True)
class _Opener:
    """What opening needs: the key pair and what a valid ranking is in this election."""

    public: bytes
    private: bytes
    candidates: tuple[str, ...]
    max_preferences: int
    #: Blank ballots are allowed (``abstain``): an empty ranking is one, not invalid.
    abstain: bool = False
    #: An electoral college's sections: each sealed ballot is ``section:sealed``.
    sections: tuple[str, ...] = ()


@dataclass
class _Opened:
    """What one slice (or a whole shard) opened to."""

    groups: Counter[str]
    opened: int = 0
    invalid: int = 0
    #: The first 11 characters of each sealed ballot, one after another: to find one twice.
    digests: bytes = b""

    def add(self, other: _Opened) -> None:
        self.groups.update(other.groups)
        self.opened += other.opened
        self.invalid += other.invalid
        self.digests += other.digests


def _init_worker(connection: dict[str, Any], opener: _Opener) -> None:
    _worker.update(redis=_sync_client(connection), opener=opener)


def _sync_client(connection: dict[str, Any]) -> Any:
    """The worker's own synchronous client, to the server, the Sentinels' primary or the Cluster."""
    connection = dict(connection)
    nodes = connection.pop("cluster_nodes", None)
    if nodes is not None:
        startup = [ClusterNode(host, port) for host, port in nodes]  # type: ignore[no-untyped-call]
        return sync_redis.RedisCluster(startup_nodes=startup, **connection)
    sentinels = connection.pop("sentinels", None)
    if sentinels is not None:
        service = connection.pop("service")
        watchers = Sentinel(sentinels)
        return watchers.master_for(service, **connection)
    return sync_redis.Redis(**connection)


def _open_slice(part: _Slice) -> _Opened:
    """Read one slice of a sealed set and open it (in a pool worker)."""
    members = _worker["redis"].zrange(part.key, part.start, part.stop - 1)
    return _open_members(members, _worker["opener"])


def _open_members(members: Sequence[bytes | str], opener: _Opener) -> _Opened:
    result = _Opened(Counter())
    digests = bytearray()
    #: Records seen in this batch -> the ranking they hold: far fewer than ballots.
    known: dict[bytes, str] = {}
    sections = {name.encode(): name for name in opener.sections}
    for member in members:
        raw = member if isinstance(member, bytes) else member.encode()
        # In an electoral college the section is stored beside the sealed ballot (base64
        # holds no ':'); the ballot's box member is then "section:ranking".
        prefix, colon, raw = raw.rpartition(b":")
        section = sections.get(prefix)
        # A sealed box starts with its own random ephemeral key: its first 66 bits (11
        # base64 characters) tell two ballots apart, and the same ballot twice.
        digests += raw[:11].ljust(11, b"\0")
        try:
            if (section is None) != (not colon and not sections):
                raise InvalidBallot("in no section of the election, or in one it has not")
            record = open_sealed(opener.public, opener.private, raw)
            ranking = known.get(record)
            if ranking is None:
                ids = decode_ranking(opener.candidates, record)
                if (not ids and not opener.abstain) or len(ids) > opener.max_preferences:
                    raise InvalidBallot("not a ranking this election accepts")
                ranking = known[record] = ",".join(ids)
        except InvalidBallot:
            result.invalid += 1
            continue
        result.groups[f"{section}:{ranking}" if section is not None else ranking] += 1
    result.opened = len(members) - result.invalid
    result.digests = bytes(digests)
    return result


# --- the unseal -------------------------------------------------------------------


def _sync_connection(redis: Redis) -> dict[str, Any]:
    """Arguments for a synchronous client to the same server (for the worker processes)."""
    if is_cluster(redis):
        cluster: Any = redis
        return {
            "cluster_nodes": [(n.host, n.port) for n in cluster.get_primaries()],
            "decode_responses": False,
            "username": cluster.connection_kwargs.get("username"),
            "password": cluster.connection_kwargs.get("password"),
        }
    pool = redis.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        manager = pool.sentinel_manager
        kwargs = dict(pool.connection_kwargs)
        return {
            "sentinels": [
                (
                    s.connection_pool.connection_kwargs["host"],
                    s.connection_pool.connection_kwargs["port"],
                )
                for s in manager.sentinels
            ],
            "service": pool.service_name,
            "decode_responses": False,
            **{k: kwargs[k] for k in ("db", "username", "password") if kwargs.get(k) is not None},
        }
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


def _slices(election: Election, sizes: Sequence[int], size_of_slice: int) -> Iterator[_Slice]:
    for shard, size in enumerate(sizes):
        key = keys.sealed(election.id, shard)
        for start in range(0, size, size_of_slice):
            yield _Slice(shard, key, start, min(start + size_of_slice, size))


async def _freeze_and_reconcile(
    redis: Redis, election: Election, now: datetime
) -> tuple[list[int], int]:
    """Stop every shard taking ballots, then check its sealed ballots against its voters.

    Freezing first means no cast (on a server whose clock is behind) can slip
    in while the sets are read.  Then each shard must hold exactly as many
    sealed ballots as voters it marked as voted and receipts it gave: a
    ballot added by someone with write access to Redis, or one lost, stops
    the unseal here.  A shard with fewer receipts is not tampered with if its
    voters' own records explain the gap: two voters were given the same
    receipt (possible before receipts were checked at the cast).  Returns the
    number of sealed ballots in each shard, and how many receipts were shared.
    """
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hsetnx(keys.unsealing(election.id), "started", now.isoformat(timespec="seconds"))
        for shard in range(election.shards):
            pipe.hset(keys.shard_meta(election.id, shard), "frozen", "1")
        await pipe.execute()
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(election.shards):
            pipe.zcard(keys.sealed(election.id, shard))
            pipe.hget(keys.turnout(election.id, shard), "total")
            pipe.zcard(keys.receipts(election.id, shard))
        counts = await pipe.execute()
    sizes = []
    problems = []
    shared = 0
    for shard in range(election.shards):
        sealed, voted, receipts = (int(n or 0) for n in counts[3 * shard : 3 * shard + 3])
        sizes.append(sealed)
        if sealed == voted == receipts:
            continue
        if sealed == voted and receipts < sealed:
            given, distinct = await _receipts_given(redis, election, shard)
            if given == voted and distinct == receipts:
                shared += given - distinct
                continue
        problems.append(
            f"shard {shard}: {sealed} sealed ballots, {voted} voters marked as voted, "
            f"{receipts} receipts"
        )
    if problems:
        raise UnsealRefused(
            f"the sealed ballots of {election.id} do not match its voters, so the box has been "
            "altered outside OpenPrimary; nothing was unsealed. Keep the Redis data for "
            "investigation. " + "; ".join(problems)
        )
    if shared:
        log.warning(
            "election %s: %d receipts were given to two voters each (a clash, not tampering)",
            election.id,
            shared,
        )
    return sizes, shared


async def _receipts_given(redis: Redis, election: Election, shard: int) -> tuple[int, int]:
    """How many of a shard's voters hold a receipt, and how many different receipts they hold."""
    given = 0
    distinct: set[str] = set()
    page: list[str] = []

    async def read(ids: list[str]) -> None:
        nonlocal given
        async with redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hget(keys.voter(election.id, shard, sid), "receipt")
            for receipt in await pipe.execute():
                if receipt:
                    given += 1
                    distinct.add(str(receipt))

    async for sid in redis.sscan_iter(keys.members(election.id, shard), count=WRITE_BATCH):
        page.append(str(sid))
        if len(page) >= WRITE_BATCH:
            await read(page)
            page = []
    if page:
        await read(page)
    return given, len(distinct)


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
    slice_size: int = SLICE,
) -> UnsealReport:
    """Open every sealed ballot with the rebuilt key and write the ballot box.

    Refused before the close, and if the sealed ballots do not match the
    voters marked as voted.  Idempotent: a second run reports the first
    run's figures and changes nothing; a run after a crash finishes the
    shards not yet done.  If any ballot does not open, is not a valid
    ranking or is there twice, nothing is written and UnsealRefused says how
    many.
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
            shared_receipts=int(progress.get("shared_receipts", 0)),
        )
    sizes, shared = await _freeze_and_reconcile(redis, election, now)
    opener = _Opener(
        stored.public,
        bytes(private),
        election.candidate_ids,
        election.max_preferences,
        election.abstain,
        election.section_names,
    )
    todo = [s for s in range(election.shards) if f"shard:{s}" not in progress]
    results = {s: _Opened(Counter()) for s in todo}
    parts = [p for p in _slices(election, sizes, slice_size) if p.shard in results]
    if sum(sizes[s] for s in todo) < pool_threshold or workers == 1:
        for part in parts:
            members: list[str] = await redis.zrange(  # type: ignore[assignment]
                part.key, part.start, part.stop - 1
            )
            results[part.shard].add(_open_members(members, opener))
    else:
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(
            max_workers=workers or os.cpu_count() or 1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(_sync_connection(redis), opener),
        ) as pool:
            futures = [(p, loop.run_in_executor(pool, _open_slice, p)) for p in parts]
            for part, future in futures:
                results[part.shard].add(await future)

    bad_total = sum(r.invalid for r in results.values())
    digests = b"".join(r.digests for r in results.values())
    twice = sum(results[s].opened + results[s].invalid for s in todo) - len(
        {digests[i : i + 11] for i in range(0, len(digests), 11)}
    )
    sealed_total = sum(sizes)
    if bad_total or twice:
        await audit.record(
            redis,
            clock,
            election.id,
            actor,
            "unseal failed",
            sealed=sealed_total,
            invalid=bad_total,
            duplicated=twice,
            key_id=stored.id,
        )
        what = []
        if bad_total:
            what.append(f"{bad_total:,} of {sealed_total:,} sealed ballots did not open")
        if twice:
            what.append(f"{twice:,} sealed ballots appear twice")
        raise UnsealRefused(
            f"{'; '.join(what)} in {election.id}; nothing was written, the unseal is not "
            "finished and nothing can be counted. Keep the Redis data for investigation."
        )
    for shard in todo:
        result = results[shard]
        await _write_shard(redis, election, shard, result.groups)
        await redis.hset(
            keys.unsealing(election.id),
            f"shard:{shard}",
            f"{sizes[shard]}:{result.opened}:{len(result.groups)}",
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
            "shared_receipts": shared,
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
        shared_receipts=shared,
        shares=",".join(str(i) for i in shares_used),
        key_id=stored.id,
    )
    return UnsealReport(sealed_total, opened_total, 0, rankings, shared_receipts=shared)


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
            f"(run '{program()} trustees init --election {election.id} ...' before it opens)"
        )
    raise UnsealRefused(
        f"cannot {what} election {election.id}: its ballots are sealed until the trustees "
        f"unseal them after the close ({election.closes:%Y-%m-%d %H:%M} UTC) with "
        f"'{program()} unseal --election {election.id} --share FILE --share FILE ...'"
    )
