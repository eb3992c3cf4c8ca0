"""Does the answer to a typed supporter number take longer when the number is on the roll?

    .venv/bin/python -m benchmarks.bench_enumeration [--numbers N]

A private Redis and the router in this process; a roll of ``N`` supporters.
For each of ``N`` chats, one types a supporter number on the roll and
another a number that is not, each after greeting the bot; the time the
router takes to answer is measured for both.  The replies are the same
text; this shows whether the time tells them apart.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from ballots.connection import client_from_url
from ballots.roll import Supporter, import_roll
from bot.messages import InboundMessage
from tests.factories import harness
from tests.redis_server import redis_url


async def run(url: str, n: int) -> None:
    redis = client_from_url(url)
    try:
        await redis.flushdb()
        h = await harness(redis)
        roll = [Supporter(f"P{i:05d}", f"Pat {i}", f"+4477009{i % 1000:05d}") for i in range(n)]
        await import_roll(redis, h.core.election, roll)
        times: dict[str, list[float]] = {"on the roll": [], "not on the roll": []}
        for i in range(n):
            for kind, number in (("on the roll", f"P{i:05d}"), ("not on the roll", f"Q{i:05d}")):
                chat = f"{kind[:3]}-{i}"
                greet = InboundMessage("telegram", chat, text="hi", message_id=f"{chat}-1")
                await h.core.router.handle(greet)
                typed = InboundMessage("telegram", chat, text=number, message_id=f"{chat}-2")
                started = time.perf_counter()
                await h.core.router.handle(typed)
                times[kind].append((time.perf_counter() - started) * 1000)
        await h.core.router.aclose()
        for kind, found in times.items():
            print(
                f"{kind:>16}: median {statistics.median(found):.2f} ms, "
                f"mean {statistics.mean(found):.2f} ms ({len(found)} numbers)"
            )
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numbers", type=int, default=400, help="numbers of each kind")
    args = parser.parse_args()
    with redis_url() as url:
        asyncio.run(run(url, args.numbers))


if __name__ == "__main__":
    main()
