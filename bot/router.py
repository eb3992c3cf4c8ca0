"""The async message router: once per delivery, one message per sender at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ballots import keys
from ballots.errors import StoreUnavailable, unavailable
from bot import texts
from bot.conversation import Conversation
from bot.copies import PlatformCopies
from bot.lease import Lease
from bot.messages import InboundMessage, OutboundMessage
from bot.metrics import DUPLICATES, ERRORS, MESSAGES_OUT, for_channel
from bot.ports import Sender
from bot.state import CHOOSING, State, StateStore, Step

log = logging.getLogger(__name__)

#: How long a done delivery's replies are kept, to answer its repeats the same way.
DELIVERY_TTL = 24 * 3600
#: How long a sender's next message waits for the one being handled.
LOCK_WAIT = 20.0


class Router:
    """Takes each inbound message from any channel and returns the replies."""

    def __init__(
        self,
        redis: Redis,
        conversation: Conversation,
        senders: Mapping[str, Sender],
        store: StateStore,
        copies: PlatformCopies | None = None,
    ) -> None:
        self.redis = redis
        self.conversation = conversation
        self.senders = senders
        self.store = store
        self.copies = copies
        #: Sends for other addresses that go after the replies (``detached``), in flight.
        self._later: set[asyncio.Task[bool]] = set()

    async def handle(self, msg: InboundMessage, *, replay: bool = True) -> list[OutboundMessage]:
        """Handle one inbound message; the result is the replies to its sender.

        A delivery (channel and platform message id) is done only once its
        replies are stored, sealed, for a day: a repeated delivery of a done
        one changes nothing and gets the same replies again (none with
        ``replay=False``, for a channel that sent them itself), and a repeat
        of one that never finished (its process died) is handled afresh.
        Messages for other addresses (an SMS code for a Telegram voter) are
        sent here through the channel senders.  StoreUnavailable if Redis is
        down or refuses writes: nothing was done, and the channel should ask
        the platform to come back later.
        """
        started = time.perf_counter()
        metrics = for_channel(msg.channel)
        metrics.taken_in.inc()
        try:
            async with Lease(
                self.redis, keys.sender_lock(msg.channel, msg.address), wait=LOCK_WAIT
            ) as held:
                if not held:
                    return [OutboundMessage(texts.busy())]
                # Under the chat's lock: its next message, in any process, comes after.
                kept, before = await self._load(msg)
                if kept is not None:
                    return self._repeat(msg, kept, replay)
                after, out = await self.conversation.step(before, msg)
                await self._track_copies(msg, before, after)
                replies, later = await self._deliver(msg, out)
                await self._save(msg, after, replies)
                self._send_later(later)
        except Exception as err:
            return self._failed(msg, err)
        finally:
            metrics.handling.observe(time.perf_counter() - started)
        metrics.replies.inc(len(replies))
        return replies

    # --- the steps of one message ---------------------------------------------------

    async def _load(self, msg: InboundMessage) -> tuple[str | None, State]:
        """In one round trip: the replies kept if this delivery is done already (in any
        process), and where the chat is."""
        state_key = keys.conversation(msg.channel, msg.address)
        done_key = _done_key(msg)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(done_key or state_key)
            pipe.get(state_key)
            kept_raw, state_raw = await pipe.execute()
        kept = str(kept_raw) if done_key is not None and kept_raw is not None else None
        if state_raw is None:
            return kept, State()
        return kept, self.store.open(msg.channel, msg.address, str(state_raw))

    def _repeat(self, msg: InboundMessage, kept: str, replay: bool) -> list[OutboundMessage]:
        """A done delivery again: the same replies (none for a channel that sent them)."""
        DUPLICATES.labels(msg.channel).inc()
        if not replay:
            return []
        return self.store.open_replies(msg.channel, msg.address, kept) or []

    async def _save(
        self, msg: InboundMessage, state: State, replies: list[OutboundMessage]
    ) -> None:
        """The new state, and the delivery marked done with its replies, together."""
        done_key = _done_key(msg)
        async with self.redis.pipeline(transaction=False) as pipe:
            self.store.save_in(
                pipe, msg.channel, msg.address, state, until=self.conversation.forget_at(state)
            )
            if done_key is not None:
                sealed = self.store.seal_replies(msg.channel, msg.address, replies)
                pipe.set(done_key, sealed, ex=DELIVERY_TTL)
            await pipe.execute()

    def _send_later(self, messages: list[OutboundMessage]) -> None:
        """Send the detached messages now that the replies are stored, off their path."""
        for m in messages:
            task = asyncio.create_task(self._send(m))
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
            raise StoreUnavailable(str(err)) from err
        ERRORS.labels("router").inc()
        log.exception("failed to handle a %s message", msg.channel, exc_info=err)
        return [OutboundMessage(texts.failure())]

    async def _track_copies(self, msg: InboundMessage, before: State, after: State) -> None:
        """Have the platform forget the voter's messages that carried their choices."""
        if self.copies is None or before.step not in CHOOSING:
            return
        try:
            await self.copies.voter_message(msg)
            if after.step is Step.DONE:
                await self.copies.chat_finished(msg.channel, msg.address)
        except RedisError as err:
            # The vote and the replies matter more; the copy stays on the platform.
            ERRORS.labels("copies").inc()
            log.warning("could not queue a %s message for removal: %s", msg.channel, err)

    async def aclose(self) -> None:
        """Wait for the sends still going on after their replies (on shutdown)."""
        while self._later:
            await asyncio.gather(*self._later, return_exceptions=True)

    async def _deliver(
        self, msg: InboundMessage, out: list[OutboundMessage]
    ) -> tuple[list[OutboundMessage], list[OutboundMessage]]:
        """Split replies from messages for elsewhere; send those now, bar the detached ones.

        Returns the replies, and the detached messages to send once the
        replies are stored.
        """
        replies: list[OutboundMessage] = []
        later: list[OutboundMessage] = []
        for m in out:
            if m.is_reply or (m.channel == msg.channel and m.address == msg.address):
                replies.append(replace(m, channel=None, address=None, detached=False))
                continue
            if m.detached:
                later.append(m)
                continue
            if not await self._send(m) and m.kind == "code":
                replies.append(OutboundMessage(texts.code_not_delivered()))
        return replies, later

    async def _send(self, m: OutboundMessage) -> bool:
        """Send a message for another address through its channel; whether it went."""
        assert m.channel is not None and m.address is not None
        sender = self.senders.get(m.channel)
        if sender is None:
            log.error("no %s sender is configured; a %s message was not sent", m.channel, m.kind)
            return False
        try:
            result = await sender.send(m.address, m)
        except Exception:
            log.exception("sending a %s %s message failed", m.channel, m.kind)
            return False
        if result.ok:
            MESSAGES_OUT.labels(m.channel, m.kind).inc()
            return True
        log.warning(
            "%s %s message not delivered: %s %s", m.channel, m.kind, result.status, result.detail
        )
        return False


def _done_key(msg: InboundMessage) -> str | None:
    """Where a delivery's replies are kept once done (None: the channel gives no id)."""
    return keys.delivery(msg.channel, msg.message_id) if msg.message_id else None
