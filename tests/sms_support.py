"""The whole SMS stack for tests: the real app over HTTP on 127.0.0.1, a stand-in
Twilio REST API behind the real twilio library, the sample election on a
manual clock."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, TCPConnector, web
from redis.asyncio import Redis

from ballots.clock import ManualClock
from ballots.codes import CodePolicy
from bot.core import Core
from bot.settings import Settings
from channels.server import make_app
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, OUR_NUMBER, TwilioPhone
from openprimary.app import build, build_core
from tests.factories import NOW, SECRET, sample_election, settings

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC_URL = "https://vote.example.org"
ROOT = Path(__file__).resolve().parent.parent


def twilio_settings(twilio: TwilioApiStandIn, **more: Any) -> Settings:
    """The tests' settings for the stand-in Twilio: our account, token and number (``more``
    adds to them or changes them)."""
    return settings(
        **{
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from": OUR_NUMBER,
            "twilio_api_base": twilio.base_url,
            **more,
        }
    )


def serve_env(redis_url: str, twilio_api: str, auth_token: str = AUTH_TOKEN) -> dict[str, str]:
    """The environment of an ``openprimary serve`` subprocess: SMS against a stand-in API."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OPENPRIMARY_REDIS_URL": redis_url,
        "OPENPRIMARY_SECRET_KEY": SECRET,
        "OPENPRIMARY_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": auth_token,
        "TWILIO_FROM": OUR_NUMBER,
        "TWILIO_API_BASE": twilio_api,
    }


#: Phones on the sample roll.
ANN = "+447700900101"  # S1001
BILAL = "+447700900102"  # S1002
CARYS = "+447700900103"  # S1003
STRANGER = "+447700900999"  # not on the roll


@dataclass
class SmsStack:
    """One running ``serve`` app and what it talks to."""

    core: Core
    clock: ManualClock
    twilio: TwilioApiStandIn
    session: ClientSession
    url: str

    def phone(self, number: str) -> TwilioPhone:
        return TwilioPhone(
            self.session, self.url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, number=number
        )


async def start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    """Run ``app`` on a free port of 127.0.0.1; returns the runner and its URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@asynccontextmanager
async def sms_stack(
    redis: Redis,
    twilio: TwilioApiStandIn | None = None,
    *,
    policy: CodePolicy | None = None,
    twilio_from: str = OUR_NUMBER,
    sms_rate: float = 10.0,
    config_changes: dict[str, Any] | None = None,
    every_election: bool = False,
    **election_changes: Any,
) -> AsyncIterator[SmsStack]:
    """The app for the sample election, served on loopback (``config_changes``: settings);
    with ``every_election``, the app serves every election loaded, as ``serve`` does."""
    async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as own_twilio:
        twilio = twilio or own_twilio
        clock = ManualClock(NOW)
        election = await sample_election(redis, **election_changes)
        config = twilio_settings(
            twilio,
            public_url=PUBLIC_URL,
            twilio_from=twilio_from,
            sms_rate=sms_rate,
            **(config_changes or {}),
        )
        if every_election:
            deployment = await build(config, redis, clock, None, policy=policy)
            core = deployment.cores[election.id]
        else:
            core = await build_core(config, redis, clock, election.id, policy=policy)
        runner, url = await start_app(make_app(core))
        try:
            async with ClientSession() as session:
                yield SmsStack(core, clock, twilio, session, url)
        finally:
            await runner.cleanup()


@asynccontextmanager
async def serve_workers(env: dict[str, str], *args: str) -> AsyncIterator[tuple[str, Any]]:
    """``openprimary serve --workers 2 ARGS`` on a free port with ``env``, once /healthz
    answers 200; its URL and that answer.  SIGTERM on the way out, as systemd stops it."""
    from tests.faults.support import free_port  # (which imports this module)

    port = free_port()
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openprimary.cli", "serve", "--workers", "2",
        "--port", str(port), *args, env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(60):
            while True:
                try:
                    async with (
                        ClientSession(connector=TCPConnector(force_close=True)) as session,
                        session.get(url + "/healthz") as resp,
                    ):
                        if resp.status == 200:
                            health = await resp.json()
                            break
                except ClientError:
                    await asyncio.sleep(0.1)
        yield url, health
    finally:
        parent.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await parent.wait()
