"""One inbound message as the conversation's steps see it, and what was read with it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ballots.connection import Batch
from bot.messages import Channel, InboundMessage, OutboundMessage
from bot.outsiders import Standing

Replies = list[OutboundMessage]


@dataclass(frozen=True)
class Known:
    """What was read for a message along with its chat's state, in the same round trip
    (see :meth:`bot.conversation.Conversation.prefetch`); None where it was not read."""

    #: The supporters on the roll with the SMS sender's phone.
    phone_ids: list[str] | None = None
    #: The chat address's failed code attempts in the current window.
    failures: int | None = None
    #: What checking the message as a voting code starts by reading (see
    #: :meth:`ballots.codes.Codes.look_up_voting_code`), when it looks like one.
    voting_code: tuple[Any, ...] | None = None
    #: ``running`` or ``finalising`` while a rehearsal is under way (bot/rehearsal.py).
    rehearsal: str | None = None
    #: An SMS sender's replies this hour and all outsiders' segments (bot/outsiders.py).
    outsider: Standing | None = None
    #: Writes the step leaves to go with the chat's new state, in the same round trip.
    writes: list[Callable[[Batch], None]] = field(default_factory=list)
    #: Many elections served: what was read for each, by election id (``bot.lobby``) ...
    each: Mapping[str, Known] | None = None
    #: ... and, in each, the supporter a Telegram account is linked to (roll or proof).
    linked: str | None = None

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


def say(text: str, *, ask_contact: bool = False, remove_keyboard: bool = False) -> OutboundMessage:
    """A plain reply to the voter."""
    return OutboundMessage(text, ask_contact=ask_contact, remove_keyboard=remove_keyboard)


def telegram_user(msg: InboundMessage) -> str:
    """The Telegram user a message came from ('' for other channels, or none given)."""
    return msg.user_id or "" if msg.channel == Channel.TELEGRAM else ""


def sms_from(msg: InboundMessage) -> str:
    """The number an SMS came from ('' for other channels): the code scripts never refuse
    the voter's own phone on the roll."""
    return msg.address if msg.channel == Channel.SMS else ""


def delivery(msg: InboundMessage) -> str:
    """The platform's id for a message, as the code scripts know a repeat of it ('' if none)."""
    return f"{msg.channel}:{msg.message_id}" if msg.message_id else ""
