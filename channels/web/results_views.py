"""Results: the count for organisers after the unseal, publishing it, and the public page.

Until an organiser publishes, nobody outside the console can see a result:
``/results/ID`` answers 404.  Publishing stores the count as it was (its JSON
report and its pictures) with who published it, and audits it.
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from ballots import keys
from ballots.count import count
from ballots.count.formats import check_writable, write_ballots
from ballots.count.model import CountError
from ballots.count.redis_source import read_ballots
from ballots.count.report import render_text, to_json
from ballots.count.result import Result
from ballots.count.svg import bars, colours, sankey
from ballots.receipts import all_receipts
from ballots.unseal import unsealed_at
from channels.web.guard import PREFIX, results_headers, session_of
from channels.web.render import audited, core_of, page, when

#: The downloads the public page offers, and how each is made.
DOWNLOADS = {"ballots.blt": "blt", "ballots.soi": "preflib"}


async def _count(request: web.Request) -> Result | None:
    """The count of the unsealed ballots (None before the unseal)."""
    core = core_of(request)
    election = core.election
    if await unsealed_at(core.redis, election) is None:
        return None
    ballots = await read_ballots(core.redis, election)
    return await asyncio.to_thread(count, ballots, election.method, seats=election.seats)


async def _published(request: web.Request) -> dict[str, str] | None:
    core = core_of(request)
    found = await core.redis.hgetall(keys.published(core.election.id))
    return {str(k): str(v) for k, v in found.items()} or None


async def results_page(request: web.Request) -> web.StreamResponse:
    """GET /organisers/results: the count once unsealed, and the publish button."""
    core = core_of(request)
    closed = core.clock.now() >= core.election.closes
    result = await _count(request) if closed else None
    return page(
        request,
        "results.html",
        nav="results",
        closed=closed,
        result=result,
        report=render_text(result) if result else "",
        sankey=sankey(result) if result else "",
        bars=bars(result) if result else "",
        published=await _published(request),
    )


async def publish(request: web.Request) -> web.StreamResponse:
    """POST /organisers/results/publish: make the count public, as it stands now."""
    core = core_of(request)
    result = await _count(request)
    if result is None:
        raise web.HTTPConflict(text="There is nothing to publish until the trustees unseal.")
    session = session_of(request)
    now = core.clock.now()
    await core.redis.hset(
        keys.published(core.election.id),
        mapping={
            "at": now.isoformat(timespec="seconds"),
            "by": session.actor,
            "report": json.dumps(to_json(result)),
            "sankey": sankey(result),
            "bars": bars(result),
        },
    )
    await audited(
        request,
        "results published",
        winners=list(result.winners),
        ballots=result.ballots,
    )
    raise web.HTTPSeeOther(f"{PREFIX}/results")


async def _public(request: web.Request) -> dict[str, str]:
    """The published results of the election in the path, or 404."""
    core = core_of(request)
    if request.match_info["election"] != core.election.id:
        raise results_headers(web.HTTPNotFound(text="No such election."))
    published = await _published(request)
    if published is None:
        raise results_headers(
            web.HTTPNotFound(text="No results have been published for this election yet.")
        )
    return published


async def public_results(request: web.Request) -> web.StreamResponse:
    """GET /results/{election}: the published count, for anyone."""
    core = core_of(request)
    published = await _public(request)
    report: dict[str, Any] = json.loads(published["report"])
    names: dict[str, str] = report["candidates"]
    palette = colours(names)
    rows = [
        {
            "name": name,
            "colour": palette[cid],
            "votes": [r["tallies"].get(cid) for r in report["rounds"]],
            "elected": cid in report["winners"],
        }
        for cid, name in names.items()
    ]
    response = aiohttp_jinja2.render_template(
        "public_results.html",
        request,
        {
            "election": core.election,
            "report": report,
            "winners": [names[w] for w in report["winners"]],
            "rows": rows,
            "rounds": report["rounds"],
            "sankey": published["sankey"],
            "bars": published["bars"],
            "published_at": when(core.election, datetime.fromisoformat(published["at"])),
        },
    )
    return results_headers(response)


async def download(request: web.Request) -> web.StreamResponse:
    """GET /results/{election}/ballots.blt|ballots.soi|receipts.txt, once published."""
    core = core_of(request)
    await _public(request)
    name = request.match_info["file"]
    if name == "receipts.txt":
        body = "".join(f"{r}\n" for r in await all_receipts(core.redis, core.election))
        return results_headers(web.Response(text=body, content_type="text/plain"))
    fmt = DOWNLOADS.get(name)
    if fmt is None:
        raise results_headers(web.HTTPNotFound(text="No such file."))
    ballots = await read_ballots(core.redis, core.election)
    try:
        check_writable(ballots, fmt)
    except CountError as err:
        raise results_headers(web.HTTPConflict(text=f"This file cannot be made: {err}")) from err
    out = io.StringIO()
    write_ballots(ballots, fmt, out, core.election.seats)
    response = web.Response(
        text=out.getvalue(),
        content_type="text/plain",
        headers={"Content-Disposition": f'attachment; filename="{core.election.id}-{name}"'},
    )
    return results_headers(response)
