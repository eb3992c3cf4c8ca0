"""Sending a reminder job: claim, begin, send, finish, in any number of processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ballots import keys
from ballots.box import DURABLE_WAIT_MS
from ballots.clock import Clock, SystemClock
from ballots.connection import on_one_connection
from ballots.election import Election, election_version, get_election
from ballots.errors import StoreUnavailable, unavailable
from ballots.quiet import describe, local, quiet_until
from ballots.roll import CHOSEN_LANGUAGE
from bot.alerts import ChannelHealth
from bot.messages import Channel, OutboundMessage
from bot.metrics import MESSAGES_OUT
from bot.ports import Sender, SendResult, TextRules
from bot.ratelimit import RateLimiter
from bot.reach import Reach
from bot.reminders.common import (
    CHANNELS,
    HEARTBEAT,
    MAX_SMS_SEGMENTS,
    Outcome,
    ReminderError,
)
from bot.reminders.jobs import JobStatus, Reminders, record_finished
from bot.reminders.scripts import BEAT, BEGIN, CLAIM, FINISH, RECOVER, job_keys
from bot.reminders.text import Rendered, rendered
from bot.spend import SmsSpend

log = logging.getLogger(__name__)

#: How often, in seconds, a job held by quiet hours looks at the clock again.
QUIET_POLL = 5.0


# --- sending --------------------------------------------------------------------------


def default_concurrency(rate: float) -> int:
    """Messages on their way at once per process: a second's worth.

    A call takes ~200 ms, but one whose answer never comes holds its place
    until the sender's timeout: a second's worth keeps the rate with a few
    percent of answers held, as the fault-injection tests measure.
    """
    return max(4, min(256, math.ceil(rate)))


@dataclass(frozen=True)
class Claim:
    """One recipient a worker has claimed."""

    channel: str
    index: int
    supporter_id: str


#: Seconds a worker waits for Redis to answer again (a failover, a restart) before it stops.
OUTAGE_LIMIT = 120.0


def _outage(err: BaseException) -> bool:
    """Whether an error means Redis is unavailable for now (also: the heartbeat stopped so)."""
    if unavailable(err):
        return True
    return (
        isinstance(err, ReminderError) and err.__cause__ is not None and unavailable(err.__cause__)
    )


class Worker:
    """Drains one reminder job in this process, alongside any others.

    ``senders`` maps channel to :class:`bot.ports.Sender`; ``concurrency``
    is how many messages per channel may be on their way at once here (the
    rate limiter keeps all of them, in all processes, within the rate).
    """

    def __init__(
        self,
        redis: Redis,
        senders: Mapping[str, Sender],
        limiter: RateLimiter,
        rules: Mapping[str, TextRules],
        *,
        clock: Clock | None = None,
        concurrency: Mapping[str, int] | None = None,
        heartbeat: float = HEARTBEAT,
        max_segments: int = MAX_SMS_SEGMENTS,
        on_progress: Callable[[], None] | None = None,
        outage_limit: float = OUTAGE_LIMIT,
        durable_replicas: int = 0,
        quiet_poll: float = QUIET_POLL,
        spend: SmsSpend | None = None,
        health: ChannelHealth | None = None,
    ) -> None:
        self.redis = redis
        self.senders = senders
        self.limiter = limiter
        self.rules = rules
        self.clock = clock or SystemClock()
        self.id = secrets.token_hex(6)
        self.heartbeat = heartbeat
        self.max_segments = max_segments
        self.concurrency = dict(concurrency or {})
        self.on_progress = on_progress
        #: How long to wait for Redis to come back (a failover) before giving up.
        self.outage_limit = outage_limit
        #: When the last heartbeat landed (loop time).
        self._landed = 0.0
        #: The end of the quiet hours this worker last said it was waiting for.
        self._held_until: datetime | None = None
        #: Replicas that must hold a send's start before it goes (OPENPRIMARY_DURABLE_REPLICAS):
        #: a failover must not forget that a message went, or it would go twice.
        self.durable_replicas = durable_replicas
        #: How often a job held by quiet hours looks at the clock (and for a pause).
        self.quiet_poll = quiet_poll
        #: The election's SMS budget: each SMS takes its segments first; none left pauses.
        self.spend = spend
        #: Alerts organisers when every send on a channel has failed for a while.
        self.health = health
        self.reminders = Reminders(redis, self.clock)
        #: The election as last read, its version, and when (loop time): see _election_now.
        self._election: Election | None = None
        self._version = -1
        self._version_read = -math.inf
        self._claim = redis.register_script(CLAIM)
        self._begin = redis.register_script(BEGIN)
        self._finish = redis.register_script(FINISH)
        self._recover = redis.register_script(RECOVER)
        self._beat = redis.register_script(BEAT)

    async def run(self, job: str) -> JobStatus:
        """Send until the job is finished, paused or cancelled; returns its status then."""
        status = await self.reminders.status(job)
        if status.status != "running":
            return status
        election = await get_election(self.redis, status.election)
        missing = [ch for ch in CHANNELS if status.totals[ch] and ch not in self.senders]
        if missing:
            raise ReminderError(
                f"job {job} has {' and '.join(missing)} recipients but no {' or '.join(missing)} "
                "sender is configured (see TWILIO_* and TELEGRAM_BOT_TOKEN)"
            )
        keys_ = job_keys(job)
        loop = asyncio.get_running_loop()
        self._landed = loop.time()
        while True:
            try:
                return await self._run(job, election, status, keys_)
            except Exception as err:
                if not _outage(err):
                    raise
                # Redis is failing over (or down): this worker has stopped sending, as if
                # it had died.  Once Redis answers again it leaves (its unstarted claims go
                # back, a send that was under way is in doubt) and joins afresh.
                silent = loop.time() - self._landed
                if silent > self.outage_limit:
                    raise ReminderError(
                        f"worker {self.id}: no heartbeat for {silent:.0f} s ({err}); "
                        "gave up waiting for Redis"
                    ) from err
                log.warning("job %s: Redis unavailable (%s); waiting to carry on", job, err)
                await asyncio.sleep(min(1.0, self.heartbeat / 3))
                await self._wait_for_redis(job)
                await self._leave(job, election.id, keys_)
                status = await self.reminders.status(job)
                if status.status != "running":
                    return status

    async def _wait_for_redis(self, job: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.outage_limit
        while True:
            try:
                await self.redis.ping()
                await self.reminders.status(job)  # and it reads the job (a primary again)
                return
            except Exception as err:
                if not _outage(err) or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _run(
        self, job: str, election: Election, status: JobStatus, keys_: list[str]
    ) -> JobStatus:
        await self._beat(keys=keys_, args=[self.id, int(self.heartbeat * 1000), "1"])
        self._landed = asyncio.get_running_loop().time()
        beating = asyncio.create_task(self._keep_beating(keys_))
        drains: list[asyncio.Task[None]] = []
        try:
            await self._recover_dead(job, election.id, keys_)
            while True:
                drains = [
                    asyncio.create_task(self._drain(job, election, status.template, ch))
                    for ch in CHANNELS
                    if status.totals[ch]
                    for _ in range(self.concurrency.get(ch, 1))
                ]
                draining: asyncio.Future[list[None]] = asyncio.ensure_future(
                    asyncio.gather(*drains)
                )
                watched: set[asyncio.Future[Any]] = {draining, beating}
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if beating.done():
                    # Without a heartbeat other workers take this one for dead and
                    # mark its sends in doubt: stop sending at once.
                    draining.cancel()
                    await asyncio.gather(draining, return_exceptions=True)
                    beating.result()  # raises why it stopped
                await draining
                requeued, held = await self._recover_dead(job, election.id, keys_)
                now = await self.reminders.status(job)
                if now.status != "running":
                    break
                if requeued:
                    continue
                quiet = quiet_until(election, self.clock.now())
                if quiet is not None and now.remaining > now.claimed:
                    await self._hold(job, election, quiet)
                    continue
                if now.remaining > now.claimed:
                    # Work nobody holds: put back by a worker that stopped (or a
                    # pause and resume) after our drains ran dry.  Take it.
                    await asyncio.sleep(min(1.0, self.heartbeat / 3))
                    continue
                # Claims left are another worker's: a live one finishes them in a
                # moment; a dead one's are taken over once its heartbeat runs out.
                if not held:
                    break
                await asyncio.sleep(min(1.0, self.heartbeat / 3))
        finally:
            # Every task must have stopped before the claims are handed back.
            for task in (*drains, beating):
                task.cancel()
            await asyncio.gather(*drains, beating, return_exceptions=True)
            # Leave: what this worker claimed but never began goes back to the
            # queue; a send cut off mid-call is in doubt.  (With Redis unavailable,
            # run() leaves once it is back.)
            try:
                await asyncio.shield(self._leave(job, election.id, keys_))
            except Exception as err:
                if not _outage(err):
                    raise
        return await self.reminders.status(job)

    async def _hold(self, job: str, election: Election, until: datetime) -> None:
        """Wait in the quiet hours (a while at a time, so a pause or cancel is seen)."""
        if until != self._held_until:
            self._held_until = until
            log.info(
                "job %s: quiet hours (%s): holding the sends until %s",
                job,
                describe(election),
                local(election, until),
            )
        left = (until - self.clock.now()).total_seconds()
        await asyncio.sleep(min(self.quiet_poll, max(left, 0.01)))

    async def _leave(self, job: str, election_id: str, keys_: list[str]) -> None:
        await self._beat(keys=keys_, args=[self.id, 0, "0"])
        await self._recover_dead(job, election_id, keys_)

    async def _keep_beating(self, keys_: list[str]) -> None:
        """Beat every third of the heartbeat; a failed beat is tried again at the next.

        If no beat has landed for a whole heartbeat, the others may already
        count this worker as dead, so it raises and the worker stops sending.
        """
        loop = asyncio.get_running_loop()
        landed = loop.time()
        while True:
            await asyncio.sleep(self.heartbeat / 3)
            try:
                await self._beat(keys=keys_, args=[self.id, int(self.heartbeat * 1000), "1"])
                landed = self._landed = loop.time()
            except (RedisError, OSError) as err:
                if loop.time() - landed >= self.heartbeat:
                    raise ReminderError(
                        f"worker {self.id}: no heartbeat for {self.heartbeat:.0f} s ({err}); "
                        "stopping so that nothing is sent twice"
                    ) from err
                log.warning("worker %s: heartbeat failed (%s); trying again", self.id, err)

    async def _recover_dead(self, job: str, election_id: str, keys_: list[str]) -> tuple[int, int]:
        requeued, doubted, finished = await self._recover(keys=keys_, args=[])
        if int(doubted):
            log.warning(
                "job %s: %d message(s) were on their way when their worker died; "
                "marked in doubt, not sent again",
                job,
                int(doubted),
            )
        if str(finished) == "finished":
            await self._finished(job, election_id)
        held = int(await self.redis.hlen(keys_[1]))
        return int(requeued), held

    async def _finished(self, job: str, election_id: str) -> None:
        await record_finished(self.redis, self.clock, await self.reminders.status(job))

    async def _drain(self, job: str, election: Election, template: str, channel: str) -> None:
        """Claim and send, one message at a time, until nothing is left to claim."""
        keys_ = job_keys(job)
        while True:
            election = await self._election_now(election)
            if self.clock.now() >= election.closes:
                await self._closed(job, election)
                return
            if quiet_until(election, self.clock.now()) is not None:
                return  # nothing goes in the quiet hours: _run waits for their end
            reply = await self._claim(keys=keys_, args=[channel, self.id])
            if reply[0] != "ok":
                return
            claim = Claim(channel, int(reply[1]), str(reply[2]))
            outcome = await self._deliver(job, election, template, claim, keys_)
            if outcome is None:
                continue  # the claim went back (the job was paused meanwhile)
            if outcome in (Outcome.SENT, Outcome.SENT_BY_SMS):
                # When they were reminded, by which job: a cast within a day of it is
                # counted for the job (the pilots' report), and only counted.
                voter = keys.voter(
                    election.id,
                    keys.shard_of(claim.supporter_id, election.shards),
                    claim.supporter_id,
                )
                await self.redis.hset(
                    voter, "reminded", f"{job}:{int(self.clock.now().timestamp())}"
                )
            done = await self._finish(
                keys=keys_,
                args=[channel, claim.index, self.id, int(outcome.progress), outcome.value],
            )
            if self.on_progress is not None:
                self.on_progress()
            if str(done) == "finished":
                await self._finished(job, election.id)

    async def _election_now(self, election: Election) -> Election:
        """The election as stored, read again at most once a second (its version first):
        a poll closed or extended while the job runs is seen by the next message."""
        now = asyncio.get_running_loop().time()
        if now - self._version_read < 1.0:
            return self._election or election
        self._version_read = now
        version = await election_version(self.redis, election.id)
        if self._election is None or version != self._version:
            self._election = await get_election(self.redis, election.id)
            self._version = version
        return self._election

    async def _closed(self, job: str, election: Election) -> None:
        """The poll has closed: nobody left is reminded (the job is cancelled, audited)."""
        with contextlib.suppress(ReminderError):  # another worker stopped it first
            await self.reminders.cancel(job, "openprimary", factor="the poll closed")
            log.info(
                "job %s: the poll closed %s: nobody left is reminded",
                job,
                local(election, election.closes),
            )

    async def _deliver(
        self, job: str, election: Election, template: str, claim: Claim, keys_: list[str]
    ) -> Outcome | None:
        """Check the recipient again, wait for a turn, send.  (None: the claim went back.)"""
        skip, name, address, wanted = await self._recipient(election, claim)
        if skip is not None:
            return skip
        one = self._rendered(template, election, name, wanted, claim.channel)
        if one.problem:
            log.warning("job %s: reminder to %s not sent: %s", job, claim.supporter_id, one.problem)
            return Outcome.FAILED

        sender = self.senders[claim.channel]
        if not sender.paces_itself:
            await self.limiter.wait_turn(claim.channel, address)
            # The wait can be long (a 429 pause, a queue of turns): whoever
            # voted or opted out meanwhile is not messaged.
            skip, *_ = await self._recipient(election, claim)
            if skip is not None:
                return skip
        if claim.channel == Channel.SMS and not await self._budgeted(job, one.parts):
            return None  # paused: the claim goes back
        began = await self._began(keys_, claim)
        if began != "ok":
            return None
        result = await self._send(job, sender, address, _message(one, claim.channel, address))
        if claim.channel == Channel.TELEGRAM and result.status == "unreachable":
            # Blocked the bot, or left Telegram: their phone may still take it.
            return await self._by_sms(job, election, template, claim)
        return self._outcome(claim.channel, result)

    async def _budgeted(self, job: str, segments: int) -> bool:
        """Take an SMS's segments from the election's budget; if it is spent, pause the
        job (organisers are alerted) and say no."""
        if self.spend is None or await self.spend.take(segments):
            return True
        log.warning("job %s: the election's SMS budget is spent; pausing the job", job)
        with contextlib.suppress(ReminderError):  # paused or stopped already
            await self.reminders.pause(job, "openprimary", factor="sms budget spent")
        return False

    async def _began(self, keys_: list[str], claim: Claim) -> str:
        """Mark the claim's send as started ("ok"), on enough replicas to survive a failover."""
        args: list[str | int] = [claim.channel, claim.index, self.id]
        if not self.durable_replicas:
            return str(await self._begin(keys=keys_, args=args))
        began, held = await on_one_connection(
            self.redis,
            keys_[0],
            ("EVAL", BEGIN, len(keys_), *keys_, *args),
            ("WAIT", self.durable_replicas, DURABLE_WAIT_MS),
        )
        if str(began) == "ok" and int(held) < self.durable_replicas:
            # Not sent: once Redis has its replicas again this worker leaves, and the
            # message is in doubt (never sent twice).
            raise StoreUnavailable(f"{int(held)} of {self.durable_replicas} replicas answered")
        return str(began)

    async def _send(
        self, job: str, sender: Sender, address: str, message: OutboundMessage
    ) -> SendResult:
        try:
            result = await sender.send(address, message)
        except Exception as err:
            # The platform may or may not have taken it: in doubt, like a crash.
            log.exception("job %s: the %s sender raised", job, sender.channel)
            result = SendResult("in_doubt", f"{type(err).__name__}: {err}")
        if self.health is not None:
            await self.health.outcome(sender.channel, result.status, result.detail)
        return result

    async def _by_sms(self, job: str, election: Election, template: str, claim: Claim) -> Outcome:
        """Send a Telegram recipient's reminder by SMS instead (the chat is unreachable)."""
        sms = self.senders.get(Channel.SMS)
        if sms is None:
            return Outcome.UNREACHABLE
        by_sms = replace(claim, channel=Channel.SMS)
        skip, name, phone, wanted = await self._recipient(election, by_sms)
        if skip is not None:
            return skip
        one = self._rendered(template, election, name, wanted, Channel.SMS)
        if one.problem:
            return Outcome.UNREACHABLE
        if not sms.paces_itself:
            await self.limiter.wait_turn(Channel.SMS, phone)
        if not await self._budgeted(job, one.parts):
            return Outcome.FAILED  # the budget is spent: the job is paused
        result = await self._send(job, sms, phone, _message(one, Channel.SMS, phone))
        outcome = self._outcome(Channel.SMS, result)
        return Outcome.SENT_BY_SMS if outcome is Outcome.SENT else outcome

    def _rendered(
        self, template: str, election: Election, name: str, wanted: str, channel: str
    ) -> Rendered:
        return rendered(
            template,
            election,
            name,
            wanted,
            self.clock.now(),
            self.rules[channel],
            self.max_segments,
        )

    async def _recipient(
        self, election: Election, claim: Claim
    ) -> tuple[Outcome | None, str, str, str]:
        """(why to skip, or None; name; address; roll language) for a claimed recipient,
        as of now."""
        shard = keys.shard_of(claim.supporter_id, election.shards)
        name, phone, chat, voted, language, chosen = await self.redis.hmget(
            keys.voter(election.id, shard, claim.supporter_id),
            ["name", "phone", "telegram_id", "voted", "language", CHOSEN_LANGUAGE],
        )
        if voted:
            return Outcome.VOTED, "", "", ""
        address = str((chat if claim.channel == Channel.TELEGRAM else phone) or "")
        if not address:
            return Outcome.UNREACHABLE, "", "", ""
        opted_out, unreachable = await Reach(self.redis).check(claim.channel, address)
        if opted_out:
            return Outcome.OPTED_OUT, "", "", ""
        if unreachable:
            return Outcome.UNREACHABLE, "", "", ""
        # A language the voter chose in the chat wins over the roll's.
        return None, str(name or ""), address, str(chosen or language or "")

    @staticmethod
    def _outcome(channel: str, result: SendResult) -> Outcome:
        outcome = Outcome.of_send(result.status)
        if outcome is Outcome.SENT:
            MESSAGES_OUT.labels(channel, "reminder").inc()
        elif outcome is Outcome.FAILED:
            log.warning("a %s reminder was not delivered: %s", channel, result.detail)
        return outcome


def _message(one: Rendered, channel: str, address: str) -> OutboundMessage:
    """A rendered reminder as a message to send."""
    return OutboundMessage(
        one.body,
        channel=channel,
        address=address,
        kind="reminder",
        faithful=one.faithful,
        language=one.language,
    )
