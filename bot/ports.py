"""The ports the core consumes and the channels implement.

``bot`` and ``ballots`` never import ``channels``: a channel (SMS, Telegram,
the console) provides these, and the composition root (``openprimary.app``)
hands them to the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.messages import OutboundMessage


@dataclass(frozen=True)
class SendResult:
    """How one send went.

    ``status`` is ``sent``, ``opted_out`` (the platform says the person asked
    for no messages), ``unreachable`` (blocked the bot, not a mobile, ...) or
    ``failed`` (gave up after retries); ``detail`` says why for the logs.
    """

    status: str
    detail: str = ""
    platform_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "sent"


class Sender(Protocol):
    """Sends messages that do not answer an inbound one (codes, reminders)."""

    channel: str

    @property
    def paces_itself(self) -> bool:
        """Whether :meth:`send` already waits for the message's turn in the shared rate.

        A reminder worker then does not take a second turn for it.
        """
        ...

    async def send(self, address: str, message: OutboundMessage) -> SendResult: ...


class TextRules(Protocol):
    """How a channel carries text: what a message becomes, what it cannot carry, its cost.

    Reminders check every recipient's text against these before anything is
    sent, and count its cost (``parts``: SMS segments, one per Telegram
    message).  ``faithful``: the text's language keeps its own letters on a
    channel that could fold them (see ``Election.sms_faithful``).
    """

    channel: str

    def body(self, text: str, faithful: bool = False) -> str:
        """The text as it goes out on this channel (SMS: GSM-7, or UCS-2 where a
        ``faithful`` language needs it)."""
        ...

    def dropped(self, text: str, faithful: bool = False) -> list[str]:
        """Characters this channel cannot carry even approximately: they would vanish."""
        ...

    def parts(self, text: str, faithful: bool = False) -> int:
        """What one message of this text costs, in the channel's billing units."""
        ...

    def problem(self, text: str, max_parts: int, faithful: bool = False) -> str | None:
        """Why this text cannot go on this channel (None: it can)."""
        ...
