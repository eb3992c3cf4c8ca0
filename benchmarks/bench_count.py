"""How fast the count is: 1,000,000 generated ballots, from memory, files and Redis, against peers.

Run: ``.venv/bin/python -m benchmarks.bench_count`` (``--help`` for options).

The ballots are generated from a seed: ten candidates of unequal appeal,
each voter ranking a few of them (a Plackett-Luce model, as real ballots
look: most voters rank between one and four).  The same ballots are counted
by instant-runoff and by STV for three seats, by this project and by the
peers ``votelib`` and ``pyrankvote`` (the ``bench`` extra), in the same run,
and a table of times (best of a few runs for the fast ones) is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from ballots import keys
from ballots.count import count
from ballots.count.formats import read_ballots, write_ballots
from ballots.count.model import Ballots
from ballots.count.redis_source import read_ballots as read_redis_ballots
from ballots.count.result import Result
from ballots.election import Candidate, Election, save_election
from tests.redis_server import redis_url

APPEAL = (30, 24, 16, 10, 7, 5, 3, 2, 2, 1)
LENGTHS = (30, 25, 20, 10, 6, 4, 2, 1, 1, 1)


def assert_same_count(result: Result, generated: Ballots) -> None:
    """The count from the system under test has the rounds of counting ``generated``."""
    expected = count(generated, "irv")
    assert result.winners == expected.winners
    assert [r.tallies for r in result.rounds] == [r.tallies for r in expected.rounds]


def generate(n: int, candidates: int, seed: int) -> Ballots:
    """``n`` seeded ballots over ``candidates`` candidates, grouped."""
    rnd = random.Random(seed)
    names = [f"c{i:02d}" for i in range(candidates)]
    appeal = [APPEAL[i % len(APPEAL)] for i in range(candidates)]
    lengths = [LENGTHS[i % len(LENGTHS)] for i in range(candidates)]
    groups: Counter[tuple[str, ...]] = Counter()
    for k in rnd.choices(range(1, candidates + 1), weights=lengths, k=n):
        left = list(range(candidates))
        weights = list(appeal)
        ranking = []
        for _ in range(k):
            i = rnd.choices(range(len(left)), weights=weights)[0]
            ranking.append(names[left.pop(i)])
            weights.pop(i)
        groups[tuple(ranking)] += 1
    return Ballots(tuple(names), groups)


def count_file(path: Path) -> Result:
    """Read a ballot file and count it by IRV."""
    return count(read_ballots(path), "irv")


def best_of(runs: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of ``runs`` calls, and the last call's value."""
    best = float("inf")
    value: Any = None
    for _ in range(runs):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


async def load_redis(redis: Redis, ballots: Ballots, seats: int, method: str) -> Election:
    """Store the ballots as an election's shards, as the ballot box would."""
    election = Election(
        id=f"bench-{method}",
        title="Benchmark",
        method=method,
        seats=seats,
        candidates=tuple(Candidate(c, c.upper()) for c in ballots.candidates),
        opens=datetime(2026, 1, 1, tzinfo=UTC),
        closes=datetime(2026, 2, 1, tzinfo=UTC),
        shards=16,  # as a national electorate spread over a cluster would be
    )
    election = await save_election(redis, election)
    async with redis.pipeline(transaction=False) as pipe:
        for ranking, n in ballots.groups.items():
            field = ",".join(ranking)
            shard = keys.shard_of(field, election.shards)
            pipe.zincrby(keys.ballots(election.id, shard), n, field)
        await pipe.execute()
    return election


async def time_redis(url: str, ballots: Ballots, runs: int) -> list[tuple[str, float, str]]:
    """Count from Redis: stream every shard with ZSCAN, then count."""
    rows = []
    redis = Redis.from_url(url, decode_responses=True)
    try:
        await redis.flushdb()
        for method, seats in (("irv", 1), ("stv", 3)):
            election = await load_redis(redis, ballots, seats, method)
            best = float("inf")
            winners = ""
            for _ in range(runs):
                start = time.perf_counter()
                got = await read_redis_ballots(redis, election)
                result = count(got, method, seats=seats)
                best = min(best, time.perf_counter() - start)
                winners = ",".join(result.winners)
            rows.append((f"{method.upper()} from Redis (ZSCAN + count)", best, winners))
        await redis.flushdb()
    finally:
        await redis.aclose()
    return rows


def peers(ballots: Ballots, skip_pyrankvote: bool) -> list[tuple[str, float, str]]:
    """The same counts by votelib and pyrankvote."""
    rows: list[tuple[str, float, str]] = []
    import votelib.evaluate.sequential as vl

    votes = dict(ballots.groups)
    for label, seats in (("IRV", 1), ("STV 3 seats", 3)):
        selector = vl.TransferableVoteSelector(quota_function="droop")
        t, winners = best_of(1, functools.partial(selector.evaluate, votes, seats))
        rows.append((f"votelib {label}", t, ",".join(winners)))
    if skip_pyrankvote:
        return rows
    import pyrankvote

    cands = {c: pyrankvote.Candidate(c) for c in ballots.candidates}
    papers = [
        pyrankvote.Ballot(ranked_candidates=[cands[c] for c in ranking])
        for ranking, n in ballots.groups.items()
        for _ in range(n)
    ]
    everyone = list(cands.values())
    t, result = best_of(1, lambda: pyrankvote.instant_runoff_voting(everyone, papers))
    rows.append(("pyrankvote IRV", t, ",".join(c.name for c in result.get_winners())))
    t, result = best_of(1, lambda: pyrankvote.single_transferable_vote(everyone, papers, 3))
    rows.append(("pyrankvote STV 3 seats", t, ",".join(c.name for c in result.get_winners())))
    return rows


def main() -> None:
    """Generate, count every way, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ballots", type=int, default=1_000_000)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2028)
    parser.add_argument("--runs", type=int, default=3, help="runs of each fast count")
    parser.add_argument("--no-peers", action="store_true", help="skip votelib and pyrankvote")
    parser.add_argument("--no-pyrankvote", action="store_true", help="skip pyrankvote only")
    args = parser.parse_args()
    if not args.no_peers:
        wanted = ["votelib"] + ([] if args.no_pyrankvote else ["pyrankvote"])
        missing = [name for name in wanted if importlib.util.find_spec(name) is None]
        if missing:
            parser.exit(
                2,
                f"bench_count: the peers {', '.join(missing)} are not installed; run "
                "./check first (it installs the development lock, peers included), or pass "
                "--no-peers\n",
            )

    start = time.perf_counter()
    ballots = generate(args.ballots, args.candidates, args.seed)
    print(
        f"{ballots.total:,} ballots, {len(ballots.candidates)} candidates, "
        f"{len(ballots):,} distinct rankings (seed {args.seed}); "
        f"generated in {time.perf_counter() - start:.1f} s"
    )
    rows: list[tuple[str, float, str]] = []
    t, result = best_of(args.runs, lambda: count(ballots, "irv"))
    rows.append(("IRV count (grouped ballots in memory)", t, ",".join(result.winners)))
    t, result = best_of(args.runs, lambda: count(ballots, "stv", seats=3))
    rows.append(("STV 3 seats count (in memory)", t, ",".join(result.winners)))

    with tempfile.TemporaryDirectory() as tmp:
        for fmt, suffix in (("preflib", ".soi"), ("blt", ".blt"), ("csv", ".csv")):
            path = Path(tmp) / f"ballots{suffix}"
            with path.open("w", encoding="utf-8", newline="") as f:
                write_ballots(ballots, fmt, f)
            size = path.stat().st_size / 1e6
            t, result = best_of(args.runs, functools.partial(count_file, path))
            rows.append(
                (
                    f"IRV from {suffix} file ({size:.1f} MB, read + count)",
                    t,
                    ",".join(result.winners),
                )
            )

    with redis_url() as url:
        rows += asyncio.run(time_redis(url, ballots, args.runs))

    if not args.no_peers:
        rows += peers(ballots, args.no_pyrankvote)

    width = max(len(r[0]) for r in rows)
    print(f"\n{'what':<{width}}  {'seconds':>8}  winners")
    for label, seconds, winners in rows:
        print(f"{label:<{width}}  {seconds:8.3f}  {winners}")


if __name__ == "__main__":
    main()
