"""The Telegram inbox: updates kept in Redis until handled, shared by processes, in chat order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis

from ballots import keys
from channels.telegram.inbox import Inbox
from tests.factories import SECRET
from tests.telegram_support import ANN, telegram_world

BOT = "4242"


class Recorder:
    """A handler that notes what it was given, and can be told to fail or to hang."""

    def __init__(self, *, fail_first: int = 0, hang: bool = False) -> None:
        self.seen: list[tuple[int, int, bool]] = []  # (chat, n, replay)
        self.fail_first = fail_first
        self.hang = hang
        self.running = 0
        self.most_at_once = 0
        self.per_chat_running: dict[int, int] = {}

    async def __call__(self, update: dict[str, Any], replay: bool) -> bool:
        chat, n = int(update["chat"]), int(update["n"])
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.per_chat_running[chat] = self.per_chat_running.get(chat, 0) + 1
        assert self.per_chat_running[chat] == 1, "two updates of one chat at once"
        try:
            if self.hang:
                await asyncio.Event().wait()
            await asyncio.sleep(random.uniform(0, 0.004))
            if self.fail_first:
                self.fail_first -= 1
                return False  # Redis unavailable: try again
            self.seen.append((chat, n, replay))
            return True
        finally:
            self.running -= 1
            self.per_chat_running[chat] -= 1


@asynccontextmanager
async def inbox(redis: Redis, handle: Recorder, lease: float = 3.0) -> AsyncIterator[Inbox]:
    box = Inbox(redis, BOT, handle, SECRET, lease=lease)
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


async def put(box: Inbox, chat: int, n: int) -> None:
    await box.put(chat, {"update_id": n, "chat": chat, "n": n})


async def test_a_chats_updates_run_one_at_a_time_in_order_and_chats_run_together(
    redis: Redis,
) -> None:
    handle = Recorder()
    async with inbox(redis, handle) as box:
        for n in range(400):
            await put(box, chat=1000 + n % 20, n=n)
        await box.drain()
    assert len(handle.seen) == 400
    for chat in range(1000, 1020):
        assert [n for c, n, _ in handle.seen if c == chat] == list(range(chat - 1000, 400, 20))
    assert handle.most_at_once > 1
    assert not any(replay for *_, replay in handle.seen)
    # Handled updates are gone from Redis.
    assert sum([await redis.xlen(keys.telegram_inbox(BOT, s)) for s in range(box.shards)]) == 0


async def test_an_update_that_cannot_be_handled_yet_waits_in_place(redis: Redis) -> None:
    handle = Recorder(fail_first=3)
    async with inbox(redis, handle) as box:
        for n in range(3):
            await put(box, chat=7, n=n)
        await box.drain()
    # Tried again until done, and the chat's later updates waited behind it.
    assert [n for _, n, _ in handle.seen] == [0, 1, 2]


async def test_processes_share_the_shards_and_take_over_a_dead_ones_updates(
    redis: Redis,
) -> None:
    stuck = Recorder(hang=True)
    dead = Inbox(redis, BOT, stuck, SECRET, lease=0.6)
    await dead.start()
    alive = Recorder()
    async with inbox(redis, alive, lease=0.6) as survivor:
        # Within a few renewals the two hold half the shards each.
        async with asyncio.timeout(10):
            while not (len(dead._held) == len(survivor._held) == survivor.shards // 2):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        chats = [c for c in range(200) if survivor.shard_of(c) in dead._held][:3]
        for i, chat in enumerate(chats):
            await put(survivor, chat, n=i)
        async with asyncio.timeout(10):
            while stuck.running < len(chats):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        # The holder dies mid-update, as with kill -9: no goodbye, its leases run out.
        for task in [*dead._tasks, *dead._chat_tasks]:
            task.cancel()
        # Not gathered without a limit: redis-py 8.1 can leave a task cancelled inside a
        # blocking XREADGROUP "cancelling" for good (seen here about one run in five).  Its
        # lease renewals stopped all the same, which is what this test needs.
        await asyncio.wait([*dead._tasks, *dead._chat_tasks], timeout=5)
        # It takes every shard once their leases run out, and handles what was pending.
        async with asyncio.timeout(10):
            while len(survivor._held) < survivor.shards:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            await survivor.drain()
        assert sorted(survivor._held) == list(range(survivor.shards))
    # Each was handled by the survivor, as a replay (its stored replies, if any, go out).
    assert sorted(alive.seen) == sorted((chat, i, True) for i, chat in enumerate(chats))


async def test_the_webhook_answers_503_when_redis_cannot_store_the_update(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        update = world.updates.text(ANN, "hello")
        inbox = world.channel.inbox
        working = inbox.redis
        inbox.redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        try:
            assert await world.post(update) == 503
        finally:
            await inbox.redis.aclose()
            inbox.redis = working
        await world.channel.drain()
        assert [c.method for c in world.api.calls] == ["getMe"]
        # Telegram sends it again later, and it is handled then.
        await world.deliver(update)
        assert "voting code" in world.api.last_message(ANN.id)["text"]
