"""Telegram updates kept in Redis from the webhook's 200 until they are handled.

``POST /telegram`` appends each update to one of :data:`SHARDS` Redis
streams, chosen by chat, and answers 200 only once Redis has it (503
otherwise: Telegram sends it again later).  Handling starts from there, so
a process that dies after the 200 loses nothing:

- Each shard is handled by one process at a time, the holder of its lease
  (:data:`LEASE` long, renewed three times as often).  The processes share
  the shards evenly: each holds at most ``ceil(shards / live processes)``,
  and lets go of a shard only once its updates in hand are done.
- In a process, one chat's updates run one at a time in the order they
  came; different chats run concurrently.
- An update is read through the stream's consumer group, and acknowledged
  (and deleted) once it has been handled and its replies sent.  One that
  could not be handled because Redis was down is tried again, in place, so
  the chat's order holds.

An update is stored sealed (XChaCha20-Poly1305 under a key derived from
the secret key, padded to a multiple of :data:`PAD` bytes): what a voter
typed or tapped holds their choices, and Redis's append-only file keeps
every write, deleted or not.

When a holder dies, its leases run out and another process takes its
shards.  It first handles the updates the dead one had read but not
finished (the group's pending entries), with ``replay``: the router's
delivery record makes their effect happen once, and sends their stored
replies again, so a reply is never lost (it may, rarely, arrive twice).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import secrets
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import CryptoError
from nacl.secret import Aead
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from ballots import keys
from ballots.connection import Batch, in_one_round_trip
from bot.lease import RELEASE, RENEW

log = logging.getLogger(__name__)

#: Streams per bot; a chat's updates always go to the same one.
SHARDS = 16
#: Seconds a shard stays with a process after its last renewal: how long a dead
#: process's updates wait before another process takes them up.
LEASE = 3.0
GROUP = "handlers"
#: Updates read at once, and read but unfinished in one process at most.
BATCH = 200
MAX_IN_HAND = 2000
#: How long a blocking read waits for news, in milliseconds.
BLOCK_MS = 1000
#: Waits between tries of an update that could not be handled (Redis unavailable).
RETRY_FIRST, RETRY_MOST = 0.2, 5.0

#: Sealed updates are padded to a multiple of this many bytes, so length tells little.
PAD = 256
#: Handles one update (its JSON, and whether to replay stored replies); False: try again later.
Handle = Callable[[dict[str, Any], bool], Awaitable[bool]]

# KEYS: workers.  ARGV: this process, ttl ms.  -> processes alive
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
return redis.call('ZCARD', KEYS[1])
"""


@dataclass(frozen=True)
class _Entry:
    shard: int
    entry_id: str
    update: dict[str, Any]
    replay: bool


class Inbox:
    """One bot's durable update queue: :meth:`put` from the webhook, handled by :meth:`start`."""

    def __init__(
        self,
        redis: Redis,
        bot_id: str,
        handle: Handle,
        secret_key: str,
        *,
        shards: int = SHARDS,
        lease: float = LEASE,
    ) -> None:
        self.redis = redis
        self.bot_id = bot_id
        self.handle = handle
        self.shards = shards
        self.lease = lease
        key = hashlib.blake2b(secret_key.encode(), digest_size=32, person=b"op-tg-inbox")
        self._aead = Aead(key.digest())
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._beat = redis.register_script(_BEAT)
        self._renew = redis.register_script(RENEW)
        self._release = redis.register_script(RELEASE)
        #: Shards this process holds, and of them those it reads new updates from.
        self._held: set[int] = set()
        self._reading: set[int] = set()
        self._in_hand: dict[int, int] = {}  # shard -> updates read and not yet acknowledged
        self._chats: dict[str, deque[_Entry]] = {}
        self._chat_tasks: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def _key(self, shard: int) -> str:
        return keys.telegram_inbox(self.bot_id, shard)

    def shard_of(self, chat: int) -> int:
        return chat % self.shards

    # --- taking updates in -------------------------------------------------------

    async def put(self, chat: int, update: dict[str, Any]) -> None:
        """Store one update for handling; raises RedisError if Redis did not take it."""
        shard = self.shard_of(chat)
        text = json.dumps(update, separators=(",", ":")).encode()
        text += b" " * (-len(text) % PAD)
        sealed = self._aead.encrypt(text, aad=self._aad(shard, chat))
        await self.redis.xadd(
            self._key(shard),
            {"chat": str(chat), "update": base64.b64encode(sealed).decode("ascii")},
        )

    def _aad(self, shard: int, chat: int | str) -> bytes:
        """What a sealed update is bound to: its bot, shard and chat."""
        return f"{self.bot_id}:{shard}:{chat}".encode()

    # --- running -------------------------------------------------------------------

    async def start(self) -> None:
        """Take this process's share of the shards, then handle their updates in the background."""
        self._stopping.clear()
        try:
            await self._balance(int(self.lease * 1000))
        except RedisError as err:
            log.warning("telegram inbox: cannot take shards yet (%s); will keep trying", err)
        self._tasks = [
            asyncio.create_task(self._keep_shards(), name="telegram-inbox-shards"),
            asyncio.create_task(self._read(), name="telegram-inbox-read"),
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the updates in hand (up to ``grace`` seconds), then hand the shards back.

        What is left unfinished stays in Redis for the next holder.
        """
        self._stopping.set()
        self._room.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        if self._chat_tasks:
            _, late = await asyncio.wait(self._chat_tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

        def hand_back(batch: Batch) -> None:
            for shard in self._held:
                owner = keys.telegram_inbox_owner(self.bot_id, shard)
                batch.script(self._release, [owner], [self.name])
            batch.pipe.zrem(keys.telegram_inbox_workers(self.bot_id), self.name)

        try:
            await in_one_round_trip(self.redis, hand_back)
        except RedisError as err:
            log.warning("telegram inbox: could not hand back its shards (%s); they expire", err)
        self._held.clear()
        self._reading.clear()

    async def drain(self) -> None:
        """Wait until every update stored so far has been handled (tests, benchmarks)."""
        while True:
            async with self.redis.pipeline(transaction=False) as pipe:
                for shard in range(self.shards):
                    pipe.xlen(self._key(shard))
                waiting = sum(await pipe.execute())
            if not waiting and not self._chats:
                return
            await asyncio.sleep(0.01)

    # --- holding shards ----------------------------------------------------------

    async def _keep_shards(self) -> None:
        """Renew the shards held, take a fair share, give back any beyond it."""
        loop = asyncio.get_running_loop()
        ttl = int(self.lease * 1000)
        renewed = loop.time()
        while not self._stopping.is_set():
            try:
                await self._balance(ttl)
                renewed = loop.time()
            except Exception as err:
                if not isinstance(err, RedisError):
                    log.exception("telegram inbox: keeping shards failed")
                if loop.time() - renewed >= self.lease and self._held:
                    # Others may hold them by now: stop reading, finish what is in hand.
                    log.warning("telegram inbox: leases lapsed (%s); shards let go", err)
                    self._held.clear()
                    self._reading.clear()
                else:
                    log.warning("telegram inbox: could not renew shard leases: %s", err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.lease / 3)

    async def _balance(self, ttl: int) -> None:
        live = int(
            await self._beat(keys=[keys.telegram_inbox_workers(self.bot_id)], args=[self.name, ttl])
        )
        fair = math.ceil(self.shards / max(live, 1))
        held = sorted(self._held)
        if held:

            def renew(batch: Batch) -> None:
                for shard in held:
                    owner = keys.telegram_inbox_owner(self.bot_id, shard)
                    batch.script(self._renew, [owner], [self.name, ttl])

            still = await in_one_round_trip(self.redis, renew)
            for shard, ours in zip(held, still, strict=True):
                if not int(ours):
                    log.warning("telegram inbox: shard %d was taken over", shard)
                    self._held.discard(shard)
                    self._reading.discard(shard)
        # Beyond the fair share: stop reading, and give back once nothing is in hand.
        for shard in sorted(self._reading, reverse=True)[: max(len(self._reading) - fair, 0)]:
            self._reading.discard(shard)
        for shard in sorted(self._held - self._reading):
            if not self._in_hand.get(shard):
                await self._release(
                    keys=[keys.telegram_inbox_owner(self.bot_id, shard)], args=[self.name]
                )
                self._held.discard(shard)
        if len(self._held) >= fair:
            return
        start = random.randrange(self.shards)
        for step in range(self.shards):
            shard = (start + step) % self.shards
            if shard in self._held:
                continue
            owner = keys.telegram_inbox_owner(self.bot_id, shard)
            if await self.redis.set(owner, self.name, nx=True, px=ttl):
                self._held.add(shard)
                await self._take_over(shard)
                self._reading.add(shard)
                if len(self._held) >= fair:
                    return

    async def _take_over(self, shard: int) -> None:
        """Start on a shard: first the updates its last holder read but never finished."""
        key = self._key(shard)
        try:
            await self.redis.xgroup_create(key, GROUP, id="0", mkstream=True)
        except ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise
        cursor = "0-0"
        while True:
            # The lease shows the last holder is gone: claim all its pending updates.
            claimed: Any = await self.redis.xautoclaim(key, GROUP, self.name, 0, cursor, count=1000)
            cursor = str(claimed[0])
            if cursor == "0-0":
                break
        last = "0"
        while True:
            pending: Any = await self.redis.xreadgroup(GROUP, self.name, {key: last}, count=BATCH)
            entries = pending[0][1] if pending else []
            if not entries:
                break
            for entry_id, fields in entries:
                self._dispatch(shard, entry_id, fields, replay=True)
            last = entries[-1][0]
        if self._in_hand.get(shard):
            log.info(
                "telegram inbox: shard %d: %d unfinished update(s)", shard, self._in_hand[shard]
            )

    # --- reading and handling ----------------------------------------------------

    async def _read(self) -> None:
        while not self._stopping.is_set():
            if not self._reading:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.05)
                continue
            await self._room.wait()
            if self._stopping.is_set():
                return
            streams: Any = {self._key(shard): ">" for shard in sorted(self._reading)}
            try:
                reply: Any = await self.redis.xreadgroup(
                    GROUP, self.name, streams, count=BATCH, block=BLOCK_MS
                )
            except RedisError as err:
                log.warning("telegram inbox: cannot read updates: %s", err)
                await asyncio.sleep(0.5)
                continue
            try:
                for key, entries in reply or []:
                    shard = int(str(key).rsplit(":", 1)[1])
                    for entry_id, fields in entries:
                        self._dispatch(shard, entry_id, fields, replay=False)
            except Exception:
                # A bug, not an outage: reading goes on, or this process's shards would stall
                # while it holds them.  What was read and not dispatched stays pending, for
                # the next holder of its shard.
                log.exception("telegram inbox: updates read could not be dispatched")

    def _dispatch(self, shard: int, entry_id: str, fields: dict[str, str], *, replay: bool) -> None:
        try:
            chat = fields["chat"]
            sealed = base64.b64decode(fields["update"], validate=True)
            update = json.loads(self._aead.decrypt(sealed, aad=self._aad(shard, chat)))
        except (KeyError, ValueError, CryptoError):
            # Not ours to read (a changed secret key): dropping it is all that can be done.
            log.error("telegram inbox: unreadable entry %s dropped", entry_id)
            task = asyncio.create_task(self._acknowledge(shard, entry_id))
            self._chat_tasks.add(task)
            task.add_done_callback(self._chat_tasks.discard)
            return
        self._in_hand[shard] = self._in_hand.get(shard, 0) + 1
        if sum(self._in_hand.values()) >= MAX_IN_HAND:
            self._room.clear()
        entry = _Entry(shard, entry_id, update, replay)
        queue = self._chats.get(chat)
        if queue is not None:
            queue.append(entry)
            return
        self._chats[chat] = deque([entry])
        task = asyncio.create_task(self._run_chat(chat))
        self._chat_tasks.add(task)
        task.add_done_callback(self._chat_tasks.discard)

    async def _run_chat(self, chat: str) -> None:
        """Handle one chat's updates in order, each until it is done."""
        queue = self._chats[chat]
        try:
            while queue:
                entry = queue[0]
                if not await self._handle_until_done(entry):
                    return  # stopping: it stays pending, with the rest, for the next holder
                await self._acknowledge(entry.shard, entry.entry_id)
                queue.popleft()
                self._in_hand[entry.shard] -= 1
                if sum(self._in_hand.values()) < MAX_IN_HAND:
                    self._room.set()
                if self._stopping.is_set():
                    return  # the rest stay pending, for the next holder
        finally:
            if self._chats.get(chat) is queue:
                del self._chats[chat]

    async def _handle_until_done(self, entry: _Entry) -> bool:
        """Handle an update, trying again while Redis is unavailable; False if stopped first."""
        wait = RETRY_FIRST
        while True:
            try:
                if await self.handle(entry.update, entry.replay):
                    return True
            except Exception:
                # A bug, not an outage: trying again would fail the same way.
                log.exception("telegram inbox: update %s failed; dropped", entry.entry_id)
                return True
            if self._stopping.is_set():
                return False
            await asyncio.sleep(wait)
            wait = min(wait * 2, RETRY_MOST)

    async def _acknowledge(self, shard: int, entry_id: str) -> None:
        """Acknowledge and delete a handled update, until Redis takes it."""
        wait = RETRY_FIRST
        while True:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.xack(self._key(shard), GROUP, entry_id)
                    pipe.xdel(self._key(shard), entry_id)
                    await pipe.execute()
                return
            except RedisError as err:
                log.warning("telegram inbox: cannot acknowledge an update yet: %s", err)
                await asyncio.sleep(wait)
                wait = min(wait * 2, RETRY_MOST)
