"""``openprimary serve``: which settings it needs, start-up and shutdown, several processes."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession
from redis.asyncio import Redis

from ballots import keys
from ballots.box import ballot_count
from ballots.clock import ManualClock
from ballots.connection import client_from_url
from ballots.errors import ConfigError
from bot.messages import InboundMessage
from bot.settings import Settings
from channels.server import check_settings, make_app
from channels.sms_sender import TwilioSender
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, OUR_NUMBER, TwilioPhone, message_sid
from openprimary.app import build_core
from openprimary.cli import build_parser
from openprimary.context import Context
from openprimary.serve_cli import serve
from tests.factories import NOW, SECRET, sample_election, settings
from tests.sms_support import ANN, AUTH_TOKEN, PUBLIC_URL, start_app, twilio_settings

ROOT = Path(__file__).resolve().parent.parent


def full_settings(twilio: TwilioApiStandIn, **overrides: object) -> Settings:
    return twilio_settings(twilio, public_url=PUBLIC_URL, **overrides)


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioApiStandIn]:
    async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


# --- settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({}, ["TWILIO_AUTH_TOKEN", "OPENPRIMARY_PUBLIC_URL", "TELEGRAM_BOT_TOKEN"]),
        (
            {"twilio_auth_token": "t"},
            ["OPENPRIMARY_PUBLIC_URL", "TWILIO_ACCOUNT_SID", "TWILIO_FROM"],
        ),
        # Replies alone go back as TwiML, but the account and number are needed to tell a
        # request Twilio made for us from a signed one re-cut or replayed.
        ({"public_url": PUBLIC_URL, "twilio_auth_token": "t"}, ["TWILIO_ACCOUNT_SID"]),
        ({"public_url": PUBLIC_URL, "twilio_from": OUR_NUMBER}, ["TWILIO_AUTH_TOKEN"]),
        (
            {"public_url": PUBLIC_URL, "twilio_auth_token": "t", "twilio_from": OUR_NUMBER},
            ["TWILIO_ACCOUNT_SID"],
        ),
        (
            {"public_url": PUBLIC_URL, "twilio_auth_token": "t", "twilio_account_sid": ACCOUNT_SID},
            ["TWILIO_FROM"],
        ),
    ],
)
def test_missing_settings_are_named(given: dict[str, str], named: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        check_settings(settings(**given))
    for name in named:
        assert name in str(err.value)


@pytest.mark.parametrize(
    "given",
    [
        {
            "public_url": PUBLIC_URL,
            "twilio_auth_token": "t",
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_from": OUR_NUMBER,
        },
        {"telegram_bot_token": "1:x"},
    ],
)
def test_enough_settings_pass(given: dict[str, str]) -> None:
    check_settings(settings(**given))


# --- serve, in this process ------------------------------------------------------


async def wait_for_line(out: io.StringIO, pattern: str, task: asyncio.Task[int]) -> re.Match[str]:
    """Wait until the server prints a line matching ``pattern`` (or stops)."""
    async with asyncio.timeout(10):
        while True:
            found = re.search(pattern, out.getvalue())
            if found:
                return found
            if task.done():
                raise AssertionError(f"serve stopped early: {out.getvalue()!r}")
            await asyncio.sleep(0.01)


async def test_serve_runs_until_sigterm_and_shuts_down_cleanly(
    redis: Redis, twilio: TwilioApiStandIn
) -> None:
    election = await sample_election(redis)
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(
        settings=full_settings(twilio), redis=redis, clock=ManualClock(NOW), out=out, err=err
    )
    args = argparse.Namespace(host="127.0.0.1", port=0, election=election.id)
    task = asyncio.create_task(serve(args, ctx))
    url = (await wait_for_line(out, r"listening on (http://\S+)", task)).group(1)
    async with ClientSession() as session:
        phone = TwilioPhone(session, url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, number=ANN)
        [reply] = await phone.text("Hi")
        assert re.search(r"\b\d{6}\b", reply)
        async with session.get(url + "/healthz") as resp:
            assert resp.status == 200
    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(10):
        assert await task == 0
    assert "stopped" in out.getvalue()
    assert await redis.ping()  # the Redis client belongs to the caller, still open


async def test_serve_without_a_count_key_says_so_and_casts_nothing(
    redis: Redis, twilio: TwilioApiStandIn
) -> None:
    election = await sample_election(redis)
    await redis.hdel(keys.election(election.id), "count_key", "count_key_id")
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(
        settings=full_settings(twilio), redis=redis, clock=ManualClock(NOW), out=out, err=err
    )
    args = argparse.Namespace(host="127.0.0.1", port=0, election=election.id)
    task = asyncio.create_task(serve(args, ctx))
    url = (await wait_for_line(out, r"listening on (http://\S+)", task)).group(1)
    assert "has no count key" in err.getvalue() and "trustees init" in err.getvalue()
    async with ClientSession() as session:
        phone = TwilioPhone(session, url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, number=ANN)
        [reply] = await phone.text("Hi")
        assert "not open yet" in reply
    assert twilio.messages == []  # not even a code was sent
    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(10):
        assert await task == 0


async def test_serve_warns_when_fewer_replicas_than_durable_casts_need(
    redis: Redis, twilio: TwilioApiStandIn
) -> None:
    election = await sample_election(redis)
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(
        settings=full_settings(twilio, durable_replicas=1),
        redis=redis,
        clock=ManualClock(NOW),
        out=out,
        err=err,
    )
    args = argparse.Namespace(host="127.0.0.1", port=0, election=election.id)
    task = asyncio.create_task(serve(args, ctx))
    await wait_for_line(out, r"listening on (http://\S+)", task)
    assert "OPENPRIMARY_DURABLE_REPLICAS=1 but the primary has 0 replica(s)" in err.getvalue()
    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(10):
        assert await task == 0


async def test_serve_stops_at_start_up_naming_what_is_missing(redis: Redis) -> None:
    await sample_election(redis)
    ctx = Context(settings=settings(twilio_auth_token="t"), redis=redis)
    args = argparse.Namespace(host="127.0.0.1", port=0, election=None)
    with pytest.raises(ConfigError, match="OPENPRIMARY_PUBLIC_URL"):
        await serve(args, ctx)


async def test_serve_stops_at_start_up_when_redis_is_down(twilio: TwilioApiStandIn) -> None:
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        ctx = Context(settings=full_settings(twilio), redis=down)
        args = argparse.Namespace(host="127.0.0.1", port=0, election=None)
        with pytest.raises(ConfigError, match="OPENPRIMARY_REDIS_URL"):
            await serve(args, ctx)
    finally:
        await down.aclose()


async def test_serve_stops_at_start_up_without_an_election(
    redis: Redis, twilio: TwilioApiStandIn
) -> None:
    ctx = Context(settings=full_settings(twilio), redis=redis)
    args = argparse.Namespace(host="127.0.0.1", port=0, election=None)
    with pytest.raises(ConfigError, match="no election"):
        await serve(args, ctx)


async def test_the_twilio_client_is_built_with_the_core_and_closed_on_shutdown(
    redis: Redis, twilio: TwilioApiStandIn
) -> None:
    election = await sample_election(redis)
    core = await build_core(full_settings(twilio), redis, ManualClock(NOW), election.id)
    sender = core.senders["sms"]
    assert isinstance(sender, TwilioSender) and sender.paces_itself
    with pytest.raises(TypeError):
        core.senders["sms"] = sender  # type: ignore[index]
    session = sender.client.http_client.session
    runner, _url = await start_app(make_app(core))
    assert not session.closed
    await runner.cleanup()
    assert session.closed


# --- several processes -----------------------------------------------------------


async def test_two_serve_processes_share_one_redis(
    redis: Redis, redis_url: str, twilio: TwilioApiStandIn
) -> None:
    """Two apps, each with its own Redis pool and core: a voter's messages may reach
    either, and a delivery repeated to both is handled once."""
    election = await sample_election(redis)
    clients = [client_from_url(redis_url) for _ in range(2)]
    runners = []
    urls = []
    try:
        for client in clients:
            core = await build_core(full_settings(twilio), client, ManualClock(NOW), election.id)
            runner, url = await start_app(make_app(core))
            runners.append(runner)
            urls.append(url)
        async with ClientSession() as session:
            phones = [
                TwilioPhone(session, url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, number=ANN)
                for url in urls
            ]
            sid = message_sid()
            [code_sms] = await phones[0].text("Hi", sid=sid)
            # Twilio's retry, at the other process: the same answer, not a second code.
            assert await phones[1].text("Hi", sid=sid) == [code_sms]
            code = re.search(r"\b(\d{6})\b", code_sms)
            assert code is not None
            assert "1st choice" in (await phones[1].text(code.group(1)))[0]
            assert "Your ballot" in (await phones[0].text("3 1 0"))[0]
            assert "Vote cast" in (await phones[1].text("YES"))[0]
    finally:
        for runner in runners:
            await runner.cleanup()
        for client in clients:
            await client.aclose()
    assert await ballot_count(redis, election) == 1


# --- the real command line ---------------------------------------------------------


def test_serve_is_a_subcommand() -> None:
    assert any(
        isinstance(action, argparse._SubParsersAction) and "serve" in action._name_parser_map
        for action in build_parser()._actions
    )


async def test_openprimary_serve_names_a_missing_setting(redis_url: str, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "OPENPRIMARY_REDIS_URL": redis_url,
        "OPENPRIMARY_SECRET_KEY": SECRET,
        "OPENPRIMARY_DATA_DIR": str(tmp_path),
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openprimary.cli", "serve", "--port", "0",
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(30):
        _out, err = await proc.communicate()
    assert proc.returncode == 2
    assert "OPENPRIMARY_PUBLIC_URL" in err.decode()


async def test_openprimary_serve_end_to_end(
    redis: Redis, redis_url: str, tmp_path: Path, twilio: TwilioApiStandIn
) -> None:
    election = await sample_election(redis)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "OPENPRIMARY_REDIS_URL": redis_url,
        "OPENPRIMARY_SECRET_KEY": SECRET,
        "OPENPRIMARY_DATA_DIR": str(tmp_path),
        "OPENPRIMARY_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM": OUR_NUMBER,
        "TWILIO_API_BASE": twilio.base_url,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openprimary.cli", "serve", "--port", "0", "--election", election.id,
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            url = ""
            while not url:
                line = (await proc.stdout.readline()).decode()
                assert line, (await proc.stderr.read()).decode()
                if found := re.search(r"listening on (http://\S+)", line):
                    url = found.group(1)
        async with ClientSession() as session:
            phone = TwilioPhone(
                session, url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, number=ANN
            )
            [reply] = await phone.text("HELP")
            assert "Riverside" in reply
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.wait()
    assert proc.returncode == 0


async def test_shutdown_sends_the_codes_still_on_their_way_before_closing_the_sender(
    redis: Redis, twilio: TwilioApiStandIn
) -> None:
    """A typed supporter number's code goes after its reply; a shutdown right then still
    sends it, and only then closes the Twilio client."""
    election = await sample_election(redis)
    core = await build_core(full_settings(twilio), redis, ManualClock(NOW), election.id)
    runner, _url = await start_app(make_app(core))
    typed = InboundMessage(channel="telegram", address="4242", text="S1002", message_id="u1")
    replies = await core.router.handle(typed)
    assert "If S1002 is on the roll" in replies[0].text
    await runner.cleanup()  # at once: the code SMS is still a background task
    assert [m.to for m in twilio.messages] == ["+447700900102"]
