"""Driving the organisers' console over HTTP as a browser would: forms, cookies, CSRF tokens."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, CookieJar, FormData

from tests.telegram_support import TelegramWorld

ORGANISER_TG = 100001  # tg:100001 in the sample election's organisers
ORGANISER_PHONE = "+447700900001"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@dataclass
class Page:
    status: int
    url: str
    text: str
    headers: dict[str, str] = field(default_factory=dict)


class Organiser:
    """One browser: its own cookies, following redirects."""

    def __init__(self, world: TelegramWorld) -> None:
        self.world = world
        # unsafe: cookies for 127.0.0.1 (an IP address); Secure ones over plain http too,
        # as a browser does for loopback.
        self.session = ClientSession(
            cookie_jar=CookieJar(unsafe=True, treat_as_secure_origin=[world.url])
        )
        self.csrf = ""

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **kw: Any) -> Page:
        async with self.session.get(self.world.url + path, **kw) as resp:
            page = Page(resp.status, str(resp.url), await resp.text(), dict(resp.headers))
        if CSRF.search(page.text):
            self.csrf = csrf_of(page.text)
        return page

    async def post(self, path: str, data: dict[str, str] | FormData, **kw: Any) -> Page:
        if isinstance(data, dict):
            data = {"csrf": self.csrf, **data}
        async with self.session.post(self.world.url + path, data=data, **kw) as resp:
            page = Page(resp.status, str(resp.url), await resp.text(), dict(resp.headers))
        if CSRF.search(page.text):
            self.csrf = csrf_of(page.text)
        return page

    async def sign_in(
        self, address: str = f"tg:{ORGANISER_TG}", election: str = "riverside-2027"
    ) -> Page:
        """Sign in to an election's console with the code the bot sends to the organiser's
        Telegram chat."""
        await self.get(f"/organisers/{election}/sign-in")
        code = await self.ask_for_code(address, election)
        return await self.post(
            f"/organisers/{election}/sign-in/code", {"address": address, "code": code}
        )

    async def ask_for_code(
        self, address: str = f"tg:{ORGANISER_TG}", election: str = "riverside-2027"
    ) -> str:
        """Ask for a sign-in code; the one the bot then sends the organiser on Telegram."""
        chat = int(address[3:]) if address.startswith("tg:") else ORGANISER_TG
        before = len(self.world.api.messages(chat))
        asked = await self.post(f"/organisers/{election}/sign-in", {"address": address})
        assert asked.status == 200, asked.text
        await code_sent(self.world, before, chat)
        return str(self.world.api.last_message(chat)["text"].split()[0])


async def code_sent(world: TelegramWorld, before: int, chat: int = ORGANISER_TG) -> None:
    """Wait until the bot has sent the organiser one more message (a code goes off the
    request's path)."""
    async with asyncio.timeout(10):
        await world.api.wait_until(lambda: len(world.api.messages(chat)) > before)
