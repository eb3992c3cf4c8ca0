"""The normalised messages that flow between the channels and the bot."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    """The platforms a message comes by.  A member is its own name as a string: it keys
    Redis and metrics as it is."""

    SMS = "sms"
    TELEGRAM = "telegram"
    CONSOLE = "console"

    @classmethod
    def platforms(cls) -> tuple[Channel, ...]:
        """The channels that reach people through a platform (not the console)."""
        return (cls.SMS, cls.TELEGRAM)


@dataclass(frozen=True)
class InboundMessage:
    """One message from a person, whatever platform it came by.

    ``address`` is where replies go: an E.164 number for SMS, the chat id for
    Telegram.  ``choice`` is the payload of a tapped button (already checked
    by the channel); ``contact`` is a phone number the sender shared as their
    own (Telegram's contact sharing); ``user_id`` is the platform's id for
    the person (the Telegram user id), when it differs from the address.
    ``ref`` is the platform's handle for the message itself (a Twilio
    MessageSid, a Telegram message id), by which its copy there can be
    deleted once it is known to carry the voter's choices.  ``language`` is
    the platform's guess at the person's language (Telegram's
    ``language_code``, a BCP 47 tag): a hint for a chat that has chosen none.
    """

    channel: str
    address: str
    text: str = ""
    message_id: str | None = None
    choice: str | None = None
    contact: str | None = None
    user_id: str | None = None
    ref: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class Button:
    """A choice the voter can tap where the platform has buttons."""

    label: str
    payload: str


@dataclass(frozen=True)
class OutboundMessage:
    """One message for a person.

    With no ``channel``/``address`` it is a reply to the sender of the message
    being handled.  ``buttons`` are rows of buttons (platforms without buttons
    ignore them: the text always says what to type).  ``edit`` asks a platform
    that can to update the message whose button was tapped rather than send a
    new one.  ``ask_contact`` offers a "share my phone number" button.
    ``private`` marks a message that shows the voter's choices (a ranking
    prompt, the ballot to confirm): the platform should keep no copy of it
    once the ballot is cast.  ``detached`` (for another address) is sent
    after the replies, off their path, and its outcome is not reported: the
    replies must not depend on it, even in their timing.  ``faithful``: by SMS,
    the text keeps its language's own letters (UCS-2 where one is outside GSM-7)
    rather than being folded to GSM-7 (``Election.sms_faithful``); ``language``
    is the language it is written in (a platform's own labels follow it).
    ``spare``: the end of ``text`` that is worth sending only if it is free: by SMS it is
    left off when it would cost another segment (where to check a receipt, say).
    """

    text: str
    channel: str | None = None
    address: str | None = None
    buttons: tuple[tuple[Button, ...], ...] = ()
    edit: bool = False
    ask_contact: bool = False
    remove_keyboard: bool = False
    kind: str = "reply"
    private: bool = False
    detached: bool = False
    faithful: bool = False
    language: str = "en"
    spare: str = ""
    meta: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_reply(self) -> bool:
        return self.channel is None

    def to_dict(self) -> dict[str, Any]:
        """The message as plain data, kept to answer a repeated delivery the same way:
        the text, and only the fields that differ from their defaults."""
        data: dict[str, Any] = {"text": self.text}
        for name, default in _PLAIN_DEFAULTS.items():
            value = getattr(self, name)
            if value != default:
                data[name] = value
        if self.buttons:
            data["buttons"] = [[[b.label, b.payload] for b in row] for row in self.buttons]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutboundMessage:
        buttons = tuple(tuple(Button(*b) for b in row) for row in data.pop("buttons", ()))
        return cls(buttons=buttons, **data)


#: The fields :meth:`OutboundMessage.to_dict` keeps when they differ from these.
_PLAIN_DEFAULTS = {
    f.name: f.default for f in fields(OutboundMessage) if f.name not in ("text", "buttons", "meta")
}
