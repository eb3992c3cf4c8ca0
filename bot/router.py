"""The async message router: once per delivery, one message per sender at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ballots import keys
from ballots.connection import Batch, in_one_round_trip
from ballots.errors import StoreUnavailable, unavailable
from bot import texts
from bot.alerts import Alerts, ChannelHealth
from bot.copies import PlatformCopies
from bot.i18n import speaking
from bot.lease import POLL, Lease
from bot.lobby import Lobby
from bot.messages import Channel, InboundMessage, OutboundMessage
from bot.metrics import DUPLICATES, ERRORS, MESSAGES_OUT, for_channel
from bot.outsiders import Outsiders
from bot.ports import Sender, TextRules
from bot.spend import SmsSpend
from bot.state import CHOOSING, State, StateStore, Step
from bot.turn import Known

log = logging.getLogger(__name__)

#: How long a done delivery's replies are kept, to answer its repeats the same way.
DELIVERY_TTL = 24 * 3600
#: How long a sender's next message waits for the one being handled.
LOCK_WAIT = 20.0

#: The first round trip of a message: its delivery's kept replies if it is done already
#: (in any process), else the chat's lock and state.
_BEGIN = """
-- KEYS: the chat's lock, its state, the delivery's record (the state again if no id)
-- ARGV: lock token, lease (ms), '1' if the delivery has an id
if ARGV[3] == '1' then
  local kept = redis.call('GET', KEYS[3])
  if kept then return {'kept', kept} end
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'busy', ''} end
return {'taken', redis.call('GET', KEYS[2]) or ''}
"""

#: The last: the new state, the delivery marked done with its replies, the lock let go.
_COMMIT = """
-- KEYS: the chat's lock, its state, the delivery's record (the state again if no id)
-- ARGV: lock token, state, 'EX' or 'PXAT', its seconds or moment (ms),
--       sealed replies ('' if the delivery has no id), how long they are kept (s)
redis.call('SET', KEYS[2], ARGV[2], ARGV[3], ARGV[4])
if ARGV[5] ~= '' then redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[6]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Router:
    """Takes each inbound message from any channel and returns the replies."""

    def __init__(
        self,
        redis: Redis,
        lobby: Lobby,
        senders: Mapping[str, Sender],
        store: StateStore,
        copies: PlatformCopies | None = None,
        *,
        spends: dict[str, SmsSpend] | None = None,
        rules: Mapping[str, TextRules] | None = None,
        alerts: Alerts | None = None,
        health: ChannelHealth | None = None,
        outsiders: Outsiders | None = None,
    ) -> None:
        self.redis = redis
        #: Limits SMS replies to senders the roll does not know.
        self.outsiders = outsiders
        #: Tells organisers when Redis refuses writes; ``health`` when a channel fails.
        self.alerts = alerts
        self.health = health
        #: Each election's SMS spend, by election id: the segments sent for its chats
        #: (replies in the commit, codes to other phones) are counted in its own.
        self.spends: dict[str, SmsSpend] = spends if spends is not None else {}
        self.rules = rules or {}
        #: Hands each chat to its election's conversation.
        self.lobby = lobby
        self.senders = senders
        self.store = store
        self.copies = copies
        self._begin_script = redis.register_script(_BEGIN)
        self._commit_script = redis.register_script(_COMMIT)
        #: Sends for other addresses that go after the replies (``detached``), in flight.
        self._later: set[asyncio.Task[bool]] = set()
        self._alerting: set[asyncio.Task[bool]] = set()

    async def handle(self, msg: InboundMessage, *, replay: bool = True) -> list[OutboundMessage]:
        """Handle one message; the result is the replies to its sender.

        A delivery (channel and platform message id) is done only once its
        replies are stored, sealed, for a day: a repeated delivery of a done
        one changes nothing and gets the same replies again (none with
        ``replay=False``, for a channel that sent them itself), and a repeat
        of one that never finished (its process died) is handled afresh.
        Messages for other addresses (an SMS code for a Telegram voter) are
        sent here through the channel senders.  StoreUnavailable if Redis is
        down or refuses writes: nothing was done, and the channel should ask
        the platform to come back later.

        In the common case a message costs three Redis round trips: *begin*
        (the delivery's record, the chat's lock and state, and the roll
        lookups the step may need), the step's own atomic operation when it
        has one (a code check, a cast), and *commit* (the state, the replies
        and the lock's release, with the copies to remove).
        """
        started = time.perf_counter()
        metrics = for_channel(msg.channel)
        metrics.taken_in.inc()
        lease = Lease(self.redis, keys.sender_lock(msg.channel, msg.address))
        try:
            begun = await self._begin(msg, lease)
            if begun is None:
                return [OutboundMessage(texts.busy())]
            kept, before, known = begun
            if kept is not None:
                return self._repeat(msg, kept, replay)
            # Under the chat's lock: its next message, in any process, comes after.
            lease.keep()
            try:
                after, out = await self.lobby.step(before, msg, known)
                spend = self.spends.get(after.election or before.election)
                replies, later = await self._deliver(msg, out, spend)
                replies = self._to_outsider(msg, known, after, replies)
                lease.stop()
                await self._commit(msg, lease, known, before, after, replies)
            except BaseException:
                lease.stop()
                await _let_go(lease)
                raise
            self._send_later(later, spend)
        except Exception as err:
            return self._failed(msg, err)
        finally:
            metrics.handling.observe(time.perf_counter() - started)
        metrics.replies.inc(len(replies))
        return replies

    # --- the steps of one message ---------------------------------------------------

    async def _begin(
        self, msg: InboundMessage, lease: Lease
    ) -> tuple[str | None, State, Known] | None:
        """In one round trip: the replies kept if this delivery is done already (in any
        process); else the chat's lock, where the chat is, and what the step may need.
        None if the lock stayed another message's for the whole wait."""
        chat, done_key = _chat_keys(msg, lease)
        flags: list[str | int] = [lease.token, lease.ms, "1" if done_key else "0"]
        reads: list[Callable[[Sequence[Any]], Known]] = []

        outsiders = self.outsiders if msg.channel == Channel.SMS else None
        taken = 0

        def fill(batch: Batch) -> None:
            nonlocal taken
            batch.script(self._begin_script, chat, flags)
            if outsiders is not None:
                taken = outsiders.prefetch(batch, msg.address)
            reads.append(self.lobby.prefetch(batch, msg))

        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_WAIT
        while True:
            results = await in_one_round_trip(self.redis, fill)
            outcome, value = str(results[0][0]), str(results[0][1])
            if outcome == "kept":
                return value, State(), Known()
            if outcome == "taken":
                state = self.store.open(msg.channel, msg.address, value) if value else State()
                known = reads[-1](results[1 + taken :])
                if outsiders is not None:
                    known = replace(known, outsider=outsiders.standing(results[1 : 1 + taken]))
                return None, state, known
            if loop.time() + POLL > deadline:
                return None
            await asyncio.sleep(POLL)

    def _repeat(self, msg: InboundMessage, kept: str, replay: bool) -> list[OutboundMessage]:
        """A done delivery again: the same replies (none for a channel that sent them)."""
        DUPLICATES.labels(msg.channel).inc()
        if not replay:
            return []
        return self.store.open_replies(msg.channel, msg.address, kept) or []

    async def _commit(
        self,
        msg: InboundMessage,
        lease: Lease,
        known: Known,
        before: State,
        after: State,
        replies: list[OutboundMessage],
    ) -> None:
        """In one round trip: the new state and the delivery marked done with its replies
        (one script, so neither is ever stored without the other), the lock let go, the
        writes the step left (``known.writes``), and the voter's message queued for
        removal from the platform if it showed choices."""
        chat, done_key = _chat_keys(msg, lease)
        text, expiry, when = self.store.stored(
            msg.channel, msg.address, after, until=self.lobby.forget_at(after)
        )
        sealed = self.store.seal_replies(msg.channel, msg.address, replies) if done_key else ""
        copies = self.copies if before.step in CHOOSING else None
        # Replies are counted against the election the chat is in (an outsider's, the first).
        spend = self.spends.get(after.election or before.election or self.lobby.home.election.id)
        billed = self._segments(msg.channel, replies) if spend is not None else 0

        def fill(batch: Batch) -> None:
            args: list[str | int] = [lease.token, text, expiry, when, sealed, DELIVERY_TTL]
            batch.script(self._commit_script, chat, args)
            known.queue_writes(batch)
            if spend is not None and billed:
                batch.pipe.incrby(spend.key, billed)
            if copies is not None:
                copies.chat_step_in(batch, msg, finished=after.step is Step.DONE)

        results = await in_one_round_trip(self.redis, fill, raise_on_error=False)
        if isinstance(results[0], Exception):
            raise results[0]
        if not int(results[0]):
            lease.lost = True
            log.warning("a chat's lock lapsed while its message was handled")
        writes = len(known.writes) + (1 if billed else 0)
        for err in [r for r in results[1 : 1 + writes] if isinstance(r, Exception)]:
            ERRORS.labels("router").inc()
            log.error("a %s message's step was saved, but not all it wrote: %s", msg.channel, err)
        if spend is not None and billed and not isinstance(results[writes], Exception):
            await spend.counted(billed, int(results[writes]))
        errors = [r for r in results[1 + writes :] if isinstance(r, Exception)]
        if errors:
            # The vote and the replies matter more; the copy stays on the platform.
            ERRORS.labels("copies").inc()
            log.warning("could not queue a %s message for removal: %s", msg.channel, errors[0])

    def _to_outsider(
        self, msg: InboundMessage, known: Known, after: State, replies: list[OutboundMessage]
    ) -> list[OutboundMessage]:
        """The replies for an SMS sender the roll does not know (not on it, and not
        identified): none past their hour's share or the outsiders' reserve; the ones sent
        are counted with the commit."""
        if (
            self.outsiders is None
            or known.outsider is None
            or known.phone_ids
            # Proved who they are (a supporter typed after a number is not: the same limit
            # for every number typed, so silence tells nothing about the roll).
            or after.step in (Step.RANK, Step.CONFIRM, Step.DONE)
            or not replies
        ):
            return replies
        segments = self._segments(msg.channel, replies)
        if not self.outsiders.allows(known.outsider, segments):
            return []
        outsiders, address = self.outsiders, msg.address
        known.writes.append(lambda batch: outsiders.bill(batch, address, segments))
        return replies

    def _segments(self, channel: str, messages: list[OutboundMessage]) -> int:
        """What ``messages`` cost by SMS (0 on other channels): one reply at a time, so a
        little more than the channel bills when it joins replies into one SMS."""
        rules = self.rules.get(Channel.SMS)
        if channel != Channel.SMS or rules is None:
            return 0
        return sum(rules.parts(m.text, m.faithful) for m in messages if m.text)

    def _alert_unavailable(self, err: Exception) -> None:
        """Tell organisers, off the message's path, that Redis cannot take writes."""
        if self.alerts is None:
            return
        alert = self.alerts.alert(
            "redis_unavailable",
            f"Redis cannot take writes ({err}): voters' messages are being turned away "
            "until it can (the platforms send them again). Check the Redis servers.",
        )
        task = asyncio.create_task(alert)
        self._alerting.add(task)
        task.add_done_callback(self._alerting.discard)

    def _send_later(self, messages: list[OutboundMessage], spend: SmsSpend | None) -> None:
        """Send the detached messages now that the replies are stored, off their path."""
        for m in messages:
            task = asyncio.create_task(self._send(m, spend))
            self._later.add(task)
            task.add_done_callback(self._later.discard)

    def _failed(self, msg: InboundMessage, err: Exception) -> list[OutboundMessage]:
        """What a message that could not be handled gets: StoreUnavailable when Redis is
        down or refuses writes (the channel asks the platform to come back: a 503 to
        Twilio), else a "Sorry" rather than a silence.  Nothing marks the delivery done,
        so the platform's retry is handled afresh."""
        if unavailable(err):
            ERRORS.labels("redis").inc()
            log.warning("a %s message could not be handled: Redis: %s", msg.channel, err)
            self._alert_unavailable(err)
            raise StoreUnavailable(str(err)) from err
        ERRORS.labels("router").inc()
        log.exception("failed to handle a %s message", msg.channel, exc_info=err)
        return [OutboundMessage(texts.failure())]

    async def drain(self) -> None:
        """Wait for the sends still going on after their replies, and alerts being raised."""
        while self._later or self._alerting:
            await asyncio.gather(*self._later, *self._alerting, return_exceptions=True)

    async def aclose(self) -> None:
        """On shutdown: let the sends still going on after their replies finish."""
        await self.drain()

    async def _deliver(
        self, msg: InboundMessage, out: list[OutboundMessage], spend: SmsSpend | None
    ) -> tuple[list[OutboundMessage], list[OutboundMessage]]:
        """Split replies from messages for elsewhere; send those now, bar the detached ones.

        Returns the replies, and the detached messages to send once the
        replies are stored.
        """
        replies: list[OutboundMessage] = []
        later: list[OutboundMessage] = []
        for m in out:
            if m.is_reply or (m.channel == msg.channel and m.address == msg.address):
                if m.channel is not None or m.address is not None or m.detached:
                    m = replace(m, channel=None, address=None, detached=False)  # noqa: PLW2901
                replies.append(m)
                continue
            if m.detached:
                later.append(m)
                continue
            if not await self._send(m, spend) and m.kind == "code":
                # In the code's own language (the step's), and sent as it was to be.
                with speaking(m.language):
                    text = texts.code_not_delivered()
                replies.append(OutboundMessage(text, language=m.language, faithful=m.faithful))
        return replies, later

    async def _send(self, m: OutboundMessage, spend: SmsSpend | None) -> bool:
        """Send a message for another address through its channel; whether it went (the
        segments counted in ``spend``, its election's)."""
        assert m.channel is not None and m.address is not None
        sender = self.senders.get(m.channel)
        if sender is None:
            log.error("no %s sender is configured; a %s message was not sent", m.channel, m.kind)
            return False
        try:
            result = await sender.send(m.address, m)
        except Exception as err:
            log.exception("sending a %s %s message failed", m.channel, m.kind)
            if self.health is not None:
                await self.health.failed(m.channel, f"{type(err).__name__}: {err}")
            return False
        if self.health is not None:
            await self.health.outcome(m.channel, result.status, result.detail)
        if result.ok:
            MESSAGES_OUT.labels(m.channel, m.kind).inc()
            if spend is not None:
                await spend.count(self._segments(m.channel, [m]))
            return True
        log.warning(
            "%s %s message not delivered: %s %s", m.channel, m.kind, result.status, result.detail
        )
        return False


def _chat_keys(msg: InboundMessage, lease: Lease) -> tuple[list[str], str | None]:
    """The begin and commit scripts' keys (the chat's lock, its state, the delivery's record,
    or the state again when the channel gives no id), and the delivery's record alone."""
    done_key = _done_key(msg)
    state_key = keys.conversation(msg.channel, msg.address)
    return [lease.key, state_key, done_key or state_key], done_key


def _done_key(msg: InboundMessage) -> str | None:
    """Where a delivery's replies are kept once done (None: the channel gives no id)."""
    return keys.delivery(msg.channel, msg.address, msg.message_id) if msg.message_id else None


async def _let_go(lease: Lease) -> None:
    """Release the lock of a message that failed; if Redis cannot be told, it lapses."""
    try:
        await lease.release()
    except RedisError as err:
        log.warning("could not release a chat's lock (it lapses within its lease): %s", err)
