"""Reminders through a failing Twilio: the rate kept, and nobody texted twice.

    .venv/bin/python -m benchmarks.bench_remind_faults [--size N] [--rate R]
        [--error-rate F] [--hold-rate F] [--timeout S]

A private Redis and the stand-in Twilio run on loopback; one worker (as
``openprimary remind`` runs it) sends a reminder to ``N`` supporters at
``R`` a second while the stand-in refuses a share of sends with Twilio's own
500 (nothing taken; retried for that message alone) and takes another share
but never answers (the sender times out: in doubt, never sent again).
Reported: the rate achieved against the one set (messages Twilio took,
first to last), the busiest one-second window, the 500s and held answers,
the outcomes, and any number texted twice.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

from ballots.connection import client_from_url
from bot.ratelimit import limiter_for
from bot.reminders import Reminders, Worker, default_concurrency, plan
from channels.rules import TEXT_RULES
from channels.sms_sender import TwilioSender
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID
from tests.redis_server import redis_url
from tests.reminders_support import clock, election_with_roll, most_in_window
from tests.sms_support import AUTH_TOKEN, twilio_settings
from tests.test_reminders_platforms import TEXT


async def run(args: argparse.Namespace, url: str) -> None:
    redis = client_from_url(url)
    try:
        await redis.flushdb()
        election = await election_with_roll(redis, args.size, shards=8)
        ready = await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock())
        job = await Reminders(redis, clock()).create(election, ready, "bench")
        async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
            twilio.faults(error_rate=args.error_rate, hold_rate=args.hold_rate, seed=1)
            config = twilio_settings(twilio, sms_rate=args.rate)
            limiter = limiter_for(config, redis)
            sms = TwilioSender.from_settings(
                config, redis, pause=limiter.backoff_sleep("sms"), timeout=args.timeout
            )
            worker = Worker(
                redis,
                {"sms": sms},
                limiter,
                TEXT_RULES,
                concurrency={"sms": default_concurrency(args.rate)},
            )
            started = time.perf_counter()
            try:
                final = await worker.run(job)
            finally:
                await sms.aclose()
            took = time.perf_counter() - started
        taken = sorted(m.at for m in twilio.messages)
        rate = (len(taken) - 1) / (taken[-1] - taken[0])
        refused = sum(a.status == 500 for a in twilio.attempts)
        twice = sum(n > 1 for n in Counter(m.to for m in twilio.messages).values())
        print(f"{args.size} recipients at {args.rate:g}/s, {took:.1f} s in all")
        print(f"  achieved rate   {rate:.1f}/s ({rate / args.rate:.2f}x the rate set)")
        print(f"  busiest second  {most_in_window(taken)}")
        print(f"  500s            {refused} of {len(twilio.attempts)} requests, each retried")
        print(f"  held answers    {len(twilio.held)}")
        sent, doubt, failed = (final.outcome(o) for o in ("sent", "in_doubt", "failed"))
        print(f"  outcomes        {sent} sent, {doubt} in doubt, {failed} failed")
        print(f"  texted twice    {twice}")
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=3000, help="supporters to remind")
    parser.add_argument("--rate", type=float, default=50.0, help="SMS a second")
    parser.add_argument("--error-rate", type=float, default=0.10, help="share of 500s")
    parser.add_argument("--hold-rate", type=float, default=0.02, help="share of held answers")
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="seconds the sender waits for Twilio"
    )
    args = parser.parse_args()
    with redis_url() as url:
        asyncio.run(run(args, url))


if __name__ == "__main__":
    main()
