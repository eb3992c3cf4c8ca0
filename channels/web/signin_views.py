"""Signing in and out of the console."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from channels.appkeys import CORE
from channels.sandbox import SANDBOX
from channels.web.guard import (
    CURRENT,
    PREFIX,
    prefix_of,
    session_cookie,
    session_of,
    set_session_cookie,
    signin_of,
)
from channels.web.render import page


def _client(request: web.Request) -> str:
    """Who the browser is, for the sign-in's limits: its address, or its /64 for IPv6 (one
    subscriber holds a whole /64).  Only from a proxy listed in OPENPRIMARY_TRUSTED_PROXIES
    is X-Forwarded-For believed: then the address that proxy appended (the last one);
    otherwise the connection's own, which a client cannot choose."""
    address = request.remote or "unknown"
    trusted = request.config_dict[CORE].settings.trusted_proxies
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and _within(address, trusted):
        address = forwarded.rsplit(",", 1)[-1].strip() or address
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _within(
    address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    """GET /organisers/sign-in: the organiser's phone number or Telegram id."""
    return page(request, "sign_in.html")


async def ask_for_code(request: web.Request) -> web.StreamResponse:
    """POST /organisers/sign-in: send a code to the organiser named, then ask for it."""
    form = await request.post()
    typed = str(form.get("address", "")).strip()
    if not typed:
        return page(request, "sign_in.html", problems=["Enter your phone number or Telegram id."])
    asked = await signin_of(request).request_code(typed, _client(request))
    if asked.status == "limited":
        return page(
            request,
            "sign_in.html",
            status=429,
            address=typed,
            problems=["Too many codes asked for from here in the last hour. Try again later."],
        )
    return page(
        request,
        "sign_in_code.html",
        address=typed,
        **await _sandbox_code(request, typed, asked.actor is not None),
    )


async def code_form(request: web.Request) -> web.StreamResponse:
    """GET /organisers/sign-in/code?address=...: the code form for an organiser whose code was
    sent already (a sandbox only: its start-up prints this page's address and a code)."""
    typed = request.query.get("address", "").strip()
    if not typed or SANDBOX not in request.config_dict:
        raise web.HTTPSeeOther(f"{prefix_of(request)}/sign-in")
    return page(
        request,
        "sign_in_code.html",
        address=typed,
        asked=False,
        **await _sandbox_code(request, typed),
    )


async def _sandbox_code(request: web.Request, typed: str, sent: bool = False) -> dict[str, Any]:
    """In a sandbox, the latest sign-in code the organiser's simulated phone received, for
    the code page to show (so that anyone trying the sandbox can sign in again); elsewhere,
    nothing.  ``sent``: a code has just been asked for, and is waited for."""
    sandbox = request.config_dict.get(SANDBOX)
    if sandbox is None:
        return {}
    signin = signin_of(request)
    actor = signin.organiser(typed)
    if sent:
        await signin.drain()  # the code goes off the request's path: let it arrive
    found = sandbox.signin_code(actor) if actor is not None else None
    return {"sandbox_code": found, "sandbox_organiser": actor}


async def check_code(request: web.Request) -> web.StreamResponse:
    """POST /organisers/sign-in/code: sign in with the code."""
    form = await request.post()
    typed = str(form.get("address", ""))
    code = str(form.get("code", ""))
    signin = signin_of(request)
    session = await signin.sign_in(typed, code, _client(request))
    if session is None:
        return page(
            request,
            "sign_in_code.html",
            status=403,
            address=typed,
            problems=["That code is not right, or has expired. Check it, or ask for a new one."],
            **await _sandbox_code(request, typed),
        )
    response = web.HTTPSeeOther(f"{prefix_of(request)}/")
    set_session_cookie(request, response, signin.cookie(session.id))
    raise response


async def sign_out(request: web.Request) -> web.StreamResponse:
    """POST /organisers/sign-out."""
    await signin_of(request).sign_out(session_of(request))
    response = web.HTTPSeeOther(f"{prefix_of(request)}/sign-in")
    response.del_cookie(session_cookie(request[CURRENT].election.id), path=PREFIX)
    raise response
