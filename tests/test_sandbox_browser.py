"""``openprimary sandbox`` as a volunteer uses it, in a real browser (Debian's Chromium driven
by Playwright): the command started as a subprocess, its printed URL and code, a vote by SMS
and one by Telegram buttons from two simulated phones at once, a reminder arriving in a third,
then closing, unsealing and publishing from the console, and the public results page; then
Ctrl-C (SIGINT), after which neither the process nor its redis-server is left."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.async_api import BrowserContext, Page, expect

from channels.sandbox import BANNER
from tests.demo_support import running
from tests.sandbox_support import CONSOLE, ELECTION, gone, sandbox_process
from tests.test_console_browser import CHROMIUM, chromium

AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("OPENPRIMARY_REQUIRE_BROWSER"),
    reason="no chromium binary (apt-get install chromium; .ci/run installs it)",
)


async def phone(context: BrowserContext, base: str, channel: str, address: str) -> Page:
    """A tab of the phone simulator, for one phone."""
    page = await context.new_page()
    await page.goto(f"{base}{CONSOLE}/simulator?channel={channel}&address={quote(address)}")
    await expect(page.get_by_role("heading", level=2).first).to_contain_text(address)
    await expect(page.locator(".sandbox-banner")).to_have_text(BANNER)
    return page


async def send(page: Page, text: str, *, then: str) -> None:
    """Type and send a message, then wait until the phone shows ``then``."""
    await page.locator("form.compose textarea").fill(text)
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.locator("[data-thread]")).to_contain_text(then, timeout=15_000)


async def tap(page: Page, label: str, *, then: str) -> None:
    """Tap the newest inline button labelled ``label``; wait until the phone shows ``then``."""
    await page.locator("[data-thread]").get_by_role("button", name=label, exact=True).last.click()
    await expect(page.locator("[data-thread]")).to_contain_text(then, timeout=15_000)


async def vote_by_sms(context: BrowserContext, base: str, number: str) -> None:
    """A supporter texts from the phone on the roll: a code comes back, then the ballot."""
    page = await phone(context, base, "sms", number)
    await send(page, "hello", then="is your code to vote")
    said = await page.locator("[data-thread] li.from-bot").last.inner_text()
    code = re.search(r"(\d{6}) is your code", said)
    assert code, said
    # Each SMS shows what a network bills for it.
    await expect(page.locator("[data-thread] li.from-bot .meta").last).to_contain_text(
        "1 segment, GSM-7"
    )
    await send(page, code[1], then="Your 1st choice?")
    await send(page, "2 4 1", then="Reply YES to cast it")
    await send(page, "YES", then="Vote cast, thank you!")


async def vote_by_telegram(context: BrowserContext, base: str, account: str) -> None:
    """A supporter types the voting code the party posted them, then ranks with buttons."""
    page = await phone(context, base, "telegram", account)
    posted = await page.locator("[data-voting-code]").inner_text()
    await send(page, posted, then="Your 1st choice?")
    await tap(page, "Sam Patel", then="So far: Sam Patel.")
    await tap(page, "Done", then="Your ballot:")
    await tap(page, "Cast my vote", then="Receipt")


async def test_a_sandbox_from_sign_in_to_published_results_then_ctrl_c(tmp_path: Path) -> None:
    async with (
        sandbox_process("--voters", "12", cwd=tmp_path) as started,
        chromium() as browser,
    ):
        base = started.base
        redis_pid = started.redis_pid()
        assert running(redis_pid)
        assert started.url == f"{base}{CONSOLE}/sign-in/code?address=tg:100001"
        context = await browser.new_context()
        if AXE.exists():
            await context.add_init_script(script=AXE.read_text(encoding="utf-8"))

        # Sign in with the code the sandbox printed.
        console = await context.new_page()
        await console.goto(started.url)
        await expect(console.get_by_role("heading", name="Enter your code")).to_be_visible()
        await expect(console.locator(".sandbox-banner")).to_have_text(BANNER)
        await expect(console.locator("[data-sandbox-code]")).to_have_text(started.code)
        await console.get_by_label("Code").fill(started.code)
        await console.get_by_role("button", name="Sign in").click()
        await expect(console.get_by_role("heading", name="Turnout")).to_be_visible()

        # Two phones vote at the same time, each in its own tab: S1004 by SMS, and S1001 on a
        # Telegram account the roll does not link, with the code the party posted.
        await asyncio.gather(
            vote_by_sms(context, base, "+447700900004"),
            vote_by_telegram(context, base, "800000001"),
        )
        await console.reload()
        await expect(console.locator("[data-field=voted]")).to_have_text("2")
        await expect(console.locator("[data-field=by_channel]")).to_contain_text("sms: 1")
        await expect(console.locator("[data-field=by_channel]")).to_contain_text("telegram: 1")

        # A reminder arrives in the phones that have not voted: by SMS in S1006's (Femi
        # Adeyemi), and on Telegram in S1005's (Erin Ibrahim, whose account the roll links).
        femi = await phone(context, base, "sms", "+447700900006")
        erin = await phone(context, base, "telegram", "700000005")
        if AXE.exists():
            for tab in (femi, erin):
                found = await tab.evaluate(
                    "async () => await axe.run(document, { resultTypes: ['violations'] })"
                )
                assert found["violations"] == [], found["violations"]
        await console.get_by_role("link", name="Reminders").click()
        await console.get_by_label("Message").fill("Hi {name}, voting closes soon.")
        await console.get_by_label("Send by").select_option("all")
        await console.get_by_role("button", name="Dry run").click()
        await expect(console.locator("[data-plan=total]")).to_have_text("10")
        await console.get_by_role("button", name="Send to 10 supporters").click()
        await expect(console.locator("[data-field=status]")).to_have_text(
            "finished", timeout=30_000
        )
        by_sms = femi.locator("[data-thread] li.from-bot").last
        await expect(by_sms).to_contain_text("Hi Femi Adeyemi, voting closes soon.")
        await expect(by_sms).to_contain_text("sent through the Messages API")
        by_telegram = erin.locator("[data-thread] li.from-bot").last
        await expect(by_telegram).to_contain_text("Hi Erin Ibrahim, voting closes soon.")

        # Close, unseal with the sandbox's shares, publish: all from the console.
        await console.get_by_role("link", name="Election", exact=True).click()
        await console.get_by_role("link", name="Close voting").click()
        await console.get_by_role("button", name="Close voting").click()
        await expect(console.locator("[data-field=state]")).to_have_text("closed")
        await console.get_by_role("link", name="unseal with the sandbox trustees' shares").click()
        await console.get_by_role("button", name="Unseal with the sandbox trustees' shares").click()
        await expect(console.locator("p.winners")).to_have_text("Sam Patel")
        await console.get_by_role("link", name="Publish the results").click()
        await console.get_by_role("button", name="Publish the results now").click()
        await expect(console.get_by_role("status")).to_contain_text("Published")

        # The public results page, marked as a sandbox's.
        public = await context.new_page()
        await public.goto(f"{base}/results/{ELECTION}")
        await expect(public.locator("p.winners")).to_contain_text("Sam Patel")
        await expect(public.locator("[data-turnout=voted]")).to_have_text("2")
        await expect(public.locator(".sandbox-banner")).to_have_text(BANNER)
        await context.close()

        # Ctrl-C: the sandbox stops, and with it the embedded Redis; its folder is gone.
        started.process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            rest = await started.process.communicate()
        said = rest[0].decode()
        assert started.process.returncode == 0, said
        assert f"removed {started.folder}" in said
        assert await gone(redis_pid), f"redis-server {redis_pid} outlived the sandbox"
        assert not started.folder.exists()
