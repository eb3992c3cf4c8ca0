"""The election's SMS spend: every outbound segment counted in Redis, against a ceiling.

``OPENPRIMARY_SMS_BUDGET_SEGMENTS`` (0: none) is a hard ceiling on the SMS
segments an election sends, counted atomically in one Redis counter that
every process shares:

- replies to a voter's own messages always go (a vote must finish) and are
  counted, so the count may pass the ceiling by the replies in flight;
- a new code SMS is not sent once the ceiling is reached: the voter is told
  so, with the election's help text;
- reminders take their segments from the budget before each SMS, atomically,
  and a job that finds it spent is paused.

Near the ceiling (80%) and at it, organisers get an alert (``bot.alerts``).
"""

from __future__ import annotations

from redis.asyncio import Redis

from ballots import keys
from bot.alerts import Alerts
from bot.metrics import SMS_SEGMENTS

#: The share of the budget at which organisers are warned.
NEAR = 0.8

#: Takes segments from the budget only if they fit: one step, so no two processes can
#: both take the last ones.
_TAKE = """
-- KEYS[1] the election's segment counter; ARGV: segments, ceiling
local n, ceiling = tonumber(ARGV[1]), tonumber(ARGV[2])
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if spent + n > ceiling then return {0, spent} end
return {1, redis.call('INCRBY', KEYS[1], n)}
"""


class SmsSpend:
    """Counts one election's SMS segments, and keeps reminders within the ceiling."""

    def __init__(
        self, redis: Redis, election_id: str, ceiling: int, alerts: Alerts | None = None
    ) -> None:
        self.redis = redis
        self.election_id = election_id
        #: The most segments the election may send (0: no ceiling).
        self.ceiling = ceiling
        self.alerts = alerts
        self.key = keys.sms_segments(election_id)
        self._take = redis.register_script(_TAKE)

    async def spent(self) -> int:
        return int(await self.redis.get(self.key) or 0)

    def exhausted(self, spent: int) -> bool:
        """Whether a count of ``spent`` leaves nothing for new code SMS or reminders."""
        return bool(self.ceiling) and spent >= self.ceiling

    async def counted(self, segments: int, total: int) -> None:
        """Segments already added to the counter (in a caller's round trip), now at
        ``total``: the metric, and an alert if they crossed 80% or the ceiling."""
        SMS_SEGMENTS.inc(segments)
        await self._crossed(total - segments, total)

    async def count(self, segments: int) -> None:
        """Count segments that went (or go) whatever the ceiling: a reply, a code."""
        if segments > 0:
            await self.counted(segments, int(await self.redis.incrby(self.key, segments)))

    async def take(self, segments: int) -> bool:
        """Take a reminder's segments from the budget; False (nothing taken) if they do
        not fit under the ceiling."""
        if not self.ceiling:
            await self.count(segments)
            return True
        ok, total = await self._take(keys=[self.key], args=[segments, self.ceiling])
        if not int(ok):
            await self._alert_spent(int(total))
            return False
        await self.counted(segments, int(total))
        return True

    async def _crossed(self, before: int, after: int) -> None:
        if not self.ceiling or self.alerts is None:
            return
        near = int(self.ceiling * NEAR)
        if before < near <= after < self.ceiling:
            await self.alerts.alert(
                "sms_budget_near",
                f"{after:,} of the {self.ceiling:,} SMS segments budgeted have been sent "
                f"({after / self.ceiling:.0%}). At the ceiling, reminders stop and no new "
                "code SMS go (replies to voters still do): raise "
                "OPENPRIMARY_SMS_BUDGET_SEGMENTS if the poll needs more.",
                spent=after,
                ceiling=self.ceiling,
            )
        if before < self.ceiling <= after:
            await self._alert_spent(after)

    async def _alert_spent(self, spent: int) -> None:
        if self.alerts is not None:
            await self.alerts.alert(
                "sms_budget_spent",
                f"the SMS budget is spent ({spent:,} of {self.ceiling:,} segments): reminders "
                "have stopped and no new code SMS go; replies to voters mid-vote still do.",
                spent=spent,
                ceiling=self.ceiling,
            )
