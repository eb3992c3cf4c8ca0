"""The console's sign-in against outsiders: no timing tell, a lifetime cap on wrong codes,
an audit trail outsiders cannot flood, and sessions that end with the organiser's role."""

from __future__ import annotations

import asyncio
import io
import ipaddress
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from ballots import audit, keys
from ballots.clock import ManualClock
from ballots.election import save_election
from ballots.errors import ConfigError, OpenPrimaryError
from bot.settings import Settings
from bot.signin import CODE_TRIES, LOCK_AFTER, REQUESTS_PER_HOUR, SignIn
from channels.web.guard import CONSOLE_APP, SIGNINS
from openprimary.cli import build_parser
from openprimary.context import Context
from tests.conftest import current_redis_url
from tests.console_support import ORGANISER_PHONE, ORGANISER_TG, Organiser
from tests.factories import NOW, harness, settings
from tests.round_trips import counting_client
from tests.telegram_support import TelegramWorld, telegram_world
from tests.test_console import console

PARSER = build_parser()
OUTSIDER = "tg:999999"
#: A second organiser on Telegram, for the tests that need two.
SECOND_TG = 100002
TWO_ORGANISERS = {"organisers": (ORGANISER_PHONE, f"tg:{ORGANISER_TG}", f"tg:{SECOND_TG}")}


async def sign_in_second(world: TelegramWorld, browser: Organiser) -> None:
    """Sign a browser in as the second Telegram organiser, with the code sent to them."""
    await browser.get("/organisers/riverside-2027/sign-in")
    before = len(world.api.messages(SECOND_TG))
    await browser.post("/organisers/riverside-2027/sign-in", {"address": f"tg:{SECOND_TG}"})
    async with asyncio.timeout(10):
        await world.api.wait_until(lambda: len(world.api.messages(SECOND_TG)) > before)
    code = str(world.api.last_message(SECOND_TG)["text"].split()[0])
    page = await browser.post(
        "/organisers/riverside-2027/sign-in/code", {"address": f"tg:{SECOND_TG}", "code": code}
    )
    assert page.url.endswith("/organisers/riverside-2027/"), page.text


async def cli(redis: Redis, *argv: str) -> tuple[int, str]:
    """Run an ``openprimary`` command at the tests' moment (NOW)."""
    ctx = Context(
        settings=settings(),
        redis=redis,
        clock=ManualClock(NOW),
        out=io.StringIO(),
        err=io.StringIO(),
    )
    args = PARSER.parse_args(argv)
    status = await args.handler(args, ctx)
    assert isinstance(ctx.out, io.StringIO)
    return status, ctx.out.getvalue()


async def test_asking_for_or_typing_a_code_costs_the_same_for_any_address(redis: Redis) -> None:
    """The time an answer takes cannot tell an organiser's address from another: the request
    makes the same Redis round trips either way (all about the organiser happens after)."""
    h = await harness(redis)
    client, trips = counting_client(current_redis_url())
    try:
        signin = SignIn(client, h.core.election, h.clock, settings().secret_key, {})

        async def cost(work: object) -> int:
            await signin.drain()
            before = trips.count
            await work  # type: ignore[misc]
            return trips.since(before)

        organiser, outsider = f"tg:{ORGANISER_TG}", OUTSIDER
        # Warm up (scripts loaded, the hour's first refusal noted in the audit trail).
        for who in (organiser, outsider):
            await cost(signin.request_code(who, "192.0.2.1"))
            await cost(signin.sign_in(who, "000000", "192.0.2.1"))
        asked = [await cost(signin.request_code(w, "192.0.2.1")) for w in (organiser, outsider)]
        typed = [
            await cost(signin.sign_in(w, "000000", "192.0.2.1")) for w in (organiser, outsider)
        ]
        assert asked[0] == asked[1]
        assert typed[0] == typed[1]
        await signin.drain()
    finally:
        await client.aclose()


async def test_too_many_wrong_codes_lock_the_organiser_until_the_command_line_lifts_it(
    redis: Redis,
) -> None:
    async with console(redis) as (world, browser):
        eid = world.core.election.id
        await browser.get("/organisers/riverside-2027/sign-in")
        wrong_typed = 0
        while wrong_typed < LOCK_AFTER:
            code = await browser.ask_for_code()
            wrong = "000000" if code != "000000" else "111111"
            for _ in range(CODE_TRIES):
                await browser.post(
                    "/organisers/riverside-2027/sign-in/code",
                    {"address": f"tg:{ORGANISER_TG}", "code": wrong},
                )
                wrong_typed += 1
        # Locked: no new code is sent, and no code signs in.
        before = len(world.api.messages(ORGANISER_TG))
        asked = await browser.post(
            "/organisers/riverside-2027/sign-in", {"address": f"tg:{ORGANISER_TG}"}
        )
        assert asked.status == 200 and "a 6-digit code is on its way" in asked.text
        await world.app[CONSOLE_APP][SIGNINS][world.core.election.id].drain()
        sent = world.api.messages(ORGANISER_TG)[before:]
        assert [m for m in sent if "is your code" in m["text"]] == []
        # The organisers on Telegram were alerted when the lock fell.
        told = [m["text"] for m in world.api.messages(ORGANISER_TG)]
        assert any("wrong console sign-in codes" in text for text in told)
        alerts = await audit.latest_alerts(redis, eid, 5)
        assert [a.action for a in alerts] == ["alert: console_guessing"]
        status, out = await cli(redis, "console", "sessions", "--election", eid)
        assert f"locked out after too many wrong codes: tg:{ORGANISER_TG}" in out

        status, out = await cli(
            redis, "console", "unlock", "--election", eid, "--organiser", f"tg:{ORGANISER_TG}"
        )
        assert status == 0 and "may sign in to the console again" in out
        world.clock.set(NOW.replace(hour=NOW.hour + 1))  # a new hour: codes may be sent again
        signed = await browser.sign_in()
        assert signed.status == 200 and signed.url.endswith("/organisers/riverside-2027/")
        trail = [e.action for e in await audit.read(redis, eid)]
        assert "console sign-in locked" in trail and "console sign-in unlocked" in trail


async def test_outsiders_cannot_flood_the_audit_trail_or_hide_an_alert(redis: Redis) -> None:
    async with console(redis, **TWO_ORGANISERS) as (world, browser):
        eid = world.core.election.id
        signin = world.app[CONSOLE_APP][SIGNINS][world.core.election.id]
        await world.core.alerts.alert("code_guessing", "someone may be guessing codes")  # type: ignore[union-attr]
        before = await redis.xlen(keys.audit(eid))
        for i in range(300):
            await signin.request_code(f"tg:{ORGANISER_TG}", f"198.51.100.{i % 250}")
            await signin.sign_in(f"tg:{ORGANISER_TG}", "000000", f"203.0.113.{i % 250}")
        await signin.drain()
        added = [e.action for e in (await audit.read(redis, eid))[before:]]
        # Five codes an hour are sent (each audited); every refusal after is counted, and
        # noted once an hour by kind.
        assert added.count("console code requested") == 5
        assert added.count("console code refused") == 1
        assert added.count("console sign-in refused") <= 2  # wrong code; no code live
        assert len(added) <= 10
        await sign_in_second(world, browser)
        page = await browser.get("/organisers/riverside-2027/")
        assert "someone may be guessing codes" in page.text


async def test_a_removed_organiser_s_session_ends_and_sessions_can_be_revoked(
    redis: Redis,
) -> None:
    async with console(redis, **TWO_ORGANISERS) as (world, browser):
        eid = world.core.election.id
        await browser.sign_in()
        other = Organiser(world)
        try:
            await sign_in_second(world, other)
            status, out = await cli(redis, "console", "sessions", "--election", eid)
            assert f"tg:{ORGANISER_TG}" in out and f"tg:{SECOND_TG}" in out

            status, out = await cli(
                redis, "console", "sessions", "--election", eid, "--revoke", f"tg:{SECOND_TG}"
            )
            assert status == 0 and "ended 1 console session(s)" in out
            assert (await other.get("/organisers/riverside-2027/roll")).url.endswith(
                "/organisers/riverside-2027/sign-in"
            )
            assert (await browser.get("/organisers/riverside-2027/roll")).status == 200

            # The election file drops the Telegram organiser; the server restarts with it.
            election = replace(
                world.core.election,
                organisers=tuple(
                    o for o in world.core.election.organisers if o != f"tg:{ORGANISER_TG}"
                ),
            )
            await save_election(redis, election)
            signin = world.app[CONSOLE_APP][SIGNINS][world.core.election.id]
            signin.election = election
            page = await browser.get("/organisers/riverside-2027/roll")
            assert page.url.endswith("/organisers/riverside-2027/sign-in")
            status, out = await cli(redis, "console", "sessions", "--election", eid)
            assert "no live console sessions" in out
            trail = [e.action for e in await audit.read(redis, eid)]
            assert "console sessions revoked" in trail
        finally:
            await other.close()


async def test_the_sessions_command_refuses_someone_not_organising(redis: Redis) -> None:
    h = await harness(redis)
    with pytest.raises(OpenPrimaryError, match="is not an organiser"):
        await cli(
            redis, "console", "sessions", "--election", h.core.election.id, "--revoke", OUTSIDER
        )


async def _asks_until_limited(browser: Organiser, forwarded: list[str]) -> list[int]:
    statuses = []
    for address in forwarded:
        page = await browser.post(
            "/organisers/riverside-2027/sign-in",
            {"address": OUTSIDER},
            headers={"X-Forwarded-For": address},
        )
        statuses.append(page.status)
    return statuses


async def test_forwarded_addresses_are_believed_only_from_a_trusted_proxy(redis: Redis) -> None:
    # No proxy trusted (the default): a client naming a new address each time is still one
    # client, limited after REQUESTS_PER_HOUR.
    async with telegram_world(redis) as world:
        browser = Organiser(world)
        try:
            await browser.get("/organisers/riverside-2027/sign-in")
            spoofed = [f"198.51.100.{i}" for i in range(REQUESTS_PER_HOUR + 1)]
            assert (await _asks_until_limited(browser, spoofed))[-1] == 429
        finally:
            await browser.close()
    await redis.flushdb()
    # Behind a trusted proxy (here, loopback), the address it appended is the client: two
    # clients have a limit each, and IPv6 addresses of one /64 share theirs.
    trusted = (ipaddress.ip_network("127.0.0.1/32"),)
    async with telegram_world(redis, trusted_proxies=trusted) as world:
        browser = Organiser(world)
        try:
            await browser.get("/organisers/riverside-2027/sign-in")
            one = ["198.51.100.7"] * REQUESTS_PER_HOUR + ["203.0.113.9"]
            assert set(await _asks_until_limited(browser, one)) == {200}
            same_64 = [f"2001:db8:1:2::{i:x}" for i in range(REQUESTS_PER_HOUR + 1)]
            assert (await _asks_until_limited(browser, same_64))[-1] == 429
            # The client cannot prepend an address of its choosing: the proxy's own is last.
            spoofing = [f"10.9.9.{i}, 198.51.100.7" for i in range(2)]
            assert set(await _asks_until_limited(browser, spoofing)) == {429}
        finally:
            await browser.close()


def test_trusted_proxies_are_read_from_the_environment() -> None:
    read = Settings.from_env(
        {"OPENPRIMARY_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8 fd00::/8"}, dotenv=None
    )
    assert [str(n) for n in read.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"]
    with pytest.raises(ConfigError, match="OPENPRIMARY_TRUSTED_PROXIES: 'proxy' is not"):
        Settings.from_env({"OPENPRIMARY_TRUSTED_PROXIES": "proxy"}, dotenv=None)
