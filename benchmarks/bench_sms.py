"""Benchmark SMS: signed Twilio webhooks through the whole stack, against a floor.

Run: .venv/bin/python -m benchmarks.bench_sms [--voters N] [--concurrency C]
         [--generator auto|wrk|python] [--seconds S] [--connections C] [--profile FILE]

It starts a private redis-server (or uses REDIS_URL; it is flushed) and
serves three apps on 127.0.0.1 in this process; the load generator runs in a
process of its own, so that it does not share the server's CPU time.  With
wrk installed (Debian's ``wrk``: a native generator, which takes far less of
the machine than a Python one) the saturating runs are wrk's, for ``--seconds``
each at ``--connections``, replaying signed webhooks written beforehand
(``benchmarks/replay.lua``; the voters use their posted voting codes, which
the benchmark issues); without it, or with ``--generator python``, they are
the Python generator's (``benchmarks.harness``).  The paced run and the
segments a vote costs always come from the Python generator, which reads each
answer.

- the whole stack: ``channels.server.make_app`` (signature check with the
  twilio library, form parse, E.164, router with dedupe and per-sender lock,
  conversation, codes, ballot box, TwiML).  ``--voters`` supporters each vote
  by SMS step by step (hi, code, four single choices, YES: 7 messages), then
  as many again send the ranking in one message (hi, code, ranking, YES);
- the floor: a bare aiohttp handler that parses the form, makes one Redis
  round trip (SET NX of the MessageSid) and answers TwiML, under the same
  number of signed requests at the same concurrency.

It prints messages per second and p50/p99 latency for each, the whole
stack's ratio to both floors, the Redis round trips a message makes (counted on the server's
client: one command or one pipeline each) and the commands they carry, and
the SMS segments a completed vote costs.  ``--profile FILE`` writes a
cProfile of the server's process during the step-by-step run, and prints
where its time went.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import multiprocessing
import pstats
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web
from redis.asyncio import Redis
from twilio.request_validator import RequestValidator

from ballots import keys
from ballots.box import ballot_count
from ballots.clock import ManualClock
from ballots.codes import CodePolicy
from ballots.election import Election
from benchmarks.harness import (
    Job,
    Load,
    LoadResult,
    bench_election,
    process_cpu,
    profile_shares,
    run_load,
)
from bot.core import Core
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
from tests.factories import NOW, SECRET, settings
from tests.faults.support import free_port
from tests.redis_server import redis_url
from tests.round_trips import counting_client
from tests.sms_support import serve_env
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


@dataclass
class WrkResult:
    """What one wrk run measured (its own figures: requests answered, latency percentiles)."""

    name: str
    connections: int
    requests: int
    seconds: float
    p50: float
    p99: float
    errors: int
    casts: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (
            f"{self.name} (wrk): {self.requests} requests at {self.connections} connections "
            f"in {self.seconds:.2f}s: {self.rate:,.0f} req/s, p50 {self.p50 * 1000:.1f} ms, "
            f"p99 {self.p99 * 1000:.1f} ms" + (f", {self.errors} errors" if self.errors else "")
        )


REPLAY = Path(__file__).with_name("replay.lua")
NAMES = {
    "step": "whole stack, step by step",
    "one": "whole stack, ranking in one message",
    "floor": "floor (form + 1 Redis round trip + TwiML)",
    "checked": "checked floor (signature + form + 3 Redis round trips + TwiML)",
}
#: Voters who start their conversations together in a replay (see ``replay_lines``).
GROUP = 100


def replay_lines(
    conversations: Iterable[tuple[str, Sequence[str]]], group: int = GROUP
) -> list[str]:
    """Signed webhooks for ``replay.lua``, a line each ("signature<TAB>form"), staggered.

    Voters go in groups of ``group``, a group starting a tick after the one before: in each
    tick every group under way sends its next text.  So once a few groups have started,
    every step of a conversation is equally common in any stretch of the replay (a run cut
    off anywhere measures the same mix), and a voter's next text comes several groups'
    worth of requests after the one before, long after its answer (a group is several
    times the requests in flight)."""
    chats = list(conversations)
    groups = [chats[start : start + group] for start in range(0, len(chats), group)]
    steps = max((len(texts) for _, texts in chats), default=0)
    lines: list[str] = []
    for tick in range(len(groups) + steps - 1):
        for started in range(max(0, tick - steps + 1), min(tick + 1, len(groups))):
            step = tick - started
            for number, texts in groups[started]:
                if step < len(texts):
                    form = inbound_form(number, texts[step])
                    lines.append(f"{sign(TOKEN, SIGNED_URL, form)}\t{urlencode(form)}")
    return lines


async def run_wrk(
    name: str,
    url: str,
    lines: list[str],
    *,
    seconds: float,
    connections: int,
    cycle: bool,
    pause: float = 0.0,
) -> WrkResult:
    """wrk (one thread) replaying ``lines`` against ``url`` for ``seconds``; ``cycle``: go
    round again at the end, else running out is an error (the rate would be understated).
    ``pause``: seconds each connection waits before each request (a paced load)."""
    wrk = shutil.which("wrk")
    assert wrk, "wrk is not installed (apt-get install wrk), or use --generator python"
    with tempfile.NamedTemporaryFile("w", suffix=".replay") as replay:
        replay.write("\n".join(lines) + "\n")
        replay.flush()
        command = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s"]
        command += ["-s", str(REPLAY), url + PATH, "--", replay.name]
        command += ["cycle" if cycle else "once", f"{pause * 1000:.3f}"]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()}")
    figures = json.loads(out.decode().strip().splitlines()[-1])
    if not cycle and figures["requests"] > len(lines) - connections:
        raise RuntimeError(f"{name}: wrk ran out of requests; give more --wrk-voters")
    return WrkResult(
        name,
        connections,
        figures["requests"],
        figures["seconds"],
        figures["p50"],
        figures["p99"],
        figures["status_errors"] + figures["socket_errors"],
        figures["casts"],
    )


def median(results: Sequence[WrkResult]) -> WrkResult:
    """The run of median rate (the lower of the middle two)."""
    ordered = sorted(results, key=lambda result: result.rate)
    return ordered[(len(ordered) - 1) // 2]


ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def serve_process(
    redis_url: str,
    twilio_api: str,
    election_id: str,
    *,
    code_sms_per_hour: int,
    profile: str | None,
) -> AsyncIterator[tuple[str, int]]:
    """``openprimary serve`` (one process, as deployed) for the election; yields its URL
    and its process id.

    ``profile``: run it under cProfile, which writes FILE when it stops (on SIGINT)."""
    port = free_port()
    env = {
        **serve_env(redis_url, twilio_api, TOKEN),
        "OPENPRIMARY_PUBLIC_URL": PUBLIC_URL,
        "OPENPRIMARY_SECRET_KEY": SECRET,
        "OPENPRIMARY_CODE_SMS_PER_HOUR": str(code_sms_per_hour),
    }
    python = [sys.executable] + (["-m", "cProfile", "-o", profile] if profile else [])
    server = await asyncio.create_subprocess_exec(
        *python, "-m", "openprimary.cli", "serve", "--port", str(port),
        "--election", election_id,
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    try:
        async with asyncio.timeout(60):
            while b"listening on" not in await server.stdout.readline():
                assert server.returncode is None, "serve stopped"
        yield f"http://127.0.0.1:{port}", server.pid
    finally:
        server.send_signal(signal.SIGINT)
        await server.wait()


def print_profile(path: str) -> None:
    """Print where the server's time went, from its profile: by library, then the functions
    with the most time of their own.  (Its rates are the profiled server's, far lower.)"""
    stats = pstats.Stats(path)
    print(f"profile of the server (under the profiler, its rates above are not its own), {path}:")
    for group, seconds, share in profile_shares(stats):
        print(f"  {group}: {seconds:.2f}s ({share:.0%})")
    stats.sort_stats("tottime").print_stats(40)


async def bench(
    url: str,
    voters: int,
    concurrency: int,
    *,
    generator: str = "python",
    seconds: float = 6.0,
    connections: int = 32,
    wrk_voters: int = 16_000,
    rounds: int = 5,
    profile: str | None = None,
) -> None:
    """Run the benchmark and print its figures (``generator``: "wrk" or "python").

    With wrk, the step-by-step run and the checked floor's take turns ``rounds`` times,
    each round with voters of its own, and the median of each is shown, with the median of
    the rounds' ratios: the machine's speed drifts, and a pair measured together shares it.
    """
    if generator == "wrk":
        await _bench_wrk(
            url, voters, concurrency, seconds, connections, wrk_voters, rounds, profile
        )
    else:
        await _bench_python(url, voters, concurrency, profile)


async def _setup(redis: Redis, roll: int) -> tuple[Election, TwilioApiStandIn, Core]:
    """The election with a generated roll, the stand-in Twilio API, and the app's core.

    Every voter's "hi" texts a code, as in a real poll's first hour: none is held back by
    the deployment's hourly cap on texted codes (which protects the SMS budget)."""
    election = await bench_election(redis, "bench-sms", roll)
    twilio = TwilioApiStandIn(ACCOUNT_SID, TOKEN)
    config = twilio_settings(await twilio.start())
    core = await build_core(
        config, redis, ManualClock(NOW), election.id, CodePolicy(code_sms_per_hour=10 * roll)
    )
    return election, twilio, core


async def _bench_python(url: str, voters: int, concurrency: int, profile: str | None) -> None:
    """The Python generator's runs against the app served in this process."""
    redis, trips = counting_client(url, pool_size=max(concurrency * 2, 10))
    profiler = cProfile.Profile() if profile else None
    try:
        election, twilio, core = await _setup(redis, 3 * voters)
        runners = [await serve(app) for app in (make_app(core), floor_app(redis))]
        runners.append(await serve(checked_floor_app(redis)))
        (_, stack_url), (_, floor_url), (_, checked_url) = runners
        loop = asyncio.get_running_loop()
        try:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:

                async def load(
                    kind: str, target: str, first: int, rate: float | None = None
                ) -> tuple[LoadResult, list[int]]:
                    return await loop.run_in_executor(
                        pool, _generate, kind, target, first, voters, concurrency, rate
                    )

                await load("floor", floor_url, 0)  # warm the generator's process up
                before, trips_before = await _commands(redis), trips.count
                if profiler:
                    profiler.enable()
                stack, step_bills = await load("step", stack_url, 0)
                if profiler:
                    profiler.disable()
                # (less the round trip of reading the server's count)
                round_trips = (trips.since(trips_before) - 1) / stack.requests
                calls = (await _commands(redis) - before - 1) / stack.requests
                one, one_bills = await load("one", stack_url, voters)
                floor, _ = await load("floor", floor_url, 0)
                checked, _ = await load("checked", checked_url, 0)
                # Half the saturating rate, as a poll's busy hour would be planned for.
                paced, _ = await load("step", stack_url, 2 * voters, stack.rate / 2)
        finally:
            for runner, _ in runners:
                await runner.cleanup()
            await twilio.close()
        cast = await ballot_count(redis, election)
    finally:
        await redis.aclose()
    for result in (stack, one, floor, checked, paced):
        print(result.line())
    print(
        f"whole stack / checked floor: {stack.rate / checked.rate:.2f}x; whole stack / floor: "
        f"{stack.rate / floor.rate:.2f}x; checked floor / floor: {checked.rate / floor.rate:.2f}x "
        "(step by step; load from the Python generator, in a process of its own)"
    )
    print(
        f"{round_trips:.2f} Redis round trips a message ({calls:.1f} commands, "
        "scripts' own included), step by step"
    )
    print(summary("step by step", step_bills))
    print(summary("one message", one_bills))
    if profiler and profile:
        profiler.dump_stats(profile)
        print_profile(profile)
    assert cast == 3 * voters, (cast, voters)
    assert not any(r.errors for r in (stack, one, floor, checked, paced))


async def _bench_wrk(
    url: str,
    voters: int,
    concurrency: int,
    seconds: float,
    connections: int,
    wrk_voters: int,
    rounds: int,
    profile: str | None,
) -> None:
    """wrk against ``openprimary serve`` in a process of its own, and against the floors
    served in this process (otherwise idle while wrk runs: its CPU time is the floor's)."""
    redis, trips = counting_client(url, pool_size=max(concurrency, connections) * 2 + 10)
    python_voters = 2 * voters  # the Python generator's, first on the roll
    try:
        roll = python_voters + 2 * wrk_voters
        election, twilio, core = await _setup(redis, roll)
        ids = [f"B{i:07d}" for i in range(python_voters, roll)]
        posted = {row[2]: row[3] for row in await core.codes.issue_voting_codes(election, ids)}
        numbers = [phone(i) for i in range(python_voters, roll)]

        def replay(chosen: Sequence[str], script: Sequence[str]) -> list[str]:
            return replay_lines(
                (n, [posted[n] if t == "<code>" else t for t in script]) for n in chosen
            )

        # A slice of voters for each round, and one for the paced run.
        size = wrk_voters // (rounds + 1)
        step_lines = [
            replay(numbers[r * size : (r + 1) * size], STEP_BY_STEP) for r in range(rounds + 1)
        ]
        one_lines = replay(numbers[wrk_voters:], ONE_MESSAGE)
        floor_lines = replay_lines(
            (n, [f"message {i}" for i in range(len(STEP_BY_STEP))]) for n in numbers[:size]
        )
        runners = [await serve(app) for app in (make_app(core), floor_app(redis))]
        runners.append(await serve(checked_floor_app(redis)))
        (_, stack_url), (_, floor_url), (_, checked_url) = runners
        loop = asyncio.get_running_loop()
        try:
            async with serve_process(
                url, twilio.base_url, election.id, code_sms_per_hour=10 * roll, profile=profile
            ) as (served, pid):

                async def wrk(
                    kind: str, target: str, lines: list[str], pause: float = 0.0
                ) -> tuple[WrkResult, int, float]:
                    """A wrk run; the ballots it added to the box, and the CPU seconds the
                    server used (serve's, or this process's for the floors)."""
                    ballots, cpu = await ballot_count(redis, election), process_cpu(pid)
                    own = time.process_time()
                    name = NAMES[kind].replace("whole stack", "openprimary serve")
                    if pause:
                        name += f", paced: each connection waits {pause * 1000:.0f} ms a request"
                    result = await run_wrk(
                        name, target, lines, seconds=seconds, connections=connections,
                        cycle=kind in ("floor", "checked"), pause=pause,
                    )  # fmt: skip
                    used = process_cpu(pid) - cpu
                    if kind in ("floor", "checked"):
                        used = time.process_time() - own
                    return result, await ballot_count(redis, election) - ballots, used

                # Warm up each server (caches, code paths) with a second of the floor's load.
                for target in (floor_url, checked_url, served):
                    await run_wrk(
                        "warm-up", target, floor_lines, seconds=1, connections=connections,
                        cycle=True,
                    )  # fmt: skip
                stacks: list[WrkResult] = []
                checks: list[WrkResult] = []
                cpu = {"step": 0.0, "checked": 0.0}
                commands = 0
                for turn in range(rounds):
                    checked, _, used = await wrk("checked", checked_url, floor_lines)
                    checks.append(checked)
                    cpu["checked"] += used
                    before = await _commands(redis)
                    stack, cast, used = await wrk("step", served, step_lines[turn])
                    commands += await _commands(redis) - before - 1
                    stacks.append(stack)
                    cpu["step"] += used
                    _check_casts(stack, cast, connections)
                one, cast, _ = await wrk("one", served, one_lines)
                _check_casts(one, cast, connections)
                floor, _, _ = await wrk("floor", floor_url, floor_lines)
                # Half the saturating rate, as a poll's busy hour would be planned for:
                # each connection waits between its requests.
                rate = statistics.median(result.rate for result in stacks)
                paced, cast, _ = await wrk(
                    "step", served, step_lines[rounds], connections / (rate / 2)
                )
                _check_casts(paced, cast, connections)
                # The Python generator reads the answers, for the segments a vote costs; the
                # round trips are counted on the client of the same app in this process.
                with ProcessPoolExecutor(
                    1, mp_context=multiprocessing.get_context("spawn")
                ) as pool:
                    trips_before = trips.count
                    counted, step_bills = await loop.run_in_executor(
                        pool, _generate, "step", stack_url, 0, voters, concurrency, None
                    )
                    round_trips = trips.since(trips_before) / counted.requests
                    _, one_bills = await loop.run_in_executor(
                        pool, _generate, "one", stack_url, voters, voters, concurrency, None
                    )
        finally:
            for runner, _ in runners:
                await runner.cleanup()
            await twilio.close()
    finally:
        await redis.aclose()

    for result in [*stacks, one, floor, *checks, paced]:
        print(result.line())
    requests = sum(result.requests for result in stacks)
    served_cpu = cpu["step"] / requests
    floor_cpu = cpu["checked"] / sum(result.requests for result in checks)
    ratio = statistics.median(s.rate / c.rate for s, c in zip(stacks, checks, strict=True))
    middle, checked = median(stacks), median(checks)
    print(
        f"openprimary serve / checked floor: {ratio:.2f}x, the median of {rounds} rounds "
        f"({middle.rate:,.0f} vs {checked.rate:,.0f} req/s, the medians); / floor: "
        f"{middle.rate / floor.rate:.2f}x; checked floor / floor: {checked.rate / floor.rate:.2f}x "
        "(step by step; load from wrk, in a process of its own)"
    )
    print(
        f"CPU a message: serve {served_cpu * 1e6:,.0f} us, checked floor "
        f"{floor_cpu * 1e6:,.0f} us ({floor_cpu / served_cpu:.2f}x)"
    )
    print(
        f"{round_trips:.2f} Redis round trips a message ({commands / requests:.1f} commands, "
        "scripts' own included), step by step"
    )
    print(summary("step by step", step_bills))
    print(summary("one message", one_bills))
    if profile:
        print_profile(profile)
    # And nearly every conversation the replays began and finished was a vote.
    seen = sum(result.casts for result in stacks)
    assert seen >= requests // len(STEP_BY_STEP) - rounds * len(STEP_BY_STEP) * GROUP
    assert not any(r.errors for r in [*stacks, one, floor, *checks, paced])


def _check_casts(result: WrkResult, ballots: int, connections: int) -> None:
    """Every cast answer a replay saw is a ballot in the box; the box may hold a few more,
    cast by requests still in flight when wrk stopped reading answers (one a connection,
    and seen here up to a few more: the bound is twice that)."""
    assert 0 <= ballots - result.casts <= 2 * connections, (result.name, ballots, result.casts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voters", type=int, default=500, help="voters per run (default 500)")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="voters texting at once (default 50)"
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="what loads the servers in the saturating runs (auto: wrk if installed)",
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="each wrk run (default 6)")
    parser.add_argument(
        "--connections", type=int, default=32, help="wrk's connections (default 32)"
    )
    parser.add_argument(
        "--wrk-voters",
        type=int,
        default=16_000,
        help="voters the replays hold, each way of voting (default 16,000)",
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="wrk: rounds of serve and checked floor (5)"
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the step-by-step run")
    args = parser.parse_args()
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    logging.basicConfig(level=logging.WARNING)
    # Replies go back as TwiML here; no REST sender is needed or wanted.
    logging.getLogger("channels.server").setLevel(logging.ERROR)
    with redis_url() as url:
        asyncio.run(
            bench(
                url,
                args.voters,
                args.concurrency,
                generator=generator,
                seconds=args.seconds,
                connections=args.connections,
                wrk_voters=args.wrk_voters,
                rounds=args.rounds,
                profile=args.profile,
            )
        )


if __name__ == "__main__":
    main()
