"""The web server all the platforms share (``openprimary serve`` runs it).

Routes: ``POST /sms/twilio``, ``POST /sms/twilio/status`` (Twilio's status
callbacks for replies that showed a voter's choices), ``POST /telegram``,
``GET /healthz`` (503 when Redis cannot take a write) and ``GET /metrics``
(Prometheus text; behind a bearer token when ``OPENPRIMARY_METRICS_TOKEN`` is set, see
``channels.monitoring``).

A connection must send a request's headers within :data:`HEADER_TIMEOUT`
seconds (of opening, or of the first byte of its next request) or is closed,
so a client trickling half-sent requests (a slowloris) holds no connection
for long.

The app keeps nothing in process memory that another ``serve`` process would
need: every state lives in Redis, so any number of them can run side by side
behind one load balancer.

Plugging in a channel: its installer (``channels.sms_channel.installer``,
``channels.telegram.installer``) sets the app's key for its webhook handler
(``channels.appkeys``) before the app starts, and appends its own
``cleanup_ctx`` for what it opens and closes (see :func:`make_app`'s
``installers``).  Until then its route answers 404 "... is not configured".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterable
from typing import Any, TextIO

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import OutOfMemoryError, ReadOnlyError, RedisError, ResponseError

from ballots import keys
from ballots.errors import ConfigError
from bot import live
from bot.core import Core, Deployment
from bot.metrics import REDIS_WRITABLE
from bot.settings import Settings
from channels import monitoring
from channels import web as web_console
from channels.appkeys import CORE, DEPLOYMENT, SMS_WEBHOOK, TELEGRAM_WEBHOOK, Installer
from channels.sms import PATH as SMS_PATH
from channels.sms import STATUS_PATH as SMS_STATUS_PATH
from channels.sms_channel import sms_inbound, sms_installers

log = logging.getLogger(__name__)


TELEGRAM_PATH = "/telegram"
#: How long /healthz waits for Redis before calling it down.
HEALTH_TIMEOUT = 0.9
#: Seconds a connection has to send a request's headers: from its opening, or, kept alive
#: after a request, from the first byte of the next (an idle one waits as aiohttp lets it).
HEADER_TIMEOUT = 10.0
#: This process, as its health-check key names it.
_PROCESS = f"{socket.gethostname()}:{os.getpid()}"


# --- which settings are needed when ------------------------------------------


def check_settings(settings: Settings) -> None:
    """Stop with a message naming each setting ``serve`` lacks.

    SMS needs the auth token (to check Twilio's signature), the public URL
    (what Twilio signs), and the account SID and our number or Messaging
    Service (a signed request for another account or number is refused).
    """
    if sms_inbound(settings):
        settings.require("twilio_auth_token", "public_url", "twilio_account_sid", "twilio_from")
    elif not settings.telegram_bot_token:
        raise ConfigError(
            "nothing to serve: set TWILIO_AUTH_TOKEN, TWILIO_ACCOUNT_SID, TWILIO_FROM and "
            "OPENPRIMARY_PUBLIC_URL for SMS, or TELEGRAM_BOT_TOKEN for Telegram"
        )


# --- the app -------------------------------------------------------------------


def make_app(
    served: Core | Deployment, installers: Iterable[Installer] | None = None
) -> web.Application:
    """The aiohttp app for the elections served (a deployment, or the one a core is in),
    with the channels ``installers`` plug in.

    Redis belongs to ``core`` (its owner opens and closes it); each channel
    opens and closes what it needs (the Twilio REST client, the Telegram bot)
    with the app.  By default the channels the settings configure are plugged
    in: SMS, as ``channels.sms_channel`` does it (Telegram is added by
    ``serve``, or by a test, with ``channels.telegram.installer``).
    """
    deployment = served if isinstance(served, Deployment) else served.deployment
    assert deployment is not None, "build the core with openprimary.app"
    core = deployment.first
    app = web.Application(middlewares=[monitoring.count_responses])
    app[DEPLOYMENT] = deployment
    app[CORE] = core
    app.cleanup_ctx.append(_extensions)
    app.cleanup_ctx.append(_following)
    for install in sms_installers(core.settings) if installers is None else installers:
        install(app)
    app.router.add_post(SMS_PATH, sms_webhook)
    app.router.add_post(SMS_STATUS_PATH, sms_status)
    app.router.add_post(TELEGRAM_PATH, telegram_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    web_console.install(app)
    return app


async def _following(app: web.Application) -> AsyncIterator[None]:
    """While the app runs, follow the elections as organisers change and load them
    (``bot.live``)."""
    task = asyncio.create_task(live.follow(app[DEPLOYMENT]))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _extensions(app: web.Application) -> AsyncIterator[None]:
    """On shutdown, stop the chat's background work (reminder jobs started by organisers),
    and wait for the codes texted after their replies.

    Registered first, so it runs last; a channel that closes a sender first does the same
    (both are idempotent).  The jobs stay in Redis, and another process, or ``remind
    --resume``, carries on.
    """
    yield
    await app[DEPLOYMENT].stop_background()


async def sms_webhook(request: web.Request) -> web.StreamResponse:
    """POST /sms/twilio: Twilio's inbound SMS webhook."""
    webhook = request.app.get(SMS_WEBHOOK)
    if webhook is None:
        raise web.HTTPNotFound(text="SMS is not configured")
    return await webhook.handle(request)


async def sms_status(request: web.Request) -> web.StreamResponse:
    """POST /sms/twilio/status: Twilio's status callbacks for replies that showed choices."""
    webhook = request.app.get(SMS_WEBHOOK)
    if webhook is None:
        raise web.HTTPNotFound(text="SMS is not configured")
    return await webhook.status(request)


async def telegram_webhook(request: web.Request) -> web.StreamResponse:
    """POST /telegram: handed to the Telegram channel when one is plugged in."""
    handler = request.app.get(TELEGRAM_WEBHOOK)
    if handler is None:
        raise web.HTTPNotFound(text="Telegram is not configured")
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: 200 when this process can write to Redis, else 503, within a second.

    A write, not a PING: a Redis that answers but refuses writes (out of
    memory, MISCONF after a failed save or append, a read-only replica)
    cannot take a ballot, and the load balancer should know.  One write to
    each of every served election's shards, in one round trip (on a Cluster, one to
    every node that holds ballots).
    """
    deployment = request.app[DEPLOYMENT]
    served = sorted(deployment.cores)
    problem = await redis_problem(deployment)
    REDIS_WRITABLE.set(0 if problem else 1)
    if problem is not None:
        return web.json_response(problem, status=503)
    return web.json_response(
        {
            "status": "ok",
            "redis": "up",
            "election": served[0] if len(served) == 1 else None,
            "elections": served,
            "process": _PROCESS,
        }
    )


async def redis_problem(deployment: Deployment) -> dict[str, str] | None:
    """None if this process can write to every served election's shards within
    :data:`HEALTH_TIMEOUT`; else what /healthz says of Redis."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            async with deployment.redis.pipeline(transaction=False) as pipe:
                for core in deployment.cores.values():
                    election = core.election
                    for shard in range(election.shards):
                        pipe.set(keys.health(election.id, shard, _PROCESS), "1", px=10_000)
                await pipe.execute()
    except ResponseError as err:
        if isinstance(err, OutOfMemoryError):
            reason = "OOM"
        elif isinstance(err, ReadOnlyError):
            reason = "READONLY"
        else:
            reason = str(err).split(" ", 1)[0] or "error"  # MISCONF, ...
        log.warning("health check: Redis refuses writes: %s", err)
        return {"status": "unavailable", "redis": "refuses writes", "reason": reason}
    except (RedisError, OSError, TimeoutError) as err:
        log.warning("health check: Redis does not answer: %s", err)
        return {"status": "unavailable", "redis": "down"}
    return None


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: the counters in the Prometheus text format (every worker's, under
    ``serve --workers``), and the gauges read from Redis now (``channels.monitoring``)."""
    deployment = request.app[DEPLOYMENT]
    token = deployment.settings.metrics_token
    if token is not None and not monitoring.authorised(request, token):
        return monitoring.refused()
    writable = await redis_problem(deployment) is None
    REDIS_WRITABLE.set(1 if writable else 0)
    if writable:
        await monitoring.refresh(deployment)
    return web.Response(body=monitoring.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


# --- running it ----------------------------------------------------------------


async def run_app(
    app: web.Application,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    out: TextIO | None = None,
    reuse_port: bool = False,
    header_timeout: float = HEADER_TIMEOUT,
    sock: socket.socket | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set, then shut down cleanly.

    ``reuse_port``: several processes listen on the one port (SO_REUSEPORT), and
    the kernel shares the connections out among them (``serve --workers``).
    ``header_timeout``: see :data:`HEADER_TIMEOUT`.  ``sock``: a socket already bound
    (``host`` and ``port`` are then unused), for a caller that must know its address
    before the app is made (``openprimary sandbox``: the public URL is its own).
    ``started`` is set once the app has started and the site listens.
    """
    runner = _Runner(app, header_timeout=header_timeout)
    await runner.setup()
    try:
        site: web.BaseSite
        if sock is not None:
            site = web.SockSite(runner, sock)
        else:
            site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
        await site.start()
        if out is not None:
            for address in runner.addresses:
                out.write(f"listening on http://{address[0]}:{address[1]}\n")
            out.flush()
        if started is not None:
            started.set()
        await stop.wait()
    finally:
        await runner.cleanup()


# --- closing connections whose headers are late ------------------------------------
# aiohttp (3.14) has no timeout for a request's headers, only keepalive_timeout for an
# idle connection (an hour by default, and shorter would race a load balancer reusing it).


class _Runner(web.AppRunner):
    """aiohttp's runner, whose server closes a connection that is slow to send headers."""

    __slots__ = ("_header_timeout",)

    def __init__(self, app: web.Application, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # the app started, its server's settings chosen
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            header_timeout=self._header_timeout,
            **made._kwargs,
        )


class _Server(web.Server):
    """aiohttp's server, handing each connection to a :class:`_HeaderDeadline`."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout

    def __call__(self) -> web.RequestHandler:
        return _HeaderDeadline(
            self, loop=self._loop, header_timeout=self.header_timeout, **self._kwargs
        )


class _HeaderDeadline(web.RequestHandler):
    """aiohttp's handler of one connection, closing it if a request's headers are late.

    The clock starts when the connection opens, and again at the first byte of each later
    request; it stops once the headers are in (the body, if any, is the handler's to read).
    """

    __slots__ = ("_header_timeout", "_header_timer")

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_clock()

    def data_received(self, data: bytes) -> None:
        requests = self._request_count
        super().data_received(data)
        if self._request_count > requests:  # a request's headers are in (or were refused)
            self._stop_clock()
        elif data and self._header_timer is None and self._waiting():
            self._start_clock()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def _waiting(self) -> bool:
        """Whether no request is in hand: the connection waits for the next one's headers."""
        return self._waiter is not None and not self._waiter.done()

    def _start_clock(self) -> None:
        self._header_timer = self._loop.call_later(self._header_timeout, self._late)

    def _stop_clock(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _late(self) -> None:
        self._header_timer = None
        if self._waiting() and self.transport is not None:
            log.info(
                "closed a connection from %s: no request headers within %ss",
                self.peername,
                self._header_timeout,
            )
            self.force_close()
