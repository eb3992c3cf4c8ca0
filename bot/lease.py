"""A per-chat lock that does not outlive its holder: a short lease, renewed while the work runs.

A process that dies holding a chat's lock (kill -9, a lost machine) leaves it
to expire within one lease, so the voter's next message waits at most that
long, however long the lock was held.  A live holder renews the lease every
third of it, so a slow message keeps its chat to itself.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

log = logging.getLogger(__name__)

#: How long a holder that stopped renewing (a dead process) keeps the lock.
LEASE = 2.0


class Lease:
    """``async with Lease(redis, key) as held:`` ``held`` is False if the wait ran out."""

    def __init__(self, redis: Redis, key: str, *, lease: float = LEASE, wait: float = 20.0) -> None:
        self._lock: Lock = redis.lock(key, timeout=lease, blocking_timeout=wait)
        self._every = lease / 3
        self._stop = asyncio.Event()
        self._renewer: asyncio.Task[None] | None = None
        self.lost = False

    async def __aenter__(self) -> bool:
        if not await self._lock.acquire():
            return False
        self._renewer = asyncio.create_task(self._renew(), name="lease renewer")
        return True

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._renewer is None:
            return
        # Not awaited: a renewal that still runs finds the lock released (or another
        # holder's) and changes nothing.
        self._stop.set()
        self._renewer.cancel()
        try:
            await self._lock.release()
        except LockError:
            self.lost = True
            log.warning("a chat's lock lapsed while its message was handled")

    async def _renew(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(self._every)
            if self._stop.is_set():
                return
            try:
                await self._lock.reacquire()
            except (LockError, RedisError) as err:
                self.lost = True
                log.warning("could not renew a chat's lock: %s", err)
                return
