"""``openprimary sandbox``: what it refuses (real platform settings, too many voters) before
anything starts, its roll, and what only a sandbox's console has (the banner on every page,
the phone simulator, the code on the sign-in page, the unseal with its own shares), which a
real deployment never shows (404)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from ballots import audit
from ballots.box import ballot_count
from ballots.election import read_election_file
from ballots.errors import ConfigError
from channels.sandbox import BANNER, SimulatorError
from openprimary import sandbox_cli
from openprimary.context import Context
from tests.console_support import Organiser
from tests.demo_support import running
from tests.factories import EXAMPLES, settings
from tests.sandbox_support import (
    CONSOLE,
    ELECTION,
    Console,
    SandboxWorld,
    gone,
    sandbox_env,
    sandbox_process,
    sandbox_world,
)
from tests.telegram_support import telegram_world

SID = "AC" + "0123456789abcdef" * 2


def run_sandbox(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``openprimary sandbox ARGS`` in an empty folder, its temporary files in another.  One
    that starts after all (a bug) is stopped with SIGTERM, so that it stops its Redis."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "openprimary", "sandbox", "--port", "0", *args]
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=sandbox_env(TMPDIR=str(tmp), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.terminate()
            out, err = process.communicate(timeout=30)
            pytest.fail(f"the sandbox started instead of refusing:\n{out}{err}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def nothing_started(tmp_path: Path, run: subprocess.CompletedProcess[str]) -> None:
    """No output but the refusal, and no file made: no Redis, no folder, no secret."""
    assert run.stdout == ""
    assert not any((tmp_path / "tmp").iterdir()), list((tmp_path / "tmp").iterdir())
    assert sorted(p.name for p in (tmp_path / "cwd").iterdir()) in ([], [".env"])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef"),
        ("TWILIO_ACCOUNT_SID", SID),
        ("TWILIO_REGION", "ie1"),
        ("TELEGRAM_BOT_TOKEN", "123456:real-looking-token"),
        ("OPENPRIMARY_TELEGRAM_BOT_TOKEN", "123456:real-looking-token"),
    ],
)
def test_a_real_platform_setting_is_refused_by_name(tmp_path: Path, name: str, value: str) -> None:
    run = run_sandbox(tmp_path, **{name: value})
    assert run.returncode == 2, run.stderr
    assert f"configuration: {name} is set: a sandbox never talks to a real" in run.stderr
    nothing_started(tmp_path, run)


def test_a_platform_setting_in_dotenv_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / ".env").write_text(f"TWILIO_ACCOUNT_SID={SID}\nTWILIO_FROM=+447700900000\n")
    run = run_sandbox(tmp_path)
    assert run.returncode == 2, run.stderr
    assert "TWILIO_ACCOUNT_SID (in .env), TWILIO_FROM (in .env) are set" in run.stderr
    nothing_started(tmp_path, run)


@pytest.mark.parametrize("voters", ["1000", "0"])
def test_too_many_voters_is_refused_before_anything_starts(tmp_path: Path, voters: str) -> None:
    run = run_sandbox(tmp_path, "--voters", voters)
    assert run.returncode == 2, run.stderr
    assert f"--voters {voters}: give 1 to 999" in run.stderr
    assert "drama range" in run.stderr
    nothing_started(tmp_path, run)


@pytest.mark.parametrize(
    ("voters", "env", "said"),
    [
        (1000, {}, "--voters 1000: give 1 to 999"),
        (40, {"TELEGRAM_WEBHOOK_SECRET": "s" * 20}, "TELEGRAM_WEBHOOK_SECRET is set"),
    ],
)
async def test_a_refusal_comes_before_anything_is_started(
    monkeypatch: pytest.MonkeyPatch, voters: int, env: dict[str, str], said: str
) -> None:
    """Not a folder, a socket or a Redis: each would fail the test if it were made."""
    for name in [n for n in os.environ if n.startswith(sandbox_cli.PLATFORM_PREFIXES)]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def started(*args: object, **kw: object) -> object:
        raise AssertionError("the sandbox started something before refusing")

    monkeypatch.setattr(sandbox_cli, "open_redis", started)
    monkeypatch.setattr(sandbox_cli, "_listen", started)
    monkeypatch.setattr(tempfile, "mkdtemp", started)
    monkeypatch.chdir(Path(__file__).parent)  # (no .env here)
    args = argparse.Namespace(voters=voters, port=0, election=str(EXAMPLES / "election.toml"))
    ctx = Context(settings=settings(), redis=cast(Redis, None), out=io.StringIO())
    with pytest.raises(ConfigError, match=re.escape(said)):
        await sandbox_cli.run_sandbox(args, ctx)


def test_the_platform_settings_it_looks_for(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("TELEGRAM_API_BASE=http://example.org\nOPENPRIMARY_SMS_RATE=5\nTWILIO_FROM=\n")
    found = sandbox_cli.real_platform_settings(
        {"TWILIO_EDGE": "dublin", "OPENPRIMARY_SECRET_KEY": "x" * 40, "TELEGRAM_X": ""}, env
    )
    assert found == ["TELEGRAM_API_BASE (in " + str(env) + ")", "TWILIO_EDGE"]
    assert sandbox_cli.real_platform_settings({}, tmp_path / "none") == []


def test_the_generated_roll() -> None:
    election = read_election_file(EXAMPLES / "election.toml")
    roll = sandbox_cli.sample_roll(999, election)
    phones = [s.phone for s in roll]
    assert phones[0] == "+447700900001" and phones[-1] == "+447700900999"
    assert len(set(phones)) == 999 and all(re.fullmatch(r"\+447700900\d{3}", p) for p in phones)
    assert len({s.supporter_id for s in roll}) == 999
    linked = [s for s in roll if s.telegram_id]
    assert 300 <= len(linked) <= 340
    assert len({s.name for s in roll[:900]}) == 900  # every pair of names once
    assert {s.language for s in roll} == {""}  # one language offered: the default
    welsh = replace(election, languages=("en", "cy"))
    assert [s.language for s in sandbox_cli.sample_roll(4, welsh)] == ["en", "cy", "en", "cy"]
    with pytest.raises(ConfigError, match="give 1 to 999"):
        sandbox_cli.sample_roll(1000, election)


# --- a sandbox's console ------------------------------------------------------------------


async def vote_by_sms(world: SandboxWorld, who: int) -> None:
    """The ``who``-th supporter votes from their phone with the code the party posted them."""
    sandbox = world.sandbox
    phone = sandbox.phone("sms", sandbox.people[who].phone)
    for text in ("hello", sandbox.people[who].voting_code, "2 4 1", "YES"):
        await sandbox.text(phone, text)
    assert "Vote cast" in sandbox.screen(phone)["messages"][-1]["text"]


async def signed_in(world: SandboxWorld) -> Console:
    console = Console(world.url)
    page = await console.sign_in(world)
    assert page.status == 200 and page.url.endswith(f"{CONSOLE}/"), page.text
    return console


async def test_the_banner_is_on_every_page_of_a_sandbox(redis: Redis, tmp_path: Path) -> None:
    async with sandbox_world(redis, tmp_path / "trustees") as world:
        outsider = Console(world.url)
        for path in (f"{CONSOLE}/sign-in", f"{CONSOLE}/sign-in/code?address=tg:100001"):
            page = await outsider.get(path)
            assert page.status == 200 and BANNER in page.text, path
        console = await signed_in(world)
        try:
            await vote_by_sms(world, 3)  # a ballot, so that there is a count to publish
            sent = await console.post(
                f"{CONSOLE}/reminders/send",
                {"template": "Hi {name}", "channel": "sms", "price": ""},
            )
            assert "/reminders/" in sent.url, sent.text
            pages = [
                "/organisers/",
                "/organisers/report",
                f"{CONSOLE}/",
                f"{CONSOLE}/reminders",
                sent.url.removeprefix(world.url),
                f"{CONSOLE}/roll",
                f"{CONSOLE}/audit",
                f"{CONSOLE}/results",
                f"{CONSOLE}/close",
                f"{CONSOLE}/extend",
                f"{CONSOLE}/results/publish",
                f"{CONSOLE}/simulator",
                f"{CONSOLE}/simulator?channel=sms&address=%2B447700900004",
                f"{CONSOLE}/simulator?channel=telegram&address=800000001",
                f"{CONSOLE}/sandbox/unseal",
                "/organisers/simulator?channel=sms&address=%2B447700900004",
            ]
            for path in pages:
                page = await console.get(path)
                assert page.status == 200, (path, page.status)
                if path.startswith("/organisers/simulator"):  # the sandbox election's own
                    assert page.url == world.url + CONSOLE + path.removeprefix("/organisers")
                assert f'<p class="sandbox-banner">{BANNER}</p>' in page.text, path
            closed = await console.post(f"{CONSOLE}/close", {"confirm": "yes", "at": ""})
            assert closed.status == 200, closed.text
            unsealed = await console.post(f"{CONSOLE}/sandbox/unseal", {"confirm": "yes"})
            assert unsealed.url.endswith("/results") and BANNER in unsealed.text
            published = await console.post(f"{CONSOLE}/results/publish", {"confirm": "yes"})
            assert "Published" in published.text
            public = await outsider.get(f"/results/{ELECTION}")
            assert public.status == 200 and "Elected" in public.text
            assert f'<p class="sandbox-banner">{BANNER}</p>' in public.text
        finally:
            await console.close()
            await outsider.close()


async def test_outside_a_sandbox_no_banner_and_no_simulator(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        stranger = Organiser(world)
        organiser = Organiser(world)
        try:
            # Signed out, the simulator is not there at all (not a sign-in page).
            for path in (f"{CONSOLE}/simulator", "/organisers/simulator"):
                async with stranger.session.get(world.url + path) as resp:
                    assert resp.status == 404, path
            await organiser.sign_in()
            home = await organiser.get(f"{CONSOLE}/")
            assert home.status == 200 and "sandbox" not in home.text.lower()
            assert "Phone simulator" not in home.text
            for path in (
                f"{CONSOLE}/simulator",
                f"{CONSOLE}/simulator?channel=sms&address=%2B447700900101",
                f"{CONSOLE}/simulator/screen.json?channel=sms&address=%2B447700900101",
                "/organisers/simulator",
                f"{CONSOLE}/sandbox/unseal",
            ):
                page = await organiser.get(path)
                assert page.status == 404, (path, page.status)
            for path in ("/simulator/send", "/simulator/tap", "/sandbox/unseal"):
                page = await organiser.post(
                    CONSOLE + path, {"channel": "sms", "address": "+447700900101", "text": "hi"}
                )
                assert page.status == 404, (path, page.status)
            # The code page is only ever the answer to asking for a code (POST).
            async with organiser.session.get(
                f"{world.url}{CONSOLE}/sign-in/code?address=tg:100001"
            ) as resp:
                assert resp.status == 405
            asked = await organiser.post(f"{CONSOLE}/sign-in", {"address": "tg:100001"})
            assert "data-sandbox-code" not in asked.text and "Sandbox" not in asked.text
        finally:
            await stranger.close()
            await organiser.close()


async def test_the_code_pages_show_the_latest_code_the_organisers_phone_got(
    redis: Redis, tmp_path: Path
) -> None:
    async with sandbox_world(redis, tmp_path / "trustees") as world:
        browser = Console(world.url)
        try:
            await browser.get(f"{CONSOLE}/sign-in")
            asked = await browser.post(f"{CONSOLE}/sign-in", {"address": "+447700900001"})
            code = re.search(r"data-sandbox-code>(\d{6})<", asked.text)
            assert code, asked.text
            # The code went by SMS, through the Messages API, to the organiser's phone.
            sms = world.twilio.sent_to("+447700900001")
            assert sms and sms[-1].body.startswith(f"{code[1]} is your code to sign in")
            again = await browser.get(f"{CONSOLE}/sign-in/code?address=%2B447700900001")
            assert f"data-sandbox-code>{code[1]}<" in again.text
            wrong = await browser.post(
                f"{CONSOLE}/sign-in/code", {"address": "+447700900001", "code": "999999"}
            )
            assert wrong.status == 403 and f"data-sandbox-code>{code[1]}<" in wrong.text
            nobody = await browser.post(f"{CONSOLE}/sign-in", {"address": "+447700900222"})
            assert "is not one of this election's organisers" in nobody.text
        finally:
            await browser.close()


async def test_sms_and_telegram_through_the_simulator(redis: Redis, tmp_path: Path) -> None:
    async with sandbox_world(redis, tmp_path / "trustees") as world:
        console = await signed_in(world)
        sim = f"{CONSOLE}/simulator"
        json_only = {"Accept": "application/json"}
        try:
            # A number not on the roll gets the lobby's answer, in the webhook's reply.
            screen = await _send(console, sim, "sms", "+447700900777", "hi", json_only)
            assert screen["messages"][0] == {**screen["messages"][0], "from": "phone", "text": "hi"}
            reply = screen["messages"][-1]
            assert reply["from"] == "bot" and reply["how"] == "reply (TwiML)"
            assert reply["encoding"] == "GSM-7" and reply["segments"] >= 1
            # A supporter votes on Telegram with the code the party posted them, by buttons.
            person = world.sandbox.people[0]
            account = str(person.telegram_id)
            await _send(console, sim, "telegram", account, person.voting_code, json_only)
            for label in ("Sam Patel", "Done", "Cast my vote"):
                message, data = await _button(console, sim, account, label)
                before = await _screen(console, sim, "telegram", account)
                tapped = await console.post(
                    f"{sim}/tap",
                    {"address": account, "message": str(message), "data": data},
                    headers=json_only,
                )
                assert tapped.status == 200, tapped.text
                await _changed(console, sim, account, before)  # the bot has answered the tap
            await _wait_for(console, sim, "telegram", account, "Receipt")
            assert await ballot_count(redis, world.core.election) == 1
            # A button the message does not show cannot be tapped.
            refused = await console.post(
                f"{sim}/tap",
                {"address": account, "message": "1", "data": "forged"},
                headers=json_only,
            )
            assert refused.status == 400 and "no longer" in json.loads(refused.text)["problem"]
            # Without script, a form answers with the page again (the phone in its URL).
            page = await console.post(
                f"{sim}/send", {"channel": "sms", "address": "+447700900777", "text": "help"}
            )
            assert page.status == 200 and "channel=sms&address=%2B447700900777" in page.url
            bad = await console.post(
                f"{sim}/send", {"channel": "sms", "address": "12", "text": "x"}
            )
            assert bad.status == 400 and "not a phone number" in bad.text
        finally:
            await console.close()
    with pytest.raises(SimulatorError, match="election's own number"):
        world.sandbox.phone("sms", "+447700900000")


async def _send(
    console: Console, sim: str, channel: str, address: str, text: str, headers: dict[str, str]
) -> dict[str, Any]:
    page = await console.post(
        f"{sim}/send", {"channel": channel, "address": address, "text": text}, headers=headers
    )
    assert page.status == 200, page.text
    screen: dict[str, Any] = json.loads(page.text)
    return screen


async def _screen(console: Console, sim: str, channel: str, address: str) -> dict[str, Any]:
    page = await console.get(f"{sim}/screen.json?channel={channel}&address={address}")
    assert page.status == 200, page.text
    screen: dict[str, Any] = json.loads(page.text)
    return screen


async def _wait_for(console: Console, sim: str, channel: str, address: str, text: str) -> None:
    async with asyncio.timeout(15):
        while True:
            screen = await _screen(console, sim, channel, address)
            if any(text in str(m["text"]) for m in screen["messages"]):
                return
            await asyncio.sleep(0.1)


async def _changed(console: Console, sim: str, account: str, before: dict[str, Any]) -> None:
    async with asyncio.timeout(15):
        while True:
            if await _screen(console, sim, "telegram", account) != before:
                return
            await asyncio.sleep(0.1)


async def _button(console: Console, sim: str, account: str, label: str) -> tuple[int, str]:
    """The message and data of the newest button labelled ``label`` (waiting for it)."""
    async with asyncio.timeout(15):
        while True:
            screen = await _screen(console, sim, "telegram", account)
            for message in reversed(screen["messages"]):
                for row in message["buttons"]:
                    for button in row:
                        if button["label"] == label:
                            return int(message["id"]), str(button["data"])
            await asyncio.sleep(0.1)


async def test_the_sandbox_unseal_is_audited_like_the_command_line(
    redis: Redis, tmp_path: Path
) -> None:
    async with sandbox_world(redis, tmp_path / "trustees") as world:
        console = await signed_in(world)
        try:
            await vote_by_sms(world, 3)
            early = await console.post(f"{CONSOLE}/sandbox/unseal", {"confirm": "yes"})
            assert early.status == 409 and "closes" in early.text
            unconfirmed = await console.post(f"{CONSOLE}/sandbox/unseal", {})
            assert unconfirmed.status == 409 and "Confirm on this page first" in unconfirmed.text
            await console.post(f"{CONSOLE}/close", {"confirm": "yes", "at": ""})
            results = await console.get(f"{CONSOLE}/results")
            assert "Unseal with the sandbox trustees' shares" in results.text
            done = await console.post(f"{CONSOLE}/sandbox/unseal", {"confirm": "yes"})
            assert done.url.endswith(f"{CONSOLE}/results") and "Sam Patel" in done.text
            trail = await audit.read(redis, ELECTION)
            unsealed = [e for e in trail if e.action == "ballots unsealed"]
            assert len(unsealed) == 1
            assert unsealed[0].actor == "tg:100001"
            assert unsealed[0].details["shares"] == "1,2"
            assert unsealed[0].details["opened"] == 1
            assert [e.actor for e in trail if e.action == "count key made"] == ["sandbox"]
        finally:
            await console.close()


async def test_sigterm_stops_the_sandbox_its_redis_and_removes_its_folder(
    tmp_path: Path,
) -> None:
    async with sandbox_process("--voters", "3", cwd=tmp_path) as started:
        pid = started.redis_pid()
        assert running(pid) and started.folder.is_dir()
        started.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            out, _ = await started.process.communicate()
        assert started.process.returncode == 0, out
        assert f"Sandbox stopped; removed {started.folder}." in out.decode()
        assert await gone(pid), f"redis-server {pid} outlived the sandbox"
        assert not started.folder.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left where it ran
