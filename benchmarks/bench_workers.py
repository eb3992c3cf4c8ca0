"""``serve --workers N``: SMS votes through one worker, then two, on one port.

Run: .venv/bin/python -m benchmarks.bench_workers [--voters 500] [--concurrency 50]

It starts a private redis-server and a stand-in Twilio API, then runs the real
``openprimary serve`` as a separate process (``--workers 1``, then
``--workers 2``); this process is the load generator: each voter votes by SMS
step by step (7 signed webhooks).  On a 2-core machine the generator, Redis
and the workers share the two cores, so the second worker's gain is bounded
by what the generator and Redis leave free: it prints how many cores they
kept busy, and the rate per core the workers had left.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from aiohttp import ClientError, ClientSession

from ballots.connection import client_from_url
from benchmarks.bench_sms import STEP_BY_STEP, TOKEN, phone, voter
from benchmarks.harness import LoadResult, bench_election, process_cpu, run_load
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID
from tests.faults.support import free_port
from tests.redis_server import redis_url
from tests.sms_support import serve_env

ROOT = Path(__file__).resolve().parent.parent


async def one_run(
    url: str, workers: int, voters: int, concurrency: int
) -> tuple[LoadResult, float, float]:
    """One run's result; the cores the load generator (this process) and the Redis
    server kept busy, which the workers could not have; and the cores serve used."""
    redis = client_from_url(url)
    try:
        election = await bench_election(redis, "bench-workers", voters)
    finally:
        await redis.aclose()
    port = free_port()
    async with TwilioApiStandIn(ACCOUNT_SID, TOKEN) as twilio:
        env = serve_env(url, twilio.base_url, TOKEN)
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "openprimary.cli", "serve", "--workers", str(workers),
            "--port", str(port), "--election", election.id,
            env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            async with ClientSession() as session:
                for _ in range(200):  # until every worker listens
                    try:
                        async with session.get(base + "/healthz") as resp:
                            if resp.status == 200:
                                break
                    except ClientError:
                        pass
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # the second worker a moment more
            bills: list[int] = []
            jobs = [voter(base, phone(i), STEP_BY_STEP, bills) for i in range(voters)]
            cpu, redis_cpu = time.process_time(), await _redis_cpu(url)
            serve_cpu = process_cpu(server.pid)
            result = await run_load(
                f"serve --workers {workers}, step by step", jobs, concurrency=concurrency
            )
            serve_cpu = process_cpu(server.pid) - serve_cpu
            busy = time.process_time() - cpu + await _redis_cpu(url) - redis_cpu
            return result, busy / result.seconds, serve_cpu / result.seconds
        finally:
            server.send_signal(signal.SIGTERM)
            await server.wait()


async def _redis_cpu(url: str) -> float:
    """The Redis server's CPU seconds so far."""
    redis = client_from_url(url)
    try:
        info = await redis.info("cpu")
    finally:
        await redis.aclose()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def bench(url: str, voters: int, concurrency: int) -> None:
    cores = os.cpu_count() or 1
    runs = []
    for workers in (1, 2):
        result, others, serve = await one_run(url, workers, voters, concurrency)
        runs.append((result, serve))
        print(
            result.line() + f"; serve used {serve:.2f} cores, the generator and Redis "
            f"{others:.2f} of the {cores}"
        )
    (one, one_cores), (two, two_cores) = runs
    print(
        f"two workers / one: {two.rate / one.rate:.2f}x; per core serve used: "
        f"{one.rate / max(one_cores, 0.01):,.0f} req/s with one worker, "
        f"{two.rate / max(two_cores, 0.01):,.0f} with two"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voters", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with redis_url() as url:
        asyncio.run(bench(url, args.voters, args.concurrency))


if __name__ == "__main__":
    main()
