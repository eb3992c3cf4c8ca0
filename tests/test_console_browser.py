"""The organisers' console and the public results page in a real browser: Chromium (Debian's
package) driven by Playwright, against the real server, Redis and the platform stand-ins.

Set OPENPRIMARY_SCREENSHOTS=DIR to save the pages docs/console.md shows (docs/console-*.png)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from redis.asyncio import Redis

from ballots import audit
from ballots.seal import encode_ranking, seal
from ballots.unseal import unseal
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, TwilioPhone
from tests.console_support import ORGANISER_TG, code_sent
from tests.factories import TEST_PUBLIC, TEST_SEED, put_sealed
from tests.sms_support import AUTH_TOKEN, PUBLIC_URL
from tests.telegram_support import ANN, TelegramWorld, telegram_world, with_sms

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = os.environ.get("OPENPRIMARY_SCREENSHOTS")

#: Outside CI, a machine without Chromium skips these (saying why); in CI (.ci/run sets
#: OPENPRIMARY_REQUIRE_BROWSER) they run, and fail if it is missing.
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("OPENPRIMARY_REQUIRE_BROWSER"),
    reason="no chromium binary (apt-get install chromium; .ci/run installs it)",
)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def served(
    redis: Redis, **settings: Any
) -> AsyncIterator[tuple[TelegramWorld, TwilioApiStandIn, Browser]]:
    """The server with SMS (the Twilio stand-in) and Telegram, and a browser."""
    async with (
        TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        telegram_world(redis, **with_sms(twilio), **settings) as world,
        chromium() as browser,
    ):
        yield world, twilio, browser


async def sign_in(world: TelegramWorld, page: Page, *, wrong_first: bool = False) -> None:
    await page.goto(world.url + "/organisers/riverside-2027/")
    await expect(page.get_by_role("heading", name="Organisers: sign in")).to_be_visible()
    await page.get_by_label("Your phone number or Telegram id").fill(f"tg:{ORGANISER_TG}")
    before = len(world.api.messages(ORGANISER_TG))
    await page.get_by_role("button", name="Send me a code").click()
    await expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    await code_sent(world, before)
    code = world.api.last_message(ORGANISER_TG)["text"].split()[0]
    if wrong_first:
        await page.get_by_label("Code").fill("000000" if code != "000000" else "111111")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("That code is not right")
    await page.get_by_label("Code").fill(code)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Turnout")).to_be_visible()


async def shot(page: Page, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


async def test_sign_in_then_watch_turnout_change_after_an_sms_vote(redis: Redis) -> None:
    async with served(redis) as (world, _, browser):
        page = await browser.new_page()
        await sign_in(world, page, wrong_first=True)
        voted = page.locator("[data-field=voted]")
        await expect(voted).to_have_text("0")
        phone = TwilioPhone(
            world.session, world.url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN,
            number="+447700900101",
        )  # fmt: skip
        code = (await phone.text("vote"))[0].split()[0]
        await phone.text(code)
        await phone.text("2 4")
        assert (await phone.text("YES"))[0].startswith("Vote cast")
        # No reload: the page polls for its figures.
        await expect(voted).to_have_text("1", timeout=15_000)
        await expect(page.locator("[data-field=by_channel]")).to_contain_text("sms: 1")
        await expect(page.locator("[data-field=state]")).to_have_text("open")
        await shot(page, "console-election.png")


async def test_dry_run_send_pause_and_resume_a_reminder(redis: Redis) -> None:
    # Telegram at one message every 2 s, so the job is still going when Pause is pressed.
    async with served(redis, telegram_rate=0.5) as (world, _, browser):
        page = await browser.new_page()
        await sign_in(world, page)
        await page.get_by_role("link", name="Reminders").click()
        await page.get_by_label("Message").fill("Hi {name}, {days_left} days left to vote.")
        await page.get_by_label("Send by").select_option("telegram")
        await page.get_by_role("button", name="Dry run").click()
        await expect(page.locator("[data-plan=total]")).to_have_text("2")
        await expect(page.locator("pre.sample")).to_contain_text("Hi Bilal Khan,")
        sent_before = len(world.api.calls_to("sendMessage"))
        await page.get_by_role("button", name="Send to 2 supporters").click()
        await expect(page.get_by_role("heading", name="Progress")).to_be_visible()
        await page.get_by_role("button", name="Pause").click()
        await expect(page.locator("[data-field=status]")).to_have_text("paused")
        assert len(world.api.calls_to("sendMessage")) < sent_before + 2
        await page.get_by_role("button", name="Resume").click()
        await expect(page.locator("[data-field=status]")).to_have_text("finished", timeout=15_000)
        await expect(page.locator("[data-field=done]").first).to_have_text("2")


async def test_a_roll_with_a_bad_row_is_reported_by_line(redis: Redis, tmp_path: Path) -> None:
    async with served(redis) as (world, _, browser):
        page = await browser.new_page()
        await sign_in(world, page)
        await page.get_by_role("link", name="Roll and codes").click()
        roll = tmp_path / "autumn-roll.csv"
        roll.write_text("supporter_id,name,phone\nN1,Nia,07700 900150\nN2,Olu,not-a-phone\n")
        await page.get_by_label("Roll CSV").set_input_files(str(roll))
        await page.get_by_role("button", name="Check and import").click()
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("autumn-roll.csv:3:")
        await page.get_by_label("Supporter number").fill("N1")
        await page.get_by_role("button", name="Look up").click()
        await expect(page.locator("[data-lookup=N1]")).to_contain_text("N1 is not on the roll")


async def test_unseal_count_publish_and_the_public_page(redis: Redis) -> None:
    async with served(redis) as (world, _, browser):
        election = world.core.election
        for user, choice in ((ANN, "Sam Patel"),):
            await world.say(user, await world.voting_code())
            await world.tap(user, choice)
            await world.tap(user, "Done")
            await world.tap(user, "Cast my vote")
        # And more, as sealed ballots straight into the box, so the count has transfers.
        mix = [["patel", "byrne"]] * 12 + [["green", "okafor"]] * 12 + [["okafor", "green"]] * 7
        mix += [["byrne", "patel"]] * 5 + [["byrne", "okafor"]] * 2
        ids = election.candidate_ids
        await put_sealed(
            redis, election, 0, [seal(TEST_PUBLIC, encode_ranking(ids, r)) for r in mix]
        )
        world.clock.set(election.closes + timedelta(minutes=1))
        await unseal(redis, election, TEST_SEED, world.clock, actor="trustees")
        outsider = await browser.new_page()
        missing = await outsider.goto(f"{world.url}/results/{election.id}")
        assert missing is not None and missing.status == 404
        page = await browser.new_page()
        await sign_in(world, page)
        await page.get_by_role("link", name="Results").click()
        await expect(page.locator("p.winners")).to_have_text("Alex Green")
        await page.get_by_role("link", name="Publish the results").click()
        # A page says what publishing does before anything is published.
        await expect(page.get_by_role("heading", name="What will happen")).to_be_visible()
        missing = await outsider.goto(f"{world.url}/results/{election.id}")
        assert missing is not None and missing.status == 404
        await page.get_by_role("button", name="Publish the results now").click()
        await expect(page.get_by_role("status")).to_contain_text("Published")
        await outsider.goto(f"{world.url}/results/{election.id}")
        await expect(outsider.locator("p.winners")).to_contain_text("Alex Green")
        await expect(outsider.locator("table.rounds")).to_contain_text("Round 3")
        sankey = outsider.get_by_role("img", name="Transfers round by round")
        await expect(sankey).to_be_visible()
        await shot(outsider, "results-page.png")


async def test_signed_out_pages_go_to_sign_in_and_a_forged_token_is_refused(
    redis: Redis,
) -> None:
    async with served(redis) as (world, _, browser):
        page = await browser.new_page()
        for tail in ("/", "/reminders", "/roll", "/audit", "/results"):
            path = "/organisers/riverside-2027" + tail
            await page.goto(world.url + path)
            assert page.url == world.url + "/organisers/riverside-2027/sign-in", path
        await sign_in(world, page)
        await page.get_by_role("link", name="Roll and codes").click()
        form = page.locator("form[action='/organisers/riverside-2027/roll/lookup']")
        await form.locator("input[name=csrf]").evaluate("input => { input.value = 'forged' }")
        await page.get_by_label("Supporter number").fill("S1001")
        await page.get_by_role("button", name="Look up").click()
        await expect(page.locator("body")).to_contain_text("did not come from this site")
        trail = [e.action for e in await audit.read(redis, world.core.election.id)]
        assert "supporter looked up" not in trail


async def test_the_pilots_report_page_draws_its_charts_with_nothing_blocked(redis: Redis) -> None:
    async with served(redis) as (world, _, browser):
        page = await browser.new_page()
        problems: list[str] = []
        page.on(
            "console",
            # (The browser's own favicon request is no page's doing.)
            lambda m: (
                problems.append(f"{m.location.get('url')}: {m.text}")
                if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
                else None
            ),
        )
        await sign_in(world, page)
        await page.get_by_role("link", name="All your elections").first.click()
        await page.get_by_role("link", name="Compare your elections side by side").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("report")
        charts = page.locator("svg[role=img]")
        assert await charts.count() >= 5
        # Every chart has a name a screen reader reads, and is drawn (not blocked by the CSP).
        for i in range(await charts.count()):
            chart = charts.nth(i)
            assert await chart.locator("title").count() >= 1
            box = await chart.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 20
        assert "riverside-2027" in await page.content()
        assert not problems, problems
        await shot(page, "console-report.png")
