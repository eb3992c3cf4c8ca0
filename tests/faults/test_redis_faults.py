"""Voting by SMS while Redis is killed, frozen or out of memory.

Each test runs the real app in this process against a redis-server of its
own, with 40 voters texting at once and retrying as Twilio does; part-way it
breaks Redis, then lets it recover.  Whatever happens: every voter ends with
a receipt, no ballot is lost or doubled, and no message is answered with
nothing while its effect was lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import ClientSession
from redis.asyncio import Redis

from ballots.clock import ManualClock
from ballots.connection import client_from_url
from ballots.election import Election
from benchmarks.harness import bench_election
from channels.server import make_app
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID
from openprimary.app import build_core
from tests.factories import NOW
from tests.faults.support import RedisProcess, Voter, assert_every_vote_counted_once, sms_vote
from tests.sms_support import AUTH_TOKEN, PUBLIC_URL, start_app, twilio_settings

VOTERS = 40


@dataclass
class Stack:
    server: RedisProcess
    redis: Redis
    election: Election
    url: str
    session: ClientSession


@asynccontextmanager
async def stack(*config: str) -> AsyncIterator[Stack]:
    """``serve`` for SMS (a stand-in Twilio API behind it) against a Redis of its own."""
    server = RedisProcess(*config)
    server.start()
    redis = client_from_url(server.url)
    try:
        election = await bench_election(redis, "faults", VOTERS)
        async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
            config_ = twilio_settings(twilio, public_url=PUBLIC_URL)
            core = await build_core(config_, redis, ManualClock(NOW), election.id)
            runner, url = await start_app(make_app(core))
            try:
                async with ClientSession() as session:
                    yield Stack(server, redis, election, url, session)
            finally:
                await runner.cleanup()
    finally:
        await redis.aclose()
        server.close()


def phone(i: int) -> str:
    return f"+4474{i:08d}"  # bench_election's roll


async def vote_through(s: Stack, fault: Callable[[list[Voter]], Awaitable[None]]) -> list[Voter]:
    """Every voter votes at once; ``fault`` runs alongside them."""
    voters = [Voter(phone(i)) for i in range(VOTERS)]
    started = time.monotonic()
    await asyncio.gather(
        fault(voters),
        *(sms_vote(s.session, lambda: s.url, v.name, v, think=0.05) for v in voters),
    )
    sent = 4 * VOTERS
    tries = sum(v.tries for v in voters)
    print(
        f"\n{VOTERS} voters, {sent} messages, {tries - sent} retried deliveries, "
        f"{time.monotonic() - started:.1f} s"
    )
    return voters


async def after(voters: list[Voter], tries: int) -> None:
    """Wait until the voters have sent ``tries`` webhooks between them."""
    while sum(v.tries for v in voters) < tries:  # noqa: ASYNC110 (counts kept by plain code)
        await asyncio.sleep(0.01)


async def test_redis_killed_with_the_append_only_file_on_always_loses_no_vote() -> None:
    async with stack("--appendonly", "yes", "--appendfsync", "always") as s:

        async def kill_and_restart(voters: list[Voter]) -> None:
            await after(voters, VOTERS * 2)
            s.server.kill()
            # Longer than the client's retries last (about 1.5 s at most), so that messages
            # in flight cannot all be carried over by them: some must be answered 503.
            await asyncio.sleep(2.5)
            s.server.start()

        voters = await vote_through(s, kill_and_restart)
        await assert_every_vote_counted_once(s.redis, s.election, voters)
        assert sum(v.tries for v in voters) > 4 * VOTERS  # some were answered 503, and retried


async def test_redis_frozen_longer_than_the_client_timeout_loses_no_vote_or_receipt() -> None:
    async with stack() as s:
        health: list[tuple[int, str, float]] = []

        async def freeze(voters: list[Voter]) -> None:
            await after(voters, VOTERS * 3)
            s.server.freeze()
            started = time.monotonic()
            async with s.session.get(s.url + "/healthz") as resp:
                body = await resp.json()
                health.append((resp.status, body["redis"], time.monotonic() - started))
            await asyncio.sleep(6.5 - (time.monotonic() - started))  # the client gives up at 5 s
            s.server.thaw()

        voters = await vote_through(s, freeze)
        # A cast sent just before the freeze may run after the client gave up on it:
        # the voter's retry is then told "already cast", with the receipt.
        await assert_every_vote_counted_once(s.redis, s.election, voters)
        # The messages caught in the freeze were answered 503 after 5 s, and Twilio's
        # retry got them handled.
        assert sum(v.tries for v in voters) > 4 * VOTERS
        [(status, redis_said, took)] = health
        assert (status, redis_said) == (503, "down")
        print(f"/healthz while Redis was frozen: {status} after {took:.2f} s")


async def test_redis_out_of_memory_answers_503_then_every_vote_goes_through() -> None:
    async with stack() as s:
        admin = client_from_url(s.server.url)
        health: list[tuple[int, str]] = []

        async def starve(voters: list[Voter]) -> None:
            await after(voters, VOTERS * 2)
            await admin.config_set("maxmemory", "1")
            async with s.session.get(s.url + "/healthz") as resp:
                health.append((resp.status, (await resp.json())["reason"]))
            await asyncio.sleep(1.5)
            await admin.config_set("maxmemory", "0")

        try:
            voters = await vote_through(s, starve)
        finally:
            await admin.aclose()
        assert health == [(503, "OOM")]
        await assert_every_vote_counted_once(s.redis, s.election, voters)
        assert sum(v.tries for v in voters) > 4 * VOTERS
