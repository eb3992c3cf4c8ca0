"""Plugging the console and the public results into ``serve``'s app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from channels.appkeys import DEPLOYMENT
from channels.sandbox import BANNER, SANDBOX
from channels.web import (
    audit_views,
    election_views,
    index_views,
    reminder_views,
    report_views,
    results_views,
    roll_views,
    sandbox_views,
    signin_views,
    window_views,
)
from channels.web.guard import CONSOLE_APP, PREFIX, SIGNINS, guard, headers, make_signin

HERE = Path(__file__).resolve().parent


def install(app: web.Application) -> None:
    """Add the console under ``/organisers/`` and ``/results/ID`` to ``app`` (whose
    deployment is set): each election's console at ``/organisers/ID/``."""
    console = web.Application(middlewares=[headers, guard])
    console[SIGNINS] = {}
    for core in app[DEPLOYMENT].cores.values():  # (an election loaded later: when first asked)
        make_signin(console[SIGNINS], core)
    # On the main app, so the public results page renders too (the console finds it there).
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    # Only a sandbox sets its key (before this runs): then every page says so.
    env.globals["sandbox_banner"] = BANNER if SANDBOX in app else ""
    r = console.router
    r.add_static("/static/", HERE / "static")
    r.add_get("/", index_views.index)
    r.add_get("/report", report_views.report_page)  # (before "/{election}", which it would be)
    if SANDBOX in app:  # the phone simulator and the sandbox's unseal: nowhere else
        sandbox_views.add_routes(r)
    r.add_get("/{election}", index_views.to_election)
    e = "/{election}"
    r.add_get(f"{e}/", election_views.election_page)
    r.add_get(f"{e}/turnout.json", election_views.turnout_json)
    r.add_get(f"{e}/sign-in", signin_views.sign_in_form)
    r.add_post(f"{e}/sign-in", signin_views.ask_for_code)
    r.add_post(f"{e}/sign-in/code", signin_views.check_code)
    r.add_post(f"{e}/sign-out", signin_views.sign_out)
    r.add_get(f"{e}/reminders", reminder_views.reminders_page)
    r.add_post(f"{e}/reminders/dry-run", reminder_views.dry_run)
    r.add_post(f"{e}/reminders/send", reminder_views.send)
    r.add_get(f"{e}/reminders/{{job}}", reminder_views.job_page)
    r.add_get(f"{e}/reminders/{{job}}/progress.json", reminder_views.job_json)
    r.add_post(f"{e}/reminders/{{job}}/{{action}}", reminder_views.job_action)
    r.add_get(f"{e}/roll", roll_views.roll_page)
    r.add_post(f"{e}/roll/upload", roll_views.upload)
    r.add_post(f"{e}/roll/lookup", roll_views.lookup)
    r.add_post(f"{e}/roll/unlock", roll_views.unlock)
    r.add_post(f"{e}/roll/reissue", roll_views.reissue)
    r.add_post(f"{e}/codes", roll_views.codes_file)
    r.add_get(f"{e}/audit", audit_views.audit_page)
    r.add_get(f"{e}/results", results_views.results_page)
    r.add_get(f"{e}/close", window_views.close_page)
    r.add_post(f"{e}/close", window_views.close)
    r.add_get(f"{e}/extend", window_views.extend_page)
    r.add_post(f"{e}/extend", window_views.extend)
    r.add_get(f"{e}/results/publish", window_views.publish_page)
    r.add_post(f"{e}/results/publish", results_views.publish)
    r.add_post(f"{e}/results/unpublish", results_views.unpublish)
    app.add_subapp(PREFIX, console)
    app[CONSOLE_APP] = console
    # Registered after the channels' own contexts, so it ends before they close their senders.
    app.cleanup_ctx.append(_codes_on_their_way)
    app.router.add_get("/results/{election}", results_views.public_results)
    app.router.add_get("/results/{election}/{file}", results_views.download)


async def _codes_on_their_way(app: web.Application) -> AsyncIterator[None]:
    """On shutdown, let the sign-in codes on their way go before the senders close."""
    yield
    for signin in list(app[CONSOLE_APP][SIGNINS].values()):
        await signin.drain()
