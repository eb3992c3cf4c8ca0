"""``openprimary serve`` killed with -9 while SMS and Telegram messages are in flight.

The real command runs in a subprocess against a redis-server of the test's
own, with SMS and Telegram both on.  Voters on both channels vote at once,
retrying failed webhooks as the platforms do; part-way ``serve`` is killed
and a new one started on the same port.  Every voter must end with a
receipt, every ballot be counted once, and no update Telegram was told was
taken (200) be lost.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

from aiohttp import ClientSession

from ballots.clock import SystemClock
from ballots.connection import client_from_url
from benchmarks.harness import bench_election
from channels.standins.telegram_api import TelegramAPI, TelegramUser, UpdateFactory
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, OUR_NUMBER
from openprimary.app import build_core
from tests.factories import SECRET, settings
from tests.faults.support import (
    WEBHOOK_SECRET,
    RedisProcess,
    Voter,
    assert_every_vote_counted_once,
    free_port,
    sms_vote,
    telegram_vote,
)
from tests.sms_support import AUTH_TOKEN, PUBLIC_URL

ROOT = Path(__file__).resolve().parents[2]
SMS_VOTERS = 30
TELEGRAM_VOTERS = 30


async def start_serve(env: dict[str, str], port: int, cwd: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openprimary.cli", "serve",
        "--port", str(port), "--election", "faults",
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, "serve stopped before it listened"
            if re.search(r"listening on http://", line):
                return proc


async def test_serve_killed_mid_vote_loses_no_message_and_no_receipt(tmp_path: Path) -> None:
    server = RedisProcess("--appendonly", "yes", "--appendfsync", "always")
    server.start()
    redis = client_from_url(server.url)
    serve: asyncio.subprocess.Process | None = None
    try:
        election = await bench_election(redis, "faults", SMS_VOTERS + TELEGRAM_VOTERS)
        core = await build_core(settings(), redis, SystemClock(), election.id)
        ids = [f"B{i:07d}" for i in range(SMS_VOTERS, SMS_VOTERS + TELEGRAM_VOTERS)]
        codes = [row[3] for row in await core.codes.issue_voting_codes(election, ids)]
        async with (
            TelegramAPI() as api,
            TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
            ClientSession() as session,
        ):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = {
                "PATH": os.environ.get("PATH", ""),
                "PYTHONPATH": str(ROOT),
                "OPENPRIMARY_REDIS_URL": server.url,
                "OPENPRIMARY_SECRET_KEY": SECRET,
                "OPENPRIMARY_DATA_DIR": str(tmp_path),
                "OPENPRIMARY_PUBLIC_URL": PUBLIC_URL,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "TWILIO_FROM": OUR_NUMBER,
                "TWILIO_API_BASE": twilio.base_url,
                "TELEGRAM_BOT_TOKEN": api.token,
                "TELEGRAM_API_BASE": api.url,
                "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            }
            serve = await start_serve(env, port, tmp_path)
            updates = UpdateFactory(api=api)
            sms = [Voter(f"+4474{i:08d}") for i in range(SMS_VOTERS)]
            telegram = [Voter(f"tg:{600_000 + i}") for i in range(TELEGRAM_VOTERS)]
            voters = sms + telegram
            restarted_at: list[float] = []

            async def kill_and_restart() -> None:
                nonlocal serve
                while sum(v.tries for v in voters) < len(voters) * 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
                assert serve is not None
                serve.send_signal(signal.SIGKILL)
                await serve.wait()
                serve = await start_serve(env, port, tmp_path)
                restarted_at.append(time.monotonic())

            started = time.monotonic()
            await asyncio.gather(
                kill_and_restart(),
                *(sms_vote(session, lambda: url, v.name, v, think=0.02) for v in sms),
                *(
                    telegram_vote(
                        session, lambda: url, api, updates, TelegramUser(600_000 + i), codes[i], v
                    )
                    for i, v in enumerate(telegram)
                ),
            )
            sent = 4 * SMS_VOTERS + 3 * TELEGRAM_VOTERS
            tries = sum(v.tries for v in voters)
            print(
                f"\n{len(voters)} voters, {sent} messages, {tries - sent} retried deliveries, "
                f"{time.monotonic() - started:.1f} s "
                f"(serve killed and back {restarted_at[0] - started:.1f} s into the run), "
                f"{sum(v.repeated for v in telegram)} Telegram answer(s) sent twice"
            )
            await assert_every_vote_counted_once(redis, election, voters)
            # Nothing Telegram was told was taken is left behind.
            left = await redis.keys("op:{tg-in/*}:updates:*")
            assert [await redis.xlen(k) for k in left] == [0] * len(left)
    finally:
        if serve is not None and serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
            await serve.wait()
        await redis.aclose()
        server.close()
