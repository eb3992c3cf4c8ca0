"""The election page: the poll's state and what to do next, turnout (live), settings and
alerts.

The status panel says, for each thing an election needs, whether it is there and, when it
is not, what to do about it (a command to run, a page to open): the count key, a rehearsal,
the voting codes, the SMS spent against the budget, the reminders under way.  Below the
poll's times, the next step: when voting closes, or once it has closed, unsealing, publishing
and the public page.  Counts only: never a code, nor who voted how.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from ballots import audit, keys
from ballots.program import program
from ballots.quiet import describe
from ballots.roll import roll_size
from ballots.trustees import load_count_key
from ballots.turnout import turnout
from ballots.unseal import unsealed_at
from bot import rehearsal
from bot.reminders import JobStatus, Reminders
from channels.sandbox import SANDBOX
from channels.web.charts import hourly
from channels.web.guard import prefix_of
from channels.web.render import core_of, page, poll_state, when

#: How many recent alerts the page lists.
ALERTS_SHOWN = 10
#: Reminder jobs the status panel looks through, newest first.
JOBS_LOOKED_AT = 20
#: A job in one of these is under way: the panel shows its progress.
UNDER_WAY = ("preparing", "running", "paused")
#: The share of the SMS budget past which the panel warns (as ``bot.spend`` alerts).
SMS_NEAR = 0.8


@dataclass(frozen=True)
class Line:
    """One line of the status panel: what it is about, how it stands, and what to do.

    ``mark`` says in words (never colour alone) whether anything is to be done: ``ok``,
    ``todo`` or ``info``.  The advice reads "``todo`` ``command`` ``after``", then a link.
    """

    key: str
    label: str
    mark: str
    state: str
    todo: str = ""
    command: str = ""
    after: str = ""
    link: str = ""
    link_text: str = ""
    #: A job's progress: (done, total).
    progress: tuple[int, int] | None = None


@dataclass(frozen=True)
class NextStep:
    """What comes next for the poll as a whole, with its command or page: it reads
    ``text``, ``command``, the link, then ``after`` (which brings its own space)."""

    key: str
    text: str
    command: str = ""
    after: str = ""
    link: str = ""
    link_text: str = ""


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


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0.0%"


async def _count_key_line(request: web.Request, now: datetime) -> Line:
    core = core_of(request)
    eid = core.election.id
    key = await load_count_key(core.redis, eid)
    if key is not None:
        return Line("count-key", "Count key", "ok", f"made (key {key.id}); the trustees hold it")
    return Line(
        "count-key",
        "Count key",
        "todo",
        "No count key yet",
        todo="the trustees make it with",
        command=f"{program()} trustees init --election {eid} --shares N --threshold K --out DIR",
        after=(
            "(voting cannot open without it)"
            if now < core.election.opens
            else "(no ballot can be cast until it is made)"
        ),
    )


async def _rehearsal_line(request: web.Request, now: datetime) -> Line:
    core = core_of(request)
    eid = core.election.id
    testing = await rehearsal.state(core.redis, eid)
    finalise = f"{program()} election finalise --election {eid}"
    opened = now >= core.election.opens
    if testing is None and not opened:
        return Line(
            "rehearsal",
            "Rehearsal",
            "info",
            "none under way",
            todo="to try the poll with a few testers before it opens, run",
            command=f"{program()} election rehearse --election {eid} --testers FILE",
        )
    if testing is None:
        return Line("rehearsal", "Rehearsal", "ok", "none under way")
    if testing == rehearsal.RUNNING:
        testers = int(await core.redis.scard(keys.rehearsal_testers(eid)))
        if opened:
            return Line(
                "rehearsal",
                "Rehearsal",
                "todo",
                f"still under way for {testers} testers, and voting has opened: only they "
                "can vote until it is finalised",
                todo="finalise it now:",
                command=finalise,
            )
        return Line(
            "rehearsal",
            "Rehearsal",
            "todo",
            f"under way for {testers} testers",
            todo="when they have tried it, and before voting opens, run",
            command=finalise,
            after="(it wipes the testers' ballots and puts everything back)",
        )
    return Line(
        "rehearsal",
        "Rehearsal",
        "todo",
        f"{testing}",
        todo="if this has not changed within a minute, run",
        command=finalise,
        after="(it is safe to run again)",
    )


async def _codes_line(request: web.Request, now: datetime) -> Line:
    core = core_of(request)
    election = core.election
    if "code" not in election.identity:
        return Line(
            "codes",
            "Voting codes",
            "ok",
            "this election does not use them (identity: " + ", ".join(election.identity) + ")",
        )
    # The code index holds one entry (a keyed hash) per supporter given a code: a count.
    issued = int(await core.redis.hlen(keys.code_index(election.id)))
    on_roll = await roll_size(core.redis, election)
    roll_page = f"{prefix_of(request)}/roll"
    if not on_roll:
        return Line(
            "codes",
            "Voting codes",
            "todo",
            "no roll yet, so no codes",
            todo="run",
            command=f"{program()} roll import FILE --election {election.id}",
            after="or upload it on",
            link=roll_page,
            link_text="the roll page",
        )
    shown = min(issued, on_roll)
    state = f"{shown:,} of {on_roll:,} supporters on the roll have been given one"
    if issued == 0:
        return Line(
            "codes",
            "Voting codes",
            "todo",
            "none issued yet",
            todo="run",
            command=f"{program()} codes issue --election {election.id} --out FILE",
            after=(
                "or download a codes file for a mail merge on"
                if now < election.opens
                else "(a mail-merge file: every supporter gets a code)"
            ),
            link=roll_page if now < election.opens else "",
            link_text="the roll page" if now < election.opens else "",
        )
    if issued < on_roll:
        return Line(
            "codes",
            "Voting codes",
            "info",
            state,
            todo="to give one supporter a new code, look them up on",
            link=roll_page,
            link_text="the roll page",
        )
    return Line("codes", "Voting codes", "ok", state)


async def _sms_line(request: web.Request) -> Line:
    core = core_of(request)
    spent = int(await core.redis.get(keys.sms_segments(core.election.id)) or 0)
    budget = core.settings.sms_budget_segments
    setting = "OPENPRIMARY_SMS_BUDGET_SEGMENTS"
    if not budget:
        return Line(
            "sms",
            "SMS segments spent",
            "info",
            f"{spent:,}, no budget set",
            todo="to cap what the poll's SMS can cost, set",
            command=setting,
            after="and restart the server",
        )
    state = f"{spent:,} of {budget:,} ({_percent(spent, budget)})"
    if spent >= budget:
        return Line(
            "sms",
            "SMS segments spent",
            "todo",
            state + ": the budget is spent, so reminders stop and no new code SMS go",
            todo="to allow more, raise",
            command=setting,
            after="and restart the server",
        )
    if spent >= SMS_NEAR * budget:
        return Line(
            "sms",
            "SMS segments spent",
            "todo",
            state + ": near the budget",
            todo="if the poll needs more, raise",
            command=setting,
            after="and restart the server",
        )
    return Line("sms", "SMS segments spent", "ok", state)


async def _reminder_lines(request: web.Request, now: datetime) -> list[Line]:
    core = core_of(request)
    eid = core.election.id
    reminders = Reminders(core.redis, core.clock)
    ids = await core.redis.zrange(keys.reminder_jobs(eid), -JOBS_LOOKED_AT, -1)
    jobs: list[JobStatus] = [await reminders.status(str(j)) for j in reversed(ids)]
    lines = []
    for job in jobs:
        if job.status not in UNDER_WAY:
            continue
        lines.append(
            Line(
                "reminder",
                "Reminder",
                "todo" if job.status == "paused" else "info",
                f"job {job.job} {job.status}: {job.done:,} of {job.total:,} done "
                f"({_percent(job.done, job.total)})",
                todo="resume or cancel it on" if job.status == "paused" else "follow it on",
                link=f"{prefix_of(request)}/reminders/{job.job}",
                link_text="its page",
                progress=(job.done, job.total),
            )
        )
    if lines:
        return lines
    open_now = core.election.opens <= now < core.election.closes
    return [
        Line(
            "reminder",
            "Reminders",
            "info",
            "none under way",
            todo="to remind the supporters who have not voted," if open_now else "",
            link=f"{prefix_of(request)}/reminders" if open_now else "",
            link_text="write a reminder" if open_now else "",
        )
    ]


async def status_panel(request: web.Request) -> list[Line]:
    """Each line of the status panel, in the order an election needs them."""
    now = core_of(request).clock.now()
    return [
        await _count_key_line(request, now),
        await _rehearsal_line(request, now),
        await _codes_line(request, now),
        await _sms_line(request),
        *await _reminder_lines(request, now),
    ]


async def next_step(request: web.Request) -> NextStep:
    """What comes next: when voting opens or closes; after the close, unseal, then publish,
    then the public page."""
    core = core_of(request)
    election = core.election
    now = core.clock.now()
    if now < election.opens:
        return NextStep(
            "before-open",
            f"Voting opens {when(election, election.opens)} ({_in(election.opens - now)}) and "
            f"closes {when(election, election.closes)}.",
        )
    if now < election.closes:
        return NextStep(
            "open",
            f"Voting closes {when(election, election.closes)} ({_in(election.closes - now)}).",
        )
    closed = f"Voting closed {when(election, election.closes)}."
    # When and by whom only: the publication also holds its files, which can be large.
    at, by = (
        str(v) if v is not None else ""
        for v in await core.redis.hmget(keys.published(election.id), ["at", "by"])
    )
    if at:
        return NextStep(
            "published",
            f"{closed} The results were published "
            f"{when(election, datetime.fromisoformat(at))} by {by or 'an organiser'}: "
            "anyone can see them on",
            link=f"/results/{election.id}",
            link_text="the public page",
            after=f" (/results/{election.id}).",
        )
    unsealed = await unsealed_at(core.redis, election)
    if unsealed is not None:
        return NextStep(
            "unsealed",
            f"{closed} The trustees unsealed the ballots {when(election, unsealed)}. Next:",
            link=f"{prefix_of(request)}/results",
            link_text="check the count and publish it",
            after=".",
        )
    if await load_count_key(core.redis, election.id) is None:
        return NextStep(
            "no-count-key",
            f"{closed} The election has no count key, so there are no sealed ballots to unseal.",
        )
    if SANDBOX in request.config_dict:
        return NextStep(
            "sealed",
            f"{closed} Next:",
            link=f"{prefix_of(request)}/sandbox/unseal",
            link_text="unseal with the sandbox trustees' shares",
            after=" (in a real election the trustees do it with their shares: "
            f"{program()} unseal); then publish the count on the Results page.",
        )
    return NextStep(
        "sealed",
        f"{closed} Next: unseal with the trustees' shares:",
        command=f"{program()} unseal --election {election.id} --share FILE --share FILE",
        after=(
            " (one --share for each trustee's share file, as many as the threshold); then "
            "publish the count on the Results page."
        ),
    )


def _in(left: timedelta) -> str:
    """How long until a moment, roughly, as people say it: "in 3 days", "in 5 hours"."""
    minutes = max(int(left.total_seconds() // 60), 0)
    for size, unit in ((24 * 60, "day"), (60, "hour"), (1, "minute")):
        if minutes >= size:
            n = minutes // size
            return f"in {n} {unit}{'s' if n != 1 else ''}"
    return "in under a minute"


async def election_page(request: web.Request) -> web.StreamResponse:
    """GET /organisers/: the election at a glance, and what to do next."""
    core = core_of(request)
    figures = await _figures(request)
    alerts = await audit.latest_alerts(core.redis, core.election.id, ALERTS_SHOWN)
    return page(
        request,
        "election.html",
        figures=figures,
        alerts=alerts,
        quiet=describe(core.election),
        panel=await status_panel(request),
        next_step=await next_step(request),
        nav="election",
    )


async def turnout_json(request: web.Request) -> web.StreamResponse:
    """GET /organisers/turnout.json: the live figures the election page polls for."""
    return web.json_response(await _figures(request))
