"""What ``GET /metrics`` adds to the counters: a token to guard it, responses counted by
route and status, gauges read from Redis at each scrape, and every worker's counters at once.

- **The token.** With ``OPENPRIMARY_METRICS_TOKEN`` set, ``/metrics`` answers only a
  request with ``Authorization: Bearer <token>`` (compared in constant time); any other
  gets 401.  Unset, it answers anyone who reaches it (keep it off the public proxy).
- **Responses.** :func:`count_responses` counts every response by route and status
  (``openprimary_http_responses_total``): the webhooks' 5xx rate is an alert.
- **Gauges from Redis.** Each scrape reads, for each served election, whether voting is
  open, the SMS budgets' spend and the latest reminder job's progress (:func:`refresh`), so
  an alert can say "no messages while open", "a reminder has stalled" (whichever process
  sends it: ``remind --resume`` is never scraped) or "80% of the SMS budget is spent".
- **Workers.** ``serve --workers N`` shares one port, so a scrape reaches any one worker.
  The supervisor gives its workers one ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
  multiprocess mode): each worker's counters go to a file there, and whichever worker
  answers the scrape reports every worker's, added up (:func:`exposition`).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from redis.exceptions import RedisError

from ballots import keys
from ballots.quiet import quiet_until
from bot.core import Deployment
from bot.metrics import (
    ELECTION_OPEN,
    HTTP_RESPONSES,
    REGISTRY,
    REMINDER_DONE,
    REMINDER_REMAINING,
    REMINDER_SENDING,
    SMS_BUDGET_CEILING,
    SMS_BUDGET_SPENT,
)
from bot.reminders import ReminderError, Reminders

log = logging.getLogger(__name__)

#: The environment variable of prometheus_client's multiprocess mode (a directory).
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: How long a scrape waits for the gauges it reads from Redis.
REFRESH_TIMEOUT = 2.0
#: The label of the deployment's whole SMS budget (OPENPRIMARY_SMS_BUDGET_TOTAL).
EVERY_ELECTION = "*"

#: A path's first segment -> the route label of its responses (anything else: "other").
_ROUTES = {
    "/sms/twilio": "sms",
    "/sms/twilio/status": "sms_status",
    "/telegram": "telegram",
    "/healthz": "healthz",
    "/metrics": "metrics",
}


def route_of(path: str) -> str:
    """The ``route`` label for a request path: a handful of values, whatever is asked."""
    if path in _ROUTES:
        return _ROUTES[path]
    if path == "/organisers" or path.startswith("/organisers/"):
        return "console"
    return "other"


@web.middleware
async def count_responses(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count each response by route and status code; a handler's crash counts as a 500."""
    route = route_of(request.path)
    try:
        response = await handler(request)
    except web.HTTPException as err:
        _responses(route, err.status).inc()
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        _responses(route, 500).inc()
        raise
    _responses(route, response.status).inc()
    return response


@functools.lru_cache(maxsize=1024)
def _responses(route: str, status: int) -> Any:
    """The counter of one route's responses with one status (prometheus' ``labels()``
    takes a lock and builds a key each call: not on every request).  Routes are a handful
    and statuses a few dozen, so the cache holds them all."""
    return HTTP_RESPONSES.labels(route, str(status))


def authorised(request: web.Request, token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>`` (constant time)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def refused() -> web.Response:
    """The answer to a scrape without the right token."""
    return web.Response(
        status=401,
        text="GET /metrics needs Authorization: Bearer <OPENPRIMARY_METRICS_TOKEN>\n",
        headers={"WWW-Authenticate": 'Bearer realm="openprimary-metrics"'},
    )


async def refresh(deployment: Deployment) -> None:
    """Set the gauges read at scrape time: each served election's window, SMS budgets and
    latest reminder job.  Redis failing or slow leaves those read from it as they were
    (``openprimary_redis_writable`` says why)."""
    for eid, core in deployment.cores.items():
        ELECTION_OPEN.labels(eid).set(1 if core.election.is_open(core.clock.now()) else 0)
    try:
        async with asyncio.timeout(REFRESH_TIMEOUT):
            await _from_redis(deployment)
    except (RedisError, OSError, TimeoutError) as err:
        log.warning("metrics: could not read the gauges from Redis: %s", err)


async def _from_redis(deployment: Deployment) -> None:
    settings = deployment.settings
    cores = list(deployment.cores.values())
    async with deployment.redis.pipeline(transaction=False) as pipe:
        for core in cores:
            pipe.get(keys.sms_segments(core.election.id))
        pipe.get(keys.SMS_SEGMENTS_TOTAL)
        *spent, total = await pipe.execute()
    for core, used in zip(cores, spent, strict=True):
        SMS_BUDGET_SPENT.labels(core.election.id).set(int(used or 0))
        SMS_BUDGET_CEILING.labels(core.election.id).set(settings.sms_budget_segments)
    SMS_BUDGET_SPENT.labels(EVERY_ELECTION).set(int(total or 0))
    SMS_BUDGET_CEILING.labels(EVERY_ELECTION).set(settings.sms_budget_total)
    reminders = Reminders(deployment.redis, deployment.clock)
    for core in cores:
        election = core.election
        job = await reminders.latest(election.id)
        if job is None:
            continue
        try:
            status = await reminders.status(job)
        except ReminderError:  # expired between the two reads
            continue
        held = quiet_until(election, core.clock.now()) is not None
        sending = status.status == "running" and not held
        REMINDER_SENDING.labels(election.id).set(1 if sending else 0)
        REMINDER_DONE.labels(election.id).set(status.done)
        REMINDER_REMAINING.labels(election.id).set(status.remaining)


def exposition() -> bytes:
    """The Prometheus text of this process, or of every worker of ``serve --workers``."""
    directory = os.environ.get(MULTIPROC_DIR)
    if not directory:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
