"""The console's roll and codes against misuse: a large upload does not stop the server
answering voters, and codes for everyone cannot be issued once voting has opened."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import FormData
from redis.asyncio import Redis

from ballots import keys
from channels.web.roll_views import MAX_ROLL_BYTES
from tests.factories import NOW
from tests.test_console import console

ROWS = 150_000


def big_roll(rows: int) -> bytes:
    """A roll whose last row is bad: every row is checked, and it is refused."""
    lines = ["supporter_id,name,phone"]
    lines += [f"B{i:07d},Supporter {i},+4474{i:08d}" for i in range(rows)]
    lines.append("BAD,Bad Row,not-a-phone")
    return ("\n".join(lines) + "\n").encode()


async def test_while_a_large_roll_is_checked_the_server_answers_every_request(
    redis: Redis,
) -> None:
    async with console(redis) as (world, browser):
        await browser.sign_in()
        form = FormData()
        form.add_field("csrf", browser.csrf)
        form.add_field("roll", big_roll(ROWS), filename="big.csv", content_type="text/csv")
        upload = asyncio.create_task(browser.post("/organisers/riverside-2027/roll/upload", form))
        answered_before_the_upload = 0
        while not upload.done():
            async with browser.session.get(world.url + "/healthz") as resp:
                assert resp.status == 200
            if not upload.done():
                answered_before_the_upload += 1
            await asyncio.sleep(0.05)
        page = await upload
        assert page.status == 400 and f"big.csv:{ROWS + 2}: " in page.text
        # Checking the rows took a while, and the server answered all along (checked on
        # the event loop, it answered nothing until the upload's answer).
        assert answered_before_the_upload >= 3


async def test_a_roll_over_the_console_s_limit_is_refused_as_it_arrives(redis: Redis) -> None:
    async with console(redis) as (_, browser):
        await browser.sign_in()
        form = FormData()
        form.add_field("csrf", browser.csrf)
        form.add_field("roll", b"x" * (MAX_ROLL_BYTES + 1), filename="huge.csv")
        page = await browser.post("/organisers/riverside-2027/roll/upload", form)
        assert page.status == 400 and "huge.csv: over 20 MB" in page.text


async def test_codes_for_everyone_only_before_voting_opens(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        eid = world.core.election.id
        await browser.sign_in()
        before = await redis.hgetall(keys.code_index(eid))
        page = await browser.post("/organisers/riverside-2027/codes", {"confirm": "yes"})
        assert page.status == 400 and "Voting has opened" in page.text
        assert await redis.hgetall(keys.code_index(eid)) == before
        # Before the opening, the mail-merge file for everyone.
        world.clock.set(world.core.election.opens - timedelta(days=1))
        async with browser.session.post(
            world.url + "/organisers/riverside-2027/codes",
            data={"csrf": browser.csrf, "confirm": "yes"},
        ) as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            assert (await resp.text()).startswith("supporter_id,name,phone,code")


async def test_the_reminder_dry_run_gives_its_finish_and_warns_past_the_close(
    redis: Redis,
) -> None:
    # 12:00 is in these quiet hours: nothing would go before 13:00, after the 12:30 close.
    closes = NOW + timedelta(minutes=30)
    async with console(redis, quiet_hours=("11:00", "13:00"), closes=closes) as (_, browser):
        await browser.sign_in()
        await browser.get("/organisers/riverside-2027/reminders")
        dry = await browser.post(
            "/organisers/riverside-2027/reminders/dry-run",
            {"template": "Vote, {name}!", "channel": "sms"},
        )
        assert dry.status == 200, dry.text
        assert '<dd data-plan="finish">Fri 20 Nov 13:00 GMT</dd>' in dry.text
        assert (
            "Warning: at these rates it would finish Fri 20 Nov 13:00 GMT, after voting closes "
            "Fri 20 Nov 12:30 GMT"
        ) in dry.text
