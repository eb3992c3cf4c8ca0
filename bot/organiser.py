"""Organiser commands in the chat: REMIND (confirmed with SEND and a code), STATUS, TURNOUT.

Only the phone numbers and ``tg:<user id>`` entries in the election's
``organisers`` list get them (on Telegram, only in their private chat with
the bot, so figures never land in a group).  For anyone else, and for an
organiser's ordinary messages, :meth:`OrganiserCommands.handle` returns
None and the voting conversation answers as it would any supporter.

A caller's number can be spoofed, so by SMS organisers may only read
(STATUS, TURNOUT).  Anything that texts the roll or changes a job (REMIND
then SEND, PAUSE, RESUME) is for Telegram, where the user id cannot be
forged, and needs a second factor: a one-time code the bot sends to the
organiser's chat, typed back after the word (``SEND 482913``).  The CLI is
the other way.  Every command is written to the audit trail with who sent
it and the factor used.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Mapping

from redis.asyncio import Redis

from ballots import audit, keys
from ballots.clock import Clock
from ballots.election import Election
from ballots.turnout import turnout
from bot import texts
from bot.alerts import ChannelHealth
from bot.messages import Channel, InboundMessage, OutboundMessage
from bot.parse import normalise
from bot.ports import Sender, TextRules
from bot.reminders import (
    CHANNELS,
    Plan,
    ReminderError,
    Reminders,
    Worker,
    plan,
)
from bot.settings import Settings
from bot.spend import SmsSpend

log = logging.getLogger(__name__)

#: How long a drafted reminder waits for SEND.
CONFIRM_WITHIN = 600
#: Commands that text the roll or change a job: Telegram only, each confirmed with a code.
CHANGING = ("REMIND", "SEND", "DROP", "PAUSE", "RESUME")
#: The factor recorded in the audit trail for a command confirmed in the chat.
FACTOR = "telegram code"


def _say(text: str) -> list[OutboundMessage]:
    return [OutboundMessage(text)]


class OrganiserCommands:
    """A conversation extension for the election's organisers."""

    def __init__(
        self,
        redis: Redis,
        election: Election,
        clock: Clock,
        settings: Settings,
        senders: Mapping[str, Sender],
        rules: Mapping[str, TextRules],
        *,
        confirm_within: int = CONFIRM_WITHIN,
        spend: SmsSpend | None = None,
        health: ChannelHealth | None = None,
        worker: Callable[[], Worker] | None = None,
    ) -> None:
        self.redis = redis
        #: Makes a reminder worker for a job started here (``openprimary.app``).
        self.worker = worker
        self.health = health
        #: The election's SMS budget, which reminders started here keep to.
        self.spend = spend
        self.election = election
        self.clock = clock
        self.settings = settings
        self.senders = senders
        self.rules = rules
        self.confirm_within = confirm_within
        self.reminders = Reminders(redis, clock)
        self._workers: set[asyncio.Task[object]] = set()

    def organiser(self, msg: InboundMessage) -> str | None:
        """The organiser's audit name if ``msg`` comes from one, else None."""
        if msg.channel == Channel.SMS and msg.address in self.election.organisers:
            return f"sms:{msg.address}"
        if msg.channel == Channel.TELEGRAM:
            user = msg.user_id or msg.address
            if user == msg.address and f"tg:{user}" in self.election.organisers:
                return f"tg:{user}"
        return None

    async def handle(self, msg: InboundMessage) -> list[OutboundMessage] | None:
        """Replies to an organiser command; None for anything else."""
        actor = self.organiser(msg)
        if actor is None or msg.choice is not None or msg.contact is not None:
            return None
        text = normalise(msg.text)
        word, _, rest = text.partition(" ")
        word = word.upper().strip(".!")
        rest = rest.strip()
        if word == "STATUS" and not rest:
            return await self._status(actor)
        if word == "TURNOUT" and not rest:
            return await self._turnout(actor)
        if word not in CHANGING or (word != "REMIND" and rest and not rest.isdigit()):
            return None
        if msg.channel != Channel.TELEGRAM:
            await audit.record(
                self.redis,
                self.clock,
                self.election.id,
                actor,
                "organiser command refused",
                command=word,
                reason="by SMS organisers may only read",
            )
            return _say(texts.organiser_sms_read_only())
        pending = keys.organiser_pending(self.election.id, msg.channel, msg.address)
        if word == "REMIND":
            return await self._draft(actor, pending, rest)
        # SEND and DROP, not YES and NO: an organiser is a voter too, and their
        # YES to "cast your ballot?" must never start a reminder.
        if word in ("SEND", "DROP"):
            draft = await self._asked(pending)
            if draft is None:
                return _say(texts.no_draft())
            if word == "DROP":
                await self.redis.delete(pending)
                return _say(texts.draft_dropped())
            if not rest:
                return _say(texts.draft_needs_code())
            if not await self._confirmed(pending, draft, rest):
                return _say(texts.draft_wrong_code())
            return await self._start(actor, draft)
        confirm = keys.organiser_pending(self.election.id, msg.channel, msg.address, word.lower())
        return await self._pause_or_resume(actor, word, confirm, rest)

    async def _draft(self, actor: str, pending: str, template: str) -> list[OutboundMessage]:
        """Count who would get it and what it costs; wait for SEND."""
        if not template:
            return _say(texts.organiser_usage())
        draft = await plan(self.redis, self.election, template, rules=self.rules, clock=self.clock)
        if draft.problems:
            return _say(texts.reminder_not_sent(draft.problems[0]))
        if not draft.total:
            return _say(texts.nobody_to_remind())
        code = await self._ask(pending, {"template": template})
        first = draft.sample.get(Channel.SMS) or draft.sample.get(Channel.TELEGRAM, "")
        return _say(
            texts.reminder_draft(
                draft.total,
                draft.count(Channel.SMS),
                draft.sms_segments,
                draft.count(Channel.TELEGRAM),
                first,
                code,
            )
        )

    # --- the second factor: a one-time code sent to the organiser's chat ------------

    async def _ask(self, key: str, asked: dict[str, str]) -> str:
        """Keep what the organiser asked for until confirmed; the code to confirm it with."""
        code = f"{secrets.randbelow(10**6):06d}"
        record = {**asked, "code": self._digest(code)}
        await self.redis.set(key, json.dumps(record), ex=self.confirm_within)
        return code

    async def _asked(self, key: str) -> dict[str, str] | None:
        """What is waiting for a code, if anything."""
        raw = await self.redis.get(key)
        return json.loads(raw) if raw is not None else None

    async def _confirmed(self, key: str, asked: dict[str, str], typed: str) -> bool:
        """Whether ``typed`` is the code for ``asked``; the code is spent if it is."""
        if not self._code_matches(asked.get("code", ""), typed):
            return False
        return await self.redis.getdel(key) is not None

    def _digest(self, code: str) -> str:
        key = hashlib.sha256(b"openprimary-organiser\0" + self.settings.secret_key.encode())
        return hmac.new(key.digest(), code.encode(), hashlib.sha256).hexdigest()

    def _code_matches(self, digest: str, typed: str) -> bool:
        return hmac.compare_digest(digest, self._digest(typed.strip()))

    async def _start(self, actor: str, draft: dict[str, str]) -> list[OutboundMessage]:
        """Fix the recipients now, and start sending from this process."""
        try:
            job, ready, missing = await self.start_reminder(actor, draft["template"], factor=FACTOR)
        except ReminderError as err:
            return _say(texts.reminder_not_sent(str(err)))
        if missing:
            return _say(texts.reminder_elsewhere(job, ready.total, " or ".join(missing)))
        return _say(texts.reminder_sending(job, ready.total))

    async def start_reminder(
        self, actor: str, template: str, channel: str = "all", *, factor: str
    ) -> tuple[str, Plan, list[str]]:
        """Plan a reminder, store it as a job and send it from this process (the chat's
        REMIND and the web console both start one here).  Returns the job, its plan, and
        the channels this process cannot send on (another process, or ``remind --resume``,
        must); ReminderError if it cannot start."""
        ready = await plan(
            self.redis, self.election, template, channel, rules=self.rules, clock=self.clock
        )
        job = await self.reminders.create(self.election, ready, actor, factor=factor)
        missing = [ch for ch in CHANNELS if ready.count(ch) and ch not in self.senders]
        if not missing:
            self.run_in_background(job)
        return job, ready, missing

    def run_in_background(self, job: str) -> None:
        """Send a job's messages from this process until it finishes, is paused or cancelled."""
        if self.worker is None:
            log.error("no reminder worker in this process: job %s waits for 'remind --resume'", job)
            return
        worker = self.worker()
        task: asyncio.Task[object] = asyncio.create_task(worker.run(job))
        self._workers.add(task)
        task.add_done_callback(self._worker_done)

    def _worker_done(self, task: asyncio.Task[object]) -> None:
        self._workers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a reminder worker stopped", exc_info=task.exception())

    async def _status(self, actor: str) -> list[OutboundMessage]:
        job = await self.reminders.latest(self.election.id)
        await audit.record(
            self.redis, self.clock, self.election.id, actor, "status viewed", job=job
        )
        if job is None:
            return _say(texts.no_reminder_yet())
        return _say((await self.reminders.status(job)).summary())

    async def _turnout(self, actor: str) -> list[OutboundMessage]:
        figures = await turnout(self.redis, self.election)
        await audit.record(self.redis, self.clock, self.election.id, actor, "turnout viewed")
        channels = ", ".join(f"{n} by {ch}" for ch, n in sorted(figures.by_channel.items()))
        line = texts.turnout_line(figures.voted, figures.eligible, figures.percent, channels)
        for name in self.election.section_names:
            line += "\n" + texts.section_turnout_line(
                name,
                figures.by_section.get(name, 0),
                figures.eligible_by_section.get(name, 0),
            )
        return _say(line)

    async def _pause_or_resume(
        self, actor: str, word: str, confirm: str, typed: str
    ) -> list[OutboundMessage]:
        job = await self.reminders.latest(self.election.id)
        if job is None:
            return _say(texts.no_reminder_yet())
        if not typed:
            code = await self._ask(confirm, {"job": job})
            return _say(texts.confirm_job_change(word, job, code))
        asked = await self._asked(confirm)
        if asked is None or asked["job"] != job or not await self._confirmed(confirm, asked, typed):
            return _say(texts.job_change_wrong_code(word, job))
        try:
            if word == "PAUSE":
                status = await self.reminders.pause(job, actor, factor=FACTOR)
            else:
                status = await self.reminders.resume(job, actor, factor=FACTOR)
                missing = [ch for ch in CHANNELS if status.totals[ch] and ch not in self.senders]
                if status.status == "running" and missing:
                    return _say(
                        texts.job_resumed_elsewhere(status.summary(), " or ".join(missing), job)
                    )
                if status.status == "running":
                    self.run_in_background(job)
        except ReminderError as err:
            return _say(str(err))
        return _say(status.summary())

    async def aclose(self) -> None:
        """Stop this process's reminder workers (the jobs stay in Redis, resumable)."""
        for task in list(self._workers):
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
