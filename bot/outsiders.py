"""Replies by SMS to senders the roll does not know: few per sender, from a reserve of their own.

Every SMS reply costs a segment, so anyone with a phone could spend the
election's SMS budget by texting "hi" again and again.  An SMS chat that has
not proved who it is, from a phone not on the roll, is an *outsider*:

- each such phone gets at most :data:`REPLIES_PER_HOUR` replies an hour; past
  that its messages are handled (a voting code still works) but answered with
  silence;
- with an SMS budget (``OPENPRIMARY_SMS_BUDGET_SEGMENTS``), what all outsiders'
  replies cost is counted apart too and may reach :data:`SHARE` of the budget
  at most: the rest is kept for the roll's supporters and the organisers, and
  once the share is spent outsiders get no reply.

Both are read with the chat's state (no extra round trip) and counted with
its commit; messages in flight at the same moment may pass them by a few.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from ballots import keys
from ballots.clock import Clock
from ballots.connection import Batch
from bot.metrics import OUTSIDERS_SILENCED

#: Counts one reply to an outsider: the sender's replies this hour, all outsiders' segments.
_BILL = """
-- KEYS: the sender's replies this hour, the outsiders' segments; ARGV: segments, TTL
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('INCRBY', KEYS[2], ARGV[1])
"""

#: Replies an hour for one phone that is neither on the roll nor identified.
REPLIES_PER_HOUR = 10
#: The share of the SMS budget that replies to outsiders may spend, all together.
SHARE = 0.05


@dataclass(frozen=True)
class Standing:
    """What was read for an SMS sender: their replies this hour, all outsiders' segments."""

    replies: int
    segments: int


class Outsiders:
    """Limits one election's SMS replies to outsiders."""

    def __init__(self, redis: Redis, election_id: str, clock: Clock, ceiling: int) -> None:
        self.redis = redis
        self.election_id = election_id
        self.clock = clock
        #: The most segments outsiders' replies may cost (0: no budget, no ceiling).
        self.ceiling = int(ceiling * SHARE)
        self._bill = redis.register_script(_BILL)

    def _replies_key(self, address: str) -> str:
        return keys.outsider_replies(self.election_id, address, self._hour())

    def _hour(self) -> int:
        return int(self.clock.now().timestamp()) // 3600

    def prefetch(self, batch: Batch, address: str) -> int:
        """Queue the reads for an SMS sender; how many results they take."""
        batch.pipe.get(self._replies_key(address))
        batch.pipe.get(keys.sms_segments_outsiders(self.election_id))
        return 2

    @staticmethod
    def standing(results: Sequence[Any]) -> Standing:
        return Standing(int(results[0] or 0), int(results[1] or 0))

    def allows(self, standing: Standing, segments: int) -> bool:
        """Whether an outsider may be sent replies costing ``segments`` now."""
        if standing.replies >= REPLIES_PER_HOUR:
            OUTSIDERS_SILENCED.labels("hourly").inc()
            return False
        if self.ceiling and standing.segments + segments > self.ceiling:
            OUTSIDERS_SILENCED.labels("reserve").inc()
            return False
        return True

    def bill(self, batch: Batch, address: str, segments: int) -> None:
        """Count a reply to an outsider (with the chat's commit): one script, one result."""
        batch.script(
            self._bill,
            [self._replies_key(address), keys.sms_segments_outsiders(self.election_id)],
            [segments, 7200],
        )
