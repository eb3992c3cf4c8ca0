"""``openprimary serve --workers N``: N processes on one port, stopped together."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from aiohttp import ClientError, ClientSession, TCPConnector
from redis.asyncio import Redis

from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID
from tests.factories import sample_election
from tests.faults.support import free_port
from tests.sms_support import AUTH_TOKEN, serve_env

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_two_workers_share_the_port_and_stop_together(redis: Redis, redis_url: str) -> None:
    election = await sample_election(redis)
    port = free_port()
    async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        env = serve_env(redis_url, twilio.base_url)
        parent = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "openprimary.cli", "serve", "--workers", "2",
            "--port", str(port), "--election", election.id,
            env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert parent.stdout is not None
        seen: set[str] = set()
        try:
            async with asyncio.timeout(60):
                while len(seen) < 2:
                    # A new connection each time: the kernel spreads them over the workers.
                    try:
                        async with (
                            ClientSession(connector=TCPConnector(force_close=True)) as session,
                            session.get(f"http://127.0.0.1:{port}/healthz") as resp,
                        ):
                            body = await resp.json()
                            assert body["status"] == "ok"
                            seen.add(body["process"])
                    except ClientError:
                        await asyncio.sleep(0.1)  # not listening yet
        finally:
            parent.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                out, _ = await parent.communicate()
    assert parent.returncode == 0, out
    assert b"serving with 2 workers" in out and out.rstrip().endswith(b"stopped")
    pids = {int(p.rsplit(":", 1)[1]) for p in seen}
    assert len(pids) == 2 and parent.pid not in pids
    assert not any(_alive(pid) for pid in pids)  # every worker stopped with it
