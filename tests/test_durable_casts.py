"""OPENPRIMARY_DURABLE_REPLICAS: no receipt until the replicas hold the ballot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ballots.box import ballot_count
from ballots.clock import ManualClock
from ballots.connection import client_from_url, close_client
from bot import texts
from bot.state import Step
from openprimary.app import build_core
from tests.factories import NOW, Harness, Outbox, harness, sample_election, settings
from tests.faults.support import RedisProcess
from tests.replication import cluster, cluster_url, replica_of, wait_in_sync

PHONE = "+447700900101"  # S1001's phone on the sample roll


@asynccontextmanager
async def replicated(replicas: int = 1) -> AsyncIterator[tuple[Harness, list[RedisProcess]]]:
    """The sample election on a primary with ``replicas`` replicas, casts durable on all."""
    primary = RedisProcess()
    primary.start()
    followers = [replica_of(primary) for _ in range(replicas)]
    for f in followers:
        f.start()
    redis = client_from_url(primary.url)
    try:
        await wait_in_sync(redis, replicas)
        h = await harness(redis, config=settings(durable_replicas=replicas))
        assert h.core.conversation.held is not None
        h.core.conversation.held.every = 0.1
        try:
            yield h, followers
        finally:
            await h.core.stop_background()
    finally:
        await redis.aclose()
        for f in followers:
            f.close()
        primary.close()


async def vote(h: Harness, sid: str, address: str) -> str:
    """Identify with a voting code, rank, confirm: the reply to YES."""
    code = (await h.core.codes.issue_voting_codes(h.core.election, [sid]))[0][3]
    phone = {"channel": "sms", "address": address}
    await h.said("hi", **phone)
    await h.said(code, **phone)
    await h.said("2 1", **phone)
    return await h.said("YES", **phone)


async def test_a_receipt_only_once_the_replica_holds_the_ballot() -> None:
    async with replicated(1) as (h, [replica]):
        # With the replica up, a cast is acknowledged at once.
        assert "Vote cast" in await vote(h, "S1002", "+447700900102")

        replica.kill()
        reply = await vote(h, "S1001", PHONE)
        assert reply == texts.cast_recording()
        assert "Receipt" not in reply
        # The ballot is in the box and the chat is done: no second ballot can be cast.
        assert await ballot_count(h.core.redis, h.core.election) == 2
        assert (await h.state(channel="sms", address=PHONE)).step is Step.DONE
        # Asking for it while the replica is down: still being recorded, never a receipt.
        assert await h.said("RECEIPT", channel="sms", address=PHONE) == texts.cast_recording()
        assert "Receipt" not in await h.said("hi", channel="sms", address=PHONE)
        assert not [m for a, m in h.sms.sent if a == PHONE and "Receipt" in m.text]

        # The replica comes back and resyncs: the receipt follows by itself.
        replica.start()
        async with asyncio.timeout(30):
            while not [m for a, m in h.sms.sent if a == PHONE]:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        [message] = [m for a, m in h.sms.sent if a == PHONE]
        assert message.text.startswith("Vote cast") and "Receipt" in message.text
        receipt = message.text.split("Receipt ")[1].split(".")[0]
        # And RECEIPT now gives the same one.
        assert receipt in await h.said("RECEIPT", channel="sms", address=PHONE)
        assert await ballot_count(h.core.redis, h.core.election) == 2


async def test_without_the_setting_a_cast_does_not_wait_for_replicas() -> None:
    primary = RedisProcess()
    primary.start()
    redis = client_from_url(primary.url)
    try:
        election = await sample_election(redis)
        core = await build_core(settings(), redis, ManualClock(NOW), election.id)
        h = Harness(core, ManualClock(NOW), Outbox("sms"))
        # No replica at all: the primary's word is enough.
        assert "Vote cast" in await vote(h, "S1001", PHONE)
        assert core.conversation.held is None
    finally:
        await redis.aclose()
        primary.close()


async def test_on_a_cluster_too_a_receipt_waits_for_the_replicas() -> None:
    """Three primaries with a replica each: the cast and its WAIT go to the voter's node."""
    with cluster(3, replicas=1) as nodes:
        redis = client_from_url(cluster_url(nodes))
        try:
            h = await harness(redis, config=settings(durable_replicas=1))
            election, core = h.core.election, h.core
            assert core.conversation.held is not None
            core.conversation.held.every = 0.1
            try:
                assert "Vote cast" in await vote(h, "S1002", "+447700900102")
                for replica in nodes[3:]:
                    replica.kill()
                assert await vote(h, "S1001", PHONE) == texts.cast_recording()
                for replica in nodes[3:]:
                    replica.start()  # it rejoins as the same replica, and resyncs
                async with asyncio.timeout(60):
                    while not [m for a, m in h.sms.sent if a == PHONE]:  # noqa: ASYNC110
                        await asyncio.sleep(0.1)
                [message] = [m for a, m in h.sms.sent if a == PHONE]
                assert message.text.startswith("Vote cast") and "Receipt" in message.text
                assert await ballot_count(redis, election) == 2
            finally:
                await core.stop_background()
        finally:
            await close_client(redis)
