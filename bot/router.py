"""The async message router: once per delivery, one message per sender at a time."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

from ballots import keys
from bot import texts
from bot.conversation import Conversation
from bot.copies import PlatformCopies
from bot.messages import InboundMessage, OutboundMessage
from bot.metrics import DUPLICATES, ERRORS, HANDLING_SECONDS, MESSAGES_IN, MESSAGES_OUT
from bot.state import CHOOSING, State, StateStore, Step
from channels.base import Sender

log = logging.getLogger(__name__)

#: How long a platform message id is remembered (Twilio and Telegram retry for hours).
DELIVERY_TTL = 7 * 24 * 3600
#: How long one message may hold its sender's lock, and how long the next waits.
LOCK_TIMEOUT = 30.0
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

    async def handle(self, msg: InboundMessage) -> list[OutboundMessage]:
        """Handle one inbound message; the result is the replies to its sender.

        A repeated delivery (same channel and platform message id) gets no
        replies and changes nothing.  Messages for other addresses (an SMS
        code for a Telegram voter) are sent here through the channel senders.
        """
        started = time.perf_counter()
        MESSAGES_IN.labels(msg.channel).inc()
        seen_key = keys.delivery(msg.channel, msg.message_id) if msg.message_id else None
        if seen_key is not None and not await self.redis.set(
            seen_key, "1", nx=True, ex=DELIVERY_TTL
        ):
            DUPLICATES.labels(msg.channel).inc()
            return []
        try:
            lock = self.redis.lock(
                keys.sender_lock(msg.channel, msg.address),
                timeout=LOCK_TIMEOUT,
                blocking_timeout=LOCK_WAIT,
            )
            if not await lock.acquire():
                if seen_key is not None:
                    await self.redis.delete(seen_key)
                return [OutboundMessage(texts.busy())]
            try:
                before = await self.store.load(msg.channel, msg.address)
                state, out = await self.conversation.step(before, msg)
                await self.store.save(
                    msg.channel, msg.address, state, until=self.conversation.forget_at(state)
                )
                # Under the chat's lock: its next message, in any process, comes after.
                await self._track_copies(msg, before, state)
            finally:
                try:
                    await lock.release()
                except LockError:
                    log.warning("sender lock expired while handling a %s message", msg.channel)
            replies = await self._deliver(msg, out)
        except Exception:
            # Forget the delivery so the platform's retry is handled, and give
            # the voter a reply rather than a silence.
            ERRORS.labels("router").inc()
            log.exception("failed to handle a %s message", msg.channel)
            if seen_key is not None:
                await self.redis.delete(seen_key)
            return [OutboundMessage(texts.failure())]
        finally:
            HANDLING_SECONDS.labels(msg.channel).observe(time.perf_counter() - started)
        MESSAGES_OUT.labels(msg.channel, "reply").inc(len(replies))
        return replies

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

    async def _deliver(
        self, msg: InboundMessage, out: list[OutboundMessage]
    ) -> list[OutboundMessage]:
        """Split replies from messages for elsewhere, and send the latter now."""
        replies: list[OutboundMessage] = []
        for m in out:
            if m.is_reply or (m.channel == msg.channel and m.address == msg.address):
                replies.append(replace(m, channel=None, address=None))
                continue
            assert m.channel is not None and m.address is not None
            sender = self.senders.get(m.channel)
            if sender is None:
                log.error(
                    "no %s sender is configured; a %s message was not sent", m.channel, m.kind
                )
                replies.append(OutboundMessage(texts.code_not_delivered()))
                continue
            result = await sender.send(m.address, m)
            if result.ok:
                MESSAGES_OUT.labels(m.channel, m.kind).inc()
            else:
                log.warning(
                    "%s %s message not delivered: %s %s",
                    m.channel,
                    m.kind,
                    result.status,
                    result.detail,
                )
                if m.kind == "code":
                    replies.append(OutboundMessage(texts.code_not_delivered()))
        return replies
