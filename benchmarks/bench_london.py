"""London scale: a 1,000,000-row roll imported, 1,000,000 ballots cast, unsealed and counted.

Run: ``.venv/bin/python -m benchmarks.bench_london`` (``--help`` for options; about 15 min
on 2 cores at the defaults).

1. The roll: a generated CSV of N supporters (2% of them sharing a phone with another) is
   parsed and imported by ``import_roll``, as ``openprimary roll import`` does.  The import's
   peak memory is sampled every 20 ms: the client's resident size above what it was before
   the import, and Redis's ``used_memory`` (its peak against the roll's final size).
2. The casts: every supporter is issued a voting code; then each one's code is checked and
   the ballot cast through the real path (``Codes.check_voting_code`` then
   ``BallotBox.cast``: the code-check and cast Lua scripts, the ballot sealed to the count
   key, a fresh receipt that the cast script refuses if its shard has given it already).
3. The close: the trustees' key is rebuilt from two of three shares, ``unseal`` reconciles
   every shard (sealed ballots = voters marked = receipts) and opens the ballots, and the
   unsealed box is counted by instant-runoff; the count must equal counting the generated
   rankings directly, and no receipt may repeat within a shard.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import psutil
from redis.asyncio import Redis

from ballots import keys
from ballots.box import BallotBox
from ballots.clock import ManualClock
from ballots.codes import Codes
from ballots.connection import client_from_url
from ballots.count import count
from ballots.count.redis_source import read_ballots
from ballots.election import Candidate, Election, save_election
from ballots.receipts import all_receipts
from ballots.roll import import_roll, parse_roll
from ballots.seal import public_key_from_seed
from ballots.trustees import combine, new_seed, split_seed, store_count_key
from ballots.unseal import unseal
from benchmarks.bench_count import assert_same_count, generate
from tests.redis_server import redis_url

SECRET = "bench-london-secret-key-0123456789abcdef"
#: One supporter in this many shares their phone with the supporter before them (2%).
SHARED_EVERY = 50

T = TypeVar("T")


def roll_text(n: int) -> str:
    """A roll CSV of ``n`` supporters; every 50th has the previous supporter's phone."""
    rows = ["supporter_id,name,phone"]
    for i in range(n):
        phone = i - 1 if i % SHARED_EVERY == SHARED_EVERY - 1 else i
        rows.append(f"L{i:07d},Supporter {i},+4474{phone:08d}")
    return "\n".join(rows) + "\n"


async def sampled(url: str, work: Awaitable[T]) -> tuple[T, int, int]:
    """Run ``work``, sampling this process's resident size and Redis's used memory every
    20 ms (on a connection of its own); returns its result and both peaks, in bytes."""
    me = psutil.Process()
    peaks = [me.memory_info().rss, 0]
    sampler = client_from_url(url)
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            peaks[0] = max(peaks[0], me.memory_info().rss)
            info = await sampler.info("memory")
            peaks[1] = max(peaks[1], int(info["used_memory"]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.02)

    task = asyncio.create_task(sample())
    try:
        result = await work
    finally:
        done.set()
        await task
        await sampler.aclose()
    return result, peaks[0], peaks[1]


async def in_parallel(
    items: list[str], job: Callable[[str], Awaitable[None]], concurrency: int
) -> None:
    """Run ``job`` for every item, ``concurrency`` at a time."""
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            await job(queue.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def bench(redis: Redis, url: str, n: int, shards: int, concurrency: int, seed: int) -> None:
    await redis.flushdb()
    generated = generate(n, 10, seed)
    rankings = [r for r, k in generated.items() for _ in range(k)]
    opens = datetime(2028, 1, 10, 8, tzinfo=UTC)
    election = await save_election(
        redis,
        Election(
            id="bench-london",
            title="London scale benchmark",
            method="irv",
            candidates=tuple(Candidate(c, c) for c in generated.candidates),
            opens=opens,
            closes=opens + timedelta(days=21),
            shards=shards,
        ),
    )
    key_seed = new_seed()
    public = public_key_from_seed(key_seed)
    shares = split_seed(key_seed, election.id, 3, 2, public)
    stored = await store_count_key(redis, election, public)

    # --- 1. the roll ---------------------------------------------------------------
    text = roll_text(n)
    started = time.perf_counter()
    supporters = parse_roll(text, "london.csv")
    parsed = time.perf_counter()
    before_client = psutil.Process().memory_info().rss
    before_redis = int((await redis.info("memory"))["used_memory"])
    summary, client_peak, redis_peak = await sampled(url, import_roll(redis, election, supporters))
    imported = time.perf_counter()
    memory = await redis.info("memory")
    after_redis = int(memory["used_memory"])
    # The server is new: its own peak is the import's (the sampler cannot read it while the
    # switch's transaction holds Redis).
    redis_peak = max(redis_peak, int(memory["used_memory_peak"]))
    roll_bytes = after_redis - before_redis
    shared_phones = sum(
        1 for v in (await redis.hvals(keys.phone_index(election.id))) if "," in str(v)
    )
    assert summary.total == n, summary
    print(
        f"roll: {n:,} rows ({shared_phones:,} phones shared by two) parsed in "
        f"{parsed - started:.1f} s, imported in {imported - parsed:.1f} s\n"
        f"  the roll in Redis: {roll_bytes / 2**20:,.0f} MiB; Redis's peak during the import: "
        f"{(redis_peak - before_redis) / 2**20:,.0f} MiB "
        f"({(redis_peak - before_redis) / roll_bytes:.2f}x the roll)\n"
        f"  the importing process's peak above its size before: "
        f"{(client_peak - before_client) / 2**20:,.0f} MiB"
    )
    del supporters, text

    # --- 2. the casts --------------------------------------------------------------
    clock = ManualClock(opens + timedelta(hours=1))
    codes = Codes(redis, SECRET, clock)
    box = BallotBox(redis, codes, clock)
    started = time.perf_counter()
    issued = await codes.issue_voting_codes(election)
    code_of = {sid: code for sid, _, _, code in issued}
    del issued
    ballot_of = dict(zip(sorted(code_of), rankings, strict=True))
    statuses: Counter[str] = Counter()
    print(f"voting codes issued to {len(code_of):,} in {time.perf_counter() - started:.1f} s")

    async def vote(sid: str) -> None:
        check = await codes.check_voting_code(election, code_of[sid], "sms", sid)
        assert check.grant, check
        result = await box.cast(election, sid, check.grant, ballot_of[sid], "sms")
        statuses[result.status] += 1

    started = time.perf_counter()
    await in_parallel(sorted(code_of), vote, concurrency)
    seconds = time.perf_counter() - started
    assert statuses == Counter({"cast": n}), statuses
    print(
        f"casts: {n:,} code checks and casts through the real path in {seconds:.0f} s "
        f"({n / seconds:,.0f} a second, {concurrency} at once, one process)"
    )

    # --- 3. the close: unseal and count --------------------------------------------
    clock.set(election.closes + timedelta(hours=1))
    started = time.perf_counter()
    rebuilt = combine(shares[:2], election.id, stored)
    report = await unseal(redis, election, rebuilt, clock, actor="bench", shares_used=[1, 2])
    unsealed = time.perf_counter()
    result = count(await read_ballots(redis, election), "irv")
    counted = time.perf_counter()
    receipts = await all_receipts(redis, election)
    # Each shard's receipts are all different (the unseal checked its set holds one per
    # ballot); equal receipts in two shards are possible, and counted here.
    assert report.opened == n and report.invalid == 0 and report.shared_receipts == 0, report
    assert len(receipts) == n
    across = n - len(set(receipts))
    assert_same_count(result, generated)
    print(
        f"unseal {report.sealed:,} ballots ({shards} shards reconciled: ballots = voters = "
        f"receipts): {unsealed - started:.1f} s; count (IRV): {counted - unsealed:.1f} s; "
        f"elected {', '.join(result.winners)}\n"
        f"  {len(receipts):,} receipts, none repeated within a shard, {across} repeated "
        "across shards; the same rounds as counting the generated ballots directly"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voters", type=int, default=1_000_000, help="default: 1,000,000")
    parser.add_argument("--shards", type=int, default=4, help="election shards (default 4)")
    parser.add_argument("--concurrency", type=int, default=64, help="casts at once (default 64)")
    parser.add_argument("--seed", type=int, default=2028)
    args = parser.parse_args()
    with redis_url() as url:
        client = client_from_url(url)

        async def run() -> None:
            try:
                await bench(client, url, args.voters, args.shards, args.concurrency, args.seed)
            finally:
                await client.flushdb()
                await client.aclose()

        asyncio.run(run())


if __name__ == "__main__":
    main()
