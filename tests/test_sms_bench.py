"""The SMS benchmark and its harness keep working (a tiny run; no timings are checked)."""

from __future__ import annotations

import os
import shutil

import pytest
from redis.asyncio import Redis

from benchmarks.bench_sms import bench
from benchmarks.harness import LoadResult


def test_percentiles_are_nearest_rank() -> None:
    result = LoadResult("x", 1, latencies=[float(n) for n in range(1, 101)], seconds=2.0)
    assert (result.percentile(50), result.percentile(99), result.percentile(100)) == (50, 99, 100)
    assert result.rate == 50
    assert "100 requests" in result.line()


async def test_a_tiny_benchmark_run(
    redis: Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await bench(redis_url, voters=3, concurrency=2)
    out = capsys.readouterr().out
    assert "whole stack / checked floor" in out and "Redis round trips a message" in out
    assert "checked floor / floor" in out and "step by step, paced at" in out
    assert "step by step: 3 completed votes, segments per vote" in out
    assert "one message: 3 completed votes, segments per vote" in out


async def test_a_tiny_run_of_the_languages_benchmark(
    redis: Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.bench_languages import bench as languages_bench

    await languages_bench(redis_url, voters=2)
    out = capsys.readouterr().out
    rows = {line.split("  ")[1].strip(): line for line in out.splitlines()[2:]}
    assert set(rows) == {
        "English (folded)",
        "Welsh (folded)",
        "Welsh (faithful)",
        "Urdu (faithful)",
    }
    assert "within budget" in rows["English (folded)"] and "UCS-2" in rows["Urdu (faithful)"]


async def test_a_tiny_run_with_wrk_against_serve(
    redis: Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """With wrk: ``openprimary serve`` in a process of its own, the replayed voters' casts
    counted both in the answers and in the box (the benchmark asserts they agree)."""
    if shutil.which("wrk") is None:
        if os.environ.get("OPENPRIMARY_REQUIRE_DEPLOY_TOOLS") == "1":
            pytest.fail("wrk is not installed (OPENPRIMARY_REQUIRE_DEPLOY_TOOLS=1)")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    await bench(
        redis_url, voters=3, concurrency=2, generator="wrk", seconds=2, connections=4,
        wrk_voters=3000, rounds=2,
    )  # fmt: skip
    out = capsys.readouterr().out
    assert out.count("openprimary serve, step by step (wrk)") == 2
    assert "openprimary serve, ranking in one message (wrk)" in out
    assert "openprimary serve / checked floor" in out and "the median of 2 rounds" in out
    assert "CPU a message: serve" in out and "paced: each connection waits" in out
    assert "step by step: 3 completed votes, segments per vote: mean 7.0" in out
