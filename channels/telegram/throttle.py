"""Spacing out Bot API calls: Telegram's flood limits, and waiting out a 429.

Telegram asks bots to send about one message a second per chat (short
bursts are tolerated), twenty a minute per group, and about thirty a second
overall; past that it answers 429 with ``retry_after``, and then the whole
bot must wait.  This limiter spaces one process's calls; given a shared
limit (the Redis one every process uses), each message also takes its turn
in the bot's overall rate across all processes, and a 429 pauses them all.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, Protocol

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.metrics import SEND_FAILURES

log = logging.getLogger(__name__)

#: Calls that put a message in a chat, and so count against the flood limits.
THROTTLED = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
        "sendPhoto",
        "sendDocument",
        "copyMessage",
        "forwardMessage",
    }
)

#: A group gets a third of a private chat's rate: twenty a minute at one a second.
GROUP_SLOWDOWN = 3.0


class SharedLimit(Protocol):
    """A rate shared by every process sending as this bot (``bot.ratelimit.RateLimiter``)."""

    async def wait_turn(self, channel: str, address: str | None = None) -> None: ...

    async def pause(self, channel: str, seconds: float) -> None: ...


class _Schedule:
    """When the next call may go, for one stream of calls (GCRA: a rate plus a burst)."""

    __slots__ = ("interval", "next", "tolerance")

    def __init__(self, interval: float, burst: int) -> None:
        self.interval = interval
        self.tolerance = interval * (burst - 1)
        self.next = 0.0

    def earliest(self, now: float) -> float:
        return max(now, self.next - self.tolerance)

    def book(self, at: float) -> None:
        self.next = max(self.next, at) + self.interval


class Throttle(BaseRateLimiter[None]):
    """A PTB rate limiter: per-chat and overall spacing, and retries after 429.

    ``rate`` is messages a second for the whole bot, ``chat_rate`` for one
    private chat, of which ``chat_burst`` may go back to back (a group gets a
    third of that, one at a time).  A 429 pauses
    every call for ``retry_after`` seconds and the call is made again, up to
    ``max_retries`` times; any other error is the caller's to handle.
    """

    def __init__(
        self,
        rate: float,
        chat_rate: float,
        *,
        chat_burst: int = 3,
        max_retries: int = 8,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        shared: SharedLimit | None = None,
    ) -> None:
        self.shared = shared
        self.rate = rate
        self.chat_rate = chat_rate
        self.chat_burst = chat_burst
        self.max_retries = max_retries
        self._sleep = sleep
        self._monotonic = monotonic
        self._overall = _Schedule(1 / rate, 1)
        self._chats: dict[object, _Schedule] = {}
        self._paused_until = 0.0

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        """Make the call when the limits allow, again after each 429."""
        attempt = 0
        while True:
            if endpoint in THROTTLED:
                await self._take_turn(data.get("chat_id"))
                if self.shared is not None:
                    # The chat's burst stays this process's; the bot's overall
                    # rate is every process's together.
                    await self.shared.wait_turn("telegram")
            await self._wait_pause()
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as err:
                attempt += 1
                delay = retry_after_seconds(err)
                SEND_FAILURES.labels("telegram", "rate_limited").inc()
                if attempt > self.max_retries:
                    log.error(
                        "%s: still flood-limited after %d tries; giving up", endpoint, attempt
                    )
                    raise
                log.warning("%s: flood-limited by Telegram; waiting %.1f s", endpoint, delay)
                self._paused_until = max(self._paused_until, self._monotonic() + delay)
                if self.shared is not None:
                    await self.shared.pause("telegram", delay)

    async def _wait_pause(self) -> None:
        while (wait := self._paused_until - self._monotonic()) > 0:
            await self._sleep(wait)

    async def _take_turn(self, chat_id: object) -> None:
        """Book the earliest slot the bot's and the chat's schedules allow; wait for it."""
        now = self._monotonic()
        chat = self._chat_schedule(chat_id, now)
        at = max(now, self._paused_until, self._overall.earliest(now))
        if chat is not None:
            at = max(at, chat.earliest(now))
            chat.book(at)
        self._overall.book(at)
        if at > now:
            await self._sleep(at - now)

    def _chat_schedule(self, chat_id: object, now: float) -> _Schedule | None:
        if chat_id is None:
            return None
        schedule = self._chats.get(chat_id)
        if schedule is None:
            if len(self._chats) >= 10_000:
                # Forget chats that are free to send again: their schedule is back at rest.
                self._chats = {k: s for k, s in self._chats.items() if s.next > now}
            if isinstance(chat_id, int) and chat_id < 0:
                schedule = _Schedule(GROUP_SLOWDOWN / self.chat_rate, 1)
            else:
                schedule = _Schedule(1 / self.chat_rate, self.chat_burst)
            self._chats[chat_id] = schedule
        return schedule


def retry_after_seconds(err: RetryAfter) -> float:
    """The wait a 429 asks for, in seconds (PTB is moving it from int to timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = err.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)
