"""Many elections on one number and one bot: which election a chat is voting in.

With one election served, every message goes to its conversation, as it always has.  With
several, a chat is matched to its elections by who it is before it is handed on:

- an SMS from a phone on one roll goes straight into that ballot; on several, the chat is
  asked which to vote in first ("You can vote in 2 selections: 1 London Mayor, 2 Hackney
  North");
- a voting code goes to the election that issued it (codes are unique across elections);
- a supporter number, or a phone shared on Telegram, goes to the one election that takes
  them, or the chat is asked which election it is for, from every election that takes them
  whatever the roll holds: nothing tells a chat which rolls a number it has not proved is on;
- anything else gets the elections served, to choose from.

Once in an election, the chat is that election's conversation with its own rules (identity,
languages, preferences, quiet hours, budget, rehearsal) until its ballot is cast; then the
other elections the voter is on are offered.  RECEIPT gives one receipt per election.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from ballots import keys
from ballots.box import BallotBox
from ballots.connection import Batch
from ballots.election import Election
from ballots.languages import best
from bot import texts
from bot.buttons import election_tag
from bot.conversation import Conversation
from bot.i18n import current, isolate, speaking
from bot.identify import looks_like_number
from bot.messages import Button, Channel, InboundMessage, OutboundMessage
from bot.parse import keyword, normalise, words
from bot.reach import Reach
from bot.state import State, Step
from bot.turn import Known, Replies, say

log = logging.getLogger(__name__)

#: A tapped election in a menu: the payload's prefix, then the election's place in it.
MENU = "menu"
#: Marks a phone shared on Telegram (not typed) while the chat says which election it is
#: for: a typed number has no space, so no typed number reads as a shared phone.
SHARED = "shared "


class Lobby:
    """Hands each chat's message to the conversation of the election it is voting in."""

    def __init__(self, redis: Redis, box: BallotBox) -> None:
        self.redis = redis
        self.box = box
        #: Each election's conversation, by election id.
        self.conversations: dict[str, Conversation] = {}
        #: The elections as a chat is offered them: by title, then id (see :meth:`reorder`).
        self.ordered: list[Conversation] = []

    def add(self, conversation: Conversation) -> None:
        self.conversations[conversation.election.id] = conversation
        self.reorder()

    def reorder(self) -> None:
        """Put the elections in the order they are offered again (one added or retitled)."""
        self.ordered = sorted(
            self.conversations.values(), key=lambda c: (c.election.title.casefold(), c.election.id)
        )

    @property
    def home(self) -> Conversation:
        """The election whose conversation answers what is no one election's (STOP, HELP
        before a chat has chosen), and whose counters a voting code that matches none
        counts against: the first offered."""
        return self.ordered[0]

    # --- the router's side --------------------------------------------------------

    def prefetch(self, batch: Batch, msg: InboundMessage) -> Callable[[Sequence[Any]], Known]:
        """Each election's reads for the message, in the one round trip that takes the
        chat's lock (see :meth:`Conversation.prefetch`)."""
        conversations = self.ordered
        if len(conversations) == 1:
            return conversations[0].prefetch(batch, msg)
        user = msg.user_id or msg.address if msg.channel == Channel.TELEGRAM else ""
        parts = []
        for conversation in conversations:
            before = len(batch.pipe)
            read = conversation.prefetch(batch, msg)
            parts.append((conversation.election.id, read, len(batch.pipe) - before))
            if user:  # the supporter this Telegram account is linked to there (roll or proof)
                batch.pipe.hget(keys.telegram_index(conversation.election.id), user)

        def known(results: Sequence[Any]) -> Known:
            writes: list[Callable[[Batch], None]] = []
            each: dict[str, Known] = {}
            at = 0
            for eid, read, n in parts:
                found = replace(read(results[at : at + n]), writes=writes)
                at += n
                if user:
                    found = replace(found, linked=str(results[at]) if results[at] else None)
                    at += 1
                each[eid] = found
            ids = [sid for k in each.values() for sid in (k.phone_ids or [])]
            return Known(ids if msg.channel == Channel.SMS else None, writes=writes, each=each)

        return known

    def forget_at(self, state: State) -> datetime | None:
        conversation = self.conversations.get(state.election)
        return conversation.forget_at(state) if conversation is not None else None

    async def step(self, state: State, msg: InboundMessage, known: Known) -> tuple[State, Replies]:
        """One message: to the conversation of the chat's election, or the lobby's own
        question of which election it is for."""
        conversations = self.ordered
        if known.each is None:
            # Read for the one election served when the message came in (another may have
            # been loaded since): that election's, whatever is offered first now.
            only = self.conversations.get(state.election) or conversations[0]
            if len(conversations) == 1 or only.election.id == state.election:
                return await only.step(state, msg, known)
            known = replace(known, each={})
        with speaking(self._language(state, msg)):
            return await self._step(state, msg, known)

    # --- many elections ------------------------------------------------------------

    async def _step(self, state: State, msg: InboundMessage, known: Known) -> tuple[State, Replies]:
        each = known.each or {}
        for conversation in self.ordered:
            for extension in conversation.extensions:
                handled = await extension.handle(msg)
                if handled is not None:  # an organiser's command, in their election
                    return state, handled
        text = msg.text if msg.choice is None else self._tapped(state, msg.choice)
        word = keyword(text)
        chosen = self._chosen(state, text)
        if chosen is not None:
            return await self._enter(chosen, state, msg, each)
        if word in words().receipt and msg.contact is None and msg.choice is None:
            return state, [say(await self._receipts(state, msg, each))]
        current = self.conversations.get(state.election)
        if current is not None and state.step not in (Step.START, Step.CHOOSE):
            identifying = (Step.IDENTIFY, Step.SMS_CODE, Step.DONE)
            coded = self._code_owner(msg, each) if state.step in identifying else None
            if coded is not None and coded != current.election.id:
                # Another election's voting code (the voter's, or a household's): that
                # election's ballot, never this one's.
                return await self._into(coded, State(language=state.language), msg, each)
            return await self._into(current.election.id, state, msg, each)
        return await self._unmatched(state, msg, each)

    async def _unmatched(
        self, state: State, msg: InboundMessage, each: Mapping[str, Known]
    ) -> tuple[State, Replies]:
        """A chat in no election yet: matched by its code, its phone, or asked."""
        fresh = State(language=state.language)
        if msg.choice is not None:
            return fresh, [replace(say(texts.stale_button()), kind="notice")]
        guard = next((c for c in self.ordered if "code" in c.election.identity), None)
        if guard is not None and guard.identity.looks_like_voting_code(msg.text):
            guard_known = each[guard.election.id]
            locked = (guard_known.failures or 0) >= guard.codes.policy.address_max_failures
            owner = None if locked else self._code_owner(msg, each)
            # A code that matches none counts against the first election's counters.
            return await self._into(owner or guard.election.id, fresh, msg, each)
        word = keyword(msg.text)
        said = words()
        everyone = [c.election for c in self.ordered]
        if msg.contact is None and word in (*said.opt_out, *said.opt_in, *said.help):
            # The chat's own, not one election's: answered here, and the chat stays free
            # to choose (no election's identification is begun).
            reach = Reach(self.redis)
            if word in said.opt_out:
                await reach.opt_out(msg.channel, msg.address)
                return fresh, [say(texts.opted_out())]
            replies: Replies = []
            if word in said.opt_in and await reach.opt_in(msg.channel, msg.address):
                replies.append(say(texts.opted_in()))
            chosen, menu = self._menu(fresh, everyone, greeting=True)
            return chosen, [*replies, *menu]
        by_number = [c for c in self.ordered if c.identity.by_sms]
        typed = msg.contact or (msg.text.strip(" .#") if looks_like_number(msg.text) else "")
        if typed and len(by_number) > 1:
            # Asked of every number alike (a phone on one roll typing a number too): which
            # rolls it is on stays unsaid.
            fresh.typed = f"{SHARED}{msg.contact}" if msg.contact else typed
            return self._menu(fresh, [c.election for c in by_number], number=True)
        if msg.channel == Channel.SMS:
            own = [eid for eid, k in each.items() if k.phone_ids]
            if len(own) == 1:
                return await self._into(own[0], fresh, msg, each)
            if own:
                return self._menu(fresh, [e for e in everyone if e.id in own])
        if typed and by_number:
            return await self._into(by_number[0].election.id, fresh, msg, each)
        return self._menu(fresh, everyone, greeting=True)

    def _menu(
        self,
        state: State,
        elections: list[Election],
        *,
        number: bool = False,
        greeting: bool = False,
        also: bool = False,
    ) -> tuple[State, Replies]:
        """Ask which election to vote in (with buttons where the platform has them)."""
        state.step = Step.CHOOSE
        state.offers = [e.id for e in elections]
        listed = ", ".join(f"{n} {isolate(e.title)}" for n, e in enumerate(elections, 1))
        if number:
            text = texts.which_selection_for_number(listed)
        elif also:
            text = texts.also_vote(listed, len(elections))
        elif greeting:
            text = texts.selections_here(listed, len(elections))
        else:
            text = texts.choose_selection(listed, len(elections))
        rows = tuple((Button(e.title, f"{MENU}:{election_tag(e.id)}"),) for e in elections)
        return state, [OutboundMessage(text, buttons=rows, kind="menu")]

    def _tapped(self, state: State, choice: str) -> str:
        """The reply a tapped election stands for: its place among the elections offered
        now ('' for a button of an earlier menu that no longer offers it)."""
        kind, _, tag = choice.partition(":")
        if kind != MENU:
            return ""
        places = [n for n, eid in enumerate(state.offers, 1) if election_tag(eid) == tag]
        return str(places[0]) if places else ""

    def _chosen(self, state: State, text: str) -> str | None:
        """The election a reply picks from the ones the chat was offered, if it picks one."""
        if not state.offers or state.step not in (Step.CHOOSE, Step.DONE):
            return None
        typed = normalise(text).strip(" .#")
        if typed.isdecimal() and 1 <= int(typed) <= len(state.offers):
            eid = state.offers[int(typed) - 1]
            return eid if eid in self.conversations else None
        for eid in state.offers:
            conversation = self.conversations.get(eid)
            if (
                conversation is not None
                and typed.casefold() == conversation.election.title.casefold()
            ):
                return eid
        return None

    async def _enter(
        self, eid: str, state: State, msg: InboundMessage, each: Mapping[str, Known]
    ) -> tuple[State, Replies]:
        """Start voting in a chosen election: with the supporter number (or shared phone)
        given before the question, or from its first step (a code to an SMS sender's own
        phone on its roll, or its greeting)."""
        fresh = State(election=eid, language=state.language)
        if state.typed is not None:
            if state.typed.startswith(SHARED):
                entry = replace(msg, text="", choice=None, contact=state.typed[len(SHARED) :])
            else:
                entry = replace(msg, text=state.typed, choice=None, contact=None)
            return await self._into(eid, fresh, entry, each)
        entry = replace(msg, text="", choice=None, contact=None)
        return await self._into(eid, fresh, entry, each)

    async def _into(
        self, eid: str, state: State, msg: InboundMessage, each: Mapping[str, Known]
    ) -> tuple[State, Replies]:
        """The step in one election's conversation; after a cast, the others offered."""
        conversation = self.conversations[eid]
        if state.election != eid:
            state = State(election=eid, language=state.language)
        was_done, offered = state.step is Step.DONE, list(state.offers)
        new_state, replies = await conversation.step(state, msg, _known(each, eid))
        new_state.offers = []
        if new_state.step is not Step.DONE or new_state.election != eid:
            return new_state, replies
        if was_done:  # offered at the cast already: the same offer, nothing read again
            others = [self.conversations[e].election for e in offered if e in self.conversations]
        else:
            others = self._others(eid, msg, each)
        if not others:
            return new_state, replies
        spoken = replies[-1].language if replies else current()
        with speaking(new_state.language or spoken):
            _, offer = self._menu(State(), others, also=True)
        new_state.offers = [e.id for e in others]
        faithful = replies[-1].faithful if replies else False
        return new_state, [
            *replies,
            *(replace(m, language=spoken, faithful=faithful) for m in offer),
        ]

    def _others(self, eid: str, msg: InboundMessage, each: Mapping[str, Known]) -> list[Election]:
        """The other elections this voter is on, to offer once they have voted here, from
        what was read with the message: by the SMS sender's phone, or the Telegram account
        the other rolls (or an identification there) link."""
        return [
            c.election
            for c in self.ordered
            if c.election.id != eid
            and (_known(each, c.election.id).phone_ids or _known(each, c.election.id).linked)
        ]

    def _code_owner(self, msg: InboundMessage, each: Mapping[str, Known]) -> str | None:
        """The election whose voting code the message is, if it is one."""
        owners = [
            eid
            for eid, k in each.items()
            if k.voting_code is not None and len(k.voting_code) >= 3 and k.voting_code[2]
        ]
        if len(owners) > 1:
            log.warning("a voting code is on %d elections' rolls: %s", len(owners), owners)
        return owners[0] if owners else None

    async def _receipts(self, state: State, msg: InboundMessage, each: Mapping[str, Known]) -> str:
        """RECEIPT: one line per election this chat is known in."""
        found: list[tuple[Election, str]] = []
        for conversation in self.ordered:
            election = conversation.election
            sid: str | None = None
            if state.election == election.id and state.step in (Step.RANK, Step.CONFIRM, Step.DONE):
                sid = state.supporter
            elif msg.channel == Channel.SMS:
                ids = _known(each, election.id).phone_ids or []
                sid = ids[0] if len(ids) == 1 else None
            else:
                sid = _known(each, election.id).linked
            if sid is None:
                continue
            receipt = await self.box.receipt(election, sid)
            if receipt is None:
                found.append((election, texts.no_receipt_yet()))
            elif receipt.unconfirmed and not await self.box.confirm(election, sid):
                found.append((election, texts.cast_recording()))
            else:
                found.append((election, texts.receipt_again(receipt, conversation.check_url)))
        if not found:
            return texts.receipt_who()
        return "\n".join(texts.in_selection(e.title, line) for e, line in found)

    def _language(self, state: State, msg: InboundMessage) -> str:
        """The language the lobby speaks: the chat's, the platform's hint, or the first
        election's first."""
        if state.language:
            return state.language
        offered = [code for c in self.ordered for code in c.election.languages]
        return best(msg.language, list(dict.fromkeys(offered))) or self.home.election.languages[0]


def _known(each: Mapping[str, Known], eid: str) -> Known:
    """What was read for an election with the message (nothing, for one loaded since: its
    steps read what they need themselves), sharing the message's writes."""
    found = each.get(eid)
    if found is not None:
        return found
    writes = next(iter(each.values())).writes if each else []
    return Known(writes=writes)
