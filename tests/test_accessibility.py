"""Every page of the console and the public results page checked by axe-core in a real browser
(Debian's Chromium driven by Playwright): no violation of any rule axe runs by default
(WCAG 2 A and AA, and its best practices).

axe-core comes from the npm registry, at the version ``tests/js/package-lock.json`` pins:
``npm ci --prefix tests/js`` (``.ci/run`` does it).  Without it, or without Chromium, these
tests skip, saying why; in CI (``OPENPRIMARY_REQUIRE_BROWSER=1``) they fail instead."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from redis.asyncio import Redis

from ballots.seal import encode_ranking, seal
from ballots.unseal import unseal
from tests.factories import TEST_PUBLIC, TEST_SEED, put_sealed
from tests.test_console_browser import CHROMIUM, served, sign_in

AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
REQUIRED = bool(os.environ.get("OPENPRIMARY_REQUIRE_BROWSER"))

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not REQUIRED,
        reason="no chromium binary (apt-get install chromium; .ci/run installs it)",
    ),
    pytest.mark.skipif(
        not AXE.exists() and not REQUIRED,
        reason="no axe-core: npm ci --prefix tests/js (.ci/run does it)",
    ),
]

ELECTION = "/organisers/riverside-2027"
#: The console's GET pages (channels/web/app.py), each checked as a signed-in organiser.
#: The sign-in pages are checked signed out; a reminder job's page once a job exists; the
#: results page before the close and after the unseal; turnout.json and progress.json are
#: JSON, not pages.
CONSOLE = ("/", "/roll", "/reminders", "/audit", "/results", "/close", "/extend")


def _axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run npm ci --prefix tests/js")
    return AXE.read_text(encoding="utf-8")


async def _context(browser: Browser, width: int = 1280, height: int = 900) -> BrowserContext:
    """A browser context with axe-core in every page it opens.  It is added as an init script,
    which the DevTools protocol runs whatever the page's Content-Security-Policy says (a
    ``<script>`` tag added to the page would be refused: script-src 'self'); the pages keep
    their CSP otherwise, so what axe sees is what a visitor gets."""
    context = await browser.new_context(viewport={"width": width, "height": height})
    await context.add_init_script(script=_axe_source())
    return context


def _readable(violations: list[dict[str, Any]]) -> str:
    """axe's violations as lines a person can act on: the rule, why, where, what to fix."""
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v.get('impact')}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            html = re.sub(r"\s+", " ", node.get("html", ""))[:200]
            summary = re.sub(r"\s+", " ", node.get("failureSummary", ""))
            lines.append(f"    at {target}: {html}\n      {summary}")
    return "\n".join(lines)


async def _violations(page: Page) -> list[dict[str, Any]]:
    assert await page.evaluate("typeof axe") == "object", "axe-core was not loaded"
    found: dict[str, Any] = await page.evaluate(
        "async () => await axe.run(document, { resultTypes: ['violations'] })"
    )
    violations: list[dict[str, Any]] = found["violations"]
    return violations


async def _check(page: Page, path: str, found: dict[str, str]) -> None:
    """Open ``path`` (or check the page as it is, for ``""``) and record axe's violations."""
    if path:
        response = await page.goto(path)
        assert response is not None and response.status == 200, (path, response)
        assert page.url == path, f"{path} went to {page.url}"
    violations = await _violations(page)
    if violations:
        found[f"{page.url} ({page.viewport_size})"] = _readable(violations)


def _report(found: dict[str, str]) -> str:
    return "axe found violations:\n" + "\n".join(f"{url}\n{said}" for url, said in found.items())


async def test_every_console_page_and_the_public_results_pass_axe(redis: Redis) -> None:
    found: dict[str, str] = {}
    async with served(redis) as (world, _, browser):
        election = world.core.election
        base = world.url
        context = await _context(browser)
        # Signed out: the sign-in page, and the page asking for the code.
        page = await context.new_page()
        await _check(page, f"{base}{ELECTION}/sign-in", found)
        await page.get_by_label("Your phone number or Telegram id").fill("tg:100001")
        await page.get_by_role("button", name="Send me a code").click()
        await expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
        await _check(page, "", found)
        await context.close()

        context = await _context(browser)
        page = await context.new_page()
        await sign_in(world, page)
        await _check(page, f"{base}/organisers/", found)
        for tail in CONSOLE:
            await _check(page, f"{base}{ELECTION}{tail}", found)
        await _check(page, f"{base}/organisers/report", found)
        # A supporter looked up on the roll, by phone, and the page before reissuing a code.
        await page.goto(f"{base}{ELECTION}/roll")
        await page.get_by_label("Supporter number or phone number").fill("07700 900101")
        await page.get_by_role("button", name="Look up").click()
        await expect(page.get_by_text("Ann Hughes").first).to_be_visible()
        await _check(page, "", found)
        await page.get_by_role("button", name="Reissue this supporter's code").first.click()
        await _check(page, "", found)
        # A reminder job's page.
        await page.goto(f"{base}{ELECTION}/reminders")
        await page.get_by_label("Message").fill("Hi {name}, {days_left} days left to vote.")
        await page.get_by_label("Send by").select_option("telegram")
        await page.get_by_role("button", name="Dry run").click()
        await expect(page.locator("[data-plan=total]")).to_have_text("2")
        await _check(page, "", found)  # the reminders page with its dry run
        await page.get_by_role("button", name="Send to 2 supporters").click()
        await expect(page.get_by_role("heading", name="Progress")).to_be_visible()
        await expect(page.locator("[data-field=status]")).to_have_text("finished", timeout=15_000)
        await _check(page, "", found)

        # Ballots enough for transfers, the close, the unseal: the results with their charts.
        mix = [["patel", "byrne"]] * 12 + [["green", "okafor"]] * 12 + [["okafor", "green"]] * 7
        mix += [["byrne", "patel"]] * 5 + [["byrne"]] * 2
        ids = election.candidate_ids
        await put_sealed(
            redis, election, 0, [seal(TEST_PUBLIC, encode_ranking(ids, r)) for r in mix]
        )
        world.clock.set(election.closes + timedelta(minutes=1))
        await unseal(redis, election, TEST_SEED, world.clock, actor="trustees")
        await sign_in(world, page)  # (the session has outlived its 12 hours)
        await _check(page, f"{base}{ELECTION}/results", found)
        await _check(page, f"{base}{ELECTION}/results/publish", found)
        await page.get_by_role("button", name="Publish the results now").click()
        await expect(page.get_by_role("status")).to_contain_text("Published")
        await _check(page, "", found)  # the results page, published
        await page.set_viewport_size({"width": 360, "height": 780})  # and on a phone
        await _check(page, f"{base}{ELECTION}/results", found)
        await page.set_viewport_size({"width": 1280, "height": 900})
        await _check(page, f"{base}{ELECTION}/", found)  # the election page, closed
        await context.close()

        # The public page, on a desktop and on a phone, as anyone sees it.
        for width, height in ((1280, 900), (360, 780)):
            context = await _context(browser, width, height)
            page = await context.new_page()
            await _check(page, f"{base}/results/{election.id}", found)
            await context.close()
    assert not found, _report(found)
