"""What the fault-injection tests share: a Redis process to kill, freeze and starve, and
voters who keep trying the way Twilio and Telegram do.

A voter here behaves as the platform does for them: a webhook that fails
(connection refused or reset, a timeout, a 5xx) is sent again, with the same
MessageSid or update, until it is answered.  What each voter saw is kept,
so a test can say whether anyone was left without an answer or a receipt.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout
from redis.asyncio import Redis

from ballots.box import ballot_count
from ballots.election import Election
from ballots.receipts import all_receipts
from channels.standins.telegram_api import TelegramAPI, TelegramUser, UpdateFactory
from channels.standins.twilio_phone import PATH, inbound_form, sign, twiml_bodies
from tests.redis_server import redis_server_binary
from tests.sms_support import AUTH_TOKEN, PUBLIC_URL

WEBHOOK_SECRET = "fault-webhook-secret_0123456789"
RANKING = "2 4 1 3"
RECEIPT = re.compile(r"Receipt:? ([A-Za-z0-9-]+)")
#: How long a voter keeps trying one message before the test calls it lost.
GIVE_UP = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A redis-server on a fixed port and data directory, so it can be killed and restarted."""

    def __init__(self, *config: str) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="openprimary-faults-"))
        self.config = config
        #: A configuration file to start from (the options given here override it).
        self.conf_file: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                *([str(self.conf_file)] if self.conf_file else []),
                "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--daemonize", "no", *self.config,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: whatever the server had not written to its append-only file is gone."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.frozen:
                self.thaw()
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Voter:
    """One supporter voting through the faults; what they were told, and how it went."""

    name: str
    seen: list[str] = field(default_factory=list)
    tries: int = 0
    #: Deliveries answered 200 with nothing in them: a message swallowed.
    empty: int = 0

    @property
    def repeated(self) -> int:
        """Answers that came twice in a row."""
        return sum(a == b for a, b in zip(self.seen, self.seen[1:], strict=False))

    @property
    def receipts(self) -> set[str]:
        return {m.group(1) for text in self.seen for m in RECEIPT.finditer(text)}

    @property
    def done(self) -> bool:
        return bool(self.receipts)


async def sms_vote(
    session: ClientSession,
    url: Callable[[], str],
    number: str,
    voter: Voter,
    *,
    think: float = 0.0,
) -> None:
    """Vote by SMS from ``number``: hi, the code texted back, the ranking, YES."""
    for step in ("hi", "<code>", RANKING, "YES"):
        text = step
        if step == "<code>":
            found = re.search(r"\b(\d{6})\b", " ".join(voter.seen))
            assert found, voter.seen
            text = found.group(1)
        voter.seen += await _text(session, url, number, text, voter)
        await asyncio.sleep(think)


async def _text(
    session: ClientSession, url: Callable[[], str], number: str, body: str, voter: Voter
) -> list[str]:
    """One inbound SMS, retried with the same MessageSid until answered, as Twilio does."""
    form = inbound_form(number, body)
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, PUBLIC_URL + PATH, form)}
    deadline = time.monotonic() + GIVE_UP
    while True:
        voter.tries += 1
        try:
            async with session.post(
                url() + PATH, data=form, headers=headers, timeout=ClientTimeout(total=15)
            ) as resp:
                if resp.status == 200:
                    bodies = twiml_bodies(await resp.text())
                    if not bodies:
                        voter.empty += 1
                    return bodies
                await resp.read()
        except (ClientError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{number}: {body!r} was never answered")
        await asyncio.sleep(0.2)


async def telegram_vote(
    session: ClientSession,
    url: Callable[[], str],
    api: TelegramAPI,
    updates: UpdateFactory,
    user: TelegramUser,
    code: str,
    voter: Voter,
) -> None:
    """Vote in a private chat by typing: the voting code, the ranking, YES.

    Each step waits for its own answer (a reply to an earlier update may come
    twice, when a process died between sending it and saying so).
    """
    for text, answer in ((code, "1st choice"), (RANKING, "Your ballot"), ("YES", "Receipt")):
        before = len(_bot_texts(api, user.id))
        await _post_update(session, url, updates.text(user, text), voter)
        deadline = time.monotonic() + GIVE_UP
        while not any(answer in t for t in _bot_texts(api, user.id)[before:]):
            if time.monotonic() > deadline:
                raise AssertionError(f"chat {user.id}: {text!r} was never answered")
            await asyncio.sleep(0.05)
        voter.seen = _bot_texts(api, user.id)


def _bot_texts(api: TelegramAPI, chat_id: int) -> list[str]:
    """Everything the bot sent to a chat, edits included (a removed copy stays counted)."""
    return [
        str(c.params.get("text", ""))
        for c in api.calls
        if c.method in ("sendMessage", "editMessageText")
        and str(c.params.get("chat_id")) == str(chat_id)
        and c.status == 200
    ]


async def _post_update(
    session: ClientSession, url: Callable[[], str], update: dict[str, Any], voter: Voter
) -> None:
    """POST an update to the webhook until it is taken (200), as Telegram does."""
    deadline = time.monotonic() + GIVE_UP
    while True:
        voter.tries += 1
        try:
            async with session.post(
                url() + "/telegram",
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
                timeout=ClientTimeout(total=15),
            ) as resp:
                await resp.read()
                if resp.status == 200:
                    return
        except (ClientError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"update {update['update_id']} was never taken")
        await asyncio.sleep(0.2)


async def assert_every_vote_counted_once(
    redis: Redis, election: Election, voters: list[Voter]
) -> None:
    """No ballot lost or doubled, no receipt lost, no delivery answered empty."""
    missing = [v for v in voters if not v.done]
    assert not missing, f"{len(missing)} voter(s) never saw a receipt: {missing[:2]}"
    assert [v.name for v in voters if len(v.receipts) != 1] == []
    assert sum(v.empty for v in voters) == 0
    assert await ballot_count(redis, election) == len(voters)
    stored = set(await all_receipts(redis, election))
    seen = {r for v in voters for r in v.receipts}
    assert seen == stored
    assert not any("Sorry" in text for v in voters for text in v.seen)
