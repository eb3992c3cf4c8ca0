"""Signing in and out of the console."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from channels.web.guard import PREFIX, SIGNIN, session_of, set_session_cookie
from channels.web.render import page


def _client(request: web.Request) -> str:
    """The browser's address.  Behind a reverse proxy on this machine or the private
    network (as README's deployment has it), the address the proxy appended last to
    X-Forwarded-For; otherwise the connection's own (a client cannot spoof that)."""
    remote = request.remote or "unknown"
    forwarded = request.headers.get("X-Forwarded-For", "")
    try:
        behind_proxy = ipaddress.ip_address(remote).is_private
    except ValueError:
        behind_proxy = False
    if behind_proxy and forwarded:
        return forwarded.rsplit(",", 1)[-1].strip() or remote
    return remote


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    """GET /organisers/sign-in: the organiser's phone number or Telegram id."""
    return page(request, "sign_in.html")


async def ask_for_code(request: web.Request) -> web.StreamResponse:
    """POST /organisers/sign-in: send a code to the organiser named, then ask for it."""
    form = await request.post()
    typed = str(form.get("address", "")).strip()
    if not typed:
        return page(request, "sign_in.html", problems=["Enter your phone number or Telegram id."])
    asked = await request.config_dict[SIGNIN].request_code(typed, _client(request))
    if asked.status == "limited":
        return page(
            request,
            "sign_in.html",
            status=429,
            address=typed,
            problems=["Too many codes asked for from here in the last hour. Try again later."],
        )
    return page(request, "sign_in_code.html", address=typed)


async def check_code(request: web.Request) -> web.StreamResponse:
    """POST /organisers/sign-in/code: sign in with the code."""
    form = await request.post()
    typed = str(form.get("address", ""))
    code = str(form.get("code", ""))
    signin = request.config_dict[SIGNIN]
    session = await signin.sign_in(typed, code, _client(request))
    if session is None:
        return page(
            request,
            "sign_in_code.html",
            status=403,
            address=typed,
            problems=["That code is not right, or has expired. Check it, or ask for a new one."],
        )
    response = web.HTTPSeeOther(f"{PREFIX}/")
    set_session_cookie(request, response, signin.cookie(session.id))
    raise response


async def sign_out(request: web.Request) -> web.StreamResponse:
    """POST /organisers/sign-out."""
    await request.config_dict[SIGNIN].sign_out(session_of(request))
    response = web.HTTPSeeOther(f"{PREFIX}/sign-in")
    response.del_cookie("op_console", path=PREFIX)
    raise response
