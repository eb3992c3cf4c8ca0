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
from collections.abc import Mapping

from redis.asyncio import Redis

from ballots import audit, keys
from ballots.clock import Clock
from ballots.election import Election
from bot.messages import Channel, OutboundMessage
from bot.metrics import ALERTS
from bot.ports import Sender

log = logging.getLogger(__name__)

#: Seconds between two alerts of one kind for one election.
ALERT_EVERY = 600


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

    async def alert(self, kind: str, text: str, **details: object) -> bool:
        """Raise one alert; False if one of this kind went out within the period."""
        if not await self.redis.set(
            keys.alert(self.election.id, kind), "1", nx=True, ex=self.every
        ):
            return False
        ALERTS.labels(kind).inc()
        log.warning("election %s: alert (%s): %s", self.election.id, kind, text)
        await audit.record(
            self.redis, self.clock, self.election.id, "openprimary", f"alert: {kind}",
            message=text, **details,
        )  # fmt: skip
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
