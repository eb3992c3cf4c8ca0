"""The voting conversation: named states, one small handler each.

greeting -> identity (voting code, or supporter number then SMS code)
-> ranking -> confirmation -> cast -> receipt.  Every state understands
HELP, STOP/START and AGAIN.  The conversation knows no platform: an
InboundMessage comes in, OutboundMessages go out.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from redis.asyncio import Redis

from ballots import audit, keys
from ballots.box import BallotBox, Receipt
from ballots.clock import Clock
from ballots.codes import VOTING_CODE_DIGITS, CodeCheck, Codes, SmsBudget, normalise_code
from ballots.connection import Batch
from ballots.election import Candidate, Election
from ballots.roll import get_supporter, supporter_for_telegram, supporters_for_phone
from bot import texts
from bot.alerts import Alerts
from bot.messages import Button, Channel, InboundMessage, OutboundMessage
from bot.metrics import BALLOTS_CAST, CODE_GUESSING, CODE_SMS_REFUSED
from bot.parse import (
    ABSTAIN,
    CHANGE,
    DONE,
    HELP,
    OPT_IN,
    OPT_OUT,
    RECEIPT,
    RESTART,
    UNDO,
    YES,
    keyword,
    normalise,
    parse_ranking,
)
from bot.reach import Reach
from bot.receipts import HeldReceipts
from bot.spend import SmsSpend
from bot.state import CHOOSING, State, Step

log = logging.getLogger(__name__)

Replies = list[OutboundMessage]

#: How long a finished chat stays "done" after the close (a fixed moment: it dates no cast).
DONE_KEPT = timedelta(days=1)

#: Button actions and the typed text each stands for.
_ACTIONS = {
    "done": "0",
    "undo": "UNDO",
    "again": "START AGAIN",
    "cast": "YES",
    "change": "CHANGE",
    "abstain": "ABSTAIN",
}


class Refused(enum.Enum):
    """Why a tapped button is not taken: from an earlier message, or not one of ours."""

    STALE = "stale"
    FOREIGN = "foreign"


@dataclass(frozen=True)
class Known:
    """What was read for a message along with its chat's state, in the same round trip
    (see :meth:`Conversation.prefetch`); None where it was not read."""

    #: The supporters on the roll with the SMS sender's phone.
    phone_ids: list[str] | None = None
    #: The chat address's failed code attempts in the current window.
    failures: int | None = None
    #: What checking the message as a voting code starts by reading (see
    #: :meth:`Codes.look_up_voting_code`), when it looks like one.
    voting_code: tuple[Any, ...] | None = None
    #: Writes the step leaves to go with the chat's new state, in the same round trip.
    writes: list[Callable[[Batch], None]] = field(default_factory=list)

    def queue_writes(self, batch: Batch) -> None:
        for write in self.writes:
            write(batch)


@dataclass(frozen=True)
class Turn:
    """One inbound message as a handler sees it."""

    msg: InboundMessage
    text: str
    word: str
    from_button: bool
    known: Known = Known()


class Extension(Protocol):
    """Commands for some senders (organisers) that run before the voting conversation."""

    async def handle(self, msg: InboundMessage) -> list[OutboundMessage] | None:
        """The replies if this message is the extension's, else None (the voter flow runs)."""
        ...

    async def aclose(self) -> None:
        """Stop any background work the extension started."""
        ...


def _looks_like_number(text: str) -> bool:
    """Could this be a supporter number (one word with a digit in it)?"""
    number = text.strip(" .#")
    return 0 < len(number) <= 64 and " " not in number and any(ch.isdigit() for ch in number)


def election_tag(election_id: str) -> str:
    """A short tag that ties a button to one election."""
    return hashlib.blake2b(election_id.encode(), digest_size=3).hexdigest()


class Conversation:
    """Advances one chat address's state by one message."""

    def __init__(
        self,
        redis: Redis,
        election: Election,
        codes: Codes,
        box: BallotBox,
        clock: Clock,
        extensions: Sequence[Extension] = (),
        held: HeldReceipts | None = None,
        spend: SmsSpend | None = None,
        alerts: Alerts | None = None,
    ) -> None:
        self.redis = redis
        #: Where organisers are told of trouble (code guessing).
        self.alerts = alerts
        #: The election's SMS budget: no new code SMS once it is spent.
        self.spend = spend
        self.extensions = list(extensions)
        #: Sends receipts held back until the replicas hold the ballot (durable casts).
        self.held = held
        self.election = election
        self.codes = codes
        self.box = box
        self.clock = clock
        self.tag = election_tag(election.id)
        self.numbered: list[tuple[int, Candidate]] = list(enumerate(election.candidates, 1))
        self._handlers: dict[Step, Callable[[State, Turn], Awaitable[tuple[State, Replies]]]] = {
            Step.START: self._start,
            Step.IDENTIFY: self._identify,
            Step.SMS_CODE: self._sms_code,
            Step.RANK: self._rank,
            Step.CONFIRM: self._confirm,
            Step.DONE: self._done,
        }

    async def aclose(self) -> None:
        """Stop the background work: reminder workers started from the chat, held receipts."""
        for extension in self.extensions:
            await extension.aclose()
        if self.held is not None:
            await self.held.aclose()

    # --- entry point ---------------------------------------------------------

    def prefetch(self, batch: Batch, msg: InboundMessage) -> Callable[[Sequence[Any]], Known]:
        """Queue the reads a message's step may need, to go with its chat's state.

        Returns what makes a :class:`Known` of their results: the router reads
        them in the round trip that takes the chat's lock, so the common steps
        need no round trip of their own for them.
        """
        eid = self.election.id
        by_phone = msg.channel == Channel.SMS and "sms-otp" in self.election.identity
        if by_phone:
            batch.pipe.hget(keys.phone_index(eid), msg.address)
        code = msg.choice is None and msg.contact is None and self._looks_like_voting_code(msg.text)
        if code:
            # Its reads start with the address's failures: read once, for both.
            self.codes.look_up_voting_code(batch, self.election, msg.text, msg.channel, msg.address)
        else:
            batch.pipe.get(keys.address_failures(eid, msg.channel, msg.address))

        def known(results: Sequence[Any]) -> Known:
            found = list(results)
            ids = [x for x in str(found.pop(0) or "").split(",") if x] if by_phone else None
            looked_up = tuple(found[:3]) if code else None
            return Known(ids, int(found[0] or 0), looked_up)

        return known

    async def step(self, state: State, msg: InboundMessage, known: Known) -> tuple[State, Replies]:
        """Handle one message; returns the new state and the messages to send.

        ``known``: what :meth:`prefetch` read for it; the caller sends the step's
        ``known.writes`` with the new state.
        """
        if state.election != self.election.id:
            state = State(election=self.election.id)
        for extension in self.extensions:
            handled = await extension.handle(msg)
            if handled is not None:
                return state, handled
        text = msg.text
        from_button = msg.choice is not None
        if msg.choice is not None:
            action = self._read_button(state, msg.choice)
            if isinstance(action, Refused):
                notice = texts.stale_button() if action is Refused.STALE else texts.foreign_button()
                return state, [OutboundMessage(notice, kind="notice")]
            text = action
        turn = Turn(msg, normalise(text), keyword(text), from_button, known)

        before = replace(state, ranking=list(state.ranking))
        new_state, replies = await self._dispatch(replace(state, ranking=list(state.ranking)), turn)
        if new_state.step is Step.DONE:
            # A finished chat keeps no count of the steps it took.
            new_state.turn = 0
        elif new_state != before:
            new_state.turn = state.turn + 1
            replies = [self._with_buttons(new_state, r) for r in replies]
        if new_state.step in CHOOSING:
            replies = [replace(r, private=True) if r.is_reply else r for r in replies]
        if from_button and replies and (replies[0].private or state.step not in CHOOSING):
            # The tapped message is updated in place, but never with a message that shows
            # no choices over one that does: that one is the platform's to forget.
            replies[0] = replace(replies[0], edit=True)
        return new_state, replies

    def forget_at(self, state: State) -> datetime | None:
        """When a chat's state may go regardless of its TTL: a finished chat, after the close."""
        return self.election.closes + DONE_KEPT if state.step is Step.DONE else None

    async def _dispatch(self, state: State, turn: Turn) -> tuple[State, Replies]:
        word = turn.word
        if turn.msg.contact is None:
            if word in HELP:
                return state, [self._say(texts.help_text(self.election))]
            if word in OPT_OUT:
                await Reach(self.redis).opt_out(turn.msg.channel, turn.msg.address)
                return state, [self._say(texts.opted_out())]
            if word in OPT_IN and not (word == "YES" and state.step is Step.CONFIRM):
                removed = await Reach(self.redis).opt_in(turn.msg.channel, turn.msg.address)
                if removed or word != "YES":
                    replies = [self._say(texts.opted_in())]
                    if state.step in (Step.START, Step.IDENTIFY):
                        state, more = await self._start(state, turn)
                        replies.extend(more)
                    return state, replies
        if word in RECEIPT and turn.msg.contact is None:
            # Before, during and after the poll: a receipt carries no vote.
            return state, [self._say(await self._receipt_text(state, turn.msg))]
        now = self.clock.now()
        if now < self.election.opens:
            return state, [self._say(texts.not_open(self.election))]
        if now >= self.election.closes:
            return state, [self._say(texts.closed(self.election))]
        if await self.box.count_key(self.election) is None:
            log.error(
                "election %s has no count key, so no ballot can be sealed: run "
                "'openprimary trustees init --election %s ...'",
                self.election.id,
                self.election.id,
            )
            return state, [self._say(texts.no_count_key(self.election))]
        if word in RESTART and turn.msg.contact is None:
            return await self._restart(state, turn)
        return await self._handlers[state.step](state, turn)

    # --- states --------------------------------------------------------------

    async def _start(self, state: State, turn: Turn) -> tuple[State, Replies]:
        """Greet, or go straight on if the first message already identifies the voter."""
        msg = turn.msg
        if (
            turn.msg.contact is not None
            or self._looks_like_voting_code(turn.text)
            or ("sms-otp" in self.election.identity and _looks_like_number(turn.text))
        ):
            return await self._identify(state, turn)
        if msg.channel == Channel.SMS and "sms-otp" in self.election.identity:
            ids = turn.known.phone_ids
            if ids is None:
                ids = await supporters_for_phone(self.redis, self.election, msg.address)
            if len(ids) == 1:
                return await self._send_otp(state, ids[0], msg, quiet=False)
        state.step = Step.IDENTIFY
        return state, [
            self._say(
                texts.greeting(self.election), ask_contact="sms-otp" in self.election.identity
            )
        ]

    async def _identify(self, state: State, turn: Turn) -> tuple[State, Replies]:
        """Take a voting code, a supporter number or a shared phone number."""
        msg = turn.msg
        if msg.contact is not None and "sms-otp" in self.election.identity:
            ids = await supporters_for_phone(self.redis, self.election, msg.contact)
            if len(ids) == 1:
                return await self._send_otp(state, ids[0], msg, quiet=False)
            state.step = Step.IDENTIFY
            return state, [self._say(texts.contact_unknown(), remove_keyboard=True)]
        if "code" in self.election.identity and self._looks_like_voting_code(turn.text):
            # (read with the chat's state if this is the message's own text)
            same = normalise_code(turn.text) == normalise_code(msg.text)
            looked_up = turn.known.voting_code if same else None
            result = await self.codes.check_voting_code(
                self.election,
                turn.text,
                msg.channel,
                msg.address,
                looked_up,
                telegram_user=_telegram_user(msg),
            )
            if result.budget_exceeded:
                await self._guessing_alert()
            return await self._after_check(state, result, turn, voting_code=True)
        number = turn.text.strip(" .#")
        looks_like_number = _looks_like_number(number)
        if "sms-otp" in self.election.identity and looks_like_number:
            if await self._address_locked(turn):
                return state, [self._say(texts.locked())]
            # Every request costs the asking address the same, on the roll or not, so
            # neither the answer nor the count tells whether the number is on the roll.
            await self.codes.record_address_failure(self.election, msg.channel, msg.address)
            for sid in dict.fromkeys((number, number.upper())):
                if await get_supporter(self.redis, self.election, sid):
                    return await self._send_otp(
                        state, sid, msg, quiet=True, typed=number, charged=True
                    )
            # The Redis work of asking for a code, so this answer takes as long as that one.
            await self.codes.as_if_requested(self.election)
            state.step = Step.SMS_CODE
            state.supporter = None
            state.quiet = True
            return state, [self._say(texts.supporter_number_sent(number))]
        state.step = Step.IDENTIFY
        if looks_like_number:
            await self.codes.record_address_failure(self.election, msg.channel, msg.address)
            return state, [self._say(texts.code_wrong_voting())]
        return state, [self._say(texts.ask_identity(self.election))]

    async def _sms_code(self, state: State, turn: Turn) -> tuple[State, Replies]:
        """Check the 6-digit code we texted."""
        digits = normalise_code(turn.text)
        if len(digits) != 6 or turn.msg.contact is not None:
            if (
                digits
                and len(digits) < VOTING_CODE_DIGITS
                and not any(c.isalpha() for c in turn.text)
            ):
                return state, [self._say(texts.ask_code())]
            return await self._identify(state, turn)
        msg = turn.msg
        if await self._address_locked(turn):
            return state, [self._say(texts.locked())]
        if state.supporter is None:
            result = CodeCheck("unknown")
        else:
            result = await self.codes.check_otp(
                self.election,
                state.supporter,
                digits,
                _delivery(msg),
                asker=self.codes.asker(self.election, msg.channel, msg.address),
                sms_from=_sms_from(msg),
                telegram_user=_telegram_user(msg),
            )
        if not result.ok:
            await self.codes.record_address_failure(self.election, msg.channel, msg.address)
            if state.quiet:
                # After a typed supporter number every failure reads the same, so
                # the replies never tell whether the number is on the roll, has
                # voted or is locked.
                return state, [self._say(texts.code_wrong_quiet())]
        return await self._after_check(state, result, turn, voting_code=False)

    async def _rank(self, state: State, turn: Turn) -> tuple[State, Replies]:
        """Add one or more preferences, undo one, or finish."""
        word = turn.word
        if word in ABSTAIN:
            return self._abstain(state)
        if word in UNDO:
            if state.ranking:
                state.ranking.pop()
            return state, [self._rank_prompt(state)]
        if word in DONE and word != "0":
            return self._finish(state)
        parsed = parse_ranking(turn.text, self.election.candidates)
        if parsed.error:
            if parsed.error == "empty":
                return state, [self._rank_prompt(state)]
            return state, [self._say(texts.ranking_problem(parsed.error))]
        ranking = list(state.ranking)
        for cid in parsed.ids:
            if cid in ranking:
                return state, [self._say(texts.already_ranked(self.election.candidate(cid).name))]
            ranking.append(cid)
        if len(ranking) > self.election.max_preferences:
            return state, [
                self._say(
                    texts.ranking_problem(
                        f"you can give at most {self.election.max_preferences} choices"
                    )
                )
            ]
        state.ranking = ranking
        complete = len(ranking) >= self.election.max_preferences
        if parsed.finish or complete or len(parsed.ids) > 1:
            return self._finish(state)
        return state, [self._rank_prompt(state)]

    async def _confirm(self, state: State, turn: Turn) -> tuple[State, Replies]:
        """Cast on YES; CHANGE, or a new order, goes back to ranking."""
        if turn.word in YES:
            return await self._cast(state, turn)
        if turn.word in ABSTAIN:
            return self._abstain(state)
        if turn.word in CHANGE:
            state.step = Step.RANK
            state.ranking = []
            return state, [self._rank_prompt(state)]
        parsed = parse_ranking(turn.text, self.election.candidates)
        if parsed.ids and not parsed.error:
            state.step = Step.RANK
            state.ranking = []
            return await self._rank(state, turn)
        return state, [self._say(texts.confirm_expected())]

    async def _done(self, state: State, turn: Turn) -> tuple[State, Replies]:
        """Voted already: say so, with the receipt."""
        return await self._voted(state.supporter)

    async def _voted(self, sid: str | None) -> tuple[State, Replies]:
        """The chat of a supporter whose ballot is cast: done, and the receipt again."""
        receipt = await self.box.receipt(self.election, sid) if sid else None
        done = State(step=Step.DONE, election=self.election.id, supporter=sid)
        if receipt is not None and sid is not None and not await self._confirmed(sid, receipt):
            return done, [self._say(texts.cast_recording())]
        return done, [self._say(texts.already_voted(self.election, receipt))]

    async def _confirmed(self, sid: str, receipt: Receipt) -> bool:
        """Whether a receipt may be given: the replicas asked for hold the ballot."""
        return not receipt.unconfirmed or await self.box.confirm(self.election, sid)

    async def _receipt_text(self, state: State, msg: InboundMessage) -> str:
        """RECEIPT: the receipt of the supporter this chat has proved to be, or of its owner."""
        sid = state.supporter if state.step in (Step.RANK, Step.CONFIRM, Step.DONE) else None
        if sid is None and msg.channel == Channel.TELEGRAM and msg.user_id:
            sid = await supporter_for_telegram(self.redis, self.election, msg.user_id)
        elif sid is None and msg.channel == Channel.SMS:
            ids = await supporters_for_phone(self.redis, self.election, msg.address)
            sid = ids[0] if len(ids) == 1 else None
        if sid is None:
            return texts.receipt_who()
        receipt = await self.box.receipt(self.election, sid)
        if receipt is None:
            return texts.no_receipt_yet()
        if not await self._confirmed(sid, receipt):
            return texts.cast_recording()
        return texts.receipt_again(receipt)

    # --- steps shared by the states -----------------------------------------

    async def _restart(self, state: State, turn: Turn) -> tuple[State, Replies]:
        if state.step is Step.DONE:
            return await self._done(state, turn)
        if state.step in (Step.RANK, Step.CONFIRM) and state.grant:
            state.step = Step.RANK
            state.ranking = []
            return state, [self._rank_prompt(state)]
        fresh = State(election=self.election.id, turn=state.turn)
        return await self._start(fresh, replace(turn, text="", word=""))

    async def _send_otp(
        self,
        state: State,
        sid: str,
        msg: InboundMessage,
        *,
        quiet: bool,
        typed: str = "",
        charged: bool = False,
    ) -> tuple[State, Replies]:
        """Text a code to the supporter's phone on the roll (never to a typed number).

        Every request costs the asking address one of its attempts.  After a
        typed supporter number (``quiet``) the code is sent off the reply's
        path, and the reply is the same whatever happened.
        """
        request, budget = await self.codes.ask_for_code(
            self.election,
            sid,
            _delivery(msg),
            asker=self.codes.asker(self.election, msg.channel, msg.address),
            sms_from=_sms_from(msg),
            charge=None if charged else (msg.channel, msg.address),
            spent_key=self.spend.key if self.spend is not None and self.spend.ceiling else None,
        )
        phone = request.phone
        state.step = Step.SMS_CODE
        state.supporter = sid
        state.quiet = quiet
        if request.status == "sent" and request.code is not None:
            if self.spend is not None and self.spend.exhausted(budget.segments_spent):
                if quiet:
                    return state, [self._say(texts.supporter_number_sent(typed))]
                fresh = State(election=self.election.id, turn=state.turn)
                return fresh, [self._say(texts.sms_budget_spent(self.election))]
            if not await self._sms_budget(budget):
                if quiet:
                    return state, [self._say(texts.supporter_number_sent(typed))]
                # Start afresh: the voter's next message asks again.
                fresh = State(election=self.election.id, turn=state.turn)
                return fresh, [self._say(texts.code_sms_paused())]
            minutes = self.codes.policy.otp_ttl // 60
            code_msg = OutboundMessage(
                texts.otp(self.election, request.code, minutes),
                channel=Channel.SMS,
                address=phone,
                kind="code",
                detached=quiet,
            )
            if quiet:
                note = texts.supporter_number_sent(typed)
            elif msg.channel == Channel.SMS and msg.address == phone:
                return state, [code_msg]
            else:
                note = texts.otp_sent_elsewhere(phone)
            return state, [code_msg, self._say(note, remove_keyboard=True)]
        if quiet:
            # The same answer whether or not the number is on the roll, has voted
            # or is locked: a supporter number must not reveal anything.
            return state, [self._say(texts.supporter_number_sent(typed))]
        if request.status == "cooldown":
            return state, [self._say(texts.otp_cooldown(request.wait))]
        if request.status == "voted":
            return await self._voted(sid)
        if request.status == "too_many":
            return state, [self._say(texts.too_many_codes(request.wait))]
        return state, [self._say(texts.locked())]

    async def _address_locked(self, turn: Turn) -> bool:
        """Whether the chat address has failed too often in the current window."""
        if turn.known.failures is not None:
            return turn.known.failures >= self.codes.policy.address_max_failures
        return await self.codes.address_locked(self.election, turn.msg.channel, turn.msg.address)

    async def _sms_budget(self, budget: SmsBudget) -> bool:
        """Whether the election's ceiling let this code go by SMS; alerts on the first refusal."""
        if budget.allowed:
            return True
        CODE_SMS_REFUSED.inc()
        if budget.first_refusal:
            ceiling = self.codes.policy.code_sms_per_hour
            log.warning(
                "election %s: %d code SMS this hour, the ceiling "
                "(OPENPRIMARY_CODE_SMS_PER_HOUR): no more codes are texted until the next hour",
                self.election.id,
                ceiling,
            )
            await audit.record(
                self.redis,
                self.clock,
                self.election.id,
                "openprimary",
                "code sms ceiling reached",
                per_hour=ceiling,
            )
        return False

    async def _guessing_alert(self) -> None:
        """Tell organisers that voting codes are being guessed (once an hour)."""
        budget = self.codes.policy.guess_budget_per_hour
        CODE_GUESSING.inc()
        log.warning(
            "election %s: more than %d wrong voting codes this hour; every chat may now "
            "try once every %d min until the hour is out",
            self.election.id,
            budget,
            self.codes.policy.slowed_interval // 60,
        )
        await audit.record(
            self.redis,
            self.clock,
            self.election.id,
            "openprimary",
            "voting code guessing slowed",
            per_hour=budget,
        )
        if self.alerts is not None:
            await self.alerts.alert(
                "code_guessing",
                f"more than {budget:,} wrong voting codes this hour: someone may be guessing "
                f"codes. Every chat may now try once every "
                f"{self.codes.policy.slowed_interval // 60} min until the hour is out.",
                per_hour=budget,
            )

    async def _after_check(
        self, state: State, result: CodeCheck, turn: Turn, *, voting_code: bool
    ) -> tuple[State, Replies]:
        msg = turn.msg
        if result.ok and result.supporter_id and result.grant:
            state.step = Step.RANK
            state.supporter = result.supporter_id
            state.grant = result.grant
            state.ranking = []
            user = _telegram_user(msg)
            if user:
                # The check linked the voter's record to the account; the index follows.
                index, sid = keys.telegram_index(self.election.id), result.supporter_id

                def link(batch: Batch) -> None:
                    batch.pipe.hset(index, user, sid)

                turn.known.writes.append(link)
            return state, [self._rank_prompt(state)]
        if result.status == "voted":
            return await self._voted(result.supporter_id)
        if result.status == "locked":
            return state, [self._say(texts.locked())]
        if result.status == "slowed":
            return state, [self._say(texts.code_slowed(result.tries_left))]
        if result.status == "expired":
            return state, [self._say(texts.code_expired())]
        if result.status in ("spent", "nocode") and not voting_code:
            return state, [
                self._say(texts.code_spent() if result.status == "spent" else texts.code_expired())
            ]
        if voting_code:
            return state, [self._say(texts.code_wrong_voting())]
        return state, [self._say(texts.code_wrong(result.tries_left))]

    def _abstain(self, state: State) -> tuple[State, Replies]:
        """ABSTAIN: a blank ballot to confirm, where the election allows one."""
        if not self.election.abstain:
            return state, [self._say(texts.no_abstain())]
        state.step = Step.CONFIRM
        state.ranking = []
        return state, [OutboundMessage(texts.confirm_blank(), kind="confirm")]

    def _finish(self, state: State) -> tuple[State, Replies]:
        if not state.ranking:
            return state, [self._say(texts.need_one())]
        state.step = Step.CONFIRM
        return state, [OutboundMessage(texts.confirm(self.election, state.ranking), kind="confirm")]

    async def _cast(self, state: State, turn: Turn) -> tuple[State, Replies]:
        if state.supporter is None or state.grant is None:
            fresh = State(election=self.election.id, turn=state.turn)
            return await self._start(fresh, replace(turn, text="", word=""))
        result = await self.box.cast(
            self.election, state.supporter, state.grant, state.ranking, turn.msg.channel
        )
        # After a cast the chat keeps only "done" and (sealed) who it was: not the
        # ranking, so nothing outside the ballot box remembers what was voted.
        if result.ok and result.receipt:
            BALLOTS_CAST.labels(turn.msg.channel).inc()
            done = State(step=Step.DONE, election=self.election.id, supporter=state.supporter)
            return done, [self._say(texts.cast(result.receipt))]
        if result.status == "recording" and result.receipt:
            # On the primary, not yet on the replicas asked for: the receipt waits for them.
            BALLOTS_CAST.labels(turn.msg.channel).inc()
            done = State(step=Step.DONE, election=self.election.id, supporter=state.supporter)
            if self.held is not None:
                self.held.follow(
                    turn.msg.channel, turn.msg.address, state.supporter, result.receipt
                )
            return done, [self._say(texts.cast_recording())]
        if result.status == "already_voted":
            # Cast already, from another chat or by this message before a crash: the
            # receipt again, so it is never lost.
            return await self._voted(state.supporter)
        if result.status == "no_grant":
            return State(election=self.election.id, turn=state.turn), [
                self._say(texts.grant_expired())
            ]
        if result.status == "closed":
            return state, [self._say(texts.closed(self.election))]
        if result.status == "not_open":
            return state, [self._say(texts.not_open(self.election))]
        if result.status == "no_key":
            return state, [self._say(texts.no_count_key(self.election))]
        return State(election=self.election.id, turn=state.turn), [self._say(texts.not_on_roll())]

    # --- rendering -------------------------------------------------------------

    def _looks_like_voting_code(self, text: str) -> bool:
        return (
            "code" in self.election.identity
            and len(normalise_code(text)) == VOTING_CODE_DIGITS
            and not any(ch.isalpha() for ch in text)
        )

    def _remaining(self, state: State) -> list[tuple[int, Candidate]]:
        return [(n, c) for n, c in self.numbered if c.id not in state.ranking]

    def _rank_prompt(self, state: State) -> OutboundMessage:
        state.step = Step.RANK
        return OutboundMessage(
            texts.rank_prompt(self.election, state.ranking, self._remaining(state)), kind="rank"
        )

    @staticmethod
    def _say(
        text: str, *, ask_contact: bool = False, remove_keyboard: bool = False
    ) -> OutboundMessage:
        return OutboundMessage(text, ask_contact=ask_contact, remove_keyboard=remove_keyboard)

    def _payload(self, state: State, action: str) -> str:
        return f"{self.tag}:{state.turn}:{action}"

    def _with_buttons(self, state: State, reply: OutboundMessage) -> OutboundMessage:
        """Attach the buttons for the state to the prompt that asks for it."""
        if not reply.is_reply or reply.buttons:
            return reply
        if state.step is Step.RANK and reply.kind == "rank":
            rows: list[tuple[Button, ...]] = [
                (Button(c.name, self._payload(state, f"c{n}")),) for n, c in self._remaining(state)
            ]
            rows.append(
                (
                    Button("Done", self._payload(state, "done")),
                    Button("Undo", self._payload(state, "undo")),
                    Button("Start again", self._payload(state, "again")),
                )
            )
            if self.election.abstain and not state.ranking:
                rows.append((Button("Abstain: a blank ballot", self._payload(state, "abstain")),))
            return replace(reply, buttons=tuple(rows))
        if state.step is Step.CONFIRM and reply.kind == "confirm":
            return replace(
                reply,
                buttons=(
                    (
                        Button("Cast my vote", self._payload(state, "cast")),
                        Button("Change", self._payload(state, "change")),
                    ),
                ),
            )
        return reply

    def _read_button(self, state: State, payload: str) -> str | Refused:
        """The typed text a button stands for, or why it is refused."""
        parts = payload.split(":")
        if len(parts) != 3 or parts[0] != self.tag:
            return Refused.FOREIGN
        turn, action = parts[1], parts[2]
        if turn != str(state.turn) or state.step not in (Step.RANK, Step.CONFIRM):
            return Refused.STALE
        if action in _ACTIONS:
            return _ACTIONS[action]
        if action.startswith("c") and action[1:].isdigit():
            n = int(action[1:])
            if 1 <= n <= len(self.election.candidates):
                return str(n)
        return Refused.FOREIGN


def _telegram_user(msg: InboundMessage) -> str:
    """The Telegram user a message came from ('' for other channels, or none given)."""
    return msg.user_id or "" if msg.channel == Channel.TELEGRAM else ""


def _sms_from(msg: InboundMessage) -> str:
    """The number an SMS came from ('' for other channels): the code scripts never refuse
    the voter's own phone on the roll."""
    return msg.address if msg.channel == Channel.SMS else ""


def _delivery(msg: InboundMessage) -> str:
    """The platform's id for a message, as the code scripts know a repeat of it ('' if none)."""
    return f"{msg.channel}:{msg.message_id}" if msg.message_id else ""
