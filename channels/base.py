"""What every channel provides: sending a message to an address on its platform."""

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

    async def send(self, address: str, message: OutboundMessage) -> SendResult: ...
