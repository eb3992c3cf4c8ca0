"""The election page: the poll's state, turnout (live), settings and alerts."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ballots import audit
from ballots.quiet import describe
from ballots.turnout import turnout
from bot import rehearsal
from channels.web.charts import hourly
from channels.web.render import core_of, page, poll_state

#: How many recent alerts the page lists.
ALERTS_SHOWN = 10


async def _figures(request: web.Request) -> dict[str, Any]:
    core = core_of(request)
    now = core.clock.now()
    counted = await turnout(core.redis, core.election)
    testing = await rehearsal.state(core.redis, core.election.id)
    return {
        "state": poll_state(core, now, testing),
        "eligible": counted.eligible,
        "voted": counted.voted,
        "percent": f"{counted.percent:.1f}",
        "by_channel": dict(sorted(counted.by_channel.items())),
        # An electoral college: each section's voted of eligible, in the file's order.
        "by_section": {
            name: _of(counted.by_section.get(name, 0), counted.eligible_by_section.get(name, 0))
            for name in core.election.section_names
        },
        "chart": hourly(core.election, counted.by_hour, now),
    }


def _of(voted: int, eligible: int) -> str:
    percent = f" ({100 * voted / eligible:.1f}%)" if eligible else ""
    return f"{voted} of {eligible}{percent}"


async def election_page(request: web.Request) -> web.StreamResponse:
    """GET /organisers/: the election at a glance."""
    core = core_of(request)
    figures = await _figures(request)
    alerts = await audit.latest_alerts(core.redis, core.election.id, ALERTS_SHOWN)
    return page(
        request,
        "election.html",
        figures=figures,
        alerts=alerts,
        quiet=describe(core.election),
        nav="election",
    )


async def turnout_json(request: web.Request) -> web.StreamResponse:
    """GET /organisers/turnout.json: the live figures the election page polls for."""
    return web.json_response(await _figures(request))
