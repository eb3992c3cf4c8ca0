"""Election-day operations without a restart: ``election close`` and ``extend --reopen`` on a
running ``serve --workers 2``, followed by both processes within seconds; and the rules and
audit entries of closing and extending."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import ClientSession
from redis.asyncio import Redis

from ballots import audit, keys
from ballots.clock import ManualClock, SystemClock
from ballots.codes import Codes
from ballots.election import get_election
from bot import window
from bot.window import WindowRefused
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, TwilioPhone
from openprimary.cli import build_parser
from openprimary.context import Context
from tests.factories import EXAMPLES, NOW, SECRET, sample_election, settings
from tests.sms_support import ANN, AUTH_TOKEN, BILAL, PUBLIC_URL, serve_env, serve_workers
from tests.telegram_support import ANN as ANN_TG
from tests.test_console import console

ROOT = Path(__file__).resolve().parent.parent
#: How long a change may take to reach every running server (the servers read the election's
#: version every second): the contract, with room for a busy machine.
FOLLOWED_WITHIN = 5.0


async def cli(redis: Redis, clock: ManualClock, *argv: str) -> str:
    args = build_parser(list(argv)).parse_args(list(argv))
    out = io.StringIO()
    ctx = Context(
        settings=settings(), redis=redis, clock=clock, out=out, err=io.StringIO(), actor="cli:t"
    )
    assert await args.handler(args, ctx) == 0
    return out.getvalue()


@asynccontextmanager
async def serving(redis_url: str, election_id: str) -> AsyncIterator[str]:
    """``openprimary serve --workers 2`` on a free port, with SMS through a stand-in."""
    async with (
        TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        serve_workers(serve_env(redis_url, twilio.base_url), "--election", election_id) as (
            url,
            _,
        ),
    ):
        yield url


async def until(text: str, send: object, what: str) -> float:
    """Send (``send()``) until a reply holds ``text``; the seconds it took."""
    started = time.monotonic()
    while True:
        reply = "\n".join(await send())  # type: ignore[operator]
        if text in reply:
            return time.monotonic() - started
        assert time.monotonic() - started < FOLLOWED_WITHIN, f"{what}: still {reply!r}"
        await asyncio.sleep(0.2)


async def test_two_running_servers_follow_a_close_and_a_reopening(
    redis: Redis, redis_url: str
) -> None:
    election = await sample_election(redis)
    code = (await Codes(redis, SECRET, SystemClock()).issue_voting_codes(election, ["S1001"]))[0][3]
    async with serving(redis_url, election.id) as url, ClientSession() as session:

        def phone(number: str) -> TwilioPhone:
            return TwilioPhone(
                session, url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, number=number
            )

        ann, bilal = phone(ANN), phone(BILAL)
        assert "1st choice" in "\n".join(await ann.text(code))
        assert "Your ballot" in "\n".join(await ann.text("1 2"))

        await window.close(redis, election, SystemClock(), "cli:t")
        # The cast script refuses at once; a new chat is told by each server once it follows.
        assert "closed" in "\n".join(await ann.text("YES"))
        await until("closed", lambda: bilal.text("hi"), "a new chat after the close")

        stored = await get_election(redis, election.id)
        await window.extend(
            redis,
            stored,
            SystemClock().now() + timedelta(days=1),
            SystemClock(),
            "cli:t",
            reopen=True,
        )
        # Both processes have followed the reopening once a vote goes through, whichever
        # process takes the message.
        await until("Vote cast", lambda: ann.text("YES"), "a vote after the reopening")
        for _ in range(4):
            assert "already" in "\n".join(await ann.text("YES"))
    trail = [e.action for e in await audit.read(redis, election.id)]
    assert "election closed" in trail and "election reopened" in trail


async def test_close_and_extend_refuse_what_makes_no_sense_and_audit_the_change(
    redis: Redis,
) -> None:
    election = await sample_election(redis)
    clock = ManualClock(NOW)
    eid = election.id
    with pytest.raises(WindowRefused, match="is not before the current close"):
        await cli(redis, clock, "election", "close", "--election", eid, "--at", "2030-01-01T00:00Z")
    with pytest.raises(WindowRefused, match="has passed"):
        await cli(redis, clock, "election", "close", "--election", eid, "--at", "2026-11-19T09:00")
    with pytest.raises(WindowRefused, match="not a time"):
        await cli(redis, clock, "election", "close", "--election", eid, "--at", "tomorrow")
    # At 21:00 on 13 December in the election's zone (London: GMT).
    out = await cli(
        redis, clock, "election", "close", "--election", eid, "--at", "2026-12-13T21:00"
    )
    assert "closes Sun 13 Dec 2026 21:00 GMT" in out
    with pytest.raises(WindowRefused, match="not after the current close"):
        await cli(
            redis, clock, "election", "extend", "--election", eid, "--closes", "2026-12-13T20:00"
        )
    await cli(redis, clock, "election", "extend", "--election", eid, "--closes", "2026-12-13T22:00")
    entries = [e for e in await audit.read(redis, eid) if e.action.startswith("election ")]
    assert [(e.action, e.actor, e.details["changes"]) for e in entries[-2:]] == [
        (
            "election closed",
            "cli:t",
            ["closes: Wed 1 Dec 2027 17:00 GMT -> Sun 13 Dec 2026 21:00 GMT"],
        ),
        (
            "election extended",
            "cli:t",
            ["closes: Sun 13 Dec 2026 21:00 GMT -> Sun 13 Dec 2026 22:00 GMT"],
        ),
    ]
    # Once closed, extending reopens: only when asked; never after the unseal has begun.
    clock.set(NOW.replace(month=12, day=14))
    with pytest.raises(WindowRefused, match=r"closed Sun 13 Dec 2026 22:00 GMT.*--reopen"):
        await cli(
            redis, clock, "election", "extend", "--election", eid, "--closes", "2026-12-15T12:00"
        )
    with pytest.raises(WindowRefused, match="closed Sun 13 Dec 2026 22:00 GMT already"):
        await cli(redis, clock, "election", "close", "--election", eid)
    await redis.hset(keys.unsealing(eid), "started", "x")
    with pytest.raises(WindowRefused, match="unseal has begun"):
        await cli(
            redis, clock, "election", "extend", "--election", eid, "--closes",
            "2026-12-15T12:00", "--reopen",
        )  # fmt: skip


async def test_loading_the_file_again_audits_what_changed(redis: Redis, tmp_path: Path) -> None:
    election = await sample_election(redis)
    changed = tmp_path / "e.toml"
    changed.write_text(
        (EXAMPLES / "election.toml")
        .read_text()
        .replace('name = "Sam Patel"', 'name = "Samira Patel"')
        .replace("closes = 2027-12-01T17:00:00Z", "closes = 2027-12-01T18:00:00Z")
    )
    await cli(redis, ManualClock(NOW), "election", "load", str(changed))
    (entry,) = [e for e in await audit.read(redis, election.id) if e.action == "election loaded"]
    assert entry.details["changes"] == [
        "closes: Wed 1 Dec 2027 17:00 GMT -> Wed 1 Dec 2027 18:00 GMT",
        "candidates: green (Alex Green), patel (Sam Patel), okafor (Jo Okafor), byrne "
        "(Chris Byrne) -> green (Alex Green), patel (Samira Patel), okafor (Jo Okafor), "
        "byrne (Chris Byrne)",
    ]


async def test_the_console_closes_and_reopens_behind_a_page_that_says_what_happens(
    redis: Redis,
) -> None:
    async with console(redis) as (world, browser):
        eid = world.core.election.id
        await browser.sign_in()
        confirm = await browser.get("/organisers/riverside-2027/close")
        assert confirm.status == 200 and "What will happen" in confirm.text
        # A POST that did not come through the page changes nothing.
        unconfirmed = await browser.session.post(
            world.url + "/organisers/riverside-2027/close", data={"csrf": browser.csrf}
        )
        assert unconfirmed.status == 409
        assert (await get_election(redis, eid)).closes == world.core.election.closes
        closed = await browser.post(
            "/organisers/riverside-2027/close", {"confirm": "yes", "at": ""}
        )
        assert (
            closed.url.endswith("/organisers/riverside-2027/")
            and "Voting is <strong" in closed.text
        )
        assert 'data-field="state">closed<' in closed.text
        assert "closed" in (await world.say(ANN_TG, "/start"))["text"]
        reopen_page = await browser.get("/organisers/riverside-2027/extend")
        assert "reopen it until then" in reopen_page.text
        tomorrow = (NOW + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        refused = await browser.post(
            "/organisers/riverside-2027/extend", {"confirm": "yes", "closes": tomorrow}
        )
        assert refused.status == 409 and "--reopen" in refused.text
        reopened = await browser.post(
            "/organisers/riverside-2027/extend",
            {"confirm": "yes", "closes": tomorrow, "reopen": "yes"},
        )
        assert 'data-field="state">open<' in reopened.text
        assert "voting code" in (await world.say(ANN_TG, "/start"))["text"]
        entries = [e for e in await audit.read(redis, eid) if e.action.startswith("election ")]
        assert [(e.action, e.details.get("factor")) for e in entries] == [
            ("election closed", "console code by telegram"),
            ("election reopened", "console code by telegram"),
        ]


async def test_the_console_s_audit_trail_reads_as_sentences(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await browser.sign_in()
        await window.close(
            redis,
            world.core.election,
            world.clock,
            "cli:alice@hq",
            NOW + timedelta(days=1),
        )
        page = await browser.get("/organisers/riverside-2027/audit?q=closed")
        assert (
            "<td>cli:alice@hq</td><td>election closed</td><td>Changes: closes: Wed 1 Dec 2027 "
            "17:00 GMT → Sat 21 Nov 2026 12:00 GMT.</td>"
        ) in page.text
        assert "{&#34;" not in page.text and '{"' not in page.text  # no JSON
