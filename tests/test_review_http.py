"""Security review rows 10, 14 and 15: what hostile HTTP gets from the console, the
Telegram webhook and the server itself.

- Row 10: a non-ASCII CSRF token or cookie at any console POST route is a forged
  request (403, nothing changed), never a 500; and every error answer of the console,
  an unexpected 500 too, carries its security headers.
- Row 14: a malformed update with the right secret at POST /telegram is refused (400)
  or acknowledged (200) and changes nothing; never a 500, and the inbox keeps working.
- Row 15: a connection that does not finish its request headers in time is closed
  (``serve``'s ``run_app``, with a short timeout here).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from http.cookies import SimpleCookie
from typing import Any

import pytest
from aiohttp import FormData
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from yarl import URL

from ballots.connection import client_from_url
from channels.server import make_app, run_app
from channels.web.guard import CONSOLE_APP, CSRF_COOKIE, SIGNINS, session_cookie
from channels.web.guard import PREFIX as CONSOLE
from tests.conftest import current_redis_url
from tests.console_support import Organiser
from tests.factories import harness
from tests.telegram_support import ANN, TelegramWorld, telegram_world

# --- row 10: the console's forms ---------------------------------------------------

#: Values for the console's path parameters (a reminder job and its action; any other: x).
PATH_VALUES = {"job": "20261120-120000-abcdef", "action": "pause", "election": "riverside-2027"}
#: The sample election's console, and the cookie of a session of it.
PREFIX = f"{CONSOLE}/riverside-2027"
SESSION_COOKIE = session_cookie("riverside-2027")
#: Tokens and cookies no page of ours ever gave out.
NOT_ASCII = ["jeton-é", "☃" * 32]
#: ... and bytes that are not even UTF-8, as a raw request can send them.
NOT_UTF8 = b"\xff\xfe"


def console_posts(world: TelegramWorld) -> list[str]:
    """Every POST route of the console, as a path (parameters filled in)."""
    paths = []
    for route in world.app[CONSOLE_APP].router.routes():
        if route.method != "POST":
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or re.sub(
            r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "x"), info["formatter"]
        )
        paths.append(path)
    assert f"{PREFIX}/sign-in" in paths and f"{PREFIX}/results/publish" in paths
    return paths


def assert_console_headers(headers: Any, where: str) -> None:
    assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Cache-Control") == "no-store", where


async def snapshot(redis: Redis) -> dict[str, object]:
    """Every key and its value (a session's renewed TTL is not a change).  A hash by its
    fields, not its DUMP: a large hash's DUMP lists them in its table's order, which Redis's
    incremental rehashing changes on a mere read (the running server reads the election's
    every second)."""
    found: dict[str, object] = {}
    for k in sorted(await redis.keys("*")):
        if await redis.type(k) == "hash":
            found[str(k)] = sorted((await redis.hgetall(k)).items())
        elif (value := await redis.dump(k)) is not None:
            # None: the key's TTL ran out between KEYS and DUMP; it is gone, not changed.
            found[str(k)] = value
    return found


async def test_a_non_ascii_csrf_token_at_any_console_form_gets_403_with_headers(
    redis: Redis,
) -> None:
    async with telegram_world(redis) as world:
        browser = Organiser(world)
        try:
            await browser.sign_in()
            await browser.get("/organisers/riverside-2027/")
            posts = console_posts(world)
            before = await snapshot(redis)
            for path in posts:
                for token in NOT_ASCII:
                    for body in ({"csrf": token}, _multipart(token)):
                        async with browser.session.post(world.url + path, data=body) as resp:
                            assert resp.status == 403, (path, token, resp.status)
                            assert_console_headers(resp.headers, path)
                # A form body that is not UTF-8, raw or percent-encoded.
                for raw in (b"csrf=" + NOT_UTF8, b"csrf=%FF%FE"):
                    async with browser.session.post(
                        world.url + path,
                        data=raw + b"&address=tg%3A100001",
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                    ) as resp:
                        assert resp.status == 403, (path, raw, resp.status)
                        assert_console_headers(resp.headers, path)
            after = await snapshot(redis)
            assert after == _less_lapsed(before, after)
            # The organiser's own forms still work.
            assert (await browser.get("/organisers/riverside-2027/roll")).status == 200
        finally:
            await browser.close()


async def test_a_non_ascii_cookie_at_any_console_form_gets_403_with_headers(
    redis: Redis,
) -> None:
    async with telegram_world(redis) as world:
        posts = console_posts(world)
        before = await snapshot(redis)
        for path in posts:
            for value in NOT_ASCII:
                # A session cookie this server never signed, the form's token matching the
                # sign-in cookie's (as a forger who sets both would send).
                for cookie in (
                    f"{SESSION_COOKIE}={value}.{value}; {CSRF_COOKIE}={value}",
                    f"{SESSION_COOKIE}={value}; {CSRF_COOKIE}=abc",
                ):
                    async with world.session.post(
                        world.url + path,
                        data={"csrf": value, "address": "tg:100001"},
                        headers={"Cookie": cookie},
                        allow_redirects=False,
                    ) as resp:
                        assert resp.status == 403, (path, cookie, resp.status)
                        assert_console_headers(resp.headers, path)
                        # The browser is told to drop the cookie, so it can sign in anew.
                        assert resp.cookies[SESSION_COOKIE].value == ""
            # Cookies that are not UTF-8 at all.
            raw = SESSION_COOKIE.encode() + b"=" + NOT_UTF8 + b".x; "
            status, headers = await raw_post(world, path, raw + CSRF_COOKIE.encode() + b"=x")
            assert status == 403, (path, status)
            assert_console_headers(headers, path)
        # Before sign-in: a non-ASCII sign-in cookie, and the same value as the token.
        for path in (f"{PREFIX}/sign-in", f"{PREFIX}/sign-in/code"):
            for value in NOT_ASCII:
                async with world.session.post(
                    world.url + path,
                    data={"csrf": value, "address": "tg:100001", "code": "123456"},
                    headers={"Cookie": f"{CSRF_COOKIE}={value}"},
                    allow_redirects=False,
                ) as resp:
                    assert resp.status == 403, (path, value, resp.status)
                    assert_console_headers(resp.headers, path)
            status, headers = await raw_post(world, path, CSRF_COOKIE.encode() + b"=" + NOT_UTF8)
            assert status == 403, (path, status)
            assert_console_headers(headers, path)
        after = await snapshot(redis)
        assert after == _less_lapsed(before, after)


async def test_a_browser_with_a_foreign_cookie_can_still_sign_in(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        browser = Organiser(world)
        try:
            # As a browser keeps them: a session signed with a key since changed, and a
            # sign-in cookie some other site set.
            cookies: SimpleCookie = SimpleCookie()
            cookies[SESSION_COOKIE] = "old-session.signed-with-another-key"
            cookies[CSRF_COOKIE] = "é"
            for morsel in cookies.values():
                morsel["path"] = CONSOLE
            browser.session.cookie_jar.update_cookies(cookies, URL(world.url))
            page = await browser.sign_in()
            assert page.status == 200 and page.url.endswith("/organisers/riverside-2027/"), (
                page.text
            )
        finally:
            await browser.close()


async def test_an_unexpected_failure_in_the_console_is_a_500_with_the_headers(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with telegram_world(redis) as world:
        browser = Organiser(world)
        try:
            await browser.sign_in()

            async def broken(*_: object, **__: object) -> None:
                raise RuntimeError("a bug")

            monkeypatch.setattr(
                world.app[CONSOLE_APP][SIGNINS][world.core.election.id], "session", broken
            )
            page = await browser.get("/organisers/riverside-2027/roll", allow_redirects=False)
            assert page.status == 500
            assert "a bug" not in page.text and "Traceback" not in page.text
            assert_console_headers(page.headers, "500")
        finally:
            await browser.close()


async def raw_post(world: TelegramWorld, path: str, cookie: bytes) -> tuple[int, dict[str, str]]:
    """POST a form with the raw bytes ``cookie`` as its Cookie header (an HTTP client would
    not send bytes that are not UTF-8); the status and the headers."""
    host, port = world.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        body = b"csrf=x&address=tg%3A100001"
        writer.write(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Cookie: " + cookie + b"\r\nConnection: close\r\n\r\n" + body
        )
        head = (await reader.read()).split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    finally:
        writer.close()
        await writer.wait_closed()
    fields = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), fields


def _multipart(token: str) -> FormData:
    """A file upload whose first part, the CSRF token, is ``token``."""
    form = FormData()
    form.add_field("csrf", token)
    form.add_field("roll", b"supporter_id,name\n", filename="roll.csv", content_type="text/csv")
    return form


# --- row 14: malformed updates at POST /telegram -------------------------------------


def _with(update: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A copy of ``update`` with the field at ``path`` set to ``value`` (deleted: ...)."""
    changed = copy.deepcopy(update)
    *parents, last = path
    at: Any = changed
    for step in parents:
        at = at[step]
    if value is ...:
        del at[last]
    else:
        at[last] = value
    return changed


def _body(update: dict[str, Any]) -> bytes:
    """The update as JSON bytes; a lone surrogate is written as its escape ("\\ud800"), as a
    hand-made request can send it."""
    return json.dumps(update).encode()


def _malformed_updates(world: TelegramWorld) -> Iterator[tuple[str, bytes]]:
    text = world.updates.text(ANN, "hello")
    tap = world.updates.tap(ANN, _a_bot_message(), "some-button")
    contact = world.updates.contact(ANN, "+447700900101")
    for value in ["310001", 310001.0, 1.5, {"id": 1}, None, True, [], 10**30, -(10**19)]:
        yield f"chat.id {value!r}", _body(_with(text, ("message", "chat", "id"), value))
    for path in [
        ("message", "text"),
        ("message", "from", "first_name"),
        ("message", "chat", "type"),
    ]:
        yield f"lone surrogate in {path}", _body(_with(text, path, "vote \ud800 now"))
    yield "lone surrogate in a key", _body(_with(text, ("message", "\udfff"), 1))
    yield "raw JSON escape", _body(text).replace(b'"hello"', b'"\\ud800"')
    for path in [
        ("message", "chat"),
        ("message", "message_id"),
        ("message", "date"),
        ("message", "from", "is_bot"),
        ("callback_query", "from"),
        ("callback_query", "id"),
        ("update_id",),
    ]:
        base = tap if path[0] == "callback_query" else text
        yield f"missing {path}", _body(_with(base, path, ...))
    for path, value in [
        (("update_id",), "5"),
        (("update_id",), 1.5),
        (("update_id",), True),
        (("update_id",), 10**30),
        (("message", "message_id"), "1"),
        (("message", "date"), "today"),
        (("message", "date"), 10**30),
        (("message", "date"), 1e300),
        (("message", "date"), -1),
        (("message", "text"), 5),
        (("message", "text"), ["a"]),
        (("message", "entities"), "x"),
        (("message", "entities"), [{"type": "bot_command"}]),
        (("message", "from", "id"), "310001"),
        (("message", "from", "language_code"), {"en": 1}),
        (("message", "reply_to_message"), {"chat": 1}),
        (("message", "new_chat_members"), [{"id": "x"}]),
        (("message",), "hello"),
        (("message",), []),
        (("callback_query", "data"), 5),
        (("callback_query", "message", "chat", "id"), "x"),
        (("callback_query", "from", "id"), 2.5),
    ]:
        base = tap if path[0] == "callback_query" else text
        yield f"{path} = {value!r}", _body(_with(base, path, value))
    for path, value in [
        (("message", "contact", "user_id"), "310001"),
        (("message", "contact", "phone_number"), 447700900101),
        (("message", "contact"), "+447700900101"),
    ]:
        yield f"{path} = {value!r}", _body(_with(contact, path, value))
    yield "NaN", _body(text).replace(b'"date": ', b'"date": NaN, "x": ')
    yield "Infinity", _body(text).replace(b'"message_id": ', b'"y": -Infinity, "message_id": ')
    yield "nested deep", b'{"update_id": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    yield (
        "edited, chat.id junk",
        _body({"update_id": 123, "edited_message": {"chat": {"id": "x"}, "text": 5}}),
    )


def _a_bot_message() -> dict[str, Any]:
    return {
        "message_id": 1,
        "from": {"id": 123456789, "is_bot": True, "first_name": "OpenPrimary"},
        "chat": {"id": ANN.id, "first_name": ANN.first_name, "type": "private"},
        "date": 1_796_000_000,
        "text": "Choose",
    }


def _not_inbox_bookkeeping(found: dict[str, object]) -> dict[str, object]:
    """A snapshot without the keys the inbox moves on by itself (who holds which shard)."""
    return {k: v for k, v in found.items() if ":owner:" not in k and not k.endswith(":workers")}


class _Errors(logging.Handler):
    """Errors logged while it is attached (a handler or a task that failed)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(f"{record.name}: {record.getMessage()} {record.exc_info or ''}")


async def _still_working(world: TelegramWorld, errors: _Errors) -> None:
    """Nothing failed in the background, the inbox runs, and a voter is answered."""
    await world.channel.drain()
    assert errors.seen == []
    assert world.channel.inbox._tasks and not any(t.done() for t in world.channel.inbox._tasks)
    assert "To vote" in (await world.say(ANN, "/start"))["text"]


async def test_malformed_updates_with_the_right_secret_get_400_or_200_and_change_nothing(
    redis: Redis,
) -> None:
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    try:
        async with telegram_world(redis) as world:
            await world.say(ANN, "/start")
            for name, body in _malformed_updates(world):
                await world.channel.drain()
                before = _not_inbox_bookkeeping(await snapshot(redis))
                status = await world.post(body)
                assert status in (200, 400), (name, status)
                await world.channel.drain()
                after = _not_inbox_bookkeeping(await snapshot(redis))
                assert after == _less_lapsed(before, after), name
            await _still_working(world, errors)
    finally:
        logging.getLogger().removeHandler(errors)


async def test_a_failure_while_taking_updates_in_hand_does_not_stop_the_inbox(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with telegram_world(redis) as world:
        inbox = world.channel.inbox
        dispatch = inbox._dispatch
        failed = asyncio.Event()

        def fails_once(*args: Any, **kwargs: Any) -> None:
            if not failed.is_set():
                failed.set()
                raise RuntimeError("a bug")
            dispatch(*args, **kwargs)

        monkeypatch.setattr(inbox, "_dispatch", fails_once)
        assert await world.post(world.updates.text(ANN, "hello")) == 200
        async with asyncio.timeout(10):
            await failed.wait()
        assert await world.post(world.updates.text(ANN, "/start")) == 200
        await world.api.wait_until(lambda: any("To vote" in t for t in world.texts(ANN)))
        assert not any(task.done() for task in inbox._tasks)


#: Values a fuzzed field may take: JSON of every type, numbers of every size, lone surrogates.
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**62, max_value=2**80)
    | st.floats()
    | st.text(max_size=8)
    | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


def _paths(value: Any, here: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every field of an update, at any depth, as a path."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, inner in items:
        yield (*here, key)
        if isinstance(inner, dict | list):
            yield from _paths(inner, (*here, key))


def test_fuzzed_updates_with_the_right_secret_never_get_a_500() -> None:
    """Well-formed updates changed at one field each: 200 or 400, and a 400 changes nothing."""
    with asyncio.Runner() as runner:
        redis = client_from_url(current_redis_url())
        errors = _Errors()
        logging.getLogger().addHandler(errors)
        world_context = telegram_world(redis)
        try:
            runner.run(_flush(redis))
            world = runner.run(world_context.__aenter__())
            kinds: list[Callable[[], dict[str, Any]]] = [
                lambda: world.updates.text(ANN, "hello"),
                lambda: world.updates.text(ANN, "/start"),
                lambda: world.updates.contact(ANN, "+447700900101"),
                lambda: world.updates.tap(ANN, _a_bot_message(), "some-button"),
            ]

            @settings(
                max_examples=200,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(
                kind=st.integers(0, len(kinds) - 1),
                where=st.integers(0, 10_000),
                value=st.just(...) | _VALUES,
            )
            def one(kind: int, where: int, value: Any) -> None:
                update = kinds[kind]()
                paths = list(_paths(update))
                runner.run(_post_one(world, _with(update, paths[where % len(paths)], value)))

            one()
            runner.run(_still_working(world, errors))
        finally:
            logging.getLogger().removeHandler(errors)
            runner.run(world_context.__aexit__(None, None, None))
            runner.run(_flush(redis))
            runner.run(redis.aclose())


async def _flush(redis: Redis) -> None:
    await redis.flushdb()


async def _post_one(world: TelegramWorld, update: dict[str, Any]) -> None:
    redis = world.core.redis
    await world.channel.drain()
    before = _not_inbox_bookkeeping(await snapshot(redis))
    status = await world.post(_body(update))
    assert status in (200, 400), (status, update)
    if status == 400:
        after = _not_inbox_bookkeeping(await snapshot(redis))
        assert after == _less_lapsed(before, after)


def _less_lapsed(before: dict[str, object], after: dict[str, object]) -> dict[str, object]:
    """``before`` less the sending rates' windows gone since: a window lapses on its own (its
    TTL), so gone is not a change a request made."""
    return {k: v for k, v in before.items() if k in after or ":rate:" not in k}


# --- row 15: request headers that never end --------------------------------------------

#: The header timeout the served app gets here (``serve`` has 10 s), and how long a test
#: waits for a connection to be closed before calling it held.
SHORT = 0.5
HELD = 5.0


class _Listening(io.StringIO):
    """``run_app``'s output, telling when it says where it listens (on its flush)."""

    def __init__(self) -> None:
        super().__init__()
        self.said = asyncio.Event()

    def flush(self) -> None:
        super().flush()
        self.said.set()


@contextlib.asynccontextmanager
async def served(redis: Redis) -> AsyncIterator[tuple[str, int]]:
    """The sample election's app served by ``run_app``, as ``serve`` runs it: host, port."""
    core = (await harness(redis)).core
    stop = asyncio.Event()
    out = _Listening()
    task = asyncio.create_task(
        run_app(make_app(core, []), "127.0.0.1", 0, stop=stop, out=out, header_timeout=SHORT)
    )
    try:
        async with asyncio.timeout(10):
            await out.said.wait()
        host, port = out.getvalue().split("http://", 1)[1].split()[0].rsplit(":", 1)
        yield host, int(port)
    finally:
        stop.set()
        await task


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection (end of stream) within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(1024):
                pass
    except TimeoutError:
        return False
    return True


async def get_healthz(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """GET /healthz on a kept-alive connection; the status line."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: op\r\n\r\n")
    async with asyncio.timeout(HELD):
        status = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
    return status


async def test_a_connection_whose_headers_never_end_is_closed(redis: Redis) -> None:
    async with served(redis) as (host, port):
        half_sent, trickled, silent = [await asyncio.open_connection(host, port) for _ in range(3)]
        normal: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            # A request line and a header, never the blank line that ends them.
            half_sent[1].write(b"GET /healthz HTTP/1.1\r\nHost: op\r\n")
            # ... and one trickling a byte at a time, as a slowloris does.
            for byte in b"GET /healthz HTTP/1.1\r\nHost: op\r\nX-A: " + b"a" * 100:
                trickled[1].write(bytes([byte]))
                await asyncio.sleep(SHORT / 10)
                if trickled[0].at_eof() or trickled[1].is_closing():
                    break
            assert await closed_within(half_sent[0], HELD)
            assert await closed_within(trickled[0], HELD)
            assert await closed_within(silent[0], HELD)  # nothing sent at all
            # A normal request is answered, and a connection kept alive and idle between
            # requests (longer than the header timeout) is not cut.
            normal = await asyncio.open_connection(host, port)
            assert b" 200 " in await get_healthz(*normal)
            await asyncio.sleep(SHORT * 3)
            assert b" 200 " in await get_healthz(*normal)
            # ... but its next request's headers have the same deadline.
            normal[1].write(b"GET /healthz HTTP/1.1\r\n")
            assert await closed_within(normal[0], HELD)
        finally:
            for _, writer in (half_sent, trickled, silent, *([normal] if normal else [])):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
