"""Prometheus metrics for one process (served at GET /metrics)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES_IN = Counter(
    "openprimary_messages_in", "Inbound messages taken in", ["channel"], registry=REGISTRY
)
DUPLICATES = Counter(
    "openprimary_duplicate_deliveries",
    "Repeated deliveries acknowledged and dropped",
    ["channel"],
    registry=REGISTRY,
)
MESSAGES_OUT = Counter(
    "openprimary_messages_out", "Outbound messages sent", ["channel", "kind"], registry=REGISTRY
)
SEND_FAILURES = Counter(
    "openprimary_send_failures",
    "Outbound messages that could not be delivered",
    ["channel", "reason"],
    registry=REGISTRY,
)
BALLOTS_CAST = Counter("openprimary_ballots_cast", "Ballots cast", ["channel"], registry=REGISTRY)
COPIES_REMOVED = Counter(
    "openprimary_platform_copies",
    "Platform copies of vote-bearing messages settled (removed, gone, failed)",
    ["channel", "outcome"],
    registry=REGISTRY,
)
CODE_SMS_REFUSED = Counter(
    "openprimary_code_sms_refused",
    "Code SMS not sent because the election's hourly ceiling was reached",
    registry=REGISTRY,
)
CODE_GUESSING = Counter(
    "openprimary_code_guessing_slowed",
    "Hours in which wrong voting codes passed the election's budget, slowing every chat",
    registry=REGISTRY,
)
CONSOLE_REFUSALS = Counter(
    "openprimary_console_code_refusals",
    "Console sign-in codes refused or not sent (hourly limit, wrong code, locked)",
    ["why"],
    registry=REGISTRY,
)
OUTSIDERS_SILENCED = Counter(
    "openprimary_outsider_replies_withheld",
    "SMS replies not sent to senders the roll does not know (hourly limit, or their reserve)",
    ["why"],
    registry=REGISTRY,
)
ALERTS = Counter(
    "openprimary_alerts",
    "Alerts raised to organisers (at most one of a kind per election a period)",
    ["kind"],
    registry=REGISTRY,
)
SMS_SEGMENTS = Counter(
    "openprimary_sms_segments", "SMS segments sent, counted against the budget", registry=REGISTRY
)
ERRORS = Counter(
    "openprimary_errors", "Unexpected errors while handling", ["where"], registry=REGISTRY
)
HANDLING_SECONDS = Histogram(
    "openprimary_handling_seconds",
    "Time to handle one inbound message, from receipt to replies",
    ["channel"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_RESPONSES = Counter(
    "openprimary_http_responses",
    "HTTP responses, by route (sms, sms_status, telegram, healthz, metrics, console, other) "
    "and status code",
    ["route", "code"],
    registry=REGISTRY,
)

# --- read when /metrics is scraped (channels.monitoring) ----------------------------------
# Gauges, set by the process that answers the scrape: with ``serve --workers N`` the last
# one set wins ("mostrecent"), since every worker reads the same Redis.

REDIS_WRITABLE = Gauge(
    "openprimary_redis_writable",
    "1 if this process could write to Redis (every served election's shards) at its last "
    "health check or scrape, else 0",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
ELECTION_OPEN = Gauge(
    "openprimary_election_open",
    "1 while the election is open for voting, else 0",
    ["election"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
SMS_BUDGET_SPENT = Gauge(
    "openprimary_sms_budget_spent_segments",
    "SMS segments counted against a budget, from Redis: an election's, or every "
    'election\'s together (election="*")',
    ["election"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
SMS_BUDGET_CEILING = Gauge(
    "openprimary_sms_budget_ceiling_segments",
    "The budget's ceiling in SMS segments (OPENPRIMARY_SMS_BUDGET_SEGMENTS, and "
    'OPENPRIMARY_SMS_BUDGET_TOTAL as election="*"); 0: no ceiling',
    ["election"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
REMINDER_SENDING = Gauge(
    "openprimary_reminder_sending",
    "1 while the election's latest reminder job is running and not held by quiet hours",
    ["election"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
REMINDER_DONE = Gauge(
    "openprimary_reminder_done",
    "Recipients the election's latest reminder job is done with (sent, skipped, failed, "
    "in doubt), from Redis: whichever processes send it",
    ["election"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
REMINDER_REMAINING = Gauge(
    "openprimary_reminder_remaining",
    "Recipients the election's latest reminder job has still to reach",
    ["election"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)


@dataclass(frozen=True)
class ChannelMetrics:
    """The children a message on one channel always touches, looked up once per channel."""

    taken_in: Counter
    handling: Histogram
    replies: Counter


@functools.cache
def for_channel(channel: str) -> ChannelMetrics:
    """The router's per-message metrics for ``channel`` (prometheus' ``labels()`` takes a
    lock and builds a key each call: not on every message)."""
    return ChannelMetrics(
        MESSAGES_IN.labels(channel),
        HANDLING_SECONDS.labels(channel),
        MESSAGES_OUT.labels(channel, "reply"),
    )
