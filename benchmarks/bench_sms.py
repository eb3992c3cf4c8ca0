"""Benchmark SMS: signed Twilio webhooks through the whole stack, against a floor.

Run: .venv/bin/python -m benchmarks.bench_sms [--voters N] [--concurrency C]

It starts a private redis-server (or uses REDIS_URL; it is flushed) and
serves two apps on 127.0.0.1 in this process; the load generator runs in a
process of its own, so that it does not share the server's CPU time:

- the whole stack: ``channels.server.make_app`` (signature check with the
  twilio library, form parse, E.164, router with dedupe and per-sender lock,
  conversation, codes, ballot box, TwiML).  ``--voters`` supporters each vote
  by SMS step by step (hi, code, four single choices, YES: 7 messages), then
  as many again send the ranking in one message (hi, code, ranking, YES);
- the floor: a bare aiohttp handler that parses the form, makes one Redis
  round trip (SET NX of the MessageSid) and answers TwiML, under the same
  number of signed requests at the same concurrency.

It prints messages per second and p50/p99 latency for each, the ratio of
the two, the Redis round trips a message makes (counted on the server's
client: one command or one pipeline each) and the commands they carry, and
the SMS segments a completed vote costs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from aiohttp import web
from redis.asyncio import Redis
from twilio.request_validator import RequestValidator

from ballots import keys
from ballots.box import ballot_count
from ballots.clock import ManualClock
from benchmarks.harness import Job, Load, LoadResult, bench_election, run_load
from bot.settings import Settings
from channels.gsm import encoding, segments
from channels.server import make_app
from channels.sms import twiml
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import (
    ACCOUNT_SID,
    OUR_NUMBER,
    PATH,
    inbound_form,
    sign,
    twiml_bodies,
)
from openprimary.app import build_core
from tests.factories import NOW, settings
from tests.redis_server import redis_url
from tests.round_trips import counting_client
from tests.sms_support import start_app as serve

TOKEN = "bench-auth-token-0123456789abcdef"
PUBLIC_URL = "https://vote.example.org"
SIGNED_URL = PUBLIC_URL + PATH
STEP_BY_STEP = ("hi", "<code>", "2", "4", "1", "3", "YES")
ONE_MESSAGE = ("hi", "<code>", "2 4 1 3", "YES")


def phone(i: int) -> str:
    return f"+4474{i:08d}"


async def signed_post(load: Load, url: str, number: str, text: str) -> list[str]:
    form = inbound_form(number, text)
    headers = {"X-Twilio-Signature": sign(TOKEN, SIGNED_URL, form)}
    _status, xml = await load.post(url + PATH, data=form, headers=headers)
    return twiml_bodies(xml)


def voter(
    url: str,
    number: str,
    script: Sequence[str],
    bills: list[int],
    encodings: set[str] | None = None,
    *,
    cast: str | None = "Vote cast",
) -> Job:
    """One supporter's whole vote; appends the segments it cost to ``bills`` (and the
    encodings its SMS went in to ``encodings``).  ``cast``: what the last answer says."""

    async def job(load: Load) -> None:
        received: list[str] = []
        for step in script:
            text = step
            if step == "<code>":
                found = re.search(r"(?<!\d)(\d{6})(?!\d)", received[0])
                assert found, received
                text = found.group(1)
            received += await signed_post(load, url, number, text)
        assert cast is None or cast in received[-1], received[-1]
        bills.append(sum(segments(body) for body in received))
        if encodings is not None:
            encodings.update(encoding(body) for body in received)

    return job


def floor_sender(url: str, number: str, messages: int) -> Job:
    async def job(load: Load) -> None:
        for i in range(messages):
            await signed_post(load, url, number, f"message {i}")

    return job


def floor_app(redis: Redis) -> web.Application:
    """The least any webhook must do: parse the form, one Redis round trip, TwiML."""

    async def handle(request: web.Request) -> web.Response:
        form = await request.post()
        await redis.set(
            keys.delivery("floor", str(form["From"]), str(form["MessageSid"])), "1", nx=True, ex=60
        )
        return web.Response(text=twiml(["Thanks."]), content_type="application/xml")

    app = web.Application()
    app.router.add_post(PATH, handle)
    return app


def checked_floor_app(redis: Redis) -> web.Application:
    """What every message needs at the least, by the rules this project keeps: the twilio
    library's signature check, the form, three Redis round trips (begin: lock and state;
    the step's script; commit: state, delivery and the lock), TwiML."""
    validator = RequestValidator(TOKEN)
    step = redis.register_script("return redis.call('INCR', KEYS[1])")

    async def handle(request: web.Request) -> web.Response:
        form = await request.post()
        if not validator.validate(SIGNED_URL, form, request.headers["X-Twilio-Signature"]):
            raise web.HTTPForbidden()
        chat = str(form["From"])
        lock, state = keys.sender_lock("floor", chat), keys.conversation("floor", chat)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(lock, "1", nx=True, px=2000)
            pipe.get(state)
            await pipe.execute()
        await step(keys=[keys.delivery("floor", chat, "n")])
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(state, "x" * 200, ex=60)
            pipe.set(keys.delivery("floor", chat, str(form["MessageSid"])), "y" * 200, ex=60)
            pipe.delete(lock)
            await pipe.execute()
        return web.Response(text=twiml(["Thanks."]), content_type="application/xml")

    app = web.Application()
    app.router.add_post(PATH, handle)
    return app


def _generate(
    kind: str, url: str, first: int, voters: int, concurrency: int, rate: float | None = None
) -> tuple[LoadResult, list[int]]:
    """Run one load against ``url`` (in the generator's own process); ``rate``: paced."""

    async def go() -> tuple[LoadResult, list[int]]:
        bills: list[int] = []
        numbers = [phone(first + i) for i in range(voters)]
        if kind == "floor":
            name = "floor (form + 1 Redis round trip + TwiML)"
            jobs = [floor_sender(url, n, len(STEP_BY_STEP)) for n in numbers]
        elif kind == "checked":
            name = "checked floor (signature + form + 3 Redis round trips + TwiML)"
            jobs = [floor_sender(url, n, len(STEP_BY_STEP)) for n in numbers]
        else:
            script = STEP_BY_STEP if kind == "step" else ONE_MESSAGE
            name = "whole stack, " + (
                "step by step" if kind == "step" else "ranking in one message"
            )
            if rate:
                name += f", paced at {rate:,.0f} req/s"
            jobs = [voter(url, n, script, bills) for n in numbers]
        return await run_load(name, jobs, concurrency=concurrency, rate=rate), bills

    return asyncio.run(go())


async def _commands(redis: Redis) -> int:
    return int((await redis.info("stats"))["total_commands_processed"])


def summary(name: str, bills: list[int]) -> str:
    return (
        f"{name}: {len(bills)} completed votes, segments per vote: "
        f"mean {sum(bills) / len(bills):.1f}, max {max(bills)}"
    )


def twilio_settings(api_base: str) -> Settings:
    """The settings of a benchmark's server: SMS through the stand-in Twilio at ``api_base``."""
    return settings(
        public_url=PUBLIC_URL,
        twilio_auth_token=TOKEN,
        twilio_account_sid=ACCOUNT_SID,
        twilio_from=OUR_NUMBER,
        twilio_api_base=api_base,
    )


async def bench(url: str, voters: int, concurrency: int) -> None:
    redis, trips = counting_client(url, pool_size=max(concurrency * 2, 10))
    try:
        election = await bench_election(redis, "bench-sms", 3 * voters)
        twilio = TwilioApiStandIn(ACCOUNT_SID, TOKEN)
        config = twilio_settings(await twilio.start())
        core = await build_core(config, redis, ManualClock(NOW), election.id)
        stack_runner, stack_url = await serve(make_app(core))
        floor_runner, floor_url = await serve(floor_app(redis))
        checked_runner, checked_url = await serve(checked_floor_app(redis))
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")
        try:
            with ProcessPoolExecutor(1, mp_context=context) as generator:

                async def load(
                    kind: str, target: str, first: int, rate: float | None = None
                ) -> tuple[LoadResult, list[int]]:
                    return await loop.run_in_executor(
                        generator, _generate, kind, target, first, voters, concurrency, rate
                    )

                await load("floor", floor_url, 0)  # warm the generator's process up
                before, trips_before = await _commands(redis), trips.count
                stack, step_bills = await load("step", stack_url, 0)
                # (less the one round trip of reading the server's count)
                round_trips = (trips.since(trips_before) - 1) / stack.requests
                calls = (await _commands(redis) - before) / stack.requests
                one, one_bills = await load("one", stack_url, voters)
                floor, _ = await load("floor", floor_url, 0)
                checked, _ = await load("checked", checked_url, 0)
                # Half the saturating rate, as a poll's busy hour would be planned for.
                paced, _ = await load("step", stack_url, 2 * voters, stack.rate / 2)
        finally:
            await stack_runner.cleanup()
            await floor_runner.cleanup()
            await checked_runner.cleanup()
            await twilio.close()
        cast = await ballot_count(redis, election)
    finally:
        await redis.aclose()

    results: list[LoadResult] = [stack, one, floor, checked, paced]
    for result in results:
        print(result.line())
    print(
        f"whole stack / floor (step by step): {stack.rate / floor.rate:.2f}x "
        "(the load generator in a process of its own); "
        f"{round_trips:.2f} Redis round trips a message ({calls:.1f} commands, "
        "scripts' own included)"
    )
    print(
        f"checked floor / floor: {checked.rate / floor.rate:.2f}x; "
        f"whole stack / checked floor: {stack.rate / checked.rate:.2f}x"
    )
    print(summary("step by step", step_bills))
    print(summary("one message", one_bills))
    assert cast == 3 * voters, (cast, voters)
    assert not any(r.errors for r in results), [r.statuses for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voters", type=int, default=500, help="voters per run (default 500)")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="voters texting at once (default 50)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # Replies go back as TwiML here; no REST sender is needed or wanted.
    logging.getLogger("channels.server").setLevel(logging.ERROR)
    with redis_url() as url:
        asyncio.run(bench(url, args.voters, args.concurrency))


if __name__ == "__main__":
    main()
