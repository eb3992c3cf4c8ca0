"""Prometheus metrics for one process (served at GET /metrics)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

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
