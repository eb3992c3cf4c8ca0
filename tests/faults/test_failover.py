"""Voting by SMS through Redis Sentinel, and on a Redis Cluster, while a primary is killed
with -9; and a reminder job through a Sentinel failover.

A primary, two replicas and three Sentinels, all real servers; ``serve``
reaches Redis by ``redis+sentinel://`` and acknowledges a cast only once a
replica holds it (``OPENPRIMARY_DURABLE_REPLICAS=1``).  Part-way through the
voting the primary is killed.  The Sentinels promote a replica, and the
voters, retrying as Twilio does, carry on against the same ``serve``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from aiohttp import ClientSession
from redis.asyncio import Redis

from ballots.box import ballot_count
from ballots.clock import ManualClock
from ballots.connection import client_from_url, close_client
from ballots.receipts import all_receipts
from benchmarks.harness import bench_election
from bot.ratelimit import limiter_for
from bot.reminders import Reminders, Worker, plan
from channels.rules import TEXT_RULES
from channels.server import make_app
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID
from openprimary.app import build_core
from tests.factories import NOW, Outbox, settings
from tests.faults.support import RANKING, Voter, _text
from tests.reminders_support import clock, election_with_roll
from tests.replication import cluster, cluster_url, watched_primary
from tests.sms_support import AUTH_TOKEN, PUBLIC_URL, start_app, twilio_settings

VOTERS = 30
RECIPIENTS = 300
CODE = re.compile(r"\b(\d{6})\b")


def phone(i: int) -> str:
    return f"+4474{i:08d}"  # bench_election's roll


async def vote_until_receipt(session: ClientSession, url: Callable[[], str], voter: Voter) -> None:
    """Vote as a person would: answer whatever the bot last asked (a reply lost to the
    failover, or a "try again", means saying hi again to see where things stand), and
    ask for the receipt (RECEIPT) while the ballot is being recorded."""
    text = "hi"
    for _ in range(60):
        replies = await _text(session, url, voter.name, text, voter)
        voter.seen += replies
        if voter.done:
            return
        said = " ".join(replies)
        codes = CODE.findall(" ".join(voter.seen))
        if CODE.search(said) or ("6-digit code" in said and codes):
            text = codes[-1]
        elif "choice?" in said:
            text = RANKING
        elif "Reply YES" in said:
            text = "YES"
        elif "being recorded" in said:
            await asyncio.sleep(1.0)
            text = "RECEIPT"
        else:  # "try again", nothing said, or no receipt yet: where are we?
            await asyncio.sleep(0.2)
            text = "hi"
        await asyncio.sleep(0.05)
    assert voter.done, f"{voter.name} never got a receipt: {voter.seen[-4:]}"


async def test_a_reminder_job_carries_on_on_the_new_primary() -> None:
    """The primary dies while a job is sending: the worker waits out the failover and
    finishes the job on the new primary, and nobody is texted twice."""
    async with watched_primary(2) as watched:
        redis, primary, replicas = watched.redis, watched.primary, watched.replicas
        election = await election_with_roll(redis, RECIPIENTS)
        job = await Reminders(redis, clock()).create(
            election,
            await plan(redis, election, "Hi {name}, vote!", rules=TEXT_RULES, clock=clock()),
            "t",
        )
        killed = False

        async def kill_part_way(n: int) -> None:
            nonlocal killed
            if n == RECIPIENTS // 3 and not killed:
                killed = True
                primary.kill()

        sms = Outbox("sms", hook=kill_part_way)
        worker = Worker(
            redis,
            {"sms": sms},
            limiter_for(settings(sms_rate=500.0), redis),
            TEXT_RULES,
            clock=clock(),
            concurrency={"sms": 8},
            heartbeat=2.0,
            durable_replicas=1,
        )
        final = await worker.run(job)
        assert killed
        assert final.status == "finished"
        assert len(sms.addresses) == len(set(sms.addresses))  # nobody texted twice
        sent, doubt = final.outcome("sent"), final.outcome("in_doubt")
        assert sent + doubt == RECIPIENTS
        assert sent >= RECIPIENTS - 10  # at most the sends in flight at the kill
        info = await redis.info("server")
        assert int(info["tcp_port"]) in {r.port for r in replicas}
        print(f"\n{RECIPIENTS} reminders through a failover: {sent} sent, {doubt} in doubt")


async def vote_through_a_failover(redis: Redis, kill: Callable[[], None]) -> None:
    """Every voter votes by SMS at once; ``kill`` runs once they are a fifth of the way in.

    Then: every voter who was given a receipt has their ballot on the new primary,
    nobody voted twice, and everyone finished with no restart.
    """
    election = await bench_election(redis, "failover", VOTERS)
    async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        config = twilio_settings(twilio, public_url=PUBLIC_URL, durable_replicas=1)
        core = await build_core(config, redis, ManualClock(NOW), election.id)
        runner, url = await start_app(make_app(core))
        try:
            async with ClientSession() as session:
                voters = [Voter(phone(i)) for i in range(VOTERS)]

                async def kill_part_way() -> None:
                    while sum(v.tries for v in voters) < VOTERS:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                    kill()

                started = time.monotonic()
                await asyncio.gather(
                    kill_part_way(),
                    *(vote_until_receipt(session, lambda: url, v) for v in voters),
                )
                took = time.monotonic() - started
        finally:
            await runner.cleanup()
    stored = set(await all_receipts(redis, election))
    seen = {r for v in voters for r in v.receipts}
    assert all(len(v.receipts) == 1 for v in voters)
    assert seen == stored
    assert await ballot_count(redis, election) == VOTERS
    retried = sum(v.tries for v in voters) - 4 * VOTERS
    recording = sum("being recorded" in t for v in voters for t in v.seen)
    print(
        f"\n{VOTERS} voters through a failover in {took:.1f} s: {retried} "
        f"deliveries more than 4 each, {recording} 'being recorded' answers"
    )


async def test_the_sentinel_primary_killed_mid_poll_loses_no_acknowledged_ballot() -> None:
    async with watched_primary(2) as watched:
        await vote_through_a_failover(watched.redis, watched.primary.kill)
        # A replica is the primary now.
        info = await watched.redis.info("server")
        assert int(info["tcp_port"]) in {r.port for r in watched.replicas}


async def test_a_cluster_primary_killed_mid_poll_loses_no_acknowledged_ballot() -> None:
    """Three primaries with two replicas each (so a promoted one still has a replica
    for durable casts); the first primary is killed with -9."""
    with cluster(3, replicas=2) as nodes:
        redis = client_from_url(cluster_url(nodes))
        try:
            await vote_through_a_failover(redis, nodes[0].kill)
            roles = _cluster_roles(nodes[1].port)
            assert roles[nodes[0].port] == "fail"
            # One of its replicas (nodes 3 and 6: replicas go round the primaries) took over.
            assert "master" in {roles[nodes[3].port], roles[nodes[6].port]}
        finally:
            await close_client(redis)


def _cluster_roles(port: int) -> dict[int, str]:
    """Port -> "master", "slave" or "fail", as one node sees the cluster."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"CLUSTER NODES\r\n")
        text = s.recv(1 << 16).decode()
    roles = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 3:
            continue
        node_port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        flags = fields[2]
        roles[node_port] = (
            "fail" if "fail" in flags else ("master" if "master" in flags else "slave")
        )
    return roles
