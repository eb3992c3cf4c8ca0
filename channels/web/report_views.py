"""``/organisers/report``: the pilots' report (``bot.pilots``), elections side by side.

Each election has its own console and its own session (``guard.session_cookie``), so the
report shows only elections this browser holds a live session for: by default every one of
them; ``?elections=a,b`` chooses among them.  Naming an election the browser has no session
for is refused with 403, and nothing of any election is shown; the answer is the same
whether or not that election is served here, so it tells nobody which elections exist.
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from bot.core import Core
from bot.pilots import BELOW, FEW, HIDDEN, gather, table
from bot.pilots_svg import charts
from channels.appkeys import DEPLOYMENT
from channels.web.guard import PREFIX, STATIC, session_cookie, signin_for


async def signed_in(request: web.Request) -> dict[str, Core]:
    """The served elections this browser holds a live console session for, by id."""
    found: dict[str, Core] = {}
    for eid, core in sorted(request.config_dict[DEPLOYMENT].cores.items()):
        cookie = request.cookies.get(session_cookie(eid))
        if not cookie:
            continue
        signin = signin_for(request, core)
        session_id = signin.session_id(cookie)
        if session_id and await signin.session(session_id, touch=False) is not None:
            found[eid] = core
    return found


async def report_page(request: web.Request) -> web.StreamResponse:
    """GET /organisers/report?elections=a,b: the elections' figures side by side."""
    mine = await signed_in(request)
    # "a,b" as a link writes it, or one ``elections`` per box ticked on the page's form.
    asked = [
        e.strip()
        for given in request.query.getall("elections", [])
        for e in given.split(",")
        if e.strip()
    ]
    if any(eid not in mine for eid in asked):
        raise web.HTTPForbidden(
            text="The report shows only elections you are signed in to: sign in to each "
            "election's console first."
        )
    ids = list(dict.fromkeys(asked)) or list(mine)
    deployment = request.config_dict[DEPLOYMENT]
    pilots = await gather(deployment.redis, [mine[eid].election for eid in ids])
    return aiohttp_jinja2.render_template(
        "report.html",
        request,
        {
            "static": STATIC,
            "console": PREFIX,
            "election": None,
            "session": None,
            "pilots": pilots,
            "mine": [(eid, core.election.title, eid in ids) for eid, core in mine.items()],
            "rows": table(pilots),
            "charts": charts(pilots),
            "few": FEW,
            "below": BELOW,
            "hidden": HIDDEN,
        },
    )
