"""Results: the count for organisers after the unseal, publishing it, and the public page.

Until an organiser publishes, nobody outside the console can see a result:
``/results/ID`` answers 404.  Publishing stores the count as it was (its JSON
report and its pictures) with who published it and when, and audits it.  It
happens once: publishing again is refused (and audited), so the first
publication's time and publisher stand, until an organiser unpublishes
(audited too), after which ``/results/ID`` answers 404 again.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from ballots import keys
from ballots.count.formats import check_writable, write_ballots
from ballots.count.model import CountError
from ballots.count.redis_source import read_ballots
from ballots.count.report import render_text
from ballots.count.result import Result
from ballots.count.svg import bars, colours, sankey
from ballots.receipts import all_receipts
from bot import results
from channels.web.guard import prefix_of, results_headers, session_of
from channels.web.render import core_of, page, refusal, when

#: The downloads the public page offers, and how each is made.
DOWNLOADS = {"ballots.blt": "blt", "ballots.soi": "preflib"}


async def _count(request: web.Request) -> Result | None:
    """The count of the unsealed ballots (None before the unseal)."""
    core = core_of(request)
    return await results.counted(core.redis, core.election)


async def _published(request: web.Request) -> dict[str, str] | None:
    core = core_of(request)
    found = await core.redis.hgetall(keys.published(core.election.id))
    return {str(k): str(v) for k, v in found.items()} or None


async def results_page(request: web.Request) -> web.StreamResponse:
    """GET /organisers/results: the count once unsealed, and the publish (or unpublish) button."""
    return await _results_page(request)


async def _results_page(
    request: web.Request, *, status: int = 200, problems: list[str] | None = None
) -> web.StreamResponse:
    core = core_of(request)
    closed = core.clock.now() >= core.election.closes
    result = await _count(request) if closed else None
    return page(
        request,
        "results.html",
        status=status,
        nav="results",
        closed=closed,
        result=result,
        report=render_text(result) if result else "",
        sankey=sankey(result) if result else "",
        bars=bars(result) if result else "",
        published=await _published(request),
        parse_time=datetime.fromisoformat,
        problems=problems or [],
    )


async def publish(request: web.Request) -> web.StreamResponse:
    """POST /organisers/results/publish: make the count public, as it stands now, unless it
    is already."""
    core = core_of(request)
    session = session_of(request)
    if (await request.post()).get("confirm") != "yes":
        raise web.HTTPSeeOther(
            f"{prefix_of(request)}/results/publish"
        )  # the page that says what it does
    try:
        await results.publish(
            core.redis, core.election, core.clock, session.actor, factor=session.factor
        )
    except results.NothingToPublish as err:
        raise web.HTTPConflict(text=refusal(err)) from err
    except results.ResultsRefused as err:
        return await _results_page(request, status=409, problems=[refusal(err)])
    raise web.HTTPSeeOther(f"{prefix_of(request)}/results")


async def unpublish(request: web.Request) -> web.StreamResponse:
    """POST /organisers/results/unpublish: take the published results down: ``/results/ID``
    and its downloads answer 404 again."""
    core = core_of(request)
    session = session_of(request)
    try:
        await results.unpublish(
            core.redis, core.election, core.clock, session.actor, factor=session.factor
        )
    except results.ResultsRefused as err:
        return await _results_page(request, status=409, problems=[refusal(err)])
    raise web.HTTPSeeOther(f"{prefix_of(request)}/results")


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
