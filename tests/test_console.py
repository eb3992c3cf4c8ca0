"""The organisers' console over HTTP: sign-in, the guard, CSRF, and each page's actions.
(The browser tests, tests/test_console_browser.py, drive the same pages in Chromium.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from aiohttp import FormData
from redis.asyncio import Redis

from ballots import audit, keys
from ballots.unseal import unseal
from bot.signin import CODE_TRIES
from channels.web.guard import CONSOLE_APP, SIGNINS
from tests.console_support import ORGANISER_TG, Organiser
from tests.factories import TEST_SEED
from tests.telegram_support import ANN, TelegramWorld, telegram_world

#: Every console URL a signed-out browser might ask for (GET and POST).
CONSOLE_GETS = [
    "/organisers/riverside-2027/",
    "/organisers/riverside-2027/turnout.json",
    "/organisers/riverside-2027/reminders",
    "/organisers/riverside-2027/reminders/20261120-120000-abcdef",
    "/organisers/riverside-2027/reminders/20261120-120000-abcdef/progress.json",
    "/organisers/riverside-2027/roll",
    "/organisers/riverside-2027/audit",
    "/organisers/riverside-2027/results",
]
CONSOLE_POSTS = [
    "/organisers/riverside-2027/sign-out",
    "/organisers/riverside-2027/reminders/dry-run",
    "/organisers/riverside-2027/reminders/send",
    "/organisers/riverside-2027/reminders/20261120-120000-abcdef/pause",
    "/organisers/riverside-2027/roll/upload",
    "/organisers/riverside-2027/roll/lookup",
    "/organisers/riverside-2027/roll/unlock",
    "/organisers/riverside-2027/codes",
    "/organisers/riverside-2027/results/publish",
    "/organisers/riverside-2027/results/unpublish",
]


@asynccontextmanager
async def console(
    redis: Redis, **election_changes: Any
) -> AsyncIterator[tuple[TelegramWorld, Organiser]]:
    async with telegram_world(redis, election_changes=election_changes) as world:
        organiser = Organiser(world)
        try:
            yield world, organiser
        finally:
            await organiser.close()


async def test_signed_out_every_console_url_sends_you_to_sign_in(redis: Redis) -> None:
    async with console(redis) as (_, browser):
        for path in CONSOLE_GETS:
            page = await browser.get(path, allow_redirects=False)
            assert (page.status, page.headers["Location"]) == (
                303,
                "/organisers/riverside-2027/sign-in",
            ), path
            assert page.headers["Cache-Control"] == "no-store"
        for path in CONSOLE_POSTS:
            page = await browser.post(path, {}, allow_redirects=False)
            assert (page.status, page.headers["Location"]) == (
                303,
                "/organisers/riverside-2027/sign-in",
            ), path
        signin = await browser.get("/organisers/riverside-2027/sign-in")
        assert signin.status == 200 and "Organisers: sign in" in signin.text
        csp = signin.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp


async def test_a_wrong_code_then_the_right_one(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await browser.get("/organisers/riverside-2027/sign-in")
        code = await browser.ask_for_code()
        assert len(code) == 6 and code.isdigit()
        wrong = "000000" if code != "000000" else "111111"
        refused = await browser.post(
            "/organisers/riverside-2027/sign-in/code",
            {"address": f"tg:{ORGANISER_TG}", "code": wrong},
        )
        assert refused.status == 403 and "That code is not right" in refused.text
        page = await browser.post(
            "/organisers/riverside-2027/sign-in/code",
            {"address": f"tg:{ORGANISER_TG}", "code": code},
        )
        assert page.status == 200 and page.url.endswith("/organisers/riverside-2027/")
        assert "Turnout" in page.text and f"tg:{ORGANISER_TG}" in page.text
        # The code is spent; the sign-in is in the audit trail with its factor.
        again = Organiser(world)
        try:
            await again.get("/organisers/riverside-2027/sign-in")
            reused = await again.post(
                "/organisers/riverside-2027/sign-in/code",
                {"address": f"tg:{ORGANISER_TG}", "code": code},
            )
            assert reused.status == 403
        finally:
            await again.close()
        trail = await audit.read(redis, world.core.election.id)
        signed = [e for e in trail if e.action == "console sign-in"]
        assert [(e.actor, e.details) for e in signed] == [
            (f"tg:{ORGANISER_TG}", {"factor": "console code by telegram"})
        ]


async def test_someone_not_organising_is_told_the_same_and_sent_nothing(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await browser.get("/organisers/riverside-2027/sign-in")
        before = len(world.api.calls_to("sendMessage"))
        asked = await browser.post("/organisers/riverside-2027/sign-in", {"address": "tg:999999"})
        assert asked.status == 200 and "a 6-digit code is on its way" in asked.text
        assert len(world.api.calls_to("sendMessage")) == before


async def test_wrong_codes_use_the_code_up(redis: Redis) -> None:
    async with console(redis) as (_, browser):
        await browser.get("/organisers/riverside-2027/sign-in")
        code = await browser.ask_for_code()
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(CODE_TRIES):
            await browser.post(
                "/organisers/riverside-2027/sign-in/code",
                {"address": f"tg:{ORGANISER_TG}", "code": wrong},
            )
        late = await browser.post(
            "/organisers/riverside-2027/sign-in/code",
            {"address": f"tg:{ORGANISER_TG}", "code": code},
        )
        assert late.status == 403  # after 5 wrong tries even the right code must be asked anew


async def test_a_forged_csrf_token_gets_403_and_changes_nothing(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await browser.sign_in()
        jobs = keys.reminder_jobs(world.core.election.id)
        forged = await browser.session.post(
            world.url + "/organisers/riverside-2027/reminders/send",
            data={"csrf": "forged", "template": "Vote now", "channel": "all"},
        )
        assert forged.status == 403
        assert await redis.zcard(jobs) == 0
        missing = await browser.session.post(
            world.url + "/organisers/riverside-2027/roll/unlock", data={"supporter": "S1001"}
        )
        assert missing.status == 403
        # Before sign-in too: the sign-in form's token is tied to the browser's cookie.
        other = Organiser(world)
        try:
            await other.get("/organisers/riverside-2027/sign-in")
            sent = await other.session.post(
                world.url + "/organisers/riverside-2027/sign-in",
                data={"csrf": "x", "address": "tg:100001"},
            )
            assert sent.status == 403
        finally:
            await other.close()


async def test_a_roll_with_a_bad_row_is_reported_and_nothing_is_written(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await browser.sign_in()
        await browser.get("/organisers/riverside-2027/roll")
        before = await redis.dbsize()
        form = FormData()
        form.add_field("csrf", browser.csrf)
        form.add_field(
            "roll",
            b"supporter_id,name,phone\nN1,Nia,07700 900150\nN2,Olu,not-a-phone\n",
            filename="new-roll.csv",
            content_type="text/csv",
        )
        page = await browser.post("/organisers/riverside-2027/roll/upload", form)
        assert page.status == 400
        assert "new-roll.csv:3: " in page.text and "not-a-phone" in page.text
        assert await redis.dbsize() == before
        good = FormData()
        good.add_field("csrf", browser.csrf)
        good.add_field(
            "roll", b"supporter_id,name,phone\nN1,Nia,07700 900150\n", filename="new-roll.csv"
        )
        page = await browser.post("/organisers/riverside-2027/roll/upload", good)
        assert page.status == 200 and "Imported new-roll.csv: 1 new" in page.text
        looked = await browser.post("/organisers/riverside-2027/roll/lookup", {"supporter": "N1"})
        assert 'data-lookup="N1"' in looked.text and "<dt>Voted</dt><dd>no</dd>" in looked.text
        actions = [e.action for e in await audit.read(redis, world.core.election.id)]
        assert "roll imported" in actions and "supporter looked up" in actions


async def test_reminder_dry_run_send_pause_resume(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await browser.sign_in()
        await browser.get("/organisers/riverside-2027/reminders")
        dry = await browser.post(
            "/organisers/riverside-2027/reminders/dry-run",
            {"template": "Hi {name}, {days_left} days left to vote.", "channel": "telegram"},
        )
        assert dry.status == 200, dry.text
        assert 'data-plan="total">2<' in dry.text  # Bilal and Erin: linked on the roll
        assert "Hi Bilal Khan," in dry.text
        # Telegram's flood limit holds the job's first message for 2 s: the job is still
        # running when Pause is pressed, however busy the machine is.
        world.api.fail("sendMessage", 429, retry_after=2)
        sent = await browser.post(
            "/organisers/riverside-2027/reminders/send",
            {"template": "Hi {name}, {days_left} days left to vote.", "channel": "telegram"},
        )
        assert sent.status == 200 and "/organisers/riverside-2027/reminders/" in sent.url
        job = sent.url.rsplit("/", 1)[1]
        paused = await browser.post(f"/organisers/riverside-2027/reminders/{job}/pause", {})
        assert paused.status == 200
        status = (
            await browser.get(f"/organisers/riverside-2027/reminders/{job}/progress.json")
        ).text
        assert '"status": "paused"' in status or '"status": "finished"' in status
        resumed = await browser.post(f"/organisers/riverside-2027/reminders/{job}/resume", {})
        assert resumed.status == 200
        trail = [
            (e.action, e.details.get("factor"))
            for e in await audit.read(redis, world.core.election.id)
        ]
        assert ("reminder started", "console code by telegram") in trail


async def test_a_reminder_in_two_languages_is_priced_per_language(redis: Redis) -> None:
    async with console(redis, languages=("en", "cy"), sms_text={"cy": "faithful"}) as (_, browser):
        await browser.sign_in()
        page = await browser.get("/organisers/riverside-2027/reminders")
        assert "then a line <code>[cy]</code> and its Welsh version" in page.text
        template = "Hi {name}, vote now.\n[cy]\nHelo {name}, pleidleisiwch nawr. Diolch yn fawr ŵ"
        dry = await browser.post(
            "/organisers/riverside-2027/reminders/dry-run", {"template": template, "channel": "sms"}
        )
        assert dry.status == 200, dry.text
        # Carys (Welsh on the roll) by SMS, faithful: one UCS-2 segment; the rest English.
        assert (
            '<tr data-language="cy"><td>Welsh</td><td>1</td><td>1</td><td>faithful</td>'
            "<td>0</td></tr>"
        ) in dry.text
        assert '<tr data-language="en"><td>English</td><td>3</td><td>3</td><td>folded</td>' in (
            dry.text
        )
        bad = await browser.post(
            "/organisers/riverside-2027/reminders/dry-run",
            {"template": "Hi\n[ur]\nSalaam", "channel": "sms"},
        )
        assert bad.status == 400
        assert "[ur] is not one of the election&#39;s languages (en, cy)" in bad.text


async def test_results_stay_private_until_published(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        election = world.core.election
        public = await browser.get(f"/results/{election.id}")
        assert public.status == 404
        await world.say(ANN, await world.voting_code())
        await world.tap(ANN, "Sam Patel")
        await world.tap(ANN, "Done")
        await world.tap(ANN, "Cast my vote")
        await browser.sign_in()
        waiting = await browser.get("/organisers/riverside-2027/results")
        assert "Voting closes" in waiting.text
        world.clock.set(election.closes + timedelta(minutes=1))
        expired = await browser.get("/organisers/riverside-2027/results")
        assert expired.url.endswith(
            "/organisers/riverside-2027/sign-in"
        )  # 12 hours is a session's longest
        await browser.sign_in()
        closed = await browser.get("/organisers/riverside-2027/results")
        assert "once the trustees have unsealed" in closed.text
        await unseal(redis, election, TEST_SEED, world.clock, actor="trustees")
        counted = await browser.get("/organisers/riverside-2027/results")
        assert '<p class="winners">Sam Patel</p>' in counted.text
        assert (await browser.get(f"/results/{election.id}")).status == 404  # not yet
        done = await browser.post("/organisers/riverside-2027/results/publish", {"confirm": "yes"})
        assert "Published" in done.text
        outsider = Organiser(world)
        try:
            shown = await outsider.get(f"/results/{election.id}")
            assert shown.status == 200
            assert "Elected: <strong>Sam Patel</strong>" in shown.text
            assert 'class="sankey"' in shown.text
            assert "frame-ancestors *" in shown.headers["Content-Security-Policy"]
            blt = await outsider.get(f"/results/{election.id}/ballots.blt")
            assert blt.status == 200 and '"Sam Patel"' in blt.text
            receipts = await outsider.get(f"/results/{election.id}/receipts.txt")
            assert len(receipts.text.split()) == 1
        finally:
            await outsider.close()
        trail = [e.action for e in await audit.read(redis, election.id)]
        assert "results published" in trail


async def test_guesses_at_once_get_no_more_tries_than_one_after_another(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await browser.get("/organisers/riverside-2027/sign-in")
        code = await browser.ask_for_code()
        signin = world.app[CONSOLE_APP][SIGNINS][world.core.election.id]
        wrong = [f"{(int(code) + n) % 10**6:06d}" for n in range(1, 41)]
        tried = await asyncio.gather(
            *(signin.sign_in(f"tg:{ORGANISER_TG}", w, f"10.9.0.{n}") for n, w in enumerate(wrong))
        )
        assert not any(tried)
        # The fifth wrong try spent the code: nothing is left to guess at, not even a count.
        assert not await redis.exists(
            keys.console_code(world.core.election.id, f"tg:{ORGANISER_TG}")
        )
        assert await signin.sign_in(f"tg:{ORGANISER_TG}", code, "10.9.0.99") is None


async def test_the_answer_never_tells_who_organises(redis: Redis) -> None:
    async with console(redis) as (world, browser):
        await browser.get("/organisers/riverside-2027/sign-in")
        statuses = {}
        for address in (f"tg:{ORGANISER_TG}", "tg:999999"):
            seen = []
            for n in range(6):  # one more than an organiser's codes an hour
                asked = await browser.post(
                    "/organisers/riverside-2027/sign-in",
                    {"address": address},
                    headers={"X-Forwarded-For": f"203.0.113.{n}"},
                )
                seen.append((asked.status, "a 6-digit code is on its way" in asked.text))
            statuses[address] = seen
        assert statuses[f"tg:{ORGANISER_TG}"] == statuses["tg:999999"] == [(200, True)] * 6
        await world.app[CONSOLE_APP][SIGNINS][world.core.election.id].drain()
        codes = [m for m in world.api.messages(ORGANISER_TG) if "sign in" in m["text"]]
        assert len(codes) == 5  # the sixth was refused, silently


async def test_a_page_polling_does_not_keep_the_session_alive(redis: Redis) -> None:
    async with console(redis) as (_, browser):
        await browser.sign_in()
        (name,) = [str(k) async for k in redis.scan_iter("op:console:session:*")]
        await redis.expire(name, 100)
        await browser.get("/organisers/riverside-2027/turnout.json")
        assert 0 < await redis.ttl(name) <= 100
        await browser.get("/organisers/riverside-2027/")
        assert await redis.ttl(name) > 100


async def test_an_upload_that_is_not_a_file_gets_a_clear_answer(redis: Redis) -> None:
    async with console(redis) as (_, browser):
        await browser.sign_in()
        await browser.get("/organisers/riverside-2027/roll")
        page = await browser.post(
            "/organisers/riverside-2027/roll/upload", {"roll": "supporter_id,name"}
        )
        assert page.status == 400 and "Choose a roll CSV file." in page.text
        empty = await browser.post("/organisers/riverside-2027/roll/lookup", {"supporter": " "})
        assert "Type a supporter number or a phone number." in empty.text
