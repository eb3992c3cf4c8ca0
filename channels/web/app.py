"""Plugging the console and the public results into ``serve``'s app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.signin import SignIn
from channels.appkeys import CORE
from channels.web import (
    audit_views,
    election_views,
    reminder_views,
    results_views,
    roll_views,
    signin_views,
    window_views,
)
from channels.web.guard import CONSOLE_APP, PREFIX, SIGNIN, guard, headers

HERE = Path(__file__).resolve().parent


def install(app: web.Application) -> None:
    """Add the console under ``/organisers/`` and ``/results/ID`` to ``app`` (whose core is set)."""
    core = app[CORE]
    console = web.Application(middlewares=[headers, guard])
    console[SIGNIN] = SignIn(
        core.redis,
        core.election,
        core.clock,
        core.settings.secret_key,
        core.senders,
        region=core.settings.default_region,
        alerts=core.alerts,
    )
    signin = console[SIGNIN]
    core.followers.append(lambda election: setattr(signin, "election", election))
    # On the main app, so the public results page renders too (the console finds it there).
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    r = console.router
    r.add_get("/", election_views.election_page)
    r.add_get("/turnout.json", election_views.turnout_json)
    r.add_get("/sign-in", signin_views.sign_in_form)
    r.add_post("/sign-in", signin_views.ask_for_code)
    r.add_post("/sign-in/code", signin_views.check_code)
    r.add_post("/sign-out", signin_views.sign_out)
    r.add_get("/reminders", reminder_views.reminders_page)
    r.add_post("/reminders/dry-run", reminder_views.dry_run)
    r.add_post("/reminders/send", reminder_views.send)
    r.add_get("/reminders/{job}", reminder_views.job_page)
    r.add_get("/reminders/{job}/progress.json", reminder_views.job_json)
    r.add_post("/reminders/{job}/{action}", reminder_views.job_action)
    r.add_get("/roll", roll_views.roll_page)
    r.add_post("/roll/upload", roll_views.upload)
    r.add_post("/roll/lookup", roll_views.lookup)
    r.add_post("/roll/unlock", roll_views.unlock)
    r.add_post("/codes", roll_views.codes_file)
    r.add_get("/audit", audit_views.audit_page)
    r.add_get("/results", results_views.results_page)
    r.add_get("/close", window_views.close_page)
    r.add_post("/close", window_views.close)
    r.add_get("/extend", window_views.extend_page)
    r.add_post("/extend", window_views.extend)
    r.add_get("/results/publish", window_views.publish_page)
    r.add_post("/results/publish", results_views.publish)
    r.add_post("/results/unpublish", results_views.unpublish)
    r.add_static("/static/", HERE / "static")
    app.add_subapp(PREFIX, console)
    app[CONSOLE_APP] = console
    # Registered after the channels' own contexts, so it ends before they close their senders.
    app.cleanup_ctx.append(_codes_on_their_way)
    app.router.add_get("/results/{election}", results_views.public_results)
    app.router.add_get("/results/{election}/{file}", results_views.download)


async def _codes_on_their_way(app: web.Application) -> AsyncIterator[None]:
    """On shutdown, let the sign-in codes on their way go before the senders close."""
    yield
    await app[CONSOLE_APP][SIGNIN].drain()
