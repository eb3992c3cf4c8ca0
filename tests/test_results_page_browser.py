"""The public results page read on a phone and on a desktop, in a real browser (Debian's
Chromium driven by Playwright): every label of every picture drawn at 12 CSS px or more,
every round labelled, the transfers as a table a screen reader can read, and the turnout.

A real count of several rounds with transfers: supporters vote through the bot (so turnout
counts them), the trustees unseal, and the results are published as the console does.

Set OPENPRIMARY_SCREENSHOTS=DIR to save the page at each width (results-360.png ...)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from redis.asyncio import Redis

from ballots import keys
from ballots.count import count
from ballots.count.college import College, count_college
from ballots.count.formats import parse_blt
from ballots.count.model import Ballots
from ballots.count.report import to_json
from ballots.count.svg import bars, bars_narrow, from_report, sankey, sankey_narrow
from ballots.roll import Supporter
from ballots.unseal import unseal
from bot import results
from tests.factories import TEST_SEED, Harness, Outbox
from tests.telegram_support import TelegramWorld, telegram_world
from tests.test_console_browser import CHROMIUM, SHOTS, chromium

#: Outside CI, a machine without Chromium skips the browser's tests (saying why); in CI
#: (.ci/run sets OPENPRIMARY_REQUIRE_BROWSER) they run, and fail if it is missing.
in_a_browser = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("OPENPRIMARY_REQUIRE_BROWSER"),
    reason="no chromium binary (apt-get install chromium; .ci/run installs it)",
)

#: 30 on the roll, 22 vote.  Ballot-paper numbers: 1 Green, 2 Patel, 3 Okafor, 4 Byrne.
ROLL = [Supporter(f"S{i:03d}", f"Supporter {i}", f"+4477009006{i:02d}") for i in range(30)]
#: Round 1: Green 7, Patel 6, Okafor 5, Byrne 4; Byrne excluded, 2 to Okafor, 2 exhausted.
#: Round 2: Green 7, Okafor 7, Patel 6; Patel excluded, 6 to Green.  Round 3: Green 13.
VOTES = [(7, "1 3"), (6, "2 1"), (5, "3 2"), (2, "4"), (2, "4 3")]
#: The least size of a label, in CSS px, at any width.
LEAST = 12.0
VIEWPORTS = {"phone": (360, 780), "desktop": (1280, 900)}
GLASGOW = Path(__file__).parent / "data" / "glasgow-2007"

#: Every text of every picture drawn: its size as rendered (font-size times the scale of the
#: drawing, which a viewBox may shrink: getComputedStyle alone would not show that), the
#: height of its box, whether it lies within its picture, and the round and picture it
#: belongs to.
MEASURE = """() => [...document.querySelectorAll("svg text")]
  .filter(t => t.checkVisibility() && t.getBoundingClientRect().width > 0)
  .map(t => {
    const m = t.getScreenCTM();
    const box = t.getBoundingClientRect();
    const frame = t.closest("svg").getBoundingClientRect();
    return {
      inside: box.left >= frame.left - 1 && box.right <= frame.right + 1,
      text: t.textContent,
      px: parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b),
      height: box.height,
      round: t.getAttribute("data-round"),
      chart: t.closest("svg").getAttribute("class"),
    };
  })"""


async def _vote(h: Harness, sid: str, ranking: str) -> None:
    code = (await h.core.codes.issue_voting_codes(h.core.election, [sid]))[0][3]
    chat = {"channel": "console", "address": f"chat-{sid}"}
    await h.said("hi", **chat)
    await h.said(code, **chat)
    await h.said(ranking, **chat)
    await h.said("0", **chat)  # no more preferences
    assert "Vote cast" in await h.said("YES", **chat)


@asynccontextmanager
async def published(redis: Redis) -> AsyncIterator[tuple[TelegramWorld, dict[str, Any], Browser]]:
    """The count published: the server, the report it published, and a browser."""
    async with telegram_world(redis, election_changes={"roll": ROLL}) as world:
        election = world.core.election
        h = Harness(world.core, world.clock, Outbox("sms"))
        voters = iter(ROLL)
        for n, ranking in VOTES:
            for _ in range(n):
                await _vote(h, next(voters).supporter_id, ranking)
        world.clock.set(election.closes + timedelta(minutes=1))
        await unseal(redis, election, TEST_SEED, world.clock, actor="trustees")
        await results.publish(redis, election, world.clock, "test")
        report = json.loads(str(await redis.hget(keys.published(election.id), "report")))
        async with chromium() as browser:
            yield world, report, browser


async def _open(browser: Browser, url: str, size: tuple[int, int]) -> Page:
    context = await browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = await context.new_page()
    response = await page.goto(url)
    assert response is not None and response.status == 200
    return page


@in_a_browser
async def test_every_label_is_readable_on_a_phone_and_a_desktop(redis: Redis) -> None:
    async with published(redis) as (world, report, browser):
        names = report["candidates"]
        assert len(report["rounds"]) == 3 and all(r["transfers"] for r in report["rounds"][1:])
        smallest: dict[str, float] = {}
        for width_name, size in VIEWPORTS.items():
            page = await _open(browser, f"{world.url}/results/{world.core.election.id}", size)
            if SHOTS:
                await page.screenshot(
                    path=str(Path(SHOTS) / f"results-{size[0]}.png"), full_page=True
                )
            labels = await page.evaluate(MEASURE)
            assert labels, "no label drawn"
            small = [x for x in labels if x["px"] < LEAST or x["height"] < LEAST]
            assert not small, f"{width_name}: labels under {LEAST} px: {small}"
            smallest[width_name] = min(x["px"] for x in labels)
            # And none is cut off at its picture's edge.
            cut = [x["text"] for x in labels if not x["inside"]]
            assert not cut, f"{width_name}: labels cut off: {cut}"
            # The page itself never scrolls sideways on a phone.
            assert await page.evaluate("document.documentElement.scrollWidth") <= size[0]
            # The narrow pictures on a phone, the wide ones on a desktop: one Sankey each.
            charts = {x["chart"] for x in labels}
            if width_name == "phone":
                assert charts == {"sankey-narrow", "bars-narrow"}, charts
            else:
                assert charts == {"sankey", "bars"}, charts
            # Every round is labelled, and in it every candidate still in (and Exhausted),
            # by name: nothing is told by colour alone.
            for chart in charts:
                for r in report["rounds"]:
                    said = [
                        x["text"]
                        for x in labels
                        if x["chart"] == chart and x["round"] == str(r["round"])
                    ]
                    assert f"Round {r['round']}" in said, (chart, r["round"], said)
                    for cid in r["tallies"]:
                        assert any(names[cid] in text for text in said), (chart, names[cid], said)
                    if r["exhausted"]:
                        assert any("Exhausted" in text for text in said), (chart, said)
            # The pictures still have a name and a description for a screen reader.
            for svg in await page.locator("svg[role=img]").all():
                if await svg.is_visible():
                    assert await svg.locator("title").count() >= 1
                    assert await svg.locator("desc").count() >= 1
        print(f"smallest label: {smallest}")


@in_a_browser
async def test_the_transfers_table_and_the_turnout(redis: Redis) -> None:
    async with published(redis) as (world, _, browser):
        for size in VIEWPORTS.values():
            page = await _open(browser, f"{world.url}/results/{world.core.election.id}", size)
            table = page.locator("table.transfers")
            await table.scroll_into_view_if_needed()
            assert await table.is_visible()
            caption = (await table.locator("caption").inner_text()).strip()
            assert "moved in each round" in caption and "Exhausted" in caption
            heads = await table.locator("thead th").all()
            assert [await th.get_attribute("scope") for th in heads] == ["col"] * 3
            assert [await th.inner_text() for th in heads] == [
                "Candidate",
                "Round 2: from Chris Byrne, excluded in round 1",
                "Round 3: from Sam Patel, excluded in round 2",
            ]
            rows = {}
            for tr in await table.locator("tbody tr").all():
                th = tr.locator("th")
                assert await th.get_attribute("scope") == "row"
                rows[await th.inner_text()] = [
                    await td.inner_text() for td in await tr.locator("td").all()
                ]
            # The excluded are said so in words, and where each of their votes went.
            assert rows == {
                "Alex Green (elected in round 3)": ["", "+6"],
                "Sam Patel (excluded in round 2)": ["", "−6"],
                "Jo Okafor": ["+2", ""],
                "Chris Byrne (excluded in round 1)": ["−4", ""],
                "Exhausted": ["+2", ""],
            }
            # One word for ballots with no continuing preference, everywhere on the page.
            assert "transferable" not in (await page.inner_text("body")).lower()
            turnout = {
                k: (await page.locator(f"[data-turnout={k}]").inner_text()).strip()
                for k in ("eligible", "voted", "percent")
            }
            assert turnout == {"eligible": "30", "voted": "22", "percent": "73.3%"}
            figures = page.locator("dl.turnout")
            for words in ("Eligible", "Ballots cast", "Turnout"):
                assert await figures.get_by_text(words, exact=True).is_visible()


@pytest.mark.parametrize("method", ["irv", "sv", "stv", "college"])
def test_the_pictures_drawn_from_a_published_report_are_the_counts_own(method: str) -> None:
    """The page draws its narrow pictures from the report stored at publication: from it,
    every picture is exactly what the count itself draws (STV's decimals, a college's exact
    shares and all)."""
    if method == "college":  # two rounds of exact shares: 1/80 and 1/320 a ballot
        members = [["a", "c"]] * 18 + [["b", "c"]] * 8 + [["c", "a"]] * 14
        affiliates = [["b", "c"]] * 80 + [["a", "c"]] * 36 + [["c", "b"]] * 44
        sections = {"members": members, "affiliates": affiliates}
        names = {"a": "Ann", "b": "Bob", "c": "Cat"}
        halves = College(
            shares={name: Fraction(1, 2) for name in sections},
            sections={
                name: Ballots.from_rankings(tuple(names), rankings, names=names)
                for name, rankings in sections.items()
            },
        )
        result = count_college(halves, "irv")
    else:
        ballots = parse_blt((GLASGOW / "blt" / "Calton-2007.blt").read_text())
        result = count(ballots, method, seats=3 if method == "stv" else 1)
    again = from_report(json.loads(json.dumps(to_json(result))))
    for draw in (sankey, bars, sankey_narrow, bars_narrow):
        assert draw(again) == draw(result), draw.__name__
