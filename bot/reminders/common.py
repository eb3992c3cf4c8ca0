"""The vocabulary of reminder jobs: channels, outcomes, progress values, limits."""

from __future__ import annotations

import enum

from ballots.errors import OpenPrimaryError
from bot.messages import Channel

CHANNELS: tuple[str, ...] = (Channel.SMS, Channel.TELEGRAM)
#: A reminder longer than this many SMS segments is refused (each one is billed).
MAX_SMS_SEGMENTS = 4
#: Placeholders a reminder may use.
FIELDS = ("name", "days_left", "closes")
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


#: Outcomes a recipient can end in, as counted in the job hash (``n:<outcome>:<channel>``).
OUTCOMES = ("sent", "sent_by_sms", "voted", "opted_out", "unreachable", "failed", "in_doubt")
STATUS_OUTCOME = {
    "sent": "sent",
    "opted_out": "opted_out",
    "unreachable": "unreachable",
    "in_doubt": "in_doubt",
}
