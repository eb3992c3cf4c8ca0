"""A per-chat lock that does not outlive its holder: a short lease, renewed while the work runs.

A process that dies holding a chat's lock (kill -9, a lost machine) leaves it
to expire within one lease, so the voter's next message waits at most that
long, however long the lock was held.  A live holder renews the lease every
third of it, so a slow message keeps its chat to itself.

The lock is one key holding its holder's token: taken with ``SET NX PX`` (one
round trip), renewed and released by scripts that act only while the token
is still ours.  The token is this process's random prefix and a counter:
unique, and cheaper than a UUID a message.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from types import TracebackType

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

#: How long a holder that stopped renewing (a dead process) keeps the lock.
LEASE = 2.0
#: How often a waiting message tries for the lock again.
POLL = 0.05

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_PROCESS = secrets.token_hex(8)
_counter = itertools.count()


class Lease:
    """``async with Lease(redis, key) as held:`` ``held`` is False if the wait ran out."""

    def __init__(self, redis: Redis, key: str, *, lease: float = LEASE, wait: float = 20.0) -> None:
        self._redis = redis
        self._key = key
        self._ms = int(lease * 1000)
        self._wait = wait
        self._token = f"{_PROCESS}:{next(_counter)}"
        self._every = lease / 3
        self._stop = asyncio.Event()
        self._renewer: asyncio.Task[None] | None = None
        self.lost = False

    async def __aenter__(self) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        while not await self._redis.set(self._key, self._token, nx=True, px=self._ms):
            if loop.time() + POLL > deadline:
                return False
            await asyncio.sleep(POLL)
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
        released = await self._redis.eval(_RELEASE, 1, self._key, self._token)
        if not int(released):
            self.lost = True
            log.warning("a chat's lock lapsed while its message was handled")

    async def _renew(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(self._every)
            if self._stop.is_set():
                return
            try:
                renewed = await self._redis.eval(_RENEW, 1, self._key, self._token, self._ms)
            except RedisError as err:
                self.lost = True
                log.warning("could not renew a chat's lock: %s", err)
                return
            if not int(renewed):
                self.lost = True
                log.warning("could not renew a chat's lock: it lapsed and is not ours")
                return
