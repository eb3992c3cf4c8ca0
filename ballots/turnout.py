"""Turnout: how many supporters have voted, by channel, day, hour, section, language and
how they identified; how long voting took; casts within a day of a reminder.  Counts only:
never who voted when, nor who chose whom."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from ballots import keys
from ballots.election import Election


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
    #: Ballots by electoral-college section, and supporters on the roll in each.
    by_section: dict[str, int] = field(default_factory=dict)
    eligible_by_section: dict[str, int] = field(default_factory=dict)
    #: Ballots by the language the chat spoke.
    by_language: dict[str, int] = field(default_factory=dict)
    #: Ballots by how the voter proved who they are: ``code`` (posted), ``otp`` (texted).
    by_identity: dict[str, int] = field(default_factory=dict)
    #: Seconds from a chat's first message to its cast (bucketed: ``ballots.box.took_bucket``)
    #: -> ballots.
    took: dict[int, int] = field(default_factory=dict)
    #: Reminder job -> ballots cast within 24 hours of that job's reminder to the voter.
    after_reminder: dict[str, int] = field(default_factory=dict)
    #: Supporters who proved who they are at least once (cast or not).
    identified: int = 0

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
            **(
                {
                    "by_section": {
                        name: {"voted": self.by_section.get(name, 0), "eligible": n}
                        for name, n in sorted(self.eligible_by_section.items())
                    }
                }
                if self.eligible_by_section
                else {}
            ),
        }


_BY = {
    "ch": "by_channel",
    "day": "by_day",
    "hour": "by_hour",
    "sec": "by_section",
    "lang": "by_language",
    "id": "by_identity",
    "after": "after_reminder",
}


async def turnout(redis: Redis, election: Election) -> Turnout:
    """Add up every shard's counters (one round trip)."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(election.shards):
            pipe.hgetall(keys.turnout(election.id, shard))
            pipe.scard(keys.members(election.id, shard))
            pipe.hgetall(keys.roll_sections(election.id, shard))
        replies = await pipe.execute()
    figures: dict[str, dict[str, int]] = {name: {} for name in _BY.values()}
    took: dict[int, int] = {}
    voted = identified = eligible = 0
    eligible_by_section: dict[str, int] = {}
    for counters, members, sections in zip(
        replies[0::3], replies[1::3], replies[2::3], strict=True
    ):
        eligible += int(members)
        for name, value in sections.items():
            eligible_by_section[name] = eligible_by_section.get(name, 0) + int(value)
        for name, value in counters.items():
            n = int(value)
            if name == "total":
                voted += n
            elif name == "identified":
                identified += n
            else:
                kind, _, what = name.partition(":")
                if kind == "took":
                    took[int(what)] = took.get(int(what), 0) + n
                elif kind in _BY:
                    into = figures[_BY[kind]]
                    into[what] = into.get(what, 0) + n
    for name in election.section_names:
        eligible_by_section.setdefault(name, 0)
    return Turnout(
        election.id,
        eligible,
        voted,
        **figures,
        eligible_by_section={
            k: v for k, v in eligible_by_section.items() if v or k in election.section_names
        },
        took=took,
        identified=identified,
    )
