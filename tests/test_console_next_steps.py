"""The console says what to do next: the election page's status panel and next step, the
by-hour chart's axis and values, the roll lookup (by number or a shared phone) and one
supporter's code reissued, the reminder controls that apply, and costs with a currency."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from ballots import audit, keys
from ballots.election import Election, read_election_file
from ballots.errors import ConfigError
from ballots.program import program
from ballots.roll import Supporter, read_roll_file
from ballots.unseal import unseal
from bot import rehearsal
from bot.reminders import Reminders, plan
from bot.settings import Settings
from channels.web.charts import hourly
from tests.console_support import Organiser
from tests.factories import EXAMPLES, NOW, TEST_SEED
from tests.telegram_support import ANN, TelegramWorld, telegram_world
from tests.test_console import console

E = "/organisers/riverside-2027"
EID = "riverside-2027"
#: A second supporter on Ann's phone: a household sharing one.
GWEN = Supporter("S1007", "Gwen Hughes", "+447700900101", language="cy")
CODE = re.compile(r"\b\d{4}-\d{4}-\d{4}-\d{4}\b")


@asynccontextmanager
async def console_with(
    redis: Redis, settings: dict[str, Any], **election_changes: Any
) -> AsyncIterator[tuple[TelegramWorld, Organiser]]:
    """The console, with some settings changed (``console`` changes only the election)."""
    async with telegram_world(redis, election_changes=election_changes, **settings) as world:
        organiser = Organiser(world)
        try:
            yield world, organiser
        finally:
            await organiser.close()


def text_of(fragment: str) -> str:
    """What a reader reads: tags dropped, entities decoded, spaces folded."""
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())
    return re.sub(r" ([.,;:])", r"\1", words)  # where a tag ended just before the stop


def status_lines(page: str, key: str) -> list[str]:
    """The status panel's lines about ``key``, as text."""
    found = re.findall(
        rf'<li class="status-\w+" data-status="{key}">(.*?)</li>', page, flags=re.DOTALL
    )
    return [text_of(f) for f in found]


def status_line(page: str, key: str) -> str:
    (line,) = status_lines(page, key)
    return line


def next_step(page: str) -> tuple[str, str, str]:
    """The next step: its kind, its text, and the paragraph as written (links in it)."""
    found = re.search(r'<p class="next-step" data-next="([\w-]+)">(.*?)</p>', page, re.DOTALL)
    assert found, "no next step on the page"
    return found.group(1), text_of(found.group(2)), found.group(2)


async def vote_as_ann(world: TelegramWorld) -> None:
    """Ann (S1001) votes on Telegram with her posted code."""
    await world.say(ANN, await world.voting_code("S1001"))
    await world.tap(ANN, "Sam Patel")
    await world.tap(ANN, "Done")
    await world.tap(ANN, "Cast my vote")


def assert_console_headers(page: Any) -> None:
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["Cache-Control"] == "no-store"


# --- the status panel -----------------------------------------------------------------


async def test_the_status_panel_on_an_open_poll_says_what_is_missing(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await browser.sign_in()
        page = await browser.get(f"{E}/")
        assert page.status == 200
        assert_console_headers(page)
        # The sample election has its count key (the tests' own).
        assert status_line(page.text, "count-key").startswith("OK Count key: made (key ")
        assert status_line(page.text, "rehearsal") == "OK Rehearsal: none under way."
        assert status_line(page.text, "codes") == (
            "To do Voting codes: none issued yet: run "
            f"{program()} codes issue --election {EID} --out FILE "
            "(a mail-merge file: every supporter gets a code)."
        )
        assert status_line(page.text, "sms") == (
            "Note SMS segments spent: 0, no budget set: to cap what the poll's SMS can cost, "
            "set OPENPRIMARY_SMS_BUDGET_SEGMENTS and restart the server."
        )
        assert status_line(page.text, "reminder") == (
            "Note Reminders: none under way: to remind the supporters who have not voted, "
            "write a reminder."
        )
        assert f'<a href="{E}/reminders">write a reminder</a>' in page.text

        # Codes for two of the six: a count, never a code.
        code = await world.voting_code("S1001")
        await world.voting_code("S1002")
        page = await browser.get(f"{E}/")
        assert status_line(page.text, "codes") == (
            "Note Voting codes: 2 of 6 supporters on the roll have been given one: to give one "
            "supporter a new code, look them up on the roll page."
        )
        assert code not in page.text and code.replace("-", "") not in page.text
        assert not CODE.search(page.text)

        # Without its count key, the panel says who makes it and how.
        await redis.hdel(keys.election(EID), "count_key")
        page = await browser.get(f"{E}/")
        assert status_line(page.text, "count-key") == (
            "To do Count key: No count key yet: the trustees make it with "
            f"{program()} trustees init --election {EID} --shares N --threshold K --out DIR "
            "(no ballot can be cast until it is made)."
        )


async def test_the_status_panel_before_the_opening_and_in_a_rehearsal(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        election = world.core.election
        world.clock.set(election.opens - timedelta(days=2))
        await browser.sign_in()
        page = await browser.get(f"{E}/")
        assert status_line(page.text, "rehearsal") == (
            "Note Rehearsal: none under way: to try the poll with a few testers before it "
            f"opens, run {program()} election rehearse --election {EID} --testers FILE."
        )
        assert "or download a codes file for a mail merge on the roll page." in (
            status_line(page.text, "codes")
        )
        # Before the opening there is nobody to remind yet: no link.
        assert status_line(page.text, "reminder") == "Note Reminders: none under way."

        await rehearsal.rehearse(
            redis, election, ["S1001", "S1002"], world.clock, "tg:100001", "testers.txt"
        )
        page = await browser.get(f"{E}/")
        assert status_line(page.text, "rehearsal") == (
            "To do Rehearsal: under way for 2 testers: when they have tried it, and before "
            f"voting opens, run {program()} election finalise --election {EID} "
            "(it wipes the testers' ballots and puts everything back)."
        )
        # Voting opens with the rehearsal still under way: only the testers can vote.
        world.clock.set(election.opens + timedelta(minutes=5))
        await browser.sign_in()
        page = await browser.get(f"{E}/")
        assert status_line(page.text, "rehearsal").startswith(
            "To do Rehearsal: still under way for 2 testers, and voting has opened: only they "
            f"can vote until it is finalised: finalise it now: {program()} election finalise"
        )


async def test_the_sms_spent_against_the_budget(redis: Redis) -> None:
    async with console_with(redis, {"sms_budget_segments": 200}) as (_, browser):
        await browser.sign_in()
        await redis.set(keys.sms_segments(EID), 50)
        page = await browser.get(f"{E}/")
        assert status_line(page.text, "sms") == "OK SMS segments spent: 50 of 200 (25.0%)."
        await redis.set(keys.sms_segments(EID), 170)
        page = await browser.get(f"{E}/")
        assert status_line(page.text, "sms") == (
            "To do SMS segments spent: 170 of 200 (85.0%): near the budget: if the poll needs "
            "more, raise OPENPRIMARY_SMS_BUDGET_SEGMENTS and restart the server."
        )
        await redis.set(keys.sms_segments(EID), 203)
        page = await browser.get(f"{E}/")
        assert status_line(page.text, "sms").startswith(
            "To do SMS segments spent: 203 of 200 (101.5%): the budget is spent, so reminders "
            "stop and no new code SMS go"
        )


async def _running_job(world: TelegramWorld, channel: str = "telegram") -> str:
    """A reminder job started and left running: no worker sends it."""
    core = world.core
    assert core.organisers is not None
    ready = await plan(
        core.redis,
        core.election,
        "Hi {name}, vote now.",
        channel,
        rules=core.organisers.rules,
        clock=world.clock,
    )
    return await Reminders(core.redis, world.clock).create(core.election, ready, "tg:100001")


async def test_the_status_panel_follows_the_reminders_under_way(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await browser.sign_in()
        job = await _running_job(world)
        page = await browser.get(f"{E}/")
        assert status_lines(page.text, "reminder") == [
            f"Note Reminder: job {job} running: 0 of 2 done (0.0%): follow it on its page. 0 of 2"
        ]
        assert f'<a href="{E}/reminders/{job}">its page</a>' in page.text
        assert '<progress max="2" value="0"' in page.text
        await Reminders(redis, world.clock).pause(job, "tg:100001")
        page = await browser.get(f"{E}/")
        assert status_line(page.text, "reminder").startswith(
            f"To do Reminder: job {job} paused: 0 of 2 done (0.0%): resume or cancel it on "
            "its page."
        )
        await Reminders(redis, world.clock).cancel(job, "tg:100001")
        page = await browser.get(f"{E}/")
        assert status_line(page.text, "reminder").startswith("Note Reminders: none under way")


# --- the next step --------------------------------------------------------------------


async def test_the_next_step_from_before_the_opening_to_the_public_page(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        election = world.core.election
        world.clock.set(election.opens - timedelta(days=2, hours=1))
        await browser.sign_in()
        kind, said, _ = next_step((await browser.get(f"{E}/")).text)
        assert (kind, said) == (
            "before-open",
            "Voting opens Sun 1 Nov 2026 08:00 GMT (in 2 days) and closes "
            "Wed 1 Dec 2027 17:00 GMT.",
        )
        world.clock.set(NOW)
        await browser.sign_in()
        kind, said, _ = next_step((await browser.get(f"{E}/")).text)
        assert (kind, said) == ("open", "Voting closes Wed 1 Dec 2027 17:00 GMT (in 376 days).")
        await vote_as_ann(world)

        # Closed, the ballots sealed: the trustees' command, with its real flags.
        world.clock.set(election.closes + timedelta(minutes=1))
        await browser.sign_in()
        page = await browser.get(f"{E}/")
        kind, said, _ = next_step(page.text)
        assert kind == "sealed"
        assert said.startswith(
            "Voting closed Wed 1 Dec 2027 17:00 GMT. Next: unseal with the trustees' shares: "
            f"{program()} unseal --election {EID} --share FILE --share FILE "
        )
        assert (
            f"<code>{program()} unseal --election {EID} --share FILE --share FILE</code>"
            in page.text
        )

        # Unsealed, not published: the results page, to publish.
        await unseal(redis, election, TEST_SEED, world.clock, actor="trustees")
        kind, said, written = next_step((await browser.get(f"{E}/")).text)
        assert kind == "unsealed"
        assert said.endswith(" Next: check the count and publish it.")
        assert f'<a href="{E}/results">check the count and publish it</a>.' in written

        # Published: the public page.
        published = await browser.post(f"{E}/results/publish", {"confirm": "yes"})
        assert published.status == 200, published.text
        kind, said, written = next_step((await browser.get(f"{E}/")).text)
        assert kind == "published"
        assert "The results were published Wed 1 Dec 2027 17:01 GMT by tg:100001" in said
        assert said.endswith(f"anyone can see them on the public page (/results/{EID}).")
        assert f'<a href="/results/{EID}">the public page</a>' in written


# --- the by-hour chart ----------------------------------------------------------------


def test_the_by_hour_chart_has_an_axis_values_a_title_and_a_description() -> None:
    election = _sample()
    assert election.timezone == "Europe/London"
    by_hour = {"2026-11-20T09": 3, "2026-11-20T11": 1500, "2026-11-19T23": 12}
    svg = hourly(election, by_hour, NOW)
    assert svg.startswith("<svg") and 'role="img"' in svg
    assert '<title id="hourly-title">Ballots cast by hour, the last 48 hours' in svg
    desc = re.search(r'<desc id="hourly-desc">(.*?)</desc>', svg)
    assert desc and desc.group(1).startswith("1515 ballots from Wed 18 Nov 13:00 to Fri 20 Nov")
    assert "the busiest hour Fri 11:00 with 1500" in desc.group(1)
    assert "Thu 23:00 12; Fri 09:00 3; Fri 11:00 1500" in desc.group(1)
    # The axis: a baseline and hour labels every three hours, with the days under them.
    assert re.search(r'<line x1="8" y1="\d+" x2="952"', svg)
    labels = re.findall(r">(\d\d):00</text>", svg)
    assert labels[:3] == ["15", "18", "21"] and "09" in labels and len(labels) == 16
    assert ">Thu 19 Nov</text>" in svg and ">Fri 20 Nov</text>" in svg
    # The values as text on their bars: short ones across, long ones upwards.
    values = re.findall(r"<text [^>]*>([\d.k]+)</text>", svg)
    assert sorted(values) == ["1.5k", "12", "3"]
    assert 'transform="rotate(-90' in svg
    # Each bar also names its hour and count; no text smaller than 12; no <style>.
    assert "<title>Fri 20 Nov 11:00: 1500 ballots</title>" in svg
    sizes = [int(n) for n in re.findall(r'font-size="(\d+)"', svg)]
    assert sizes and min(sizes) >= 12
    assert "<style" not in svg and "style=" not in svg
    assert svg.count("<rect") == 3  # an hour with no ballots draws no bar


def test_an_hour_without_ballots_says_so_in_words() -> None:
    svg = hourly(_sample(), {}, NOW)
    assert "0 ballots from Wed 18 Nov 13:00 to Fri 20 Nov 12:59; none in any hour." in svg
    assert "<rect" not in svg


def _sample() -> Election:
    return read_election_file(EXAMPLES / "election.toml")


async def test_the_page_and_its_polled_figures_draw_the_same_chart(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await vote_as_ann(world)
        await browser.sign_in()
        page = await browser.get(f"{E}/")
        assert 'data-field="chart" data-kind="svg"' in page.text
        assert '<desc id="hourly-desc">1 ballot from' in page.text
        async with browser.session.get(world.url + f"{E}/turnout.json") as resp:
            figures = await resp.json()
        assert "Fri 12:00 1" in figures["chart"] and ">12:00</text>" in figures["chart"]
        assert ">1</text>" in figures["chart"]


# --- the roll: looking up, reissuing a code -------------------------------------------


async def test_a_lookup_by_number_shows_who_not_how_they_voted(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await vote_as_ann(world)
        await browser.sign_in()
        await browser.get(f"{E}/roll")
        page = await browser.post(f"{E}/roll/lookup", {"supporter": "S1001"})
        assert page.status == 200
        assert_console_headers(page)
        shown = text_of(page.text)
        assert "S1001: Ann Hughes" in shown
        assert "Roll language English (en)" in shown
        assert "Voted yes, by telegram" in shown
        # Never what they voted, nor their receipt, nor a code; and no new code for a voter.
        names = [c.name for c in world.core.election.candidates]
        assert "Sam Patel" in names and not any(name in page.text for name in names)
        receipt = await redis.hget(
            keys.voter(EID, keys.shard_of("S1001", world.core.election.shards), "S1001"), "receipt"
        )
        assert receipt and str(receipt) not in page.text
        assert not CODE.search(page.text)
        assert "Reissue this supporter" not in page.text
        assert "S1001 has voted: no new code can be issued." in shown
        welsh = await browser.post(f"{E}/roll/lookup", {"supporter": "S1003"})
        assert "Roll language Welsh (cy), not offered: answered in English" in text_of(welsh.text)
        assert "Voted no" in text_of(welsh.text)
        trail = [(e.action, e.details) for e in await audit.read(redis, EID)]
        assert (
            "supporter looked up",
            {"who": "S1001", "by": "supporter number", "factor": "console code by telegram"},
        ) in trail


async def test_a_shared_phone_finds_everyone_on_it(redis: Redis) -> None:
    roll = [*read_roll_file(EXAMPLES / "roll.csv"), GWEN]
    async with console(redis, roll=roll, languages=("en", "cy")) as (_, browser):
        await browser.sign_in()
        await browser.get(f"{E}/roll")
        page = await browser.post(f"{E}/roll/lookup", {"supporter": "07700 900101"})
        assert page.status == 200
        shown = text_of(page.text)
        assert "2 supporters on the roll with phone 07700 900101." in shown
        assert "S1001: Ann Hughes" in shown and "S1007: Gwen Hughes" in shown
        assert 'data-lookup="S1001"' in page.text and 'data-lookup="S1007"' in page.text
        assert "Roll language Welsh (cy)" in shown and "not offered" not in shown
        assert page.text.count("Reissue this supporter's code") == 2
        nobody = await browser.post(f"{E}/roll/lookup", {"supporter": "+44 7700 900999"})
        assert "Nobody on the roll has the phone +44 7700 900999." in text_of(nobody.text)
        neither = await browser.post(f"{E}/roll/lookup", {"supporter": "Z999"})
        assert "Z999 is not on the roll (as a supporter number or a phone number)." in (
            text_of(neither.text)
        )
        trail = [(e.action, e.details) for e in await audit.read(redis, EID)]
        assert (
            "supporter looked up",
            {"who": "S1001, S1007", "by": "phone", "factor": "console code by telegram"},
        ) in trail


async def test_one_supporter_s_code_is_reissued_after_a_confirmation(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        election = world.core.election
        codes = world.core.codes
        old = await world.voting_code("S1002")
        await browser.sign_in()
        await browser.post(f"{E}/roll/lookup", {"supporter": "S1002"})
        index_before = await redis.hgetall(keys.code_index(EID))

        # First the page that says what will happen; nothing changes yet.
        asked = await browser.post(f"{E}/roll/reissue", {"supporter": "S1002"})
        assert asked.status == 200
        assert_console_headers(asked)
        assert "Reissue S1002&#39;s voting code" in asked.text
        assert "the code they had stops working" in asked.text
        assert '<input type="hidden" name="supporter" value="S1002">' in asked.text
        assert '<input type="hidden" name="confirm" value="yes">' in asked.text
        assert await redis.hgetall(keys.code_index(EID)) == index_before

        done = await browser.post(f"{E}/roll/reissue", {"supporter": "S1002", "confirm": "yes"})
        assert done.status == 200
        assert_console_headers(done)  # no-store: the code is shown once, never cached
        shown = CODE.findall(done.text)
        assert len(shown) == 1 and "New voting code for S1002 (Bilal Khan)" in done.text
        new = shown[0]
        assert new != old

        # The old code opens nothing; the new one opens Bilal's ballot.
        assert (await codes.check_voting_code(election, old, "telegram", "555")).status == ("wrong")
        checked = await codes.check_voting_code(election, new, "telegram", "556")
        assert (checked.status, checked.supporter_id) == ("ok", "S1002")

        # In the audit trail, as `codes issue --supporter` puts it, and never the code.
        entries = [e for e in await audit.read(redis, EID) if e.action == "codes issued"]
        assert [(e.actor, e.details) for e in entries] == [
            (
                "tg:100001",
                {
                    "count": 1,
                    "who": "S1002",
                    "only": 1,
                    "file": "shown once in the console",
                    "factor": "console code by telegram",
                },
            )
        ]
        digits = new.replace("-", "")
        assert all(digits not in str(e.details) for e in await audit.read(redis, EID))
        # Shown once: the roll page does not show it again.
        again = await browser.get(f"{E}/roll")
        assert new not in again.text and not CODE.search(again.text)


async def test_no_new_code_for_a_supporter_who_has_voted(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await vote_as_ann(world)
        await browser.sign_in()
        await browser.get(f"{E}/roll")
        before = await redis.hgetall(keys.code_index(EID))
        for form in ({"supporter": "S1001"}, {"supporter": "S1001", "confirm": "yes"}):
            page = await browser.post(f"{E}/roll/reissue", form)
            assert page.status == 409
            assert (
                "S1001 has voted (by telegram): a supporter who has voted cannot be given a new "
                "code." in html.unescape(page.text)
            )
            assert not CODE.search(page.text)
        assert await redis.hgetall(keys.code_index(EID)) == before
        missing = await browser.post(f"{E}/roll/reissue", {"supporter": "Z9", "confirm": "yes"})
        assert missing.status == 400 and "Z9 is not on the roll." in missing.text
        actions = [e.action for e in await audit.read(redis, EID)]
        assert "codes issued" not in actions


async def test_reissuing_is_refused_in_a_rehearsal_and_after_the_close(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        election = world.core.election
        world.clock.set(election.opens - timedelta(days=1))
        await rehearsal.rehearse(redis, election, ["S1003"], world.clock, "tg:100001", "t.txt")
        await browser.sign_in()
        await browser.get(f"{E}/roll")
        before = await redis.hgetall(keys.code_index(EID))
        page = await browser.post(f"{E}/roll/reissue", {"supporter": "S1002", "confirm": "yes"})
        assert page.status == 409 and "The election is being rehearsed" in page.text
        await rehearsal.finalise(redis, election, world.clock, "tg:100001", settle=0)
        world.clock.set(election.closes + timedelta(hours=1))
        await browser.sign_in()
        await browser.get(f"{E}/roll")
        page = await browser.post(f"{E}/roll/reissue", {"supporter": "S1002", "confirm": "yes"})
        assert page.status == 409 and "Voting closed Wed 1 Dec 2027 17:00 GMT" in page.text
        assert await redis.hgetall(keys.code_index(EID)) == before


async def test_a_forged_reissue_gets_403_and_changes_nothing(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        old = await world.voting_code("S1002")
        await browser.sign_in()
        before = await redis.hgetall(keys.code_index(EID))
        trail = await redis.xlen(keys.audit(EID))
        for data in (
            {"supporter": "S1002", "confirm": "yes"},
            {"csrf": "forged", "supporter": "S1002", "confirm": "yes"},
        ):
            async with browser.session.post(world.url + f"{E}/roll/reissue", data=data) as resp:
                assert resp.status == 403
                body = await resp.text()
                assert resp.headers["Cache-Control"] == "no-store"
            assert not CODE.search(body)
        assert await redis.hgetall(keys.code_index(EID)) == before
        assert await redis.xlen(keys.audit(EID)) == trail
        checked = await world.core.codes.check_voting_code(
            world.core.election, old, "telegram", "557"
        )
        assert checked.status == "ok"


async def test_signed_out_a_reissue_is_sent_to_sign_in(redis: Redis) -> None:
    async with console(redis) as (_, browser):
        page = await browser.post(
            f"{E}/roll/reissue", {"supporter": "S1002", "confirm": "yes"}, allow_redirects=False
        )
        assert (page.status, page.headers["Location"]) == (303, f"{E}/sign-in")


# --- reminders: the controls that apply, costs in a currency, every language ----------


def controls(page: str, job: str) -> set[str]:
    return set(re.findall(rf'action="{E}/reminders/{job}/(\w+)"', page))


async def test_a_job_offers_only_the_controls_that_apply(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await browser.sign_in()
        job = await _running_job(world)
        running = await browser.get(f"{E}/reminders/{job}")
        assert_console_headers(running)
        assert controls(running.text, job) == {"pause", "cancel"}
        assert ">Resume</button>" not in running.text
        paused = await browser.post(f"{E}/reminders/{job}/pause", {})
        assert paused.status == 200 and paused.url.endswith(f"/reminders/{job}")
        assert controls(paused.text, job) == {"resume", "cancel"}
        assert ">Pause</button>" not in paused.text
        # A forged Cancel changes nothing.
        async with browser.session.post(
            world.url + f"{E}/reminders/{job}/cancel", data={"csrf": "forged"}
        ) as resp:
            assert resp.status == 403
        assert (await Reminders(redis).status(job)).status == "paused"
        cancelled = await browser.post(f"{E}/reminders/{job}/cancel", {})
        assert controls(cancelled.text, job) == set()
        assert "This job is cancelled: there is nothing more to do with it" in cancelled.text
        # An action that no longer applies is refused, and says why.
        late = await browser.post(f"{E}/reminders/{job}/resume", {})
        assert late.status == 409 and "was cancelled" in late.text
        assert controls(late.text, job) == set()


async def test_a_finished_job_offers_no_controls(redis: Redis) -> None:
    async with console(redis) as (_, browser):
        await browser.sign_in()
        await browser.get(f"{E}/reminders")
        sent = await browser.post(
            f"{E}/reminders/send", {"template": "Hi {name}, vote now.", "channel": "telegram"}
        )
        job = sent.url.rsplit("/", 1)[1]
        async with asyncio.timeout(10):
            while (await Reminders(redis).status(job)).status != "finished":  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        page = await browser.get(f"{E}/reminders/{job}")
        assert controls(page.text, job) == set()
        assert "This job is finished: there is nothing more to do with it." in page.text


async def test_the_cost_is_in_the_currency_set(redis: Redis) -> None:
    async with console(redis) as (_, browser):
        await browser.sign_in()
        page = await browser.get(f"{E}/reminders")
        assert "Price of one SMS segment, in GBP" in page.text
        dry = await browser.post(
            f"{E}/reminders/dry-run", {"template": "Vote, {name}!", "channel": "sms"}
        )
        assert 'data-plan="cost">GBP 0.16<' in dry.text  # 4 by SMS, a segment each, at 0.04
        # One language: the first message of each kind is the sample; no second copy.
        assert "In each language" not in dry.text
    await redis.flushdb()
    async with console_with(redis, {"currency": "EUR"}) as (_, browser):
        await browser.sign_in()
        await browser.get(f"{E}/reminders")
        dry = await browser.post(
            f"{E}/reminders/dry-run",
            {"template": "Vote, {name}!", "channel": "sms", "price": "0.05"},
        )
        assert 'data-plan="cost">EUR 0.20<' in dry.text
        assert "Price of one SMS segment, in EUR" in dry.text


def test_the_currency_setting_is_an_iso_code() -> None:
    assert Settings.from_env({}, dotenv=None, local_secret=False).currency == "GBP"
    read = Settings.from_env({"OPENPRIMARY_CURRENCY": " eur "}, dotenv=None, local_secret=False)
    assert read.currency == "EUR"
    with pytest.raises(ConfigError, match="OPENPRIMARY_CURRENCY='euros': must be an ISO 4217"):
        Settings.from_env({"OPENPRIMARY_CURRENCY": "euros"}, dotenv=None, local_secret=False)


async def test_the_dry_run_shows_the_reminder_in_each_language(redis: Redis) -> None:
    async with console(redis, languages=("en", "cy"), sms_text={"cy": "faithful"}) as (
        _,
        browser,
    ):
        await browser.sign_in()
        await browser.get(f"{E}/reminders")
        template = "Hi {name}, vote now.\n[cy]\nHelo {name}, pleidleisiwch nawr."
        dry = await browser.post(f"{E}/reminders/dry-run", {"template": template, "channel": "sms"})
        assert dry.status == 200, dry.text
        samples = dict(
            re.findall(
                r'data-sample="([\w-]+)">.*?<pre class="sample-language" [^>]*>(.*?)</pre>',
                dry.text,
                re.DOTALL,
            )
        )
        assert set(samples) == {"en-sms", "cy-sms"}
        assert samples["en-sms"].startswith("Hi ") and "vote now." in samples["en-sms"]
        assert samples["cy-sms"].startswith("Helo ") and "pleidleisiwch nawr." in samples["cy-sms"]
        # A template with no Welsh version says what Welsh speakers get instead.
        english = await browser.post(
            f"{E}/reminders/dry-run", {"template": "Hi {name}, vote now.", "channel": "sms"}
        )
        assert (
            "the message has no [cy] version, so Welsh speakers get the English text"
            in english.text
        )
