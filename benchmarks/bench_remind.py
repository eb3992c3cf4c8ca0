"""A reminder to a 100,000-supporter roll, through the stand-in Twilio and Bot API servers.

    .venv/bin/python -m benchmarks.bench_remind [--size N] [--workers P]
        [--sms-rate R] [--telegram-rate R] [--telegram-share F]

A private Redis and the two stand-ins run on loopback; the job is created
here and drained by ``P`` real ``openprimary remind --resume JOB`` processes
together.  Reported: the rate each channel achieved against its configured
limit (from the stand-ins' own timestamps, including the busiest one-second
window), the worker processes' CPU time per message, and the job's Redis
memory (at the start and the end).  The defaults (240 SMS/s and 60
Telegram messages/s, so 300/s in all, two worker processes) take about six
minutes, and keep a two-core machine below saturation: on a saturated one the
delay between the limiter's "go" and the request reaching the stand-in
varies, and the stand-ins see more bunching than the limiter lets go.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from tempfile import TemporaryDirectory

from redis.asyncio import Redis

from ballots import keys
from ballots.election import Election, read_election_file, save_election
from ballots.roll import Supporter, import_roll
from bot.reminders import CHANNELS, Reminders, plan
from channels.rules import TEXT_RULES
from channels.standins.telegram_api import TelegramAPI
from channels.standins.twilio_api import TwilioApiStandIn
from tests.redis_server import redis_url
from tests.reminders_support import most_in_window

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
FROM = "+447700900000"
ROOT = Path(__file__).resolve().parent.parent
TEXT = "Hi {name}, {days_left} days left to vote in the Riverside selection. Polls close {closes}."


async def setup(redis: Redis, size: int, telegram_share: float) -> Election:
    sample = read_election_file(ROOT / "examples" / "election.toml")
    election = await save_election(redis, Election(**{**sample.__dict__, "id": "bench-remind"}))
    every = round(1 / telegram_share) if telegram_share > 0 else 0
    roll = [
        Supporter(
            f"S{i:06d}",
            f"Supporter {i}",
            f"+4477{i:08d}",
            str(10_000_000 + i) if every and i % every == 0 else "",
        )
        for i in range(size)
    ]
    await import_roll(redis, election, roll)
    return election


async def watch_window(redis: Redis, channel: str, samples: list[int] | None = None) -> list[int]:
    """How many messages the limiter let go in the trailing second, every 50 ms."""
    seen = samples if samples is not None else [0]
    try:
        while True:
            secs, micros = await redis.time()
            now = secs * 1000 + micros / 1000
            seen.append(int(await redis.zcount(keys.send_window(channel), f"({now - 1000}", now)))
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        return seen


async def task_result(task: asyncio.Task[list[int]]) -> list[int]:
    return await task


async def job_memory(redis: Redis, job: str) -> int:
    total = 0
    async for key in redis.scan_iter(match=f"*{{remind/{job}}}*", count=1000):
        total += int(await redis.memory_usage(key, samples=0) or 0)
    return total


def report_rate(name: str, times: list[float], limit: float) -> None:
    if len(times) < 2:
        print(f"{name:<9} {len(times)} messages")
        return
    span = max(times) - min(times)
    rate = (len(times) - 1) / span
    first = min(times)
    buckets = Counter(int(t - first) for t in times)
    over = sum(1 for n in buckets.values() if n > limit)
    print(
        f"{name:<9} {len(times):>7} messages in {span:6.1f} s: {rate:7.1f}/s "
        f"against a limit of {limit:g}/s ({100 * rate / limit:5.1f}%); "
        f"busiest second {most_in_window(times)}; "
        f"{over} of {len(buckets)} whole seconds over the limit"
    )


async def main_async(args: argparse.Namespace) -> None:
    with redis_url() as url, TemporaryDirectory() as tmp:
        redis = Redis.from_url(url, decode_responses=True)
        try:
            await redis.flushdb()
            started = time.perf_counter()
            election = await setup(redis, args.size, args.telegram_share)
            print(f"roll of {args.size:,} loaded in {time.perf_counter() - started:.1f} s")

            started = time.perf_counter()
            ready = await plan(redis, election, TEXT, rules=TEXT_RULES)
            job = await Reminders(redis).create(election, ready, "bench")
            print(
                f"job {job}: {ready.count('sms'):,} by SMS ({ready.sms_segments:,} segments), "
                f"{ready.count('telegram'):,} by Telegram; planned and stored in "
                f"{time.perf_counter() - started:.1f} s"
            )
            memory_start = await job_memory(redis, job)
            print(
                f"job memory in Redis at start: {memory_start / 1024:.0f} KiB "
                f"({memory_start / ready.total:.1f} bytes a recipient)"
            )

            async with (
                TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
                TelegramAPI() as telegram,
            ):
                env = {
                    "PATH": os.environ.get("PATH", ""),
                    "PYTHONPATH": str(ROOT),
                    "OPENPRIMARY_REDIS_URL": url,
                    "OPENPRIMARY_SECRET_KEY": "bench-secret-key-0123456789abcdef",
                    "OPENPRIMARY_SMS_RATE": str(args.sms_rate),
                    "OPENPRIMARY_TELEGRAM_RATE": str(args.telegram_rate),
                    "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                    "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                    "TWILIO_FROM": FROM,
                    "TWILIO_API_BASE": twilio.base_url,
                    "TELEGRAM_BOT_TOKEN": telegram.token,
                    "TELEGRAM_API_BASE": telegram.url,
                }
                watching = {ch: asyncio.create_task(watch_window(redis, ch)) for ch in CHANNELS}
                cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                workers = [
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "openprimary.cli",
                        "remind",
                        "--resume",
                        job,
                        env=env,
                        cwd=tmp,
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.PIPE,
                    )
                    for _ in range(args.workers)
                ]
                errors = await asyncio.gather(*(w.communicate() for w in workers))
                wall = time.perf_counter() - started
                for task in watching.values():
                    task.cancel()
                let_go = {ch: max(await task_result(t)) for ch, t in watching.items()}
                cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
                for w, (_, err) in zip(workers, errors, strict=True):
                    if w.returncode:
                        print(f"a worker failed ({w.returncode}): {err.decode()[-2000:]}")
                sms_times = [m.at for m in twilio.messages]
                tg_times = [c.at for c in telegram.calls_to("sendMessage") if c.status == 200]
                to = Counter(m.to for m in twilio.messages)
                chats = Counter(
                    c.params["chat_id"] for c in telegram.calls_to("sendMessage") if c.status == 200
                )

            status = await Reminders(redis).status(job)
            memory_end = await job_memory(redis, job)
            sent = len(sms_times) + len(tg_times)
            cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
                cpu_after.ru_stime - cpu_before.ru_stime
            )
            print(f"{args.workers} worker processes, {wall:.1f} s wall: {status.summary()}")
            report_rate("sms", sms_times, args.sms_rate)
            report_rate("telegram", tg_times, args.telegram_rate)
            print(
                "most let go in any trailing second, on Redis's clock (sampled every 50 ms): "
                + ", ".join(f"{ch} {n}" for ch, n in let_go.items())
            )
            dups = sum(n - 1 for n in to.values() if n > 1) + sum(
                n - 1 for n in chats.values() if n > 1
            )
            print(f"duplicates: {dups}; messages accepted by the stand-ins: {sent:,}")
            if sent:
                print(
                    f"CPU time per message (worker processes, user+sys, start-up included): "
                    f"{1000 * cpu / sent:.2f} ms"
                )
            print(
                f"job memory in Redis at the end: {memory_end / 1024:.0f} KiB "
                f"({memory_end / max(ready.total, 1):.1f} bytes a recipient)"
            )
        finally:
            await redis.aclose()


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="supporters on the roll")
    parser.add_argument("--workers", type=int, default=2, help="remind --resume processes")
    parser.add_argument("--sms-rate", type=float, default=240.0, help="messages a second")
    parser.add_argument("--telegram-rate", type=float, default=60.0, help="messages a second")
    parser.add_argument(
        "--telegram-share", type=float, default=0.2, help="share of the roll linked to Telegram"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
