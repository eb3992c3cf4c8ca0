"""Scale-out: votes through the router in several processes, one Redis against a Cluster.

Run: .venv/bin/python -m benchmarks.bench_cluster [--voters 3000] [--workers 2] [--concurrency 50]

For each deployment (one redis-server; a Redis Cluster of three primaries,
all on this machine) it loads a generated roll, issues voting codes, then has
``--workers`` processes vote for a share of the voters each, through the
router (hi, the code, the whole ranking, YES: 4 messages a voter), and
reports messages per second, Redis commands per message (those the scripts
run included) and Redis CPU per message (the servers' own user + system CPU,
summed over the nodes).

On a 2-core machine this measures correctness and overhead, not scaling:
the workers and every Redis node share the same two cores.  The Redis CPU
per message is the figure to size a deployment from.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack

from redis.asyncio import Redis

from ballots.clock import ManualClock
from ballots.connection import client_from_url, close_client
from benchmarks.harness import bench_election
from bot.messages import InboundMessage
from openprimary.app import build_core
from tests.factories import NOW, Outbox, settings
from tests.redis_server import private_server
from tests.replication import cluster, cluster_url

Voter = tuple[str, str]  # supporter id, voting code


async def _vote(url: str, election_id: str, voters: list[Voter], concurrency: int) -> int:
    redis = client_from_url(url)
    try:
        core = await build_core(
            settings(), redis, ManualClock(NOW), election_id, senders={"sms": Outbox("sms")}
        )
        queue = list(voters)
        messages = 0

        async def one(sid: str, code: str) -> None:
            nonlocal messages
            replies = []
            for i, text in enumerate(("hi", code, "2 4 1 3", "yes")):
                msg = InboundMessage("console", f"b-{sid}", text, message_id=f"{sid}-{i}")
                replies = await core.router.handle(msg)
                messages += 1
            assert "Vote cast" in replies[0].text, replies[0].text

        async def worker() -> None:
            while queue:
                await one(*queue.pop())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return messages
    finally:
        await close_client(redis)


def _worker(url: str, election_id: str, voters: list[Voter], concurrency: int) -> int:
    return asyncio.run(_vote(url, election_id, voters, concurrency))


async def _stats(ports: list[int]) -> tuple[float, int]:
    """(CPU seconds, commands processed) summed over the nodes."""
    cpu, commands = 0.0, 0
    for port in ports:
        node = Redis(host="127.0.0.1", port=port)
        try:
            info = await node.info()
            cpu += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
            commands += int(info["total_commands_processed"])
        finally:
            await node.aclose()
    return cpu, commands


async def run(name: str, url: str, ports: list[int], args: argparse.Namespace) -> None:
    redis = client_from_url(url)
    try:
        election = await bench_election(redis, "scale", args.voters)
        core = await build_core(settings(), redis, ManualClock(NOW), election.id)
        rows = await core.codes.issue_voting_codes(election)
    finally:
        await close_client(redis)
    voters = [(sid, code) for sid, _name, _phone, code in rows]
    shares = [voters[i :: args.workers] for i in range(args.workers)]
    cpu0, commands0 = await _stats(ports)
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        loop = asyncio.get_running_loop()
        done = await asyncio.gather(
            *(
                loop.run_in_executor(pool, _worker, url, election.id, share, args.concurrency)
                for share in shares
            )
        )
    elapsed = time.perf_counter() - started
    cpu1, commands1 = await _stats(ports)
    messages = sum(done)
    print(
        f"{name}: {args.voters:,} votes ({messages:,} messages) by {args.workers} worker "
        f"processes: {messages / elapsed:,.0f} messages/s; "
        f"{(commands1 - commands0) / messages:.1f} Redis commands (scripts' own "
        "included) and "
        f"{(cpu1 - cpu0) / messages * 1e6:.0f} us of Redis CPU a message"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--voters", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with ExitStack() as stack:
        url, _ = stack.enter_context(private_server())
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        await run("one Redis", url, [port], args)
        nodes = stack.enter_context(cluster(3))
        await run("Cluster, 3 primaries", cluster_url(nodes), [n.port for n in nodes], args)


if __name__ == "__main__":
    asyncio.run(main())
