"""Reminders from the console: compose, dry run, send; pause, resume, cancel; in doubt.

The same job code as ``openprimary remind`` and the chat's REMIND: the plan
is :func:`bot.reminders.plan`, the job :class:`bot.reminders.Reminders`, and
this process sends it (``OrganiserCommands.start_reminder``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ballots import keys
from ballots.languages import SHIPPED
from ballots.quiet import local
from bot.organiser import OrganiserCommands
from bot.reminders import (
    CHANNELS,
    FIELDS,
    MAX_SMS_SEGMENTS,
    Plan,
    ReminderError,
    Reminders,
    after_the_close,
    finishes,
    plan,
)
from bot.reminders.text import rendered
from channels.web.guard import prefix_of, session_of
from channels.web.render import core_of, page

#: What one SMS segment is assumed to cost in the dry run, unless the organiser says.
DEFAULT_PRICE = 0.04
#: Jobs the reminders page lists, newest first.
JOBS_SHOWN = 20
#: The controls a job offers in each status (a finished or cancelled job: none).
ACTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "preparing": (("cancel", "Cancel"),),
    "running": (("pause", "Pause"), ("cancel", "Cancel")),
    "paused": (("resume", "Resume"), ("cancel", "Cancel")),
}


def _organisers(request: web.Request) -> OrganiserCommands:
    organisers = core_of(request).organisers
    if organisers is None:
        raise web.HTTPServiceUnavailable(text="reminders are not available in this process")
    return organisers


async def _jobs(request: web.Request) -> list[Any]:
    core = core_of(request)
    reminders = Reminders(core.redis, core.clock)
    ids = await core.redis.zrange(keys.reminder_jobs(core.election.id), 0, -1)
    return [await reminders.status(str(j)) for j in reversed(ids[-JOBS_SHOWN:])]


async def _page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    """The reminders page: the composer (with ``context``) and the jobs so far."""
    context.setdefault("price", DEFAULT_PRICE)
    core = core_of(request)
    election = core.election
    return page(
        request,
        "reminders.html",
        status=status,
        jobs=await _jobs(request),
        nav="reminders",
        fields=FIELDS,
        languages=[SHIPPED[code] for code in election.languages],
        shipped=SHIPPED,
        currency=core.settings.currency,
        actions=ACTIONS,
        **context,
    )


@dataclass(frozen=True)
class Sample:
    """How a reminder reads in one of the election's languages, on one channel."""

    language: str
    channel: str
    #: The language whose version it is: another when the template has none in ``language``.
    written_in: str
    text: str
    #: SMS segments (1 on Telegram).
    parts: int


def _samples(request: web.Request, ready: Plan) -> list[Sample]:
    """The reminder in each of the election's languages, on each channel it goes by (with
    the word for "supporter" where a name goes)."""
    core = core_of(request)
    election = core.election
    rules = _organisers(request).rules
    now = core.clock.now()
    channels = [ch for ch in CHANNELS if ready.count(ch)] or (
        list(CHANNELS) if ready.channel == "all" else [ready.channel]
    )
    return [
        Sample(
            code,
            ch,
            one.language,
            one.body,
            one.parts if ch == "sms" else 1,
        )
        for code in election.languages
        for ch in channels
        for one in [rendered(ready.template, election, "", code, now, rules[ch], MAX_SMS_SEGMENTS)]
    ]


async def reminders_page(request: web.Request) -> web.StreamResponse:
    """GET /organisers/reminders: compose one; the jobs so far."""
    return await _page(request)


def _form_fields(form: Any) -> tuple[str, str, float, list[str]]:
    template = str(form.get("template", "")).replace("\r\n", "\n").strip()
    channel = str(form.get("channel", "all"))
    problems = []
    if not template:
        problems.append("Write the reminder's text.")
    if channel not in (*CHANNELS, "all"):
        problems.append("Choose SMS, Telegram or both.")
    try:
        price = float(str(form.get("price", DEFAULT_PRICE)) or DEFAULT_PRICE)
        if price < 0:
            raise ValueError
    except ValueError:
        price = DEFAULT_PRICE
        problems.append("The price per SMS segment must be a number, 0 or more.")
    return template, channel, price, problems


async def dry_run(request: web.Request) -> web.StreamResponse:
    """POST /organisers/reminders/dry-run: who it would reach, what it would cost, how it reads."""
    core = core_of(request)
    template, channel, price, problems = _form_fields(await request.post())
    ready = None
    if not problems:
        ready = await plan(
            core.redis,
            core.election,
            template,
            channel,
            rules=_organisers(request).rules,
            clock=core.clock,
        )
        problems = list(ready.problems)
    finish = late = None
    if ready is not None:
        settings = core.settings
        rates = {"sms": settings.sms_rate, "telegram": settings.telegram_rate}
        at = finishes(ready, core.election, rates, core.clock.now())
        finish, late = local(core.election, at), after_the_close(ready, core.election, at)
    return await _page(
        request,
        template=template,
        channel=channel,
        price=price,
        plan=ready,
        finish=finish,
        late=late,
        cost=f"{(ready.sms_segments if ready else 0) * price:,.2f}",
        # Each language's version (one language: the first message of each kind says it).
        samples=_samples(request, ready)
        if ready is not None and not ready.problems and len(core.election.languages) > 1
        else [],
        problems=problems,
        status=400 if problems else 200,
    )


async def send(request: web.Request) -> web.StreamResponse:
    """POST /organisers/reminders/send: start the job; this process sends it."""
    template, channel, price, problems = _form_fields(await request.post())
    session = session_of(request)
    if not problems:
        try:
            job, _, missing = await _organisers(request).start_reminder(
                session.actor, template, channel, factor=session.factor
            )
        except ReminderError as err:
            problems = [str(err)]
        else:
            where = f"{prefix_of(request)}/reminders/{job}"
            raise web.HTTPSeeOther(where + ("?elsewhere=" + ",".join(missing) if missing else ""))
    return await _page(
        request, template=template, channel=channel, price=price, problems=problems, status=400
    )


async def _status(request: web.Request) -> Any:
    core = core_of(request)
    job = request.match_info["job"]
    try:
        status = await Reminders(core.redis, core.clock).status(job)
    except ReminderError as err:
        raise web.HTTPNotFound(text=str(err)) from err
    if status.election != core.election.id:
        raise web.HTTPNotFound(text=f"no job {job} in this election")
    return status


async def job_page(request: web.Request) -> web.StreamResponse:
    """GET /organisers/reminders/{job}: its progress (live), controls, and those in doubt."""
    core = core_of(request)
    status = await _status(request)
    doubt = await Reminders(core.redis, core.clock).in_doubt(status.job)
    elsewhere = request.query.get("elsewhere", "")
    return page(
        request,
        "job.html",
        job=status,
        doubt=doubt,
        elsewhere=elsewhere,
        actions=ACTIONS.get(status.status, ()),
        nav="reminders",
    )


async def job_json(request: web.Request) -> web.StreamResponse:
    """GET /organisers/reminders/{job}/progress.json: what the job page polls for."""
    status = await _status(request)
    shown = status.to_dict()
    shown["summary"] = status.summary()
    return web.json_response(shown)


async def job_action(request: web.Request) -> web.StreamResponse:
    """POST /organisers/reminders/{job}/{pause,resume,cancel}."""
    core = core_of(request)
    status = await _status(request)
    session = session_of(request)
    reminders = Reminders(core.redis, core.clock)
    action = request.match_info["action"]
    try:
        if action == "pause":
            await reminders.pause(status.job, session.actor, factor=session.factor)
        elif action == "cancel":
            await reminders.cancel(status.job, session.actor, factor=session.factor)
        elif action == "resume":
            after = await reminders.resume(status.job, session.actor, factor=session.factor)
            if after.status == "running":
                _organisers(request).run_in_background(status.job)
        else:
            raise web.HTTPNotFound(text=f"no action {action!r}")
    except ReminderError as err:
        doubt = await reminders.in_doubt(status.job)
        now = await reminders.status(status.job)
        return page(
            request,
            "job.html",
            job=now,
            doubt=doubt,
            actions=ACTIONS.get(now.status, ()),
            problems=[str(err)],
            nav="reminders",
            status=409,
        )
    raise web.HTTPSeeOther(f"{prefix_of(request)}/reminders/{status.job}")
