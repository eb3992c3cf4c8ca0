"""What sealed ballots cost: sealing one at the cast, and unsealing + counting 1,000,000.

Run: ``.venv/bin/python -m benchmarks.bench_unseal`` (``--help`` for options).

The ballots are the counting benchmark's seeded ones (ten candidates, most
voters ranking one to four).  Each is sealed to a fresh count key (in a
process pool, to save time; not measured) and stored in the election's
sealed sets in a private redis-server.  Then the timed part: rebuild the key
from two of three trustees' shares, ``unseal`` (a process per core, each
reading its own slices straight from Redis) and count by instant-runoff
from the unsealed box, as ``openprimary unseal`` then ``openprimary count``
do.  The count is checked against counting the generated ballots directly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from ballots.clock import ManualClock
from ballots.connection import client_from_url
from ballots.count import count
from ballots.count.redis_source import read_ballots
from ballots.election import Candidate, Election, save_election
from ballots.seal import encode_ranking, public_key_from_seed, seal
from ballots.trustees import combine, new_seed, split_seed, store_count_key
from ballots.unseal import unseal
from benchmarks.bench_count import assert_same_count, generate
from tests.factories import put_sealed
from tests.redis_server import redis_url

#: Sealed ballots written per ZADD while loading.
LOAD_BATCH = 10_000


def seal_many(
    public: bytes, candidates: Sequence[str], rankings: list[tuple[str, ...]]
) -> list[str]:
    """Seal a batch of rankings (in a pool worker while loading)."""
    return [seal(public, encode_ranking(candidates, r)) for r in rankings]


def seal_cost(public: bytes, candidates: Sequence[str], rankings: list[tuple[str, ...]]) -> float:
    """Microseconds to encode and seal one ranking, as the cast does, in this process."""
    start = time.perf_counter()
    for ranking in rankings:
        seal(public, encode_ranking(candidates, ranking))
    return (time.perf_counter() - start) / len(rankings) * 1e6


async def bench(redis: Redis, n: int, shards: int, workers: int, seed: int) -> None:
    await redis.flushdb()
    generated = generate(n, 10, seed)
    candidates = generated.candidates
    election = Election(
        id="bench-unseal",
        title="Sealed ballots benchmark",
        method="irv",
        candidates=tuple(Candidate(c, c) for c in candidates),
        opens=datetime(2026, 1, 1, tzinfo=UTC),
        closes=datetime(2026, 2, 1, tzinfo=UTC),
        shards=shards,
    )
    election = await save_election(redis, election)
    key_seed = new_seed()
    public = public_key_from_seed(key_seed)
    shares = split_seed(key_seed, election.id, 3, 2, public)
    stored = await store_count_key(redis, election, public)

    rankings = [r for r, k in generated.items() for _ in range(k)]
    per_seal = min(seal_cost(public, candidates, rankings[:20_000]) for _ in range(3))
    print(f"seal one ballot at the cast (encode + sealed box): {per_seal:.1f} µs")

    started = time.perf_counter()
    chunk = 20_000
    with ProcessPoolExecutor(workers) as pool:
        parts = [rankings[i : i + chunk] for i in range(0, len(rankings), chunk)]
        futures = [pool.submit(seal_many, public, candidates, p) for p in parts]
        loaded = 0
        for i, future in enumerate(futures):
            sealed = future.result()
            for j in range(0, len(sealed), LOAD_BATCH):
                await put_sealed(redis, election, i % shards, sealed[j : j + LOAD_BATCH], public)
            loaded += len(sealed)
    info = await redis.info("memory")
    print(
        f"loaded {loaded:,} sealed ballots into {shards} shard(s) in "
        f"{time.perf_counter() - started:.1f} s (not timed below); Redis uses "
        f"{int(info['used_memory']) / 2**20:.0f} MiB"
    )

    clock = ManualClock(election.closes + timedelta(hours=1))
    started = time.perf_counter()
    rebuilt = combine(shares[:2], election.id, stored)
    report = await unseal(
        redis, election, rebuilt, clock, actor="bench", shares_used=[1, 2], workers=workers
    )
    unsealed = time.perf_counter()
    ballots = await read_ballots(redis, election)
    result = count(ballots, "irv")
    counted = time.perf_counter()
    assert report.opened == n and report.invalid == 0, report
    assert_same_count(result, generated)
    print(
        f"unseal {report.sealed:,} ballots with {workers} worker process(es): "
        f"{unsealed - started:.1f} s ({report.rankings:,} different rankings)\n"
        f"read the unsealed box and count (IRV): {counted - unsealed:.1f} s\n"
        f"unseal + count: {counted - started:.1f} s; elected {', '.join(result.winners)} "
        "(the same rounds as counting the generated ballots directly)"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ballots", type=int, default=1_000_000, help="default: 1,000,000")
    parser.add_argument("--shards", type=int, default=1, help="election shards (default 1)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="unseal processes (default: cores)"
    )
    parser.add_argument("--seed", type=int, default=2028)
    args = parser.parse_args()
    with redis_url() as url:
        client = client_from_url(url)

        async def run() -> None:
            try:
                await bench(client, args.ballots, args.shards, args.workers, args.seed)
            finally:
                await client.flushdb()
                await client.aclose()

        asyncio.run(run())


if __name__ == "__main__":
    main()
