"""Results: the count for organisers after the unseal, publishing it, and the public page.

Until an organiser publishes, nobody outside the console can see a result:
``/results/ID`` answers 404.  Publishing stores the count as it was (its JSON
report and its pictures) with who published it and when, and audits it.  It
happens once: publishing again is refused (and audited), so the first
publication's time and publisher stand, until an organiser unpublishes
(audited too), after which ``/results/ID`` answers 404 again.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from ballots import keys
from ballots.count.college import percent
from ballots.count.model import CountError
from ballots.count.result import Result
from ballots.count.svg import bars, bars_narrow, colours, from_report, sankey, sankey_narrow
from ballots.turnout import turnout
from bot import results
from bot.count_report import render_text
from channels.web.guard import prefix_of, results_headers, session_of
from channels.web.render import core_of, page, refusal, when

#: The downloads the public page offers, and how each is made.


async def _count(request: web.Request) -> Result | None:
    """The count of the unsealed ballots (None before the unseal)."""
    core = core_of(request)
    return await results.counted(core.redis, core.election)


#: What a page reads of a publication: never the recount's files (``file:*``), which can be
#: tens of megabytes; a download reads its one file.
_SHOWN = ("at", "by", "report", "sankey", "bars", "files")


async def _published(request: web.Request) -> dict[str, str] | None:
    core = core_of(request)
    found = await core.redis.hmget(keys.published(core.election.id), list(_SHOWN))
    if found[0] is None:
        return None
    return {
        name: str(value) for name, value in zip(_SHOWN, found, strict=True) if value is not None
    }


async def results_page(request: web.Request) -> web.StreamResponse:
    """GET /organisers/results: the count once unsealed, and the publish (or unpublish) button."""
    return await _results_page(request)


async def _results_page(
    request: web.Request, *, status: int = 200, problems: list[str] | None = None
) -> web.StreamResponse:
    core = core_of(request)
    closed = core.clock.now() >= core.election.closes
    problems = list(problems or [])
    try:
        result = await _count(request) if closed else None
    except CountError as err:  # a section of an electoral college too small to count
        result = None
        problems.append(refusal(err))
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
        sankey_narrow=sankey_narrow(result) if result else "",
        bars_narrow=bars_narrow(result) if result else "",
        published=await _published(request),
        parse_time=datetime.fromisoformat,
        problems=problems,
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
    """GET /results/{election}: the published count, for anyone.

    The pictures stored at publication are the wide ones; the narrow ones a phone shows
    (``ballots.count.svg``) are drawn here from the report stored with them, so both show the
    same count.  Turnout is read now: counts only, never who voted."""
    core = core_of(request)
    published = await _public(request)
    report: dict[str, Any] = json.loads(published["report"])
    names: dict[str, str] = report["candidates"]
    palette = colours(names)
    weighted = "sections" in report
    # An electoral college's votes are exact shares of the whole: shown as percentages.
    shown = "percent" if weighted else "tallies"
    fate = _fates(report)
    rows = [
        {
            "name": name,
            "colour": palette[cid],
            "votes": [_shown(r[shown].get(cid), weighted) for r in report["rounds"]],
            "elected": cid in report["winners"],
            "fate": fate.get(cid, ""),
        }
        for cid, name in names.items()
    ]
    sections = [
        {
            "name": section,
            "share": _shown(str(round(float(Fraction(figures["share"])) * 100, 2)), True),
            "ballots": figures["ballots"],
            "rows": [
                {
                    "name": names.get(cid, "Exhausted") if cid else "Exhausted",
                    "papers": [r["by_section"][section].get(cid) for r in report["rounds"]],
                }
                for cid in [*names, ""]
            ],
        }
        for section, figures in report.get("sections", {}).items()
    ]
    drawn = from_report(report)
    figures = await turnout(core.redis, core.election)
    response = aiohttp_jinja2.render_template(
        "public_results.html",
        request,
        {
            "election": core.election,
            "report": report,
            "winners": [names[w] for w in report["winners"]],
            "rows": rows,
            "rounds": report["rounds"],
            "weighted": weighted,
            "sections": sections,
            "exhausted": [
                _shown(r["exhausted_percent" if weighted else "exhausted"], weighted)
                for r in report["rounds"]
            ],
            "transfers": _transfers(report, fate, weighted),
            "turnout": {
                "eligible": f"{figures.eligible:,}",
                "voted": f"{figures.voted:,}",
                "percent": f"{figures.percent:.1f}%",
            },
            "downloads": results.published_files(published),
            "sankey": published["sankey"],
            "bars": published["bars"],
            "sankey_narrow": sankey_narrow(drawn),
            "bars_narrow": bars_narrow(drawn),
            "published_at": when(core.election, datetime.fromisoformat(published["at"])),
        },
    )
    return results_headers(response)


def _shown(value: Any, weighted: bool) -> str:
    """A tally as the page shows it: whole votes as they are, weighted shares as percents."""
    if value is None:
        return ""
    return f"{value}%" if weighted else str(value)


def _fates(report: dict[str, Any]) -> dict[str, str]:
    """Each candidate elected or excluded, in words: ``excluded in round 2``."""
    fate: dict[str, str] = {}
    for r in report["rounds"]:
        for cid in r.get("elected", []):
            fate.setdefault(cid, f"elected in round {r['round']}")
        for cid in r.get("excluded", []):
            fate.setdefault(cid, f"excluded in round {r['round']}")
    return fate


def _moved(value: Any, weighted: bool) -> str:
    """Votes moved by a transfer, as the page shows them (a college's: percent of the whole)."""
    if weighted:
        return percent(Fraction(str(value)))
    return f"{value:,}" if isinstance(value, int) else str(value)


def _transfers(report: dict[str, Any], fate: dict[str, str], weighted: bool) -> dict[str, Any]:
    """The transfers table: a column for each round after the first (saying whose votes
    moved, and why), a row for each candidate and one for Exhausted, each cell the votes
    received (+) or moved away (−) in that round."""
    names: dict[str, str] = report["candidates"]
    columns = []
    cells: dict[str, list[str]] = {cid: [] for cid in [*names, ""]}
    for r in report["rounds"][1:]:
        moves = r.get("transfers", [])
        if not moves:
            continue
        what = []
        got: dict[str, list[str]] = {}
        for t in moves:
            who = names.get(t["from"], t["from"])
            why = fate.get(t["from"], "")
            what.append(
                f"surplus of {who}" + (f", {why}" if why else "")
                if t.get("reason") == "surplus"
                else f"{who}" + (f", {why}" if why else "")
            )
            got.setdefault(t["from"], []).append(f"−{_moved(_sent(t), weighted)}")
            for cid, v in t["to"].items():
                got.setdefault(cid, []).append(f"+{_moved(v, weighted)}")
            if Fraction(str(t["exhausted"])):
                got.setdefault("", []).append(f"+{_moved(t['exhausted'], weighted)}")
        columns.append({"round": r["round"], "from": "; ".join(what)})
        for cid, column in cells.items():
            column.append(", ".join(got.get(cid, [])))
    rows = [{"name": names[cid], "fate": fate.get(cid, ""), "cells": cells[cid]} for cid in names]
    rows.append({"name": "Exhausted", "fate": "", "cells": cells[""]})
    return {"columns": columns, "rows": rows}


def _sent(transfer: dict[str, Any]) -> Any:
    """All a transfer moved: to candidates and to Exhausted (exact, in the report's terms)."""
    values = [*transfer["to"].values(), transfer["exhausted"]]
    if all(isinstance(v, int) for v in values):
        return sum(values)
    if any("/" in str(v) for v in values):
        return sum((Fraction(str(v)) for v in values), Fraction(0))
    return sum((Decimal(str(v)) for v in values), Decimal(0))


_TYPES = {".json": "application/json", ".csv": "text/csv"}


async def download(request: web.Request) -> web.StreamResponse:
    """GET /results/{election}/FILE: a file of the public recount, as stored at publication
    (so its SHA-256 stays what the page says): receipts.txt, and the ballots unless the
    election file keeps them back."""
    core = core_of(request)
    if request.match_info["election"] != core.election.id:
        raise results_headers(web.HTTPNotFound(text="No such election."))
    name = request.match_info["file"]
    text = await core.redis.hget(keys.published(core.election.id), f"file:{name}")
    if text is None:
        if not await core.redis.hexists(keys.published(core.election.id), "at"):
            raise results_headers(
                web.HTTPNotFound(text="No results have been published for this election yet.")
            )
        raise results_headers(web.HTTPNotFound(text="No such file."))
    suffix = name[name.rfind(".") :]
    response = web.Response(
        text=str(text),
        content_type=_TYPES.get(suffix, "text/plain"),
        headers={"Content-Disposition": f'attachment; filename="{core.election.id}-{name}"'},
    )
    return results_headers(response)
