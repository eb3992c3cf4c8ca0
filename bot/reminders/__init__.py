"""Reminder jobs: one message to every supporter who has not voted, once each.

A job lives in Redis, never in a process.  When it starts, its recipients
are fixed: each supporter on the roll who has not voted, has not opted out
and can be reached, on their own channel (Telegram where linked and
reachable, otherwise SMS).  They are stored as one list of supporter ids per
channel; a recipient is known by its index in that list, and its progress
is 4 bits at that index (:class:`Progress`), so a job for 100,000
supporters takes about a megabyte.

Any number of worker processes drain one job.  Each message goes through
three atomic steps, every one a Lua script on the job's hash slot:

1. **claim** an index (from the retry list, else the next one in order);
2. **begin**, just before the platform call: the claim becomes "sending";
3. **finish** with the outcome (sent, skipped because they voted, ...).

A worker's claims are tied to a heartbeat.  When a worker dies (``kill
-9``), its claims that never began go back to the queue; a message that
had begun but not finished may or may not have reached the platform, so it
is marked *in doubt* and **not sent again**: reminders are at most once.
See docs/reminders.md, "A job in Redis", for why, and ``--resend-in-doubt`` for the choice
the other way.
"""

from bot.reminders.common import (
    CHANNELS,
    FIELDS,
    HEARTBEAT,
    MAX_SMS_SEGMENTS,
    OUTCOMES,
    SYSTEM_ACTOR,
    Outcome,
    Progress,
    ReminderError,
)
from bot.reminders.jobs import JobStatus, Reminders, new_job_id, record_finished
from bot.reminders.plan import Plan, after_the_close, finishes, plan
from bot.reminders.scripts import JOB_RETENTION
from bot.reminders.text import days_left, render, template_problems
from bot.reminders.worker import Claim, Worker, default_concurrency

__all__ = [
    "CHANNELS",
    "FIELDS",
    "HEARTBEAT",
    "JOB_RETENTION",
    "MAX_SMS_SEGMENTS",
    "OUTCOMES",
    "SYSTEM_ACTOR",
    "Claim",
    "JobStatus",
    "Outcome",
    "Plan",
    "Progress",
    "ReminderError",
    "Reminders",
    "Worker",
    "after_the_close",
    "days_left",
    "default_concurrency",
    "finishes",
    "new_job_id",
    "plan",
    "record_finished",
    "render",
    "template_problems",
]
