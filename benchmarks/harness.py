"""A webhook load harness: a bounded amount of work at a stated concurrency.

Work comes as *jobs*: one job is one client's run of requests that must go
in order (one voter's conversation, one Telegram chat).  ``concurrency``
jobs run at once over real HTTP, each request is timed, and the result gives
requests per second and the latency percentiles::

    async def vote(load: Load) -> None:
        status, body = await load.post(url, data=form, headers=headers)
        ...

    result = await run_load("full stack", [vote] * 500, concurrency=32)
    print(result.line())

Every request made through :meth:`Load.post` counts; a status other than
the expected one (200 unless told) is counted as an error, not raised, so one
slow or failed request does not end the run.
"""

from __future__ import annotations

import asyncio
import math
import os
import pstats
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, TCPConnector
from redis.asyncio import Redis

from ballots.election import Election
from ballots.roll import parse_roll
from tests.factories import sample_election


@dataclass
class LoadResult:
    """What one run measured."""

    name: str
    concurrency: int
    jobs: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        """Requests per second over the whole run."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile latency in seconds (nearest rank)."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1]

    def line(self) -> str:
        return (
            f"{self.name}: {self.requests} requests ({self.jobs} jobs) at concurrency "
            f"{self.concurrency} in {self.seconds:.2f}s: {self.rate:,.0f} req/s, "
            f"p50 {self.percentile(50) * 1000:.1f} ms, p99 {self.percentile(99) * 1000:.1f} ms"
            + (f", {self.errors} errors" if self.errors else "")
        )


class Pacer:
    """Spaces requests evenly at ``rate`` a second, across all jobs (an open-loop load:
    a request waits for its slot, not for the server to be free)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next: float | None = None

    async def turn(self) -> None:
        now = time.perf_counter()
        slot = now if self._next is None else max(self._next, now - self.interval)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class Load:
    """What a job gets: an HTTP session whose requests are timed and counted."""

    def __init__(
        self, session: ClientSession, result: LoadResult, pacer: Pacer | None = None
    ) -> None:
        self.session = session
        self.result = result
        self.pacer = pacer

    async def post(self, url: str, *, expect: int = 200, **kwargs: Any) -> tuple[int, str]:
        """POST and read the answer; returns (status, body text).  Paced, the request
        waits for its slot first (the wait is not part of its latency)."""
        if self.pacer is not None:
            await self.pacer.turn()
        started = time.perf_counter()
        async with self.session.post(url, **kwargs) as resp:
            text = await resp.text()
            status = resp.status
        self.result.latencies.append(time.perf_counter() - started)
        self.result.statuses[status] += 1
        if status != expect:
            self.result.errors += 1
        return status, text


Job = Callable[[Load], Awaitable[None]]


async def run_load(
    name: str, jobs: Iterable[Job], *, concurrency: int, rate: float | None = None
) -> LoadResult:
    """Run every job, ``concurrency`` at a time, and time their requests; with ``rate``,
    the requests of all jobs together go at that many a second at most."""
    result = LoadResult(name, concurrency)
    queue: list[Job] = list(jobs)
    queue.reverse()
    connector = TCPConnector(limit=concurrency, force_close=False)
    async with ClientSession(connector=connector) as session:
        load = Load(session, result, Pacer(rate) if rate else None)

        async def worker() -> None:
            while queue:
                job = queue.pop()
                await job(load)
                result.jobs += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def roll_csv(n: int, *, id_prefix: str = "B", phone_prefix: str = "+4474") -> str:
    """A generated roll of ``n`` supporters, ids and phones numbered from 0."""
    rows = ["supporter_id,name,phone"]
    rows += [f"{id_prefix}{i:07d},Supporter {i},{phone_prefix}{i:08d}" for i in range(n)]
    return "\n".join(rows) + "\n"


async def bench_election(redis: Redis, election_id: str, voters: int, **roll: str) -> Election:
    """A clean Redis holding the sample election (renamed) and a generated roll."""
    await redis.flushdb()
    supporters = parse_roll(roll_csv(voters, **roll), "bench.csv")
    return await sample_election(redis, roll=supporters, id=election_id)


#: Where a profiled function's own time is counted, by the package its file is in.
_LIBRARIES = {
    "telegram": "python-telegram-bot",
    "aiohttp": "aiohttp (server and client)",
    "redis": "redis-py",
    "twilio": "twilio",
}
_OURS = ("bot", "channels", "ballots", "openprimary")


def profile_shares(stats: pstats.Stats) -> list[tuple[str, float, float]]:
    """Own time by library from a profile: (group, seconds, share), largest first.

    A function's own time (not its callees') goes to the package its file is
    in: python-telegram-bot, aiohttp, redis-py, twilio, OpenPrimary's own
    packages, the asyncio event loop, or "other" (the rest of the standard
    library, built-ins such as socket calls, other packages).
    """
    totals: dict[str, float] = {}
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, _, own, _, _) in raw.items():
        parts = filename.replace("\\", "/").split("/")
        group = "other"
        if "site-packages" in parts:
            package = parts[parts.index("site-packages") + 1 :][:1]
            group = _LIBRARIES.get(package[0], "other") if package else "other"
        elif "asyncio" in parts:
            group = "asyncio event loop"
        elif any(part in _OURS for part in parts[-3:-1]):
            group = "OpenPrimary (bot, channels, ballots)"
        totals[group] = totals.get(group, 0.0) + own
    whole = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    return [(name, t, t / whole) for name, t in ranked]


def process_cpu(pid: int | None) -> float:
    """CPU seconds a process and its descendants have used so far, from /proc (0.0 for
    none, or for one that has gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(process_cpu(int(child)) for child in children)
