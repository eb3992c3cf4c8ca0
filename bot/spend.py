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
        self,
        redis: Redis,
        election_id: str,
        ceiling: int,
        alerts: Alerts | None = None,
        *,
        whole: SmsSpend | None = None,
    ) -> None:
        self.redis = redis
        self.election_id = election_id
        #: The most segments the election may send (0: no ceiling).
        self.ceiling = ceiling
        self.alerts = alerts
        #: The deployment's budget, which every election's segments count against too
        #: (OPENPRIMARY_SMS_BUDGET_TOTAL; see :meth:`deployment`).
        self.whole = whole
        self.key = keys.sms_segments(election_id)
        self.setting = "OPENPRIMARY_SMS_BUDGET_SEGMENTS"
        self._take = redis.register_script(_TAKE)

    @classmethod
    def deployment(cls, redis: Redis, ceiling: int, alerts: Alerts | None = None) -> SmsSpend:
        """The budget of every election served together: one counter for them all."""
        spend = cls(redis, "", ceiling, alerts)
        spend.key = keys.SMS_SEGMENTS_TOTAL
        spend.setting = "OPENPRIMARY_SMS_BUDGET_TOTAL"
        return spend

    async def refused(self, spent: int) -> bool:
        """Whether a new code SMS must not go: the election's count (``spent``, read with the
        code's request) at its ceiling, or every election's together at the deployment's
        (read here, one round trip, only when there is such a ceiling)."""
        if self.exhausted(spent):
            return True
        whole = self.whole
        return whole is not None and bool(whole.ceiling) and whole.exhausted(await whole.spent())

    async def spent(self) -> int:
        return int(await self.redis.get(self.key) or 0)

    def exhausted(self, spent: int) -> bool:
        """Whether a count of ``spent`` leaves nothing for new code SMS or reminders."""
        return bool(self.ceiling) and spent >= self.ceiling

    async def counted(self, segments: int, total: int) -> None:
        """Segments already added to the counter (in a caller's round trip), now at
        ``total``: the metric, and an alert if they crossed 80% or the ceiling; they are
        counted against the deployment's budget too."""
        SMS_SEGMENTS.inc(segments)
        await self._crossed(total - segments, total)
        if self.whole is not None and segments > 0:
            total = int(await self.redis.incrby(self.whole.key, segments))
            await self.whole._crossed(total - segments, total)

    async def count(self, segments: int) -> None:
        """Count segments that went (or go) whatever the ceiling: a reply, a code."""
        if segments > 0:
            await self.counted(segments, int(await self.redis.incrby(self.key, segments)))

    async def take(self, segments: int) -> bool:
        """Take a reminder's segments from the budget; False (nothing taken) if they do
        not fit under the ceiling."""
        whole = self.whole
        if whole is not None and whole.ceiling:
            # From the deployment's first (one counter for every election), given back if
            # the election's own refuses them.
            if not await whole._take_own(segments):
                return False
            if not await self._take_own(segments):
                await self.redis.decrby(whole.key, segments)
                return False
            SMS_SEGMENTS.inc(segments)
            return True
        if not self.ceiling:
            await self.count(segments)
            return True
        return await self._take_own(segments, count_whole=True)

    async def _take_own(self, segments: int, *, count_whole: bool = False) -> bool:
        """Take segments from this counter's ceiling alone (none: counted as they go)."""
        if not self.ceiling:
            total = int(await self.redis.incrby(self.key, segments))
            await self._crossed(total - segments, total)
            return True
        ok, total = await self._take(keys=[self.key], args=[segments, self.ceiling])
        if not int(ok):
            await self._alert_spent(int(total))
            return False
        if not count_whole:
            await self._crossed(int(total) - segments, int(total))
            return True
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
                f"code SMS go (replies to voters still do): raise {self.setting} if the poll "
                "needs more.",
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
