"""Turnout: how many supporters have voted, by channel and by day.  Never who chose whom."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from ballots import keys
from ballots.election import Election
from ballots.roll import roll_size


@dataclass(frozen=True)
class Turnout:
    """The turnout figures of one election."""

    election: str
    eligible: int
    voted: int
    by_channel: dict[str, int] = field(default_factory=dict)
    by_day: dict[str, int] = field(default_factory=dict)
    #: Ballots by hour (UTC, ``2026-11-20T12``).
    by_hour: dict[str, int] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        return 100.0 * self.voted / self.eligible if self.eligible else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "election": self.election,
            "eligible": self.eligible,
            "voted": self.voted,
            "turnout_percent": round(self.percent, 2),
            "by_channel": dict(sorted(self.by_channel.items())),
            "by_day": dict(sorted(self.by_day.items())),
            "by_hour": dict(sorted(self.by_hour.items())),
        }


async def turnout(redis: Redis, election: Election) -> Turnout:
    """Add up every shard's counters."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(election.shards):
            pipe.hgetall(keys.turnout(election.id, shard))
        shards = await pipe.execute()
    voted = 0
    by_channel: dict[str, int] = {}
    by_day: dict[str, int] = {}
    by_hour: dict[str, int] = {}
    for counters in shards:
        for name, value in counters.items():
            n = int(value)
            if name == "total":
                voted += n
            elif name.startswith("ch:"):
                by_channel[name[3:]] = by_channel.get(name[3:], 0) + n
            elif name.startswith("day:"):
                by_day[name[4:]] = by_day.get(name[4:], 0) + n
            elif name.startswith("hour:"):
                by_hour[name[5:]] = by_hour.get(name[5:], 0) + n
    eligible = await roll_size(redis, election)
    return Turnout(election.id, eligible, voted, by_channel, by_day, by_hour)
