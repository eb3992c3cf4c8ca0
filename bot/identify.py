"""Who is voting: the conversation's identification steps.

A voter proves who they are with a pre-issued voting code, or with a code
texted to their phone on the roll (found from the SMS they sent, a phone
number shared on Telegram, or a supporter number they type).  These steps
end in :class:`Identified` (the chat may rank), :class:`HasVoted` (the
supporter's ballot is in), or a state and replies to send.  They never tell
whether a typed supporter number is on the roll.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from redis.asyncio import Redis

from ballots import audit, keys
from ballots.clock import Clock
from ballots.codes import VOTING_CODE_DIGITS, CodeCheck, Codes, SmsBudget, normalise_code
from ballots.connection import Batch
from ballots.election import Election
from ballots.roll import get_supporter, supporters_for_phone
from bot import rehearsal, texts
from bot.alerts import Alerts
from bot.messages import Channel, InboundMessage, OutboundMessage
from bot.metrics import CODE_GUESSING, CODE_SMS_REFUSED
from bot.spend import SmsSpend
from bot.state import State, Step
from bot.turn import Replies, Turn, delivery, say, sms_from, telegram_user

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identified:
    """The chat proved to be a supporter: the state, ready to rank."""

    state: State


@dataclass(frozen=True)
class HasVoted:
    """The supporter's ballot is already in (None: not known who)."""

    supporter: str | None


Outcome = tuple[State, Replies] | Identified | HasVoted


def looks_like_number(text: str) -> bool:
    """Could this be a supporter number (one word with a digit in it)?"""
    number = text.strip(" .#")
    return 0 < len(number) <= 64 and " " not in number and any(ch.isdigit() for ch in number)


class Identification:
    """The steps from a greeting to a proved identity."""

    def __init__(
        self,
        redis: Redis,
        election: Election,
        codes: Codes,
        clock: Clock,
        spend: SmsSpend | None = None,
        alerts: Alerts | None = None,
    ) -> None:
        self.redis = redis
        self.election = election
        self.codes = codes
        self.clock = clock
        #: The election's SMS budget: no new code SMS once it is spent.
        self.spend = spend
        #: Where organisers are told of trouble (code guessing).
        self.alerts = alerts
        self.by_sms = "sms-otp" in election.identity

    def looks_like_voting_code(self, text: str) -> bool:
        return (
            "code" in self.election.identity
            and len(normalise_code(text)) == VOTING_CODE_DIGITS
            and not any(ch.isalpha() for ch in text)
        )

    async def start(self, state: State, turn: Turn) -> Outcome:
        """Greet, or go straight on if the first message already identifies the voter."""
        msg = turn.msg
        if (
            msg.contact is not None
            or self.looks_like_voting_code(turn.text)
            or (self.by_sms and looks_like_number(turn.text))
        ):
            return await self.identify(state, turn)
        if msg.channel == Channel.SMS and self.by_sms:
            ids = turn.known.phone_ids
            if ids is None:
                ids = await supporters_for_phone(self.redis, self.election, msg.address)
            if len(ids) == 1:
                if not await self._admitted(turn, ids[0]):
                    return state, [say(texts.not_open(self.election))]
                return await self._send_otp(state, ids[0], msg, quiet=False)
        state.step = Step.IDENTIFY
        return state, [self.greeting()]

    def greeting(self) -> OutboundMessage:
        """The greeting: how to vote, the other languages offered (with buttons to switch,
        where the platform has them) and, with codes by SMS, a button to share one's phone."""
        return replace(say(texts.greeting(self.election), ask_contact=self.by_sms), kind="greeting")

    async def identify(self, state: State, turn: Turn) -> Outcome:
        """Take a voting code, a supporter number or a shared phone number."""
        msg = turn.msg
        if msg.contact is not None and self.by_sms:
            ids = await supporters_for_phone(self.redis, self.election, msg.contact)
            if len(ids) == 1:
                if not await self._admitted(turn, ids[0]):
                    return state, [say(texts.not_open(self.election), remove_keyboard=True)]
                return await self._send_otp(state, ids[0], msg, quiet=False)
            state.step = Step.IDENTIFY
            return state, [say(texts.contact_unknown(), remove_keyboard=True)]
        if "code" in self.election.identity and self.looks_like_voting_code(turn.text):
            # (read with the chat's state if this is the message's own text)
            same = normalise_code(turn.text) == normalise_code(msg.text)
            looked_up = turn.known.voting_code if same else None
            result = await self.codes.check_voting_code(
                self.election,
                turn.text,
                msg.channel,
                msg.address,
                looked_up,
                telegram_user=telegram_user(msg),
                admit=None if turn.known.rehearsal is None else self._tester,
            )
            if result.budget_exceeded:
                await self._guessing_alert()
            return self._after_check(state, result, turn, voting_code=True)
        number = turn.text.strip(" .#")
        is_number = looks_like_number(number)
        if self.by_sms and is_number:
            if await self._address_locked(turn):
                return state, [say(texts.locked())]
            # Every request costs the asking address the same, on the roll or not, so
            # neither the answer nor the count tells whether the number is on the roll.
            await self.codes.record_address_failure(self.election, msg.channel, msg.address)
            for sid in dict.fromkeys((number, number.upper())):
                # (in a rehearsal, someone not testing is as if not on the roll)
                if await get_supporter(self.redis, self.election, sid) and await self._admitted(
                    turn, sid
                ):
                    return await self._send_otp(
                        state, sid, msg, quiet=True, typed=number, charged=True
                    )
            # The Redis work of asking for a code, so this answer takes as long as that one,
            # and says what it would say for a number on the roll (no code could go now).
            budget = await self.codes.as_if_requested(self.election, spent_key=self._spent_key())
            refused = await self._typed_refusal(state, budget)
            if refused is not None:
                return refused
            state.step = Step.SMS_CODE
            state.supporter = None
            state.quiet = True
            return state, [say(texts.supporter_number_sent(number))]
        state.step = Step.IDENTIFY
        if is_number:
            await self.codes.record_address_failure(self.election, msg.channel, msg.address)
            return state, [say(texts.code_wrong_voting())]
        if msg.channel == Channel.SMS and self.by_sms and msg.contact is None:
            # Texting from a phone on the roll: whatever they said, the way on is a code
            # to that phone (as a first message gets), not a question they cannot answer.
            own = turn.known.phone_ids
            if own is None:
                own = await supporters_for_phone(self.redis, self.election, msg.address)
            if len(own) == 1 and await self._admitted(turn, own[0]):
                return await self._send_otp(state, own[0], msg, quiet=False)
        return state, [say(texts.ask_identity(self.election))]

    async def sms_code(self, state: State, turn: Turn) -> Outcome:
        """Check the 6-digit code we texted."""
        digits = normalise_code(turn.text)
        if len(digits) != 6 or turn.msg.contact is not None:
            if (
                digits
                and len(digits) < VOTING_CODE_DIGITS
                and not any(c.isalpha() for c in turn.text)
            ):
                return state, [say(texts.ask_code())]
            return await self.identify(state, turn)
        msg = turn.msg
        if await self._address_locked(turn):
            return state, [say(texts.locked())]
        if state.supporter is None:
            result = CodeCheck("unknown")
        else:
            result = await self.codes.check_otp(
                self.election,
                state.supporter,
                digits,
                delivery(msg),
                asker=self.codes.asker(self.election, msg.channel, msg.address),
                sms_from=sms_from(msg),
                telegram_user=telegram_user(msg),
            )
        if not result.ok:
            await self.codes.record_address_failure(self.election, msg.channel, msg.address)
            if state.quiet:
                # After a typed supporter number every failure reads the same, so
                # the replies never tell whether the number is on the roll, has
                # voted or is locked.
                return state, [say(texts.code_wrong_quiet())]
        return self._after_check(state, result, turn, voting_code=False)

    async def _send_otp(
        self,
        state: State,
        sid: str,
        msg: InboundMessage,
        *,
        quiet: bool,
        typed: str = "",
        charged: bool = False,
    ) -> Outcome:
        """Text a code to the supporter's phone on the roll (never to a typed number).

        Every request costs the asking address one of its attempts.  After a
        typed supporter number (``quiet``) the code is sent off the reply's
        path, and the reply is the same whatever happened.
        """
        request, budget = await self.codes.ask_for_code(
            self.election,
            sid,
            delivery(msg),
            asker=self.codes.asker(self.election, msg.channel, msg.address),
            sms_from=sms_from(msg),
            charge=None if charged else (msg.channel, msg.address),
            spent_key=self._spent_key(),
            typed=quiet,
        )
        phone = request.phone
        state.step = Step.SMS_CODE
        state.supporter = sid
        state.quiet = quiet
        # After a typed number, when no code could go now, the answer is the one a number not
        # on the roll gets, whatever this request came to: it never says a code is on its way.
        refused = await self._typed_refusal(state, budget) if quiet else None
        if refused is not None:
            if request.status == "sent" and not budget.allowed:
                await self._sms_budget(budget)  # the hour's first refusal is audited
            return refused
        if request.status == "sent" and request.code is not None:
            if self.spend is not None and await self.spend.refused(budget.segments_spent):
                fresh = State(election=self.election.id, turn=state.turn)
                return fresh, [say(texts.sms_budget_spent(self.election))]
            if not await self._sms_budget(budget):
                # Start afresh: the voter's next message asks again.
                fresh = State(election=self.election.id, turn=state.turn)
                return fresh, [say(texts.code_sms_paused())]
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
            return state, [code_msg, say(note, remove_keyboard=True)]
        if quiet:
            # The same answer whether or not the number is on the roll, has voted
            # or is locked: a supporter number must not reveal anything.
            return state, [say(texts.supporter_number_sent(typed))]
        if request.status == "cooldown":
            return state, [say(texts.otp_cooldown(request.wait))]
        if request.status == "voted":
            return HasVoted(sid)
        if request.status == "too_many":
            return state, [say(texts.too_many_codes(request.wait))]
        return state, [say(texts.locked())]

    def _spent_key(self) -> str | None:
        """The SMS budget's counter, read with a code request when there is a budget."""
        return self.spend.key if self.spend is not None and self.spend.ceiling else None

    async def _typed_refusal(self, state: State, budget: SmsBudget) -> tuple[State, Replies] | None:
        """After a typed supporter number: the reply when no code can go now (the SMS
        budget spent, or the hour's share for typed numbers or the hour's ceiling reached),
        the same whether or not the number is on the roll; None when one can."""
        fresh = State(election=self.election.id, turn=state.turn, language=state.language)
        if self.spend is not None and await self.spend.refused(budget.segments_spent):
            return fresh, [say(texts.sms_budget_spent(self.election))]
        if not budget.allowed:
            return fresh, [say(texts.code_sms_paused())]
        return None

    def _after_check(
        self, state: State, result: CodeCheck, turn: Turn, *, voting_code: bool
    ) -> Outcome:
        if result.ok and result.supporter_id and result.grant:
            state.step = Step.RANK
            state.supporter = result.supporter_id
            state.grant = result.grant
            state.ranking = []
            user = telegram_user(turn.msg)
            if user:
                # The check linked the voter's record to the account; the index follows.
                index, sid = keys.telegram_index(self.election.id), result.supporter_id

                def link(batch: Batch) -> None:
                    batch.pipe.hset(index, user, sid)

                turn.known.writes.append(link)
            return Identified(state)
        if result.status == "voted":
            return HasVoted(result.supporter_id)
        if result.status == "not_testing":
            return state, [say(texts.not_open(self.election))]
        if result.status == "locked":
            return state, [say(texts.locked())]
        if result.status == "slowed":
            return state, [say(texts.code_slowed(result.tries_left))]
        if result.status == "expired":
            return state, [say(texts.code_expired())]
        if result.status in ("spent", "nocode") and not voting_code:
            return state, [
                say(texts.code_spent() if result.status == "spent" else texts.code_expired())
            ]
        if voting_code:
            return state, [say(texts.code_wrong_voting())]
        return state, [say(texts.code_wrong(result.tries_left))]

    async def _admitted(self, turn: Turn, supporter_id: str) -> bool:
        """Whether a supporter may go on: anyone, unless a rehearsal is under way (testers)."""
        return turn.known.rehearsal is None or await self._tester(supporter_id)

    async def _tester(self, supporter_id: str) -> bool:
        return await rehearsal.is_tester(self.redis, self.election.id, supporter_id)

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
