"""Deliveries and chat locks across crashes: nothing swallowed, no lock outliving its process."""

from __future__ import annotations

import asyncio
import copy
import os
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ballots import keys
from ballots.errors import StoreUnavailable
from bot.lease import LEASE, Lease
from bot.messages import InboundMessage, OutboundMessage
from tests.conftest import current_redis_url
from tests.factories import harness

ROOT = Path(__file__).resolve().parent.parent


class FailsOnce:
    """An organiser-command extension that breaks on its first message (a fault mid-way)."""

    def __init__(self) -> None:
        self.failed = False

    async def handle(self, msg: InboundMessage) -> list[OutboundMessage] | None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("injected: the process lost its footing here")
        return None

    async def aclose(self) -> None:
        return None


async def test_a_delivery_that_did_not_finish_is_handled_when_it_comes_again(
    redis: Redis,
) -> None:
    h = await harness(redis)
    h.core.conversation.extensions.append(FailsOnce())
    msg = InboundMessage("sms", "+447700900101", "hello", message_id="SM-unfinished")
    first = await h.core.router.handle(msg)
    assert "went wrong" in first[0].text
    assert not await redis.exists(keys.delivery("sms", "+447700900101", "SM-unfinished"))
    # Twilio's retry (same MessageSid) is handled, not dropped as a duplicate.
    again = await h.core.router.handle(msg)
    assert again and "went wrong" not in again[0].text
    assert await redis.exists(keys.delivery("sms", "+447700900101", "SM-unfinished"))


async def test_a_lock_is_a_short_lease_renewed_while_its_holder_works(redis: Redis) -> None:
    key = keys.sender_lock("sms", "+447700900101")
    async with Lease(redis, key) as held:
        assert held
        assert 0 < await redis.pttl(key) <= LEASE * 1000
        await asyncio.sleep(LEASE * 1.5)  # longer than one lease: renewed meanwhile
        assert 0 < await redis.pttl(key) <= LEASE * 1000
        async with Lease(redis, key, wait=0.1) as second:
            assert not second  # still ours
    assert not await redis.exists(key)


async def test_a_lapsed_lock_taken_by_another_is_left_to_it(redis: Redis) -> None:
    """A holder that lost its lease (it expired, another took it) says so, and its
    release does not free the new holder's lock."""
    key = keys.sender_lock("sms", "+447700900102")
    first = Lease(redis, key)
    assert await first.__aenter__()
    await redis.set(key, "someone else", px=5000)  # as if ours had lapsed and been taken
    await first.__aexit__(None, None, None)
    assert first.lost
    assert await redis.get(key) == "someone else"


async def test_a_chat_lock_left_by_a_killed_process_is_gone_within_a_lease(
    redis: Redis,
) -> None:
    h = await harness(redis)
    key = keys.sender_lock("sms", "+447700900101")
    holder = (
        "import asyncio, sys\n"
        "from ballots.connection import client_from_url\n"
        "from bot.lease import Lease\n"
        "async def main():\n"
        f"    async with Lease(client_from_url({current_redis_url()!r}), {key!r}):\n"
        "        print('held', flush=True)\n"
        "        await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        holder,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and (await proc.stdout.readline()).strip() == b"held"
    await asyncio.sleep(LEASE)  # it has renewed its lease at least once
    proc.kill()
    await proc.wait()
    # What the dead holder left lasts no longer than one lease ...
    assert await redis.pttl(key) <= LEASE * 1000
    # ... so the voter's next message is handled, not refused as busy.
    replies = await h.core.router.handle(
        InboundMessage("sms", "+447700900101", "hello", message_id="SM-after-kill")
    )
    assert replies and "busy" not in replies[0].text


async def test_a_script_a_restarted_redis_lost_gets_a_retry_not_a_sorry(redis: Redis) -> None:
    """NOSCRIPT (the server restarted between redis-py's reload and its retry) is Redis not
    being ready: the channel asks the platform to come back (a 503 to Twilio), and the
    retry works."""
    h = await harness(redis)
    codes = h.core.codes
    real = codes._verify
    # A script the server still does not know after it is loaded again: its digest is not
    # the one the load gives back (as if the server lost it once more in between).
    lost = copy.copy(real)
    lost.sha = "0" * 40

    code = (await codes.issue_voting_codes(h.core.election, ["S1001"]))[0][3]
    msg = InboundMessage("sms", "+447700900150", code, message_id="SM-noscript")
    codes._verify = lost
    with pytest.raises(StoreUnavailable):
        await h.core.router.handle(msg)
    codes._verify = real
    replies = await h.core.router.handle(msg)  # Twilio's retry, same MessageSid
    assert "1st choice" in replies[0].text
