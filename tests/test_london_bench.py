"""The London-scale benchmark keeps working end to end (a tiny run; no timings are checked):
a roll with shared phones imported, every voter's code checked and ballot cast, unsealed,
reconciled and counted the same as the generated ballots."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from benchmarks.bench_london import bench


async def test_a_tiny_run_of_the_london_benchmark(
    redis: Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await bench(redis, redis_url, n=600, shards=2, concurrency=8, seed=7)
    out = capsys.readouterr().out
    assert "roll: 600 rows (12 phones shared by two)" in out
    assert "casts: 600 code checks and casts" in out
    assert "600 receipts, none repeated within a shard" in out
