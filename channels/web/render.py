"""Rendering a console page: the template, with what every page shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from ballots import audit
from ballots.election import Election
from ballots.quiet import local
from bot.core import Core
from channels.appkeys import DEPLOYMENT
from channels.web.guard import (
    CURRENT,
    PREFIX,
    SESSION,
    STATIC,
    prefix_of,
    session_of,
    signin_csrf,
)


def core_of(request: web.Request) -> Core:
    """The election of a console page (the guard found it), or of a public results page
    (404 if it is not served here)."""
    if CURRENT in request:
        return request[CURRENT]
    found = request.config_dict[DEPLOYMENT].cores.get(request.match_info.get("election", ""))
    if found is None:
        raise web.HTTPNotFound(text="No such election.")
    return found


async def audited(request: web.Request, action: str, **details: object) -> None:
    """Put a signed-in organiser's action in the audit trail, with the factor they used."""
    core = core_of(request)
    session = session_of(request)
    await audit.record(
        core.redis,
        core.clock,
        core.election.id,
        session.actor,
        action,
        factor=session.factor,
        **details,
    )


def page(request: web.Request, name: str, /, *, status: int = 200, **context: Any) -> web.Response:
    """A console page.  Every form on it carries the CSRF token (``csrf``)."""
    core = core_of(request)
    session = request.get(SESSION)
    election = core.election
    response = aiohttp_jinja2.render_template(
        name,
        request,
        {
            "prefix": prefix_of(request),
            "static": STATIC,
            "console": PREFIX,
            "election": election,
            "session": session,
            "csrf": session.csrf if session is not None else signin_csrf(request),
            "when": lambda moment: when(election, moment),
            "now": core.clock.now(),
            **context,
        },
        status=status,
    )
    if session is None:
        signin_csrf(request, response)
    return response


def when(election: Election, moment: datetime) -> str:
    """A moment in the election's zone, with the year: "Wed 1 Dec 2027 17:00 GMT"."""
    return local(election, moment, year=True)


def poll_state(core: Core, now: datetime, rehearsal: str | None) -> str:
    """The poll as organisers name it: rehearsal, not open yet, open or closed."""
    election = core.election
    if rehearsal is not None and now < election.opens:
        return "rehearsal"
    if rehearsal is not None:
        return "rehearsal not finalised"
    if now < election.opens:
        return "not open yet"
    if now >= election.closes:
        return "closed"
    return "open"


def refusal(err: Exception) -> str:
    """A refusal from the core, as a console page says it: a sentence."""
    text = str(err)
    return text[:1].upper() + text[1:] + "."
