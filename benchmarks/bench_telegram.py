"""Benchmark Telegram: webhook updates through the whole stack, against a floor.

Run: .venv/bin/python -m benchmarks.bench_telegram [--voters N] [--concurrency C]

It starts a private redis-server (or uses REDIS_URL; it is flushed) and the
app on 127.0.0.1 in this process.  Telegram's side runs in a process of its
own, so that it does not share the server's CPU time: the load generator
(benchmarks/harness.py, as the SMS benchmark uses) and the stand-in Bot API
that the app sends its answers to, which the voters read:

- votes by buttons: ``--voters`` supporters each vote on Telegram as a person
  would, waiting for the bot's answer before the next update: their voting
  code, four taps ranking every candidate, "Cast my vote" (6 updates).  Each
  update goes as Telegram sends it (secret-token header, JSON), through
  PTB's Update parsing and handlers, the router (dedupe, per-sender lock),
  the conversation, the ballot box, and back out through PTB to the Bot API
  (sendMessage, editMessageText, answerCallbackQuery);
- a burst: as many chats again each send "hello" at once, the way a
  reminder's answers arrive; timed until every greeting has been sent;
- the floor: a bare aiohttp handler that checks the secret, parses the JSON
  and makes one Redis round trip (SET NX of the update_id), under the same
  number of updates at the same concurrency.

The bot's own flood-limit throttle is set out of the way (``--telegram-rate``
restores it): on real Telegram, sending is capped at about 30 messages a
second whatever the server can do.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import multiprocessing
import pstats
import time
from multiprocessing.connection import Connection

from aiohttp import web
from redis.asyncio import Redis

from ballots import keys
from ballots.box import ballot_count
from ballots.clock import ManualClock
from benchmarks.harness import (
    Job,
    Load,
    LoadResult,
    bench_election,
    profile_shares,
    run_load,
)
from channels.server import make_app
from channels.standins.telegram_api import TelegramAPI, TelegramUser, UpdateFactory, button_data
from channels.telegram import SECRET_HEADER, installer
from openprimary.app import build_core
from tests.factories import NOW, settings
from tests.redis_server import redis_url
from tests.round_trips import counting_client
from tests.sms_support import start_app as serve

SECRET = "bench-webhook-secret-0123456789"
PATH = "/telegram"
#: Four taps rank every candidate, which ends the ranking.
TAPS = ("Sam Patel", "Chris Byrne", "Alex Green", "Jo Okafor")
FIRST_CHAT = 500_000_000


def chat(i: int) -> TelegramUser:
    return TelegramUser(FIRST_CHAT + i, f"Supporter {i}")


class Telegram:
    """Posts updates to the webhook as Telegram does."""

    def __init__(self, url: str, api: TelegramAPI) -> None:
        self.url = url + PATH
        self.api = api
        self.updates = UpdateFactory()

    async def post(self, load: Load, update: dict[str, object]) -> None:
        await load.post(
            self.url,
            data=json.dumps(update),
            headers={SECRET_HEADER: SECRET, "Content-Type": "application/json"},
        )


def voter(tg: Telegram, user: TelegramUser, code: str) -> Job:
    """One supporter's vote by buttons, each update after the bot's answer to the last."""

    async def job(load: Load) -> None:
        await tg.post(load, tg.updates.text(user, code))
        await tg.api.wait_delivered(user.id, 1)
        prompt = tg.api.last_message(user.id)
        for n, label in enumerate((*TAPS, "Cast my vote"), start=2):
            current = tg.api.message(user.id, prompt["message_id"])
            await tg.post(load, tg.updates.tap(user, current, button_data(current, label)))
            await tg.api.wait_delivered(user.id, n)
        # The receipt comes as a message of its own (the ballot shown is then edited).
        await tg.api.wait_until(
            lambda: str(tg.api.last_message(user.id)["text"]).startswith("Vote cast")
        )

    return job


def greeter(tg: Telegram, user: TelegramUser) -> Job:
    async def job(load: Load) -> None:
        await tg.post(load, tg.updates.text(user, "hello"))

    return job


def floor_app(redis: Redis) -> web.Application:
    """The least a webhook must do: check the secret, parse JSON, one Redis round trip."""

    async def handle(request: web.Request) -> web.Response:
        if request.headers.get(SECRET_HEADER) != SECRET:
            return web.Response(status=403)
        update = await request.json()
        await redis.set(
            keys.delivery("floor", "bot", str(update["update_id"])), "1", nx=True, ex=60
        )
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_post(PATH, handle)
    return app


def telegram_side(conn: Connection, voters: int, concurrency: int) -> None:
    """Telegram, in a process of its own: the Bot API stand-in, and the updates sent.

    Sends the API's URL and token, takes the two webhooks' URLs and the voting
    codes, runs the loads and sends back their results and what the API saw.
    """

    async def go() -> None:
        async with TelegramAPI() as api:
            conn.send((api.url, api.token))
            # (off the loop: the app calls the Bot API while it starts)
            loop = asyncio.get_running_loop()
            stack_url, floor_url, codes = await loop.run_in_executor(None, conn.recv)
            tg = Telegram(stack_url, api)
            votes = await run_load(
                "votes by buttons, whole stack",
                [voter(tg, chat(i), code) for i, code in enumerate(codes)],
                concurrency=concurrency,
            )
            started = time.perf_counter()
            burst = await run_load(
                "burst of first messages, accepted",
                [greeter(tg, chat(voters + i)) for i in range(voters)],
                concurrency=concurrency,
            )
            await api.wait_until(
                lambda: all(api.delivered(chat(voters + i).id) for i in range(voters))
            )
            handled = time.perf_counter() - started
            floor = await run_load(
                "floor (secret + JSON + 1 Redis round trip)",
                [greeter(Telegram(floor_url, api), chat(i)) for i in range(voters * 6)],
                concurrency=concurrency,
            )
            conn.send((votes, burst, floor, handled, len(api.calls)))

    asyncio.run(go())


async def bench(
    url: str, voters: int, concurrency: int, rate: float, profile: cProfile.Profile | None = None
) -> None:
    redis, trips = counting_client(url, pool_size=max(concurrency * 2, 10))
    loop = asyncio.get_running_loop()
    ours, theirs = multiprocessing.Pipe()
    side = multiprocessing.get_context("spawn").Process(
        target=telegram_side, args=(theirs, voters, concurrency), daemon=True
    )
    side.start()
    try:
        api_url, token = await loop.run_in_executor(None, ours.recv)
        election = await bench_election(
            redis, "bench-telegram", voters, id_prefix="T", phone_prefix="+4475"
        )
        config = settings(
            telegram_bot_token=token,
            telegram_api_base=api_url,
            telegram_webhook_secret=SECRET,
            telegram_rate=rate,
            telegram_chat_rate=rate,
        )
        core = await build_core(config, redis, ManualClock(NOW), election.id)
        codes = [row[3] for row in await core.codes.issue_voting_codes(election)]
        app = make_app(core, [installer()])
        stack_runner, stack_url = await serve(app)
        floor_runner, floor_url = await serve(floor_app(redis))
        try:
            before, cpu = trips.count, time.process_time()
            if profile is not None:
                profile.enable()
            ours.send((stack_url, floor_url, codes))
            votes, burst, floor, handled, calls = await loop.run_in_executor(None, ours.recv)
            if profile is not None:
                profile.disable()
            # The app's CPU time an update (the floor's share is small: a few % of it).
            cpu_ms = (time.process_time() - cpu) * 1000 / (votes.requests + voters)
            # The app's round trips, from the first vote to the floor's end (the floor's
            # own, one an update, taken off).
            round_trips = (trips.since(before) - floor.requests) / (votes.requests + voters)
        finally:
            await stack_runner.cleanup()
            await floor_runner.cleanup()
        cast = await ballot_count(redis, election)
    finally:
        side.join(timeout=30)
        await redis.aclose()

    results: list[LoadResult] = [votes, burst, floor]
    for result in results:
        print(result.line())
    print(
        f"burst of first messages, handled (greeting sent): {voters} updates in "
        f"{handled:.2f}s: {voters / handled:,.0f} updates/s"
    )
    print(
        f"whole stack / floor (votes by buttons): {votes.rate / floor.rate:.2f}x "
        "(Telegram's side in a process of its own); "
        f"{round_trips:.2f} Redis round trips an update (inbox, handling and sending included)"
    )
    print(f"server process CPU: {cpu_ms:.2f} ms an update (votes and burst)")
    print(f"Bot API calls made: {calls:,}; ballots cast: {cast}")
    assert cast == voters, (cast, voters)
    assert not any(r.errors for r in results), [r.statuses for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--voters", type=int, default=500, help="voters per run (default 500)")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="voters tapping at once (default 50)"
    )
    parser.add_argument(
        "--telegram-rate",
        type=float,
        default=100_000.0,
        help="the bot's own send limit, per second overall and per chat (default: no limit)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the server process and print its CPU time by library (slower)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # No SMS is configured or needed here.
    logging.getLogger("channels.server").setLevel(logging.ERROR)
    with redis_url() as url:
        profile = cProfile.Profile() if args.profile else None
        asyncio.run(bench(url, args.voters, args.concurrency, args.telegram_rate, profile))
    if profile is not None:
        print("server process's own time by library, under the profiler:")
        for name, seconds, share in profile_shares(pstats.Stats(profile)):
            print(f"  {share:6.1%}  {seconds:6.2f} s  {name}")


if __name__ == "__main__":
    main()
