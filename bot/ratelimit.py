"""A sending rate shared by every process, kept in Redis.

Each channel has one schedule in Redis (a GCRA with no burst): a sender
books the next free slot, sleeps until it, then asks to go.  Slots are at
least ``1 / rate`` seconds apart on Redis's own clock (``TIME`` inside the
scripts), so the rate holds across any number of processes on any number of
machines, whatever their clocks say.

A 429 (or Telegram's ``retry_after``) pauses the channel for every process
until the time the platform asked for, and then halves its rate for
:data:`SLOW_FOR` seconds.  A booked slot that falls inside a pause is given
up at the ``go`` step and booked again after it.

However late a process takes up its booked slot, ``go`` also refuses a
message that would make more than the rate in the last second (a sorted
set of send times per channel): that is the hard cap.

Telegram also asks for about one message a second per chat: ``go`` takes a
short-lived per-chat key (``SET NX PX``) at the moment of sending.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from ballots import keys
from bot.messages import Channel
from bot.settings import Settings

log = logging.getLogger(__name__)

#: After a pause, the rate stays halved for this many seconds.
SLOW_FOR = 30.0
#: How much slower "slowed down" is.
SLOW_FACTOR = 2.0

# KEYS: the channel's schedule.  ARGV: interval (ms), slow-down factor.
# Returns the wait (ms) until the booked slot.
_BOOK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local f = redis.call('HMGET', KEYS[1], 'tat', 'paused_until', 'slow_until')
local tat = tonumber(f[1] or '0')
local paused = tonumber(f[2] or '0')
local interval = tonumber(ARGV[1])
if now < tonumber(f[3] or '0') then interval = interval * tonumber(ARGV[2]) end
local slot = math.max(tat, now, paused)
redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', slot + interval))
redis.call('PEXPIRE', KEYS[1], math.ceil(slot + interval - now) + 60000)
return string.format('%.3f', slot - now)
"""

# KEYS: the channel's schedule, the chat's key, the channel's window.
# ARGV: chat interval (ms), '1' to space the chat, window (ms), messages allowed in it.
# Returns '0' to send now; 'w<ms>' to ask again after a wait (the window is
# full); '<ms>' to book again after a wait (paused, or the chat is busy).
_GO = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local paused = tonumber(redis.call('HGET', KEYS[1], 'paused_until') or '0')
if paused > now then return string.format('%.3f', paused - now) end
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('%.3f', now - window))
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  return 'w' .. string.format('%.3f', math.max(tonumber(oldest[2]) + window - now, 0.1))
end
if ARGV[2] == '1' then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
    return tostring(math.max(redis.call('PTTL', KEYS[2]), 1))
  end
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[3], string.format('%.3f', now), string.format('%.3f:%d', now, seq))
redis.call('PEXPIRE', KEYS[3], math.ceil(window) + 1000)
return '0'
"""

# KEYS: the channel's schedule.  ARGV: pause (ms), slow-down window (ms).
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local f = redis.call('HMGET', KEYS[1], 'tat', 'paused_until', 'slow_until')
local paused = math.max(tonumber(f[2] or '0'), now + tonumber(ARGV[1]))
local slow = math.max(tonumber(f[3] or '0'), paused + tonumber(ARGV[2]))
local tat = math.max(tonumber(f[1] or '0'), paused)
redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', tat),
  'paused_until', string.format('%.3f', paused), 'slow_until', string.format('%.3f', slow))
redis.call('PEXPIRE', KEYS[1], math.ceil(slow - now) + 60000)
return string.format('%.3f', paused - now)
"""


class RateLimiter:
    """Spaces sends on each channel so that all processes together keep its rate."""

    def __init__(
        self,
        redis: Redis,
        rates: dict[str, float],
        *,
        chat_rates: dict[str, float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        for channel, rate in {**rates, **(chat_rates or {})}.items():
            if rate <= 0:
                raise ValueError(f"the {channel} rate must be above 0, not {rate}")
        self.redis = redis
        self.rates = dict(rates)
        self.chat_rates = dict(chat_rates or {})
        self._sleep = sleep
        self._book = redis.register_script(_BOOK)
        self._go = redis.register_script(_GO)
        self._pause = redis.register_script(_PAUSE)

    async def wait_turn(self, channel: str, address: str | None = None) -> None:
        """Return when one message may go to ``address`` on ``channel``, now."""
        rate = self.rates[channel]
        interval_ms = 1000.0 / rate
        # The hard cap: never more than the rate in any window of a second
        # (or of one interval, for rates under one a second), however late a
        # booked slot is taken up.
        window_ms = max(1000.0, interval_ms)
        allowed = max(1, math.floor(rate * window_ms / 1000))
        chat_rate = self.chat_rates.get(channel)
        spaced = chat_rate is not None and address is not None
        chat_ms = round(1000.0 / chat_rate) if chat_rate is not None else 0
        go_keys = [
            keys.send_rate(channel),
            keys.chat_rate(channel, address or "-"),
            keys.send_window(channel),
        ]
        go_args = [max(chat_ms, 1), "1" if spaced else "0", window_ms, allowed]
        while True:
            wait = float(
                await self._book(keys=[keys.send_rate(channel)], args=[interval_ms, SLOW_FACTOR])
            )
            if wait > 0:
                await self._sleep(wait / 1000)
            while True:
                answer = str(await self._go(keys=go_keys, args=go_args))
                if answer == "0":
                    return
                if not answer.startswith("w"):
                    break
                await self._sleep(float(answer[1:]) / 1000)
            await self._sleep(float(answer) / 1000)

    async def pause(self, channel: str, seconds: float) -> None:
        """Stop every process sending on ``channel`` for ``seconds`` (a 429), then go slower."""
        log.warning("%s: the platform asked us to slow down; pausing %.1f s", channel, seconds)
        await self._pause(
            keys=[keys.send_rate(channel)], args=[max(seconds, 0.0) * 1000, SLOW_FOR * 1000]
        )

    def backoff_sleep(self, channel: str) -> Callable[[float], Awaitable[None]]:
        """A ``sleep`` for a sender's retry loop: the backoff pauses every process, and the
        retry waits for a turn like any other message."""

        async def sleep(seconds: float) -> None:
            await self.pause(channel, seconds)
            await self.wait_turn(channel)

        return sleep


def limiter_for(settings: Settings, redis: Redis) -> RateLimiter:
    """The shared rate limiter, with the rates from the settings."""
    return RateLimiter(
        redis,
        {Channel.SMS: settings.sms_rate, Channel.TELEGRAM: settings.telegram_rate},
        chat_rates={Channel.TELEGRAM: settings.telegram_chat_rate},
    )
