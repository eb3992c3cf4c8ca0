"""Benchmark the spine: conversation messages per second through the router, and roll memory.

Run: .venv/bin/python -m benchmarks.bench_router [--voters N] [--concurrency C] [--roll N]
     [--elections E]

It starts a private redis-server (or uses REDIS_URL), and reports:
- complete votes through the router (hi, code, whole ranking, YES: 4 messages each) at a stated
  number of concurrent voters: messages per second and per-message latency p50/p99 (with
  --elections E, one deployment serves E elections and the voters are on one roll: the
  lobby's cost);
- importing a generated roll of --import-rows rows (parse + write);
- Redis bytes per supporter on a --roll roll, before and after voting codes are issued.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime

from redis.asyncio import Redis

from ballots.clock import ManualClock
from ballots.connection import client_from_url
from ballots.election import read_election_file, save_election
from ballots.roll import import_roll, parse_roll
from benchmarks.harness import roll_csv
from bot.messages import InboundMessage
from openprimary.app import build, build_core
from tests.factories import EXAMPLES, Outbox, install_test_key, settings
from tests.redis_server import redis_url

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def bench_router(redis: Redis, voters: int, concurrency: int, elections: int = 1) -> None:
    await redis.flushdb()
    election = replace(read_election_file(EXAMPLES / "election.toml"), id="bench")
    election = await save_election(redis, election)
    await install_test_key(redis, election)
    await import_roll(redis, election, parse_roll(roll_csv(voters), "bench.csv"))
    for n in range(2, elections + 1):
        other = replace(election, id=f"bench-{n}", title=f"Selection {n}")
        other = await save_election(redis, other)
        await install_test_key(redis, other)
        await import_roll(redis, other, parse_roll(roll_csv(10), f"bench-{n}.csv"))
    clock = ManualClock(NOW)
    outbox = {"sms": Outbox("sms")}
    if elections > 1:
        deployment = await build(settings(), redis, clock, None, senders=outbox)
        core = deployment.cores[election.id]
    else:
        core = await build_core(settings(), redis, clock, election.id, senders=outbox)
    rows = await core.codes.issue_voting_codes(election)
    latencies: list[float] = []
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for sid, _name, _phone, code in rows:
        queue.put_nowait((sid, code))

    async def one_voter(sid: str, code: str) -> None:
        for i, text in enumerate(("hi", code, "2 4 1 3", "yes")):
            msg = InboundMessage("console", f"bench-{sid}", text, message_id=f"{sid}-{i}")
            t0 = time.perf_counter()
            replies = await core.router.handle(msg)
            latencies.append(time.perf_counter() - t0)
            assert replies, text
        assert "Vote cast" in replies[0].text, replies[0].text

    async def worker() -> None:
        while not queue.empty():
            sid, code = queue.get_nowait()
            await one_voter(sid, code)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    n = len(latencies)
    print(
        f"router, {elections} election{'s' if elections > 1 else ''} served: "
        f"{voters} complete votes ({n} messages) with {concurrency} voters at once: "
        f"{n / elapsed:,.0f} messages/s, {voters / elapsed:,.0f} votes/s; "
        f"latency p50 {statistics.median(latencies) * 1000:.2f} ms, "
        f"p99 {latencies[int(n * 0.99)] * 1000:.2f} ms"
    )


async def bench_import(redis: Redis, rows: int) -> None:
    await redis.flushdb()
    election = await save_election(redis, read_election_file(EXAMPLES / "election.toml"))
    text = roll_csv(rows)
    t0 = time.perf_counter()
    supporters = parse_roll(text, "roll.csv")
    t1 = time.perf_counter()
    await import_roll(redis, election, supporters)
    t2 = time.perf_counter()
    await import_roll(redis, election, supporters)
    t3 = time.perf_counter()
    print(
        f"roll import: {rows:,} rows parsed and checked in {t1 - t0:.2f} s, written in "
        f"{t2 - t1:.2f} s; re-import (update in place) {t3 - t2:.2f} s"
    )


async def bench_memory(redis: Redis, size: int) -> None:
    await redis.flushdb()
    election = await save_election(redis, read_election_file(EXAMPLES / "election.toml"))
    base = await used_memory(redis)
    await import_roll(redis, election, parse_roll(roll_csv(size), "roll.csv"))
    after_roll = await used_memory(redis)
    core = await build_core(settings(), redis, ManualClock(NOW), election.id)
    await core.codes.issue_voting_codes(election)
    after_codes = await used_memory(redis)
    print(
        f"memory: {size:,}-supporter roll: {(after_roll - base) / size:.0f} bytes/supporter; "
        f"with voting codes issued: {(after_codes - base) / size:.0f} bytes/supporter "
        f"({(after_codes - base) / 2**20:.1f} MiB in all)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--voters", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--import-rows", type=int, default=50_000)
    parser.add_argument("--roll", type=int, default=100_000)
    parser.add_argument(
        "--elections", type=int, default=1, help="elections one deployment serves (default 1)"
    )
    parser.add_argument("--router-only", action="store_true", help="skip the import and memory")
    args = parser.parse_args()
    with redis_url() as url:
        redis = client_from_url(url)
        try:
            version = (await redis.info("server"))["redis_version"]
            print(f"Redis {version} at {url}")
            await bench_router(redis, args.voters, args.concurrency, args.elections)
            if not args.router_only:
                await bench_import(redis, args.import_rows)
                await bench_memory(redis, args.roll)
        finally:
            await redis.flushdb()
            await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
