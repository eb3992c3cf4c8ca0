"""``/organisers/``: the elections the signed-in organiser organises, each a console of its own.

A browser holds one session per election it has signed in to (``guard.session_cookie``);
the list shows every served election whose organisers include someone it is signed in as,
and nothing of any other.  With no session, one election served sends the browser to its
sign-in; several ask which election (its id, as the organisers were given it).
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from channels.appkeys import DEPLOYMENT
from channels.web.guard import PREFIX, STATIC, session_cookie, signin_for


async def index(request: web.Request) -> web.StreamResponse:
    """GET /organisers/: the signed-in organiser's elections."""
    deployment = request.config_dict[DEPLOYMENT]
    cores = sorted(deployment.cores.values(), key=lambda c: (c.election.title, c.election.id))
    actors: set[str] = set()
    signed_in: set[str] = set()
    for core in cores:
        cookie = request.cookies.get(session_cookie(core.election.id))
        if not cookie:
            continue
        signin = signin_for(request, core)
        session_id = signin.session_id(cookie)
        session = await signin.session(session_id, touch=False) if session_id else None
        if session is not None:
            actors.add(session.actor)
            signed_in.add(core.election.id)
    wanted = request.query.get("election", "").strip()
    if wanted:
        if wanted in deployment.cores:
            raise web.HTTPSeeOther(f"{PREFIX}/{wanted}/")
    elif not actors and len(cores) == 1:
        raise web.HTTPSeeOther(f"{PREFIX}/{cores[0].election.id}/sign-in")
    mine = [c for c in cores if actors & set(signin_for(request, c).actors())]
    response = aiohttp_jinja2.render_template(
        "index.html",
        request,
        {
            "static": STATIC,
            "console": PREFIX,
            "election": None,
            "session": None,
            "elections": [
                {
                    "id": c.election.id,
                    "title": c.election.title,
                    "signed_in": c.election.id in signed_in,
                }
                for c in mine
            ],
            "signed_in_as": sorted(actors),
            "unknown": wanted,
        },
        status=404 if wanted else 200,
    )
    return response


async def to_election(request: web.Request) -> web.StreamResponse:
    """GET /organisers/ID: the election's console, at its own address."""
    raise web.HTTPSeeOther(f"{PREFIX}/{request.match_info['election']}/")
