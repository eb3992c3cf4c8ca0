"""The voting conversation: named states, one small handler each.

greeting -> identity (voting code, or supporter number then SMS code)
-> ranking -> confirmation -> cast -> receipt.  Every state understands
HELP, STOP/START and AGAIN.  The conversation knows no platform: an
InboundMessage comes in, OutboundMessages go out.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from redis.asyncio import Redis

from ballots import keys
from ballots.box import BallotBox, Receipt
from ballots.clock import Clock
from ballots.codes import Codes
from ballots.connection import Batch
from ballots.election import Election
from ballots.languages import SHIPPED, best
from ballots.roll import (
    CHOSEN_LANGUAGE,
    get_supporter,
    supporter_for_telegram,
    supporters_for_phone,
)
from bot import rehearsal, texts
from bot.alerts import Alerts
from bot.buttons import Buttons, Refused
from bot.i18n import current, speaking
from bot.identify import HasVoted, Identification, Identified, Outcome
from bot.messages import Channel, InboundMessage, OutboundMessage
from bot.metrics import BALLOTS_CAST
from bot.parse import (
    keyword,
    normalise,
    parse_ranking,
    words,
)
from bot.reach import Reach
from bot.receipts import HeldReceipts
from bot.spend import SmsSpend
from bot.state import CHOOSING, State, Step
from bot.turn import Known, Replies, Turn, say

log = logging.getLogger(__name__)

#: How long a finished chat stays "done" after the close (a fixed moment: it dates no cast).
DONE_KEPT = timedelta(days=1)


class Extension(Protocol):
    """Commands for some senders (organisers) that run before the voting conversation."""

    async def handle(self, msg: InboundMessage) -> list[OutboundMessage] | None:
        """The replies if this message is the extension's, else None (the voter flow runs)."""
        ...

    async def aclose(self) -> None:
        """Stop any background work the extension started."""
        ...


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
        self.extensions = list(extensions)
        #: Sends receipts held back until the replicas hold the ballot (durable casts).
        self.held = held
        #: Where voters find their receipts once results are published (None: the server
        #: has no public address to give).
        self.check_url: str | None = None
        self.codes = codes
        self.box = box
        self.clock = clock
        self.identity = Identification(redis, election, codes, clock, spend, alerts)
        self.follow(election)
        self._handlers: dict[Step, Callable[[State, Turn], Awaitable[tuple[State, Replies]]]] = {
            Step.START: self._start,
            Step.IDENTIFY: self._identify,
            Step.SMS_CODE: self._sms_code,
            Step.RANK: self._rank,
            Step.CONFIRM: self._confirm,
            Step.DONE: self._done,
        }

    def follow(self, election: Election) -> None:
        """Serve the election as it now stands: closed, extended, its texts changed."""
        self.election = election
        self.identity.election = election
        self.identity.by_sms = "sms-otp" in election.identity
        if self.held is not None:
            self.held.election = election
        self.buttons = Buttons(election)
        #: Each offered language's own name (and its English one, unless a candidate's
        #: name has it: "Carol Welsh"), as a voter sends it to switch: code.
        in_names = {w for c in election.candidates for w in c.name.upper().split()}
        #: Every word of a candidate's name: while ranking, a keyword that is one of them
        #: ranks the candidate ("Jo English", "Sam Blank") rather than being obeyed.
        self.name_words = frozenset(in_names)
        self.language_words = {
            word.upper(): code
            for code in election.languages
            if len(election.languages) > 1
            for word in (SHIPPED[code].name, SHIPPED[code].english)
            if word == SHIPPED[code].name or word.upper() not in in_names
        }
        #: Set once the election has opened with no rehearsal left unfinalised: from then
        #: on none can start, so messages stop reading for one (a moved opening asks again).
        self._rehearsal_over = False

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
        code = (
            msg.choice is None
            and msg.contact is None
            and self.identity.looks_like_voting_code(msg.text)
        )
        if code:
            # Its reads start with the address's failures: read once, for both.
            self.codes.look_up_voting_code(batch, self.election, msg.text, msg.channel, msg.address)
        else:
            batch.pipe.get(keys.address_failures(eid, msg.channel, msg.address))
        check_rehearsal = not self._rehearsal_over
        if check_rehearsal:
            batch.pipe.hget(keys.rehearsal(eid), "state")

        def known(results: Sequence[Any]) -> Known:
            found = list(results)
            testing = found.pop() if check_rehearsal else None
            if check_rehearsal and testing is None and self.clock.now() >= self.election.opens:
                self._rehearsal_over = True
            ids = [x for x in str(found.pop(0) or "").split(",") if x] if by_phone else None
            looked_up = tuple(found[:3]) if code else None
            return Known(ids, int(found[0] or 0), looked_up, rehearsal=testing)

        return known

    async def step(self, state: State, msg: InboundMessage, known: Known) -> tuple[State, Replies]:
        """Handle one message; returns the new state and the messages to send.

        ``known``: what :meth:`prefetch` read for it; the caller sends the step's
        ``known.writes`` with the new state.
        """
        if known.rehearsal is None:
            return await self._step(state, msg, known)
        # A rehearsal is under way: note what this chat was and writes, and mark the replies.
        eid = self.election.id
        user = msg.user_id or msg.address if msg.channel == Channel.TELEGRAM else ""
        await rehearsal.note_first(self.redis, eid, msg.channel, msg.address, user)
        if msg.message_id:
            done = keys.delivery(msg.channel, msg.address, msg.message_id)
            known.writes.append(lambda batch: rehearsal.note_chat(batch, eid, [done]))
        new_state, replies = await self._step(state, msg, known)
        return new_state, [replace(r, text=rehearsal.MARK + r.text) for r in replies]

    async def _step(self, state: State, msg: InboundMessage, known: Known) -> tuple[State, Replies]:
        if state.election != self.election.id:
            state = State(election=self.election.id)
        own = None if state.language else await self._roll_language(msg, known)
        if own is not None:
            # Texting from their own phone on the roll: answered in the roll entry's language
            # from the first reply (which goes only to that phone).
            state = replace(state, language=own)
        language = (
            state.language
            or best(msg.language, self.election.languages)
            or self.election.languages[0]
        )
        with speaking(language):
            new_state, replies = await self._answer(state, msg, known)
        if new_state.language is None and state.language is not None:
            new_state.language = state.language  # a fresh state keeps the chat's language
        if new_state.step is not Step.DONE and not new_state.began:
            # A fresh state keeps when the conversation began, too.
            new_state.began = state.began or int(self.clock.now().timestamp())
        spoken = new_state.language or language
        # By SMS a faithful language keeps its own letters, at the price of UCS-2 if need be.
        faithful = self.election.sms_faithful(spoken)
        if spoken == "en" and not faithful:
            return new_state, replies  # what every reply is unless told otherwise
        return new_state, [replace(r, language=spoken, faithful=faithful) for r in replies]

    async def _answer(
        self, state: State, msg: InboundMessage, known: Known
    ) -> tuple[State, Replies]:
        for extension in self.extensions:
            handled = await extension.handle(msg)
            if handled is not None:
                return state, handled
        text = msg.text
        from_button = msg.choice is not None
        if msg.choice is not None:
            action = self.buttons.read(state, msg.choice)
            if isinstance(action, Refused):
                notice = texts.stale_button() if action is Refused.STALE else texts.foreign_button()
                return state, [OutboundMessage(notice, kind="notice")]
            text = action
        turn = Turn(msg, normalise(text), keyword(text), from_button, known)

        before = state.copy()
        new_state, replies = await self._dispatch(state.copy(), turn)
        if new_state.step is Step.DONE:
            # A finished chat keeps no count of the steps it took.
            new_state.turn = 0
        elif new_state != before:
            new_state.turn = state.turn + 1
            if msg.channel != Channel.SMS:  # (an SMS has no buttons: its text says what to type)
                # In the language the step ends in (it may have just changed).
                with speaking(new_state.language or current()):
                    replies = [self.buttons.attach(new_state, r) for r in replies]
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
        if self._names_candidate(state, turn):
            if state.step is Step.CONFIRM:
                state.step = Step.RANK
                state.ranking = []
            return await self._rank(state, turn, name=True)
        chosen = self.language_words.get(word) if turn.msg.contact is None else None
        if chosen is not None:
            state.language = chosen
            if state.supporter and state.step in (Step.RANK, Step.CONFIRM, Step.DONE):
                self._remember_language(turn, state.supporter, chosen)
            with speaking(chosen):
                return state, [say(texts.language_set()), *await self._where_now(state, turn)]
        said = words()
        if turn.msg.contact is None:
            if word in said.help:
                return state, [say(texts.help_text(self.election))]
            if word in said.opt_out:
                await Reach(self.redis).opt_out(turn.msg.channel, turn.msg.address)
                return state, [say(texts.opted_out())]
            if word in said.opt_in and not (word == "YES" and state.step is Step.CONFIRM):
                removed = await Reach(self.redis).opt_in(turn.msg.channel, turn.msg.address)
                if removed or word != "YES":
                    replies = [say(texts.opted_in())]
                    if state.step in (Step.START, Step.IDENTIFY):
                        state, more = await self._start(state, turn)
                        replies.extend(more)
                    return state, replies
        if word in said.receipt and turn.msg.contact is None:
            # Before, during and after the poll: a receipt carries no vote.
            return state, [say(await self._receipt_text(state, turn.msg))]
        now = self.clock.now()
        testing = turn.known.rehearsal
        if testing is not None and now >= self.election.opens:
            log.error(
                "election %s has opened but its rehearsal is not finalised, so nobody can "
                "vote: run 'openprimary election finalise --election %s'",
                self.election.id,
                self.election.id,
            )
            return state, [say(texts.rehearsal_unfinished(self.election))]
        if now < self.election.opens and testing != rehearsal.RUNNING:
            return state, [say(texts.not_open(self.election))]
        if now >= self.election.closes:
            return state, [say(texts.closed(self.election))]
        if await self.box.count_key(self.election) is None:
            log.error(
                "election %s has no count key, so no ballot can be sealed: run "
                "'openprimary trustees init --election %s ...'",
                self.election.id,
                self.election.id,
            )
            return state, [say(texts.no_count_key(self.election))]
        if word in said.restart and turn.msg.contact is None:
            return await self._restart(state, turn)
        return await self._handlers[state.step](state, turn)

    # --- states --------------------------------------------------------------

    async def _start(self, state: State, turn: Turn) -> tuple[State, Replies]:
        return await self._settle(await self.identity.start(state, turn), turn)

    async def _identify(self, state: State, turn: Turn) -> tuple[State, Replies]:
        return await self._settle(await self.identity.identify(state, turn), turn)

    async def _sms_code(self, state: State, turn: Turn) -> tuple[State, Replies]:
        return await self._settle(await self.identity.sms_code(state, turn), turn)

    async def _roll_language(self, msg: InboundMessage, known: Known) -> str | None:
        """The language of the roll entries of the SMS sender's phone, when they agree (one
        round trip, in an election of several languages only)."""
        ids = known.phone_ids
        if msg.channel != Channel.SMS or not ids or len(self.election.languages) < 2:
            return None
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                shard = keys.shard_of(sid, self.election.shards)
                pipe.hmget(keys.voter(self.election.id, shard, sid), [CHOSEN_LANGUAGE, "language"])
            records = await pipe.execute()
        wanted = {best(chosen or language, self.election.languages) for chosen, language in records}
        return wanted.pop() if len(wanted) == 1 else None

    def _remember_language(self, turn: Turn, supporter: str, code: str) -> None:
        """A language a proved voter chose in the chat is theirs for reminders too."""
        voter = keys.voter(
            self.election.id, keys.shard_of(supporter, self.election.shards), supporter
        )

        def remember(batch: Batch) -> None:
            batch.pipe.hset(voter, CHOSEN_LANGUAGE, code)

        turn.known.writes.append(remember)

    async def _settle(self, outcome: Outcome, turn: Turn) -> tuple[State, Replies]:
        """Where identification leaves the chat: ranking, voted already, or its replies."""
        if isinstance(outcome, Identified):
            state = outcome.state
            if len(self.election.languages) > 1 and state.supporter:
                record = await get_supporter(self.redis, self.election, state.supporter)
                own = best(
                    record.get(CHOSEN_LANGUAGE) or record.get("language"), self.election.languages
                )
                if state.language is None and own is not None:
                    # A chat that has not chosen a language gets the voter's own.
                    state.language = own
                    with speaking(own):
                        return state, [self._rank_prompt(state)]
                if state.language is not None and state.language != own:
                    # Chosen in the chat before they proved who they are: theirs from now on.
                    self._remember_language(turn, state.supporter, state.language)
            return state, [self._rank_prompt(state)]
        if isinstance(outcome, HasVoted):
            return await self._voted(outcome.supporter)
        return outcome

    def _names_candidate(self, state: State, turn: Turn) -> bool:
        """Whether, while ranking, a typed keyword is also (part of) a candidate's name that
        ranks them: then it ranks them, whatever else the word means."""
        if state.step not in (Step.RANK, Step.CONFIRM) or turn.from_button:
            return False
        if not turn.word or turn.word.isdigit() or turn.word not in self.name_words:
            return False
        parsed = parse_ranking(turn.text, self.election.candidates)
        return bool(parsed.ids) and not parsed.error

    async def _rank(self, state: State, turn: Turn, *, name: bool = False) -> tuple[State, Replies]:
        """Add one or more preferences, undo one, or finish (``name``: the text names a
        candidate, so no keyword is read in it)."""
        word, said = ("" if name else turn.word), words()
        if word in said.abstain:
            return self._abstain(state)
        if word in said.undo:
            if state.ranking:
                state.ranking.pop()
            return state, [self._rank_prompt(state)]
        if word in said.done and word != "0":
            return self._finish(state)
        parsed = parse_ranking(turn.text, self.election.candidates)
        if parsed.error:
            if parsed.error == "empty":
                return state, [self._rank_prompt(state)]
            return state, [say(texts.ranking_problem(parsed.error))]
        ranking = list(state.ranking)
        for cid in parsed.ids:
            if cid in ranking:
                return state, [say(texts.already_ranked(self.election.candidate(cid).name))]
            ranking.append(cid)
        if len(ranking) > self.election.max_preferences:
            return state, [
                say(texts.ranking_problem(texts.too_many(self.election.max_preferences)))
            ]
        state.ranking = ranking
        complete = len(ranking) >= self.election.max_preferences
        if parsed.finish or complete or len(parsed.ids) > 1:
            return self._finish(state)
        return state, [self._rank_prompt(state)]

    async def _confirm(self, state: State, turn: Turn) -> tuple[State, Replies]:
        """Cast on YES; CHANGE, or a new order, goes back to ranking."""
        said = words()
        if turn.word in said.yes:
            return await self._cast(state, turn)
        if turn.word in said.abstain:
            return self._abstain(state)
        if turn.word in said.change:
            state.step = Step.RANK
            state.ranking = []
            return state, [self._rank_prompt(state)]
        parsed = parse_ranking(turn.text, self.election.candidates)
        if parsed.ids and not parsed.error:
            state.step = Step.RANK
            state.ranking = []
            return await self._rank(state, turn)
        return state, [say(texts.confirm_expected())]

    async def _done(self, state: State, turn: Turn) -> tuple[State, Replies]:
        """Voted already: say so, with the receipt; a voting code starts that code's vote.

        A phone or a Telegram account can be shared in a household: after one
        supporter has cast from it, another one's voting code identifies them (their own
        code again finds them voted, a wrong one counts as any wrong code does).
        """
        if self.identity.looks_like_voting_code(turn.text):
            fresh = State(election=self.election.id, turn=state.turn, language=state.language)
            return await self._settle(await self.identity.identify(fresh, turn), turn)
        return await self._voted(state.supporter)

    async def _voted(self, sid: str | None) -> tuple[State, Replies]:
        """The chat of a supporter whose ballot is cast: done, and the receipt again."""
        receipt = await self.box.receipt(self.election, sid) if sid else None
        done = State(step=Step.DONE, election=self.election.id, supporter=sid)
        if receipt is not None and sid is not None and not await self._confirmed(sid, receipt):
            return done, [say(texts.cast_recording())]
        return done, [say(texts.already_voted(self.election, receipt))]

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
        return texts.receipt_again(receipt, self.check_url)

    async def _where_now(self, state: State, turn: Turn) -> Replies:
        """What the chat was last asked, again (after a change of language)."""
        if state.step is Step.RANK:
            return [self._rank_prompt(state)]
        if state.step is Step.CONFIRM:
            text = (
                texts.confirm(self.election, state.ranking)
                if state.ranking
                else texts.confirm_blank()
            )
            return [OutboundMessage(text, kind="confirm")]
        if state.step is Step.SMS_CODE:
            return [say(texts.ask_code())]
        if state.step is Step.DONE:
            return (await self._voted(state.supporter))[1]
        return [self.identity.greeting()]

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

    def _abstain(self, state: State) -> tuple[State, Replies]:
        """ABSTAIN: a blank ballot to confirm, where the election allows one."""
        if not self.election.abstain:
            return state, [say(texts.no_abstain())]
        state.step = Step.CONFIRM
        state.ranking = []
        return state, [OutboundMessage(texts.confirm_blank(), kind="confirm")]

    def _finish(self, state: State) -> tuple[State, Replies]:
        if not state.ranking:
            return state, [say(texts.need_one())]
        state.step = Step.CONFIRM
        return state, [OutboundMessage(texts.confirm(self.election, state.ranking), kind="confirm")]

    async def _cast(self, state: State, turn: Turn) -> tuple[State, Replies]:
        if state.supporter is None or state.grant is None:
            fresh = State(election=self.election.id, turn=state.turn)
            return await self._start(fresh, replace(turn, text="", word=""))
        result = await self.box.cast(
            self.election,
            state.supporter,
            state.grant,
            state.ranking,
            turn.msg.channel,
            language=state.language or current(),
            took=self.clock.now().timestamp() - state.began if state.began else None,
        )
        # After a cast the chat keeps only "done" and (sealed) who it was: not the
        # ranking, so nothing outside the ballot box remembers what was voted.
        if result.ok and result.receipt:
            BALLOTS_CAST.labels(turn.msg.channel).inc()
            done = State(step=Step.DONE, election=self.election.id, supporter=state.supporter)
            cast = texts.cast(result.receipt, self.check_url)
            return done, [
                OutboundMessage(cast, kind="reply", spare=texts.check_receipt(self.check_url))
            ]
        if result.status == "recording" and result.receipt:
            # On the primary, not yet on the replicas asked for: the receipt waits for them.
            BALLOTS_CAST.labels(turn.msg.channel).inc()
            done = State(step=Step.DONE, election=self.election.id, supporter=state.supporter)
            if self.held is not None:
                self.held.follow(
                    turn.msg.channel, turn.msg.address, state.supporter, result.receipt
                )
            return done, [say(texts.cast_recording())]
        if result.status == "already_voted":
            # Cast already, from another chat or by this message before a crash: the
            # receipt again, so it is never lost.
            return await self._voted(state.supporter)
        if result.status == "no_grant":
            return State(election=self.election.id, turn=state.turn), [say(texts.grant_expired())]
        if result.status == "closed":
            return state, [say(texts.closed(self.election))]
        if result.status == "rehearsal":
            return state, [say(texts.rehearsal_unfinished(self.election))]
        if result.status == "not_open":
            return state, [say(texts.not_open(self.election))]
        if result.status == "no_key":
            return state, [say(texts.no_count_key(self.election))]
        return State(election=self.election.id, turn=state.turn), [say(texts.not_on_roll())]

    # --- rendering -------------------------------------------------------------

    def _rank_prompt(self, state: State) -> OutboundMessage:
        state.step = Step.RANK
        return OutboundMessage(
            texts.rank_prompt(self.election, state.ranking, self.buttons.remaining(state)),
            kind="rank",
        )
