"""Closing, extending and publishing from the console, each behind a page that says what will
happen: the same rules and audit entries as the command line (``bot.window``, ``bot.results``).
A POST without the confirmation page's ``confirm`` changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from ballots.election import Election, get_election
from bot import window
from channels.web.guard import prefix_of, session_of
from channels.web.render import core_of, page, refusal, when


@dataclass(frozen=True)
class Field:
    """One input on a confirmation page."""

    name: str
    label: str
    kind: str = "text"
    value: str = ""
    hint: str = ""
    required: bool = False


def _local_input(request: web.Request, moment: datetime) -> str:
    """A moment as a ``datetime-local`` input shows it: in the election's zone."""
    election = core_of(request).election
    return moment.astimezone(ZoneInfo(election.timezone)).strftime("%Y-%m-%dT%H:%M")


def _confirm(request: web.Request, status: int = 200, **context: object) -> web.Response:
    return page(request, "confirm.html", status=status, nav="election", **context)


async def close_page(request: web.Request, problems: list[str] | None = None) -> web.Response:
    """GET /organisers/close: what closing does, and when (now, or earlier than planned)."""
    election = core_of(request).election
    return _confirm(
        request,
        status=409 if problems else 200,
        problems=problems or [],
        heading="Close voting",
        what=[
            "Voting closes now (or at the time you give, before "
            f"{when(election, election.closes)}, when it was to close), for everyone, by SMS "
            "and Telegram.",
            "A voter who has not cast by then cannot: the ballot box refuses every ballot after "
            "the close, and every server follows within a second.",
            "It can be undone only by extending the poll, which reopens voting.",
            "The audit trail records the change and that you made it.",
        ],
        action="/close",
        back="/",
        fields=[
            Field(
                "at",
                "Close at (leave empty to close now)",
                "datetime-local",
                hint=f"in the election's time zone, {election.timezone}",
            )
        ],
        button="Close voting",
    )


async def close(request: web.Request) -> web.StreamResponse:
    """POST /organisers/close."""
    core = core_of(request)
    form = await request.post()
    if form.get("confirm") != "yes":
        return await close_page(request, ["Confirm on this page first."])
    session = session_of(request)
    try:
        at_text = str(form.get("at", "")).strip()
        at = window.parse_time(at_text, core.election, core.clock) if at_text else None
        await window.close(
            core.redis, core.election, core.clock, session.actor, at, factor=session.factor
        )
    except window.WindowRefused as err:
        return await close_page(request, [refusal(err)])
    core.follow(await _stored(request))
    raise web.HTTPSeeOther(f"{prefix_of(request)}/")


async def extend_page(request: web.Request, problems: list[str] | None = None) -> web.Response:
    """GET /organisers/extend: a later close, reopening voting if it has closed."""
    core = core_of(request)
    election = core.election
    closed = core.clock.now() >= election.closes
    fields = [
        Field(
            "closes",
            "Close at",
            "datetime-local",
            _local_input(request, election.closes),
            f"in the election's time zone, {election.timezone}",
            required=True,
        )
    ]
    if closed:
        fields.append(Field("reopen", "Voting has closed: reopen it until then", "checkbox"))
    return _confirm(
        request,
        status=409 if problems else 200,
        problems=problems or [],
        heading="Extend voting",
        what=[
            "Voting closes at the later time you give instead of "
            f"{when(election, election.closes)}.",
            *(
                ["Voting has closed: extending reopens it, and supporters can vote again."]
                if closed
                else []
            ),
            "Every server follows within a second. Once the trustees have begun to unseal, "
            "the poll cannot be extended.",
            "The audit trail records the change and that you made it.",
        ],
        action="/extend",
        back="/",
        fields=fields,
        button="Extend voting",
    )


async def extend(request: web.Request) -> web.StreamResponse:
    """POST /organisers/extend."""
    core = core_of(request)
    form = await request.post()
    if form.get("confirm") != "yes":
        return await extend_page(request, ["Confirm on this page first."])
    session = session_of(request)
    try:
        closes = window.parse_time(str(form.get("closes", "")), core.election, core.clock)
        await window.extend(
            core.redis,
            core.election,
            closes,
            core.clock,
            session.actor,
            reopen=form.get("reopen") == "yes",
            factor=session.factor,
        )
    except window.WindowRefused as err:
        return await extend_page(request, [refusal(err)])
    core.follow(await _stored(request))
    raise web.HTTPSeeOther(f"{prefix_of(request)}/")


async def publish_page(request: web.Request) -> web.Response:
    """GET /organisers/results/publish: what publishing does."""
    election = core_of(request).election
    return _confirm(
        request,
        heading="Publish the results",
        what=[
            f"Anyone can then read the count at /results/{election.id}: the winners, the "
            "rounds, the transfers, and the ballots (anonymised) and receipts to download.",
            "The publication stands as it is, with its time and your name, until an organiser "
            "unpublishes it.",
            "The audit trail records it.",
        ],
        action="/results/publish",
        back="/results",
        fields=[],
        button="Publish the results now",
    )


async def _stored(request: web.Request) -> Election:
    """The election as just saved: this process follows it at once (the others within a
    second)."""
    core = core_of(request)
    return await get_election(core.redis, core.election.id)
