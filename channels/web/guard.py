"""Who may see the console, and the headers every page carries.

Each election served has its own console under ``/organisers/ID/``, with its own sign-in
and sessions: an organiser of one election has no session, and so sees nothing, in
another's.  Everything under ``/organisers/ID/`` needs a session of that election, except
its sign-in pages; a request without one is sent to sign in (303).  ``/organisers/``
itself lists the elections the signed-in organiser organises.  Every
POST must carry the CSRF token of its session (before sign-in: of the
browser's sign-in cookie) or gets 403, and changes nothing; so does a POST
whose session cookie this server did not sign (forged, or signed with a key
since changed), and the answer deletes that cookie.  Every answer, an error
too, carries the console's headers (CSP, nosniff, no-store).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import TypeVar

from aiohttp import BodyPartReader, MultipartReader, web

from bot.core import Core
from bot.signin import IDLE, Session, SignIn
from channels.appkeys import CORE, DEPLOYMENT
from channels.appkeys import WebHandler as Handler

log = logging.getLogger(__name__)

PREFIX = "/organisers"
STATIC = f"{PREFIX}/static"
CSRF_COOKIE = "op_console_csrf"
#: On the console's app: each election's sign-in, by election id (made when first needed).
SIGNINS: web.AppKey[dict[str, SignIn]] = web.AppKey("signins")
#: What the guard found for a request: the election whose console it is ...
CURRENT: web.RequestKey[Core] = web.RequestKey("op_current")
#: On the main app: the console's own sub-application.
CONSOLE_APP = web.AppKey("console", web.Application)
#: What the guard found for a request: the session (None on the sign-in pages) ...
SESSION: web.RequestKey[Session | None] = web.RequestKey("op_session")
#: ... the rest of a file upload, its CSRF token read ...
MULTIPART: web.RequestKey[MultipartReader] = web.RequestKey("op_multipart")
#: ... and a sign-in token made for a browser that had none.
NEW_CSRF: web.RequestKey[str] = web.RequestKey("op_new_csrf")
#: An election's console pages open to anyone (within ``/organisers/ID``).
PUBLIC = ("/sign-in", "/sign-in/code")

#: Pages of the console: nothing from elsewhere, no inline script, never framed or cached.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
#: The public results page may be embedded, as results visualisers are.
RESULTS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors *; form-action 'none'; base-uri 'none'; object-src 'none'"
)


def session_of(request: web.Request) -> Session:
    """The signed-in organiser's session (the guard has checked there is one)."""
    session = request[SESSION]
    assert session is not None
    return session


def session_cookie(election_id: str) -> str:
    """The name of the cookie that holds a browser's session of one election's console."""
    return f"op_console-{election_id}"


def prefix_of(request: web.Request) -> str:
    """Where the console of the request's election is: ``/organisers/ID``."""
    return f"{PREFIX}/{request[CURRENT].election.id}"


def signin_for(request: web.Request, core: Core) -> SignIn:
    """The sign-in of an election's console (made the first time, and kept following the
    election as organisers change it)."""
    return make_signin(request.config_dict[SIGNINS], core)


def make_signin(signins: dict[str, SignIn], core: Core) -> SignIn:
    """The sign-in of an election's console in ``signins``, made if it is not there."""
    signin = signins.get(core.election.id)
    if signin is None:
        signin = SignIn(
            core.redis,
            core.election,
            core.clock,
            core.settings.secret_key,
            core.senders,
            region=core.settings.default_region,
            alerts=core.alerts,
        )
        made = signin
        core.followers.append(lambda election: setattr(made, "election", election))
        signins[core.election.id] = signin
    return signin


def signin_of(request: web.Request) -> SignIn:
    """The sign-in of the request's election (the guard has found it)."""
    return signin_for(request, request[CURRENT])


def secure(request: web.Request) -> bool:
    """Whether cookies should be Secure: the request came over https, or the public URL is."""
    public = request.config_dict[CORE].settings.public_url or ""
    return request.secure or public.startswith("https://")


def set_session_cookie(request: web.Request, response: web.StreamResponse, cookie: str) -> None:
    response.set_cookie(
        session_cookie(request[CURRENT].election.id),
        cookie,
        path=PREFIX,
        httponly=True,
        secure=secure(request),
        samesite="Strict",
        max_age=IDLE * 24,  # the session's own idle timeout is what ends it
    )


def signin_csrf(request: web.Request, response: web.StreamResponse | None = None) -> str:
    """The CSRF token of a browser that has not signed in (its cookie, made if need be)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token or not token.isascii():  # ours are ASCII: another could never match
        token = request.get(NEW_CSRF) or secrets.token_urlsafe(24)
        request[NEW_CSRF] = token
    if response is not None and request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path=PREFIX,
            httponly=True,
            secure=secure(request),
            samesite="Strict",
        )
    return token


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Let a request in with a live session of the election whose console it is (or to a
    public page) and, if a POST, its token.  The list of elections, and the static files,
    are the views' own."""
    eid = request.match_info.get("election")
    if eid is None:
        return await handler(request)
    core = request.config_dict[DEPLOYMENT].cores.get(eid)
    if core is None:
        raise web.HTTPNotFound(text="No such election is served here.")
    request[CURRENT] = core
    signin = signin_for(request, core)
    name = session_cookie(eid)
    cookie = request.cookies.get(name)
    session_id = signin.session_id(cookie) if cookie else None
    if not cookie or session_id is not None:
        return await _admit(request, handler, session_id)
    # A session cookie this server did not sign (forged, or signed with a key since
    # changed): the browser is told to drop it, so that it can sign in anew.
    try:
        if request.method == "POST":
            raise _forbidden()
        response = await _admit(request, handler, None)
    except web.HTTPException as exc:
        exc.del_cookie(name, path=PREFIX)
        raise
    response.del_cookie(name, path=PREFIX)
    return response


async def _admit(
    request: web.Request, handler: Handler, session_id: str | None
) -> web.StreamResponse:
    """Hand the request on if its session (or the page being public) and its CSRF token let it."""
    prefix = prefix_of(request)
    path = request.path.removeprefix(prefix)
    session = None
    if session_id is not None:
        # A page polling for its figures is not the organiser at work: no renewal.
        session = await signin_of(request).session(session_id, touch=not path.endswith(".json"))
    if session is None and path not in PUBLIC:
        raise web.HTTPSeeOther(f"{prefix}/sign-in")
    if request.method == "POST":
        expected = session.csrf if session is not None else request.cookies.get(CSRF_COOKIE)
        given = await _posted_csrf(request)
        if not _same_token(given, expected):
            raise _forbidden()
    request[SESSION] = session
    return await handler(request)


def _forbidden() -> web.HTTPForbidden:
    """The answer to a form that is forged, or from a page too old to trust: nothing done."""
    return web.HTTPForbidden(text="This form has expired or did not come from this site.")


def _same_token(given: object, expected: str | None) -> bool:
    """Whether a form's CSRF token is the one expected, compared in constant time.

    Tokens are ASCII (``secrets.token_urlsafe``); anything else, which a forged form or
    cookie may hold, is refused before comparing (``compare_digest`` takes ASCII text only).
    """
    if not expected or not isinstance(given, str) or not (given.isascii() and expected.isascii()):
        return False
    return hmac.compare_digest(given, expected)


async def _posted_csrf(request: web.Request) -> object:
    """The CSRF token a form sent.  A file upload (multipart) must send it first: the rest
    is left unread for the handler (``request[MULTIPART]``), to stream with its own limit."""
    try:
        if request.content_type != "multipart/form-data":
            return (await request.post()).get("csrf")
        reader = await request.multipart()
        part = await reader.next()
        request[MULTIPART] = reader
        if isinstance(part, BodyPartReader) and part.name == "csrf":
            return await part.text()
    except ValueError:  # a body that is not UTF-8, or not the multipart it says: no token
        return None
    return None


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The console's headers on every answer: a page, a redirect, a refusal, a failure."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _headers(exc, CONSOLE_CSP)
        raise
    except Exception:
        # Answered here rather than by aiohttp, so that a failure's page has the headers too.
        log.exception("console: %s %s failed", request.method, request.path)
        response = web.Response(status=500, text="Something went wrong here. Please try again.")
    _headers(response, CONSOLE_CSP)
    return response


def _headers(response: web.StreamResponse, csp: str) -> None:
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"


R = TypeVar("R", bound=web.StreamResponse)


def results_headers(response: R) -> R:
    response.headers["Content-Security-Policy"] = RESULTS_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    # A minute's caching once published; never for "not published yet", which changes.
    ok = response.status < 400
    response.headers["Cache-Control"] = "public, max-age=60" if ok else "no-store"
    return response
