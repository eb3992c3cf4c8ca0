"""The platforms' copies of messages that carry a voter's choices, tracked until they are removed.

Twilio keeps every SMS in its message log and Telegram every message in the
chat, filed under the voter's phone number or Telegram id.  The messages
sent and received while a voter ranks and confirms (``bot.state.CHOOSING``)
show their choices, so each channel removes its copies:

- *eager* channels (SMS) queue each such message for deletion as soon as it
  is known: the voter's phone keeps what it received, Twilio's log need not;
- the others (Telegram, where the chat is the voter's own screen) note them
  in a per-chat *trail* while the voter chooses, and queue the whole trail
  when the chat leaves the choosing steps for good (the ballot is cast).

The queue is a sorted set per channel scored by when each removal is next
due; any number of processes drain it (``run_remover``), each taking due
entries with a lease, so a removal whose process dies is taken up again.
Entries hold message ids and chat addresses, never a message's text.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ballots import keys
from ballots.connection import Batch
from bot.messages import Channel, InboundMessage
from bot.metrics import COPIES_REMOVED

log = logging.getLogger(__name__)

#: How long a trail outlives the chat's last message (Telegram lets bots delete for 48 h).
TRAIL_TTL = 48 * 3600
#: How long a taken removal is leased to its worker before another may take it.
LEASE = 60.0
#: Backoff between attempts at one removal, and how many attempts before giving up.
FIRST_RETRY = 60.0
MAX_RETRY = 3600.0
MAX_ATTEMPTS = 30


class Kind(StrEnum):
    """What a tracked message is, which decides how it is removed."""

    VOTER = "in"  # the voter's own message
    BOT = "out"  # one of ours that showed their choices
    CONFIRM = (
        "confirm"  # the ballot they were asked to confirm: edited, not deleted, where possible
    )


class Outcome(StrEnum):
    """How one attempt at removing a copy went."""

    REMOVED = "removed"
    GONE = "gone"  # nothing to remove any more (already deleted, too old, chat blocked)
    RETRY = "retry"  # not yet possible, or a passing fault
    FAILED = "failed"  # refused for good


@dataclass(frozen=True)
class Copy:
    """One platform message to remove."""

    kind: Kind
    address: str
    ref: str

    @property
    def member(self) -> str:
        return f"{self.kind.value}:{self.address}:{self.ref}"

    @classmethod
    def parse(cls, member: str) -> Copy:
        kind, address, ref = member.split(":", 2)
        return cls(Kind(kind), address, ref)


#: Takes the due entries off the queue with a lease: ZRANGEBYSCORE then re-score, one step.
_TAKE = """
-- KEYS[1] queue; ARGV: limit, lease seconds
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), m) end
return due
"""

#: Queues entries due ``delay`` seconds from Redis's now, keeping any earlier due time.
_QUEUE = """
-- KEYS[1] queue; ARGV: delay, member...
local t = redis.call('TIME')
local due = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'NX', due, ARGV[i]) end
return #ARGV - 1
"""

#: Moves a chat's trail onto its channel's queue and forgets the trail, in one step.
_FINISH = """
-- KEYS[1] trail, KEYS[2] queue; ARGV: delay
local t = redis.call('TIME')
local due = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[1])
local trail = redis.call('HGETALL', KEYS[1])
for i = 1, #trail, 2 do redis.call('ZADD', KEYS[2], 'NX', due, trail[i + 1]) end
redis.call('DEL', KEYS[1])
return #trail / 2
"""


class PlatformCopies:
    """Notes the copies of vote-bearing messages, and queues them for removal."""

    def __init__(
        self,
        redis: Redis,
        *,
        eager: Iterable[str] = (Channel.SMS,),
        delays: Mapping[str, float] | None = None,
    ) -> None:
        self.redis = redis
        self.eager = frozenset(eager)
        #: The channels whose copies this process removes (a remover runs for each): the
        #: others' messages are not tracked, as nothing would ever remove them.
        self.channels: set[str] = set()
        #: Seconds before the first attempt, per channel (Twilio deletes a message only
        #: once it is final, which it advises takes a minute).
        self.delays = {Channel.SMS: FIRST_RETRY, **(delays or {})}
        self._take = redis.register_script(_TAKE)
        self._queue = redis.register_script(_QUEUE)
        self._finish = redis.register_script(_FINISH)

    def _delay(self, channel: str) -> float:
        return self.delays.get(channel, 0.0)

    def chat_step_in(self, batch: Batch, msg: InboundMessage, *, finished: bool) -> int:
        """A message the voter sent while choosing, with the router's other writes for it:
        queue it now, or note it on the chat's trail; and once the chat has left the
        choosing steps for good (``finished``: the ballot is cast), queue its whole trail.
        Returns how many commands were queued."""
        channel, queued = msg.channel, 0
        if channel not in self.channels:
            return 0
        if msg.ref is not None:
            member = Copy(Kind.VOTER, msg.address, msg.ref).member
            if channel in self.eager:
                batch.script(
                    self._queue, [keys.copies_queue(channel)], [self._delay(channel), member]
                )
                queued += 1
            else:
                trail = keys.copies_trail(channel, msg.address)
                batch.pipe.hset(trail, msg.ref, member)
                batch.pipe.expire(trail, TRAIL_TTL)
                queued += 2
        if finished and channel not in self.eager:
            batch.script(
                self._finish,
                [keys.copies_trail(channel, msg.address), keys.copies_queue(channel)],
                [self._delay(channel)],
            )
            queued += 1
        return queued

    async def note(self, channel: str, address: str, ref: str, kind: Kind) -> None:
        """A message that shows the voter's choices: queue it now, or keep it on the trail."""
        if channel not in self.channels:
            return
        copy = Copy(kind, address, ref)
        if channel in self.eager:
            await self._queue(
                keys=[keys.copies_queue(channel)], args=[self._delay(channel), copy.member]
            )
            return
        trail = keys.copies_trail(channel, address)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(trail, ref, copy.member)
            pipe.expire(trail, TRAIL_TTL)
            await pipe.execute()

    async def replaced(self, channel: str, address: str, ref: str) -> None:
        """A tracked message now shows something else (a receipt was edited into it)."""
        if channel in self.channels and channel not in self.eager:
            await self.redis.hdel(keys.copies_trail(channel, address), ref)

    # --- the removers' side ------------------------------------------------------

    async def take(self, channel: str, limit: int = 50, lease: float = LEASE) -> list[Copy]:
        """Due removals, leased to the caller."""
        members = await self._take(keys=[keys.copies_queue(channel)], args=[limit, lease])
        return [Copy.parse(str(m)) for m in members]

    async def settle(self, channel: str, copy: Copy, outcome: Outcome) -> None:
        """Record one attempt: done with it, or due again after a backoff."""
        queue, tries = keys.copies_queue(channel), keys.copies_tries(channel)
        if outcome is Outcome.RETRY:
            attempt = int(await self.redis.hincrby(tries, copy.member, 1))
            if attempt < MAX_ATTEMPTS:
                delay = min(MAX_RETRY, FIRST_RETRY * 2 ** (attempt - 1))
                delay = random.uniform(delay / 2, delay)
                await self._queue_again(queue, copy, delay)
                return
            log.error(
                "gave up removing a %s %s message after %d tries", channel, copy.kind, attempt
            )
            outcome = Outcome.FAILED
        COPIES_REMOVED.labels(channel, outcome.value).inc()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(queue, copy.member)
            pipe.hdel(tries, copy.member)
            await pipe.execute()

    async def _queue_again(self, queue: str, copy: Copy, delay: float) -> None:
        t = await self.redis.time()
        await self.redis.zadd(queue, {copy.member: t[0] + t[1] / 1e6 + delay})

    async def pending(self, channel: str) -> int:
        """How many removals are queued on a channel."""
        return int(await self.redis.zcard(keys.copies_queue(channel)))


#: Removes one copy on its platform.
Remove = Callable[[Copy], Awaitable[Outcome]]


async def run_remover(
    copies: PlatformCopies,
    channel: str,
    remove: Remove,
    *,
    idle: float = 1.0,
    stop: asyncio.Event | None = None,
) -> None:
    """Drain a channel's queue until ``stop`` is set (or cancelled), one removal at a time."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            batch = await copies.take(channel)
        except RedisError as err:
            log.warning("copy remover: Redis: %s", err)
            batch = []
        for copy in batch:
            try:
                outcome = await remove(copy)
            except Exception:
                log.exception("removing a %s message failed", channel)
                outcome = Outcome.RETRY
            try:
                await copies.settle(channel, copy, outcome)
            except RedisError as err:
                # Its lease runs out and it is taken up again.
                log.warning("copy remover: Redis: %s", err)
        if not batch:
            await asyncio.sleep(idle)


class Remover:
    """One channel's remover as a background task, started and stopped with its server."""

    def __init__(self, copies: PlatformCopies, channel: str, remove: Remove) -> None:
        self.copies = copies
        self.channel = channel
        self.remove = remove
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.copies.channels.add(self.channel)
        self._task = asyncio.create_task(
            run_remover(self.copies, self.channel, self.remove, stop=self._stop),
            name=f"{self.channel} copy remover",
        )

    async def stop(self) -> None:
        """Stop it; a removal in flight is abandoned and taken up again when its lease ends."""
        task, self._task = self._task, None
        if task is None:
            return
        self.copies.channels.discard(self.channel)
        self._stop.set()
        task.cancel()
        # A cancellation swallowed deep inside a client library still ends the loop
        # at its next turn, as the stop flag is set.
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            log.error("the %s copy remover failed", self.channel, exc_info=task.exception())
