"""The whole stack for Telegram tests: the real server and PTB, a stand-in Bot API, real Redis.

async with telegram_world(redis) as world:
    await world.say(ANN, "hello")
    world.api.last_message(ANN.id)["text"]
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import ClientSession, web
from redis.asyncio import Redis

from ballots import keys
from ballots.clock import ManualClock
from bot import texts
from bot.core import Core
from bot.settings import Settings
from channels.appkeys import Installer
from channels.server import make_app
from channels.sms_channel import sms_installers, sms_outbound
from channels.standins.telegram_api import TelegramAPI, TelegramUser, UpdateFactory, button_data
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, OUR_NUMBER
from channels.telegram import SECRET_HEADER, TELEGRAM_CHANNEL, TelegramChannel, installer
from openprimary.app import build, build_core
from tests.factories import NOW, Outbox, sample_election, settings, stored_ballots
from tests.sms_support import AUTH_TOKEN, PUBLIC_URL

WEBHOOK_SECRET = "test-webhook-secret_0123456789"

#: People on the sample roll (examples/roll.csv) and strangers, as Telegram users.
ANN = TelegramUser(310001, "Ann")  # S1001, phone +447700900101
BILAL = TelegramUser(200002, "Bilal")  # S1002, telegram_id 200002 on the roll
CARYS = TelegramUser(310003, "Carys")  # S1003
STRANGER = TelegramUser(399999, "Mallory")
ANN_PHONE = "+447700900101"


@dataclass
class TelegramWorld:
    """One running server with the Telegram channel, and helpers to act as its users."""

    api: TelegramAPI
    core: Core
    clock: ManualClock
    sms: Outbox
    app: web.Application
    session: ClientSession
    url: str
    updates: UpdateFactory

    @property
    def channel(self) -> TelegramChannel:
        return self.app[TELEGRAM_CHANNEL]

    async def post(
        self, update: dict[str, Any] | bytes, *, secret: str | None = WEBHOOK_SECRET
    ) -> int:
        """POST one update to /telegram as Telegram does; the HTTP status."""
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        body = update if isinstance(update, bytes) else _json(update)
        async with self.session.post(self.url + "/telegram", data=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def deliver(self, *updates: dict[str, Any]) -> None:
        """POST updates (each must be taken: 200), then wait until the bot has handled them."""
        for update in updates:
            status = await self.post(update)
            assert status == 200, status
        await self.channel.drain()

    async def say(self, user: TelegramUser, text: str) -> dict[str, Any]:
        """Type ``text`` in the user's private chat; the bot's latest message there."""
        await self.deliver(self.updates.text(user, text))
        return self.api.last_message(user.id)

    async def tap(
        self, user: TelegramUser, label: str, message: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Tap the button labelled ``label`` (on the bot's latest message, by default)."""
        message = message or self.api.last_message(user.id)
        await self.deliver(self.updates.tap(user, message, button_data(message, label)))
        return self.api.message(user.id, message["message_id"])

    async def removed(self, user: TelegramUser, confirm_id: int) -> None:
        """Wait until the ballot the user confirmed is edited to show no choices."""
        async with asyncio.timeout(10):
            await self.api.wait_until(
                lambda: self.api.message(user.id, confirm_id)["text"] == texts.choices_removed()
            )
        assert "reply_markup" not in self.api.message(user.id, confirm_id)

    def texts(self, user: TelegramUser) -> list[str]:
        return [m["text"] for m in self.api.messages(user.id)]

    async def voting_code(self, supporter_id: str = "S1001") -> str:
        """Issue a fresh voting code to a supporter on the roll."""
        rows = await self.core.codes.issue_voting_codes(self.core.election, [supporter_id])
        return rows[0][3]

    async def ballots(self) -> dict[str, int]:
        """The ballot box: ranking -> number of ballots."""
        return await stored_ballots(self.core.redis, self.core.election)

    async def state(self, user: TelegramUser) -> str | None:
        """The conversation state stored for a user's private chat, opened (JSON), if any."""
        address = str(user.id)
        raw = await self.core.redis.get(keys.conversation("telegram", address))
        if raw is None:
            return None
        return self.core.router.store.open("telegram", address, str(raw)).to_json()


def with_sms(twilio: TwilioApiStandIn) -> dict[str, Any]:
    """Settings overrides for a world that also takes SMS, through the Twilio stand-in."""
    return {
        "public_url": PUBLIC_URL,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_from": OUR_NUMBER,
        "twilio_api_base": twilio.base_url,
    }


@asynccontextmanager
async def telegram_world(
    redis: Redis,
    *,
    extra: Iterable[Installer] = (),
    polling: bool = False,
    election_changes: dict[str, Any] | None = None,
    every_election: bool = False,
    **overrides: Any,
) -> AsyncIterator[TelegramWorld]:
    """Start the stand-in Bot API, the sample election (with ``election_changes``) and
    ``make_app`` with Telegram on it; ``overrides`` change the settings, ``every_election``
    serves every election loaded (load the others first)."""
    async with TelegramAPI() as api:
        config: Settings = replace(
            settings(
                telegram_bot_token=api.token,
                telegram_api_base=api.url,
                telegram_webhook_secret=WEBHOOK_SECRET,
                # The flood-limit throttle has tests of its own; here it would only slow
                # every tap down to Telegram's pace.
                telegram_chat_rate=1000.0,
                telegram_rate=1000.0,
            ),
            **overrides,
        )
        clock = ManualClock(NOW)
        election = await sample_election(redis, **(election_changes or {}))
        sms = Outbox("sms")
        # SMS settings given: the real Twilio sender texts the stand-in; else the recorder.
        recorder = {} if sms_outbound(config) else {"sms": sms}
        if every_election:  # as serve does: every election loaded
            deployment = await build(config, redis, clock, None, senders=recorder)
            core = deployment.cores[election.id]
        else:
            core = await build_core(config, redis, clock, election.id, senders=recorder)
        app = make_app(core, [*sms_installers(config), installer(polling=polling), *extra])
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            async with ClientSession() as session:
                yield TelegramWorld(
                    api,
                    core,
                    clock,
                    sms,
                    app,
                    session,
                    f"http://{host}:{port}",
                    UpdateFactory(api=api),
                )
        finally:
            await runner.cleanup()


def _json(update: dict[str, Any]) -> bytes:
    import json

    return json.dumps(update).encode()
