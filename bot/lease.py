"""A per-chat lock that does not outlive its holder: a short lease, renewed while the work runs.

A process that dies holding a chat's lock (kill -9, a lost machine) leaves it
to expire within one lease, so the voter's next message waits at most that
long, however long the lock was held.  A live holder renews the lease every
third of it, so a slow message keeps its chat to itself.

The lock is one key holding its holder's token, taken with ``SET NX PX``
(the router takes it inside its begin script, with the chat's state) and
renewed and released by scripts that act only while the token is still
ours.  The token is this process's random prefix and a counter: unique, and
cheaper than a UUID a message.  Renewal is a timer, not a task: most
messages are done long before the first renewal is due.
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

#: KEYS: the lock.  ARGV: its holder's token, the lease (ms).  -> 1 if still ours (renewed).
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
#: KEYS: the lock.  ARGV: its holder's token.  -> 1 if it was ours (and is let go).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_PROCESS = secrets.token_hex(8)
_counter = itertools.count()


class Lease:
    """One holder's lease on a lock key.

    ``async with Lease(redis, key) as held:`` takes it (``held`` is False if
    the wait ran out), renews it and releases it.  A caller that takes the
    key itself (with :attr:`token` and :attr:`ms`) calls :meth:`keep` once it
    holds it, and :meth:`stop` before it lets it go.
    """

    def __init__(self, redis: Redis, key: str, *, lease: float = LEASE, wait: float = 20.0) -> None:
        self._redis = redis
        self.key = key
        #: The lease's length in milliseconds, as ``SET ... PX`` takes it.
        self.ms = int(lease * 1000)
        self._wait = wait
        #: What the key holds while it is ours.
        self.token = f"{_PROCESS}:{next(_counter)}"
        self._every = lease / 3
        self._timer: asyncio.TimerHandle | None = None
        self._renewal: asyncio.Task[None] | None = None
        self._stopped = False
        #: The lease lapsed, or could not be renewed, while it was held.
        self.lost = False

    async def __aenter__(self) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        while not await self._redis.set(self.key, self.token, nx=True, px=self.ms):
            if loop.time() + POLL > deadline:
                return False
            await asyncio.sleep(POLL)
        self.keep()
        return True

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is None and self._renewal is None:
            return  # never taken
        self.stop()
        await self.release()

    def keep(self) -> None:
        """Renew the lease every third of it, from now until :meth:`stop`."""
        self._timer = asyncio.get_running_loop().call_later(self._every, self._due)

    def stop(self) -> None:
        """Renew no more.  A renewal already sent finds the lock released (or another
        holder's) and changes nothing."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._renewal is not None:
            self._renewal.cancel()

    async def release(self) -> None:
        """Let the lock go, if it is still ours."""
        released = await self._redis.eval(RELEASE, 1, self.key, self.token)
        if not int(released):
            self.lost = True
            log.warning("a chat's lock lapsed while its message was handled")

    def _due(self) -> None:
        if not self._stopped:
            self._renewal = asyncio.create_task(self._renew(), name="lease renewal")

    async def _renew(self) -> None:
        try:
            renewed = await self._redis.eval(RENEW, 1, self.key, self.token, self.ms)
        except RedisError as err:
            self.lost = True
            log.warning("could not renew a chat's lock: %s", err)
            return
        if not int(renewed):
            self.lost = True
            log.warning("could not renew a chat's lock: it lapsed and is not ours")
            return
        if not self._stopped:
            self.keep()
