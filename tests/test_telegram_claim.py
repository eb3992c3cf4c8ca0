"""One bot, one election: a server of a second election with the same bot token and Redis
is refused at start-up, saying why; servers of the same election share the bot."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from ballots import keys
from ballots.errors import ConfigError
from tests.telegram_support import ANN, telegram_world


async def test_a_second_election_on_the_same_bot_is_refused(redis: Redis) -> None:
    async with telegram_world(redis) as first:
        bot = first.api.token.split(":", 1)[0]
        assert await redis.get(keys.telegram_bot(bot)) == first.core.election.id
        with pytest.raises(ConfigError, match=r"already serves election riverside-2027"):
            async with telegram_world(redis, election_changes={"id": "hillside-2027"}):
                pass
        # Another server of the same election shares the bot (its updates share one inbox).
        async with telegram_world(redis) as second:
            assert await redis.get(keys.telegram_bot(bot)) == second.core.election.id
        assert "voting code" in (await first.say(ANN, "/start"))["text"]
    # Once the election's servers have stopped, the bot is free for another.
    assert await redis.get(keys.telegram_bot(bot)) is None
    async with telegram_world(redis, election_changes={"id": "hillside-2027"}) as other:
        assert await redis.get(keys.telegram_bot(bot)) == "hillside-2027"
        assert other.core.election.id == "hillside-2027"
