"""What the console has in a sandbox only: the phone simulator, and unsealing with the
trustees' shares the sandbox made.

``openprimary sandbox`` plugs a :class:`~channels.sandbox.Sandbox` into the app; these routes
exist only then (:func:`add_routes`), so outside a sandbox every one of them answers 404.  They
sit behind the console's guard like every other page: a signed-in organiser of the election,
and a CSRF token on every form.

**The phone simulator** (``/organisers/ID/simulator``) is one simulated phone per page: the
channel and the address are in the URL (``?channel=sms&address=+447700900101``), so several
tabs are several phones, voting at the same time.  The page polls ``screen.json`` for what the
phone shows; its forms post a text, a tap on an inline button or a shared phone number, which
the sandbox turns into the signed webhook or the update the platform would send.  With script,
the forms are sent in the background (``simulator.js``); without, each answers with the page
again.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ballots.errors import OpenPrimaryError
from channels.appkeys import DEPLOYMENT
from channels.sandbox import SANDBOX, Phone, Sandbox, SimulatorError
from channels.web import signin_views
from channels.web.guard import PREFIX, prefix_of, session_of
from channels.web.render import core_of, page, refusal


def add_routes(r: web.UrlDispatcher) -> None:
    """The sandbox's pages, on the console's router (before its ``/{election}`` route)."""
    r.add_get("/simulator", to_simulator)
    e = "/{election}"
    r.add_get(f"{e}/simulator", simulator_page)
    r.add_get(f"{e}/simulator/screen.json", screen_json)
    r.add_post(f"{e}/simulator/send", send)
    r.add_post(f"{e}/simulator/tap", tap)
    r.add_post(f"{e}/simulator/share-phone", share_phone)
    r.add_get(f"{e}/sign-in/code", signin_views.code_form)
    r.add_get(f"{e}/sandbox/unseal", unseal_page)
    r.add_post(f"{e}/sandbox/unseal", unseal)


def sandbox_of(request: web.Request) -> Sandbox:
    """The app's sandbox; 404 where there is none (a real deployment)."""
    found = request.config_dict.get(SANDBOX)
    if found is None:
        raise web.HTTPNotFound(text="Only a sandbox has this page.")
    return found


# --- the phone simulator ---------------------------------------------------------------


async def to_simulator(request: web.Request) -> web.StreamResponse:
    """GET /organisers/simulator: the simulator of the sandbox's election, with the phone
    the query names."""
    sandbox_of(request)
    cores = sorted(request.config_dict[DEPLOYMENT].cores)
    query = f"?{request.query_string}" if request.query_string else ""
    raise web.HTTPSeeOther(f"{PREFIX}/{cores[0]}/simulator{query}")


def _where(request: web.Request, phone: Phone | None) -> str:
    """The simulator page of a phone (or with none chosen)."""
    base = f"{prefix_of(request)}/simulator"
    if phone is None:
        return base
    return f"{base}?{urlencode({'channel': phone.channel, 'address': phone.address})}"


async def simulator_page(
    request: web.Request, *, problems: list[str] | None = None, status: int = 200
) -> web.StreamResponse:
    """GET /organisers/ID/simulator: pick a phone; with one in the URL, its screen."""
    sandbox = sandbox_of(request)
    problems = list(problems or [])
    phone = None
    channel = request.query.get("channel", "").strip()
    address = request.query.get("address", "").strip()
    if channel or address:
        try:
            phone = sandbox.phone(channel or "sms", address)
        except SimulatorError as err:
            problems.append(f"{err}.")
            status = 400
    return page(
        request,
        "simulator.html",
        status=status,
        nav="simulator",
        problems=problems,
        phone=phone,
        person=sandbox.person(phone) if phone is not None else None,
        organiser=sandbox.organiser(phone) if phone is not None else None,
        screen=sandbox.screen(phone) if phone is not None else None,
        screen_url=(
            f"{prefix_of(request)}/simulator/screen.json?"
            + urlencode({"channel": phone.channel, "address": phone.address})
            if phone is not None
            else ""
        ),
        people=sandbox.people,
        organisers=[_organiser_phone(o) for o in sandbox.organisers],
        typed_channel=channel or "sms",
        typed_address=address,
    )


def _organiser_phone(listed: str) -> dict[str, str]:
    """An organiser of the election file as the simulator links to their phone."""
    if listed.startswith("tg:"):
        return {"listed": listed, "channel": "telegram", "address": listed[3:]}
    return {"listed": listed, "channel": "sms", "address": listed}


def _phone_in(sandbox: Sandbox, data: Any) -> Phone:
    return sandbox.phone(str(data.get("channel", "")), str(data.get("address", "")))


async def screen_json(request: web.Request) -> web.StreamResponse:
    """GET /organisers/ID/simulator/screen.json?channel=&address=: what the phone shows."""
    sandbox = sandbox_of(request)
    try:
        phone = _phone_in(sandbox, request.query)
    except SimulatorError as err:
        return web.json_response({"problem": f"{err}."}, status=400)
    return web.json_response(sandbox.screen(phone))


def _wants_json(request: web.Request) -> bool:
    """Whether the form was sent by the page's script (which then redraws the phone)."""
    return "application/json" in request.headers.get("Accept", "")


async def _done(request: web.Request, sandbox: Sandbox, phone: Phone) -> web.StreamResponse:
    if _wants_json(request):
        return web.json_response(sandbox.screen(phone))
    raise web.HTTPSeeOther(_where(request, phone))


async def _refused(request: web.Request, err: SimulatorError) -> web.StreamResponse:
    if _wants_json(request):
        return web.json_response({"problem": f"{err}."}, status=400)
    return await simulator_page(request, problems=[f"{err}."], status=400)


async def send(request: web.Request) -> web.StreamResponse:
    """POST /organisers/ID/simulator/send: the phone sends a text (SMS) or a message
    (Telegram)."""
    sandbox = sandbox_of(request)
    form = await request.post()
    try:
        phone = _phone_in(sandbox, form)
        text = str(form.get("text", ""))
        if phone.channel == "sms":
            await sandbox.text(phone, text)
        else:
            await sandbox.say(phone, text)
    except SimulatorError as err:
        return await _refused(request, err)
    return await _done(request, sandbox, phone)


async def tap(request: web.Request) -> web.StreamResponse:
    """POST /organisers/ID/simulator/tap: a tap on an inline button of the bot's message."""
    sandbox = sandbox_of(request)
    form = await request.post()
    try:
        phone = sandbox.phone("telegram", str(form.get("address", "")))
        message = str(form.get("message", ""))
        if not message.isascii() or not message.isdigit():
            raise SimulatorError("no such message")
        await sandbox.tap(phone, int(message), str(form.get("data", "")))
    except SimulatorError as err:
        return await _refused(request, err)
    return await _done(request, sandbox, phone)


async def share_phone(request: web.Request) -> web.StreamResponse:
    """POST /organisers/ID/simulator/share-phone: the Telegram account shares its number."""
    sandbox = sandbox_of(request)
    form = await request.post()
    try:
        phone = sandbox.phone("telegram", str(form.get("address", "")))
        await sandbox.share_phone(phone, str(form.get("phone", "")))
    except SimulatorError as err:
        return await _refused(request, err)
    return await _done(request, sandbox, phone)


# --- unsealing with the sandbox's shares ---------------------------------------------------


async def unseal_page(
    request: web.Request, problems: list[str] | None = None
) -> web.StreamResponse:
    """GET /organisers/ID/sandbox/unseal: what unsealing with the sandbox's shares does."""
    sandbox = sandbox_of(request)
    election = core_of(request).election
    numbers = " and ".join(path.stem.removeprefix("share-") for path in sandbox.shares())
    return page(
        request,
        "confirm.html",
        status=409 if problems else 200,
        nav="results",
        problems=problems or [],
        heading="Unseal with the sandbox trustees' shares",
        what=[
            f"The sandbox rebuilds the count key from shares {numbers} of the ones it made "
            f"(in {sandbox.trustees}), as trustees do with "
            f"openprimary unseal --election {election.id} --share FILE --share FILE.",
            "Every sealed ballot is opened into the ballot box the count reads, with the same "
            "checks; nothing can be cast after it.",
            "The audit trail records the unseal, with you as the one who did it.",
            "Only a sandbox can do this: in a real election the shares are never on the "
            "server, and trustees bring them after the close.",
        ],
        action="/sandbox/unseal",
        back="/results",
        fields=[],
        button="Unseal with the sandbox trustees' shares",
    )


async def unseal(request: web.Request) -> web.StreamResponse:
    """POST /organisers/ID/sandbox/unseal: unseal, then show the count."""
    sandbox = sandbox_of(request)
    core = core_of(request)
    if (await request.post()).get("confirm") != "yes":
        return await unseal_page(request, ["Confirm on this page first."])
    try:
        await sandbox.unseal(core.redis, core.election, core.clock, session_of(request).actor)
    except OpenPrimaryError as err:
        return await unseal_page(request, [refusal(err)])
    raise web.HTTPSeeOther(f"{prefix_of(request)}/results")
