"""Helpers for the reminder tests: rolls of any size, recording senders, send windows."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from redis.asyncio import Redis

from ballots import keys
from ballots.clock import ManualClock
from ballots.election import Election
from ballots.roll import Supporter
from bot.ratelimit import RateLimiter
from tests.factories import NOW, sample_election


def phone(i: int) -> str:
    return f"+4477009{i:05d}"


def chat(i: int) -> str:
    return str(300_000 + i)


async def election_with_roll(
    redis: Redis,
    n: int,
    *,
    telegram: Callable[[int], bool] = lambda i: False,
    election_id: str = "remind-test",
    shards: int = 4,
) -> Election:
    """An election (the sample one, renamed) whose roll is S0..S<n-1>.

    Supporter i has phone ``phone(i)``, and Telegram chat ``chat(i)`` when
    ``telegram(i)``.
    """
    roll = [
        Supporter(f"S{i}", f"Supporter {i}", phone(i), chat(i) if telegram(i) else "")
        for i in range(n)
    ]
    return await sample_election(redis, roll=roll, id=election_id, shards=shards)


async def mark_voted(
    redis: Redis, election: Election, supporter_id: str, channel: str = "sms"
) -> None:
    shard = keys.shard_of(supporter_id, election.shards)
    await redis.hset(keys.voter(election.id, shard, supporter_id), "voted", channel)


def clock() -> ManualClock:
    return ManualClock(NOW)


def fast_limiter(redis: Redis, rate: float = 10_000.0) -> RateLimiter:
    return RateLimiter(redis, {"sms": rate, "telegram": rate}, chat_rates={"telegram": rate})


def most_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The largest number of the ``times`` that fall in any half-open window of this length."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best
