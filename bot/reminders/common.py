"""The vocabulary of reminder jobs: channels, outcomes, progress values, limits."""

from __future__ import annotations

import enum
from enum import StrEnum

from ballots.errors import OpenPrimaryError
from bot.messages import Channel

CHANNELS: tuple[str, ...] = (Channel.SMS, Channel.TELEGRAM)
#: A reminder longer than this many SMS segments is refused (each one is billed).
MAX_SMS_SEGMENTS = 4
#: Placeholders a reminder may use.
FIELDS = ("name", "days_left", "time_left", "closes")
#: What the actor is called in audit entries the job writes by itself.
SYSTEM_ACTOR = "openprimary"
#: Seconds a worker's claims outlive its last heartbeat.
HEARTBEAT = 15.0
BATCH = 1000


class ReminderError(OpenPrimaryError):
    """A reminder that cannot be started, resumed or changed as asked."""


class Progress(enum.IntEnum):
    """The state of one recipient's message (4 bits per recipient)."""

    PENDING = 0
    CLAIMED = 1
    SENDING = 2
    SENT = 3
    VOTED = 4
    OPTED_OUT = 5
    UNREACHABLE = 6
    FAILED = 7
    IN_DOUBT = 8
    SENT_BY_SMS = 9


class Outcome(StrEnum):
    """How one recipient's message ended: counted in the job hash as ``n:<outcome>:<channel>``,
    and kept as its :class:`Progress` value in the recipient's 4 bits."""

    SENT = "sent"
    SENT_BY_SMS = "sent_by_sms"
    VOTED = "voted"
    OPTED_OUT = "opted_out"
    UNREACHABLE = "unreachable"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"

    @property
    def progress(self) -> Progress:
        return Progress[self.name]

    @classmethod
    def of_send(cls, status: str) -> Outcome:
        """The outcome a sender's result means (a status it does not name: failed)."""
        known = {cls.SENT, cls.OPTED_OUT, cls.UNREACHABLE, cls.IN_DOUBT}
        return cls(status) if status in known else cls.FAILED


#: Every outcome, in the order reports list them.
OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
