"""``openprimary serve --workers 2`` with three elections on one bot: every Telegram update is
answered once, by the election it belongs to, whichever process takes it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import ClientSession, TCPConnector
from redis.asyncio import Redis

from ballots.clock import SystemClock
from ballots.codes import Codes
from ballots.election import Candidate
from ballots.roll import Supporter
from channels.standins.telegram_api import TelegramAPI, TelegramUser, UpdateFactory
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID
from channels.telegram import SECRET_HEADER
from tests.factories import SECRET, sample_election
from tests.sms_support import serve_env, serve_workers
from tests.telegram_support import WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = (Candidate("ahmed", "Rushanara Ahmed"), Candidate("byrne", "Ellie Byrne"))
USERS = [TelegramUser(400_000 + n, f"Voter {n}") for n in range(16)]


async def three_open_elections(redis: Redis) -> list[str]:
    """Riverside (the sample), Hackney North and the London Mayor, open now; the London
    roll holds the first eight users.  Their London voting codes."""
    now = datetime.now(UTC)
    window = {"opens": now - timedelta(days=1), "closes": now + timedelta(days=1)}
    await sample_election(redis)
    await sample_election(
        redis,
        id="hackney-north",
        title="Hackney North selection",
        identity=("sms-otp",),
        candidates=CANDIDATES,
        roll=[Supporter("H1", "Hana Ito", "+447700900201")],
        **window,
    )
    london = await sample_election(
        redis,
        id="london-mayor",
        title="London Mayor selection",
        identity=("code",),
        candidates=CANDIDATES,
        roll=[Supporter(f"L{n}", f"Voter {n}", f"+4477009003{n:02d}") for n in range(8)],
        **window,
    )
    rows = await Codes(redis, SECRET, SystemClock()).issue_voting_codes(
        london, [f"L{n}" for n in range(8)]
    )
    return [row[3] for row in sorted(rows)]


@asynccontextmanager
async def serving(redis_url: str, api: TelegramAPI) -> AsyncIterator[str]:
    """``serve --workers 2`` with no --election: every election loaded, on one bot."""
    async with TwilioApiStandIn(ACCOUNT_SID, "unused") as twilio:
        env = {
            **serve_env(redis_url, twilio.base_url),
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_BASE": api.url,
            "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "OPENPRIMARY_TELEGRAM_CHAT_RATE": "1000",
            "OPENPRIMARY_TELEGRAM_RATE": "1000",
        }
        async with serve_workers(env) as (url, health):
            assert health["elections"] == ["hackney-north", "london-mayor", "riverside-2027"]
            yield url


async def test_two_processes_answer_every_update_once_in_its_own_election(
    redis: Redis, redis_url: str
) -> None:
    codes = await three_open_elections(redis)
    async with TelegramAPI() as api, serving(redis_url, api) as url:
        updates = UpdateFactory(api=api)
        # Each process takes its own connections (SO_REUSEPORT): a connection a request.
        async with ClientSession(connector=TCPConnector(force_close=True)) as session:

            async def post(update: dict[str, object]) -> None:
                async with session.post(
                    url + "/telegram",
                    data=json.dumps(update).encode(),
                    headers={"Content-Type": "application/json", SECRET_HEADER: WEBHOOK_SECRET},
                ) as resp:
                    assert resp.status == 200, resp.status

            async def chat(n: int, user: TelegramUser) -> None:
                second = codes[n] if n < 8 else "RECEIPT"
                for text in ("hi", second, "hello again"):
                    await post(updates.text(user, text))

            await asyncio.gather(*(chat(n, user) for n, user in enumerate(USERS)))
        total = 3 * len(USERS)
        async with asyncio.timeout(30):
            await api.wait_until(lambda: sum(len(api.messages(u.id)) for u in USERS) >= total)
        await asyncio.sleep(1.5)  # anything answered twice would be in by now
    for n, user in enumerate(USERS):
        said = [m["text"] for m in api.messages(user.id)]
        assert len(said) == 3, (user.id, said)  # none lost, none answered twice
        assert "3 selections" in said[0], said
        if n < 8:  # London's code: London's ballot, and London's answer after it
            assert "Rushanara Ahmed" in said[1] and "Alex Green" not in said[1], said
        else:
            assert "receipt" in said[1].lower(), said
            assert "3 selections" in said[2], said
