"""Alerts: the one place the system tells organisers that something needs them.

An alert goes to the audit trail, to a Prometheus counter
(``openprimary_alerts{kind}``) and to the log, and, when the election file
lists organisers by Telegram id (``tg:<id>``) and a Telegram sender is
configured, to each of them on Telegram.  One alert of a kind is raised per
election per period (ten minutes unless told), across every process, so a
fault that lasts never floods anyone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ballots import audit, keys
from ballots.clock import Clock
from ballots.election import Election
from bot.messages import Channel, OutboundMessage
from bot.metrics import ALERTS
from bot.ports import Sender

log = logging.getLogger(__name__)

#: Every kind of alert raised (a channel's failures name the channel).
KINDS = (
    "sms_budget_near",
    "sms_budget_spent",
    "code_guessing",
    "console_guessing",
    "redis_unavailable",
    *(f"channel_failing_{ch}" for ch in (Channel.SMS, Channel.TELEGRAM)),
)

#: Seconds between two alerts of one kind for one election.
ALERT_EVERY = 600
#: How long every send on a channel must have failed before organisers are told.
FAILING_FOR = 60.0


class Alerts:
    """Raises an election's alerts, rate-limited."""

    def __init__(
        self,
        redis: Redis,
        clock: Clock,
        election: Election,
        senders: Mapping[str, Sender],
        *,
        every: int = ALERT_EVERY,
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.election = election
        self.senders = senders
        self.every = every
        #: When this process last raised each kind, for when Redis cannot say (monotonic).
        self._raised: dict[str, float] = {}

    async def alert(self, kind: str, text: str, **details: object) -> bool:
        """Raise one alert; False if one of this kind went out within the period.

        With Redis unavailable (one of the alerts is about that), the period is kept
        in this process and the audit entry is left out: the log, the metric and the
        organisers' Telegram still get it.
        """
        try:
            first: bool | None = bool(
                await self.redis.set(
                    keys.alert(self.election.id, kind), "1", nx=True, ex=self.every
                )
            )
        except RedisError:
            first = None
        if first is None:
            last = self._raised.get(kind)
            if last is not None and time.monotonic() - last < self.every:
                return False
        elif not first:
            return False
        self._raised[kind] = time.monotonic()
        ALERTS.labels(kind).inc()
        log.warning("election %s: alert (%s): %s", self.election.id, kind, text)
        if first is not None:
            await audit.record_alert(
                self.redis, self.clock, self.election.id, kind, message=text, **details
            )
        telegram = self.senders.get(Channel.TELEGRAM)
        if telegram is None:
            return True
        body = f"OpenPrimary alert, {self.election.title}: {text}"
        for organiser in self.election.organisers:
            if not organiser.startswith("tg:"):
                continue  # by SMS an organiser may only read: alerts go to Telegram
            chat = organiser[3:]
            message = OutboundMessage(body, channel=Channel.TELEGRAM, address=chat, kind="alert")
            try:
                result = await telegram.send(chat, message)
            except Exception:
                log.exception("an alert could not be sent to an organiser on Telegram")
                continue
            if not result.ok:
                log.warning("an alert was not delivered to an organiser: %s", result.status)
        return True


class ChannelHealth:
    """Watches each channel's sends in this process: when every send on a channel has
    failed (a 5xx, the platform unreachable) for :data:`FAILING_FOR` seconds, organisers
    are alerted (``channel_failing_<channel>``).  A send that goes through clears it;
    a refusal about one recipient (blocked, opted out) says nothing either way."""

    def __init__(self, alerts: Alerts, *, after: float = FAILING_FOR) -> None:
        self.alerts = alerts
        self.after = after
        self._failing_since: dict[str, datetime] = {}

    def sent(self, channel: str) -> None:
        self._failing_since.pop(channel, None)

    async def failed(self, channel: str, detail: str) -> None:
        now = self.alerts.clock.now()
        since = self._failing_since.setdefault(channel, now)
        failing = (now - since).total_seconds()
        if failing >= self.after:
            await self.alerts.alert(
                f"channel_failing_{channel}",
                f"every {channel} message has failed for {failing / 60:.0f} min "
                f"(the last: {detail}). Voters may not be getting answers or codes: check the "
                "platform's status and OpenPrimary's credentials.",
                failing_seconds=round(failing),
            )

    async def outcome(self, channel: str, status: str, detail: str = "") -> None:
        """A send's result, as a :class:`bot.ports.SendResult` status."""
        if status == "sent":
            self.sent(channel)
        elif status in ("failed", "in_doubt", "error"):
            await self.failed(channel, detail or status)
