"""Every Redis key OpenPrimary uses, built in one place.

Voter-scoped keys and the ballots they produce carry the hash tag
``{<election>/<shard>}``, so everything the cast script touches for one
voter lives in one hash slot and an election spreads over a Redis Cluster
shard by shard.  Keys that are looked up before the voter is known (the
phone, Telegram and code indexes) are election-wide.
"""

from __future__ import annotations

import hashlib

PREFIX = "op"

#: Set of the ids of every loaded election.
ELECTIONS = f"{PREFIX}:elections"


def shard_of(supporter_id: str, shards: int) -> int:
    """The election shard a supporter's keys (and ballot) live in."""
    digest = hashlib.blake2b(supporter_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def _tag(election_id: str, shard: int) -> str:
    return f"{{{election_id}/{shard}}}"


# --- election-wide -------------------------------------------------------


def election(election_id: str) -> str:
    """Hash: the election definition (JSON) and its count key (``count_key``, ``count_key_id``)."""
    return f"{PREFIX}:e:{election_id}"


def phone_index(election_id: str) -> str:
    """Hash: E.164 phone -> supporter id(s), comma-separated when shared."""
    return f"{PREFIX}:e:{election_id}:phones"


def telegram_bot(bot_id: str) -> str:
    """String with a TTL: the election a Telegram bot's servers serve (see
    ``channels.telegram.claim``)."""
    return f"{PREFIX}:tg-bot:{bot_id}:election"


def telegram_index(election_id: str) -> str:
    """Hash: Telegram user id -> supporter id."""
    return f"{PREFIX}:e:{election_id}:telegram"


def code_index(election_id: str) -> str:
    """Hash: keyed hash of a pre-issued voting code -> supporter id."""
    return f"{PREFIX}:e:{election_id}:codes"


#: Counter: the SMS segments every election has sent together (the deployment's budget).
SMS_SEGMENTS_TOTAL = f"{PREFIX}:sms-segments"


def sms_segments(election_id: str) -> str:
    """Counter: the SMS segments the election has sent (replies, codes, reminders)."""
    return f"{PREFIX}:e:{election_id}:sms-segments"


def _outsiders_tag(election_id: str) -> str:
    return f"{{{PREFIX}:e:{election_id}:outsiders}}"


def sms_segments_outsiders(election_id: str) -> str:
    """Counter: the part of ``sms_segments`` spent on replies to senders the roll does not
    know (``bot.outsiders``)."""
    return f"{_outsiders_tag(election_id)}:segments"


def outsider_replies(election_id: str, address: str, hour: int) -> str:
    """Counter with a TTL: replies sent in one hour to one SMS sender the roll does not know
    (in the slot of ``sms_segments_outsiders``, so one script counts both)."""
    return f"{_outsiders_tag(election_id)}:replies:{address}:{hour}"


def alert(election_id: str, kind: str) -> str:
    """String with a TTL: an alert of this kind was raised lately (one per period)."""
    return f"{PREFIX}:e:{election_id}:alert:{kind}"


def code_sms_hour(election_id: str, hour: int) -> str:
    """Counter with a TTL: code SMS sent in one hour (hours since the epoch)."""
    return f"{PREFIX}:e:{election_id}:code-sms:{hour}"


def code_sms_hour_typed(election_id: str, hour: int) -> str:
    """Counter with a TTL: the part of ``code_sms_hour`` asked for by typed supporter numbers."""
    return f"{PREFIX}:e:{election_id}:code-sms:typed:{hour}"


def code_guesses_hour(election_id: str, hour: int) -> str:
    """Counter with a TTL: wrong voting codes typed in the election in one hour."""
    return f"{PREFIX}:e:{election_id}:guesses:{hour}"


def slowed_address(election_id: str, channel: str, address: str) -> str:
    """String with a TTL: a chat address's one try while voting-code guessing is slowed."""
    return f"{PREFIX}:e:{election_id}:slowed:{channel}:{address}"


def address_failures(election_id: str, channel: str, address: str) -> str:
    """String counter: failed code attempts from one chat address."""
    return f"{PREFIX}:e:{election_id}:fail:{channel}:{address}"


def rehearsal(election_id: str) -> str:
    """Hash: a rehearsal under way (``state``, ``started``...) and what it found before it
    began, so ``election finalise`` can put it back (see ballots/rehearsal.py)."""
    return f"{PREFIX}:e:{election_id}:rehearsal"


def rehearsal_testers(election_id: str) -> str:
    """Set: the supporter ids a rehearsal lets vote."""
    return f"{PREFIX}:e:{election_id}:rehearsal:testers"


def rehearsal_chats(election_id: str) -> str:
    """Hash: ``<channel> <address>`` of each chat a rehearsal heard from -> its opt-out and
    unreachable flags before then (``"01"``...), to put back at the finalise."""
    return f"{PREFIX}:e:{election_id}:rehearsal:chats"


def rehearsal_keys(election_id: str) -> str:
    """Set: the names of the chat keys a rehearsal wrote (state, deliveries), to delete."""
    return f"{PREFIX}:e:{election_id}:rehearsal:keys"


def _console_tag(election_id: str, actor: str) -> str:
    return f"{{console/{election_id}/{actor}}}"


def console_code(election_id: str, actor: str) -> str:
    """Hash with a TTL: an organiser's console sign-in code (keyed hash) and wrong tries
    (in the slot of :func:`console_guard`: one script checks both)."""
    return f"{PREFIX}:{_console_tag(election_id, actor)}:code"


def console_guard(election_id: str, actor: str) -> str:
    """Hash: an organiser's wrong console sign-in codes since their last sign-in (``wrong``)
    and, once too many, when they were locked out (``locked``)."""
    return f"{PREFIX}:{_console_tag(election_id, actor)}:guard"


def console_limit(election_id: str, who: str, hour: int) -> str:
    """Counter with a TTL: console sign-in requests in one hour from one organiser
    (``actor:<actor>``) or one browser's address (``ip:<address>``)."""
    return f"{PREFIX}:e:{election_id}:console:limit:{who}:{hour}"


def console_sessions(election_id: str) -> str:
    """Hash: session id -> organiser, for every console session of the election (an entry
    outlives its session until the next listing drops it)."""
    return f"{PREFIX}:e:{election_id}:console:sessions"


def console_session(session_id: str) -> str:
    """Hash with an idle TTL: a signed-in console session (election, organiser, CSRF token)."""
    return f"{PREFIX}:console:session:{session_id}"


def published(election_id: str) -> str:
    """Hash: the results an organiser published (when, by whom, the count as JSON)."""
    return f"{PREFIX}:e:{election_id}:published"


def unsealing(election_id: str) -> str:
    """Hash: the unseal's progress (``shard:<n>`` -> counts when done) and its summary."""
    return f"{PREFIX}:e:{election_id}:unseal"


def alerts(election_id: str) -> str:
    """Stream: the election's alerts only (also in the audit trail), newest kept."""
    return f"{PREFIX}:e:{election_id}:alerts"


def audit(election_id: str) -> str:
    """Stream: the organisers' audit trail."""
    return f"{PREFIX}:e:{election_id}:audit"


def restoring(election_id: str) -> str:
    """Hash: a restore from a backup under way (which file, what it replaced), until it has
    written the election whole; a rerun of the same backup finishes it (see bot/backup.py)."""
    return f"{PREFIX}:e:{election_id}:restoring"


# --- per election shard (one hash slot each) -----------------------------


def shard_meta(election_id: str, shard: int) -> str:
    """Hash: the election window and the count key's id, as the cast script sees them."""
    return f"{PREFIX}:{_tag(election_id, shard)}:meta"


def voter(election_id: str, shard: int, supporter_id: str) -> str:
    """Hash: one supporter's roll entry, code hashes, counters and voted flag."""
    return f"{PREFIX}:{_tag(election_id, shard)}:v:{supporter_id}"


def members(election_id: str, shard: int) -> str:
    """Set: the supporter ids on the roll in this shard."""
    return f"{PREFIX}:{_tag(election_id, shard)}:members"


def sealed(election_id: str, shard: int) -> str:
    """Sorted set, scores all 0: sealed ballots (base64), in the order of their random bytes.

    What the cast writes.  Nothing but the trustees' count key opens a member.
    """
    return f"{PREFIX}:{_tag(election_id, shard)}:sealed"


def unsealed_part(election_id: str, shard: int) -> str:
    """Sorted set: one shard's opened ballots while the unseal runs, renamed into ``ballots``."""
    return f"{PREFIX}:{_tag(election_id, shard)}:unsealing"


def roll_stage(election_id: str, shard: int) -> str:
    """List: a roll import's records for this shard, staged until the import switches them in.

    Deleted by the switch, or when the import is refused (see ``ballots.roll``).
    """
    return f"{PREFIX}:{_tag(election_id, shard)}:roll-stage"


def stage_of(key: str) -> str:
    """List: a roll import's staged changes to an election-wide hash (the phone or Telegram
    index), in the same hash slot as ``key`` (its whole name is the hash tag)."""
    return f"{{{key}}}:roll-stage"


def ballots(election_id: str, shard: int) -> str:
    """Sorted set: ranking (candidate ids joined by ',') scored by its number of ballots.

    Written by the unseal after the close, from the sealed ballots; what the
    count and the export read.

    Identical rankings are one member, so nothing records who cast which.  A
    sorted set keeps its members by score and name, never in the order they
    were added (a small hash would), so nothing records the order of casting.
    """
    return f"{PREFIX}:{_tag(election_id, shard)}:ballots"


def receipts(election_id: str, shard: int) -> str:
    """Sorted set, scores all 0: receipt ids given to voters, in name order, unlinked."""
    return f"{PREFIX}:{_tag(election_id, shard)}:receipts"


def turnout(election_id: str, shard: int) -> str:
    """Hash: ballot counters: ``total``, ``ch:<channel>``, ``day:<YYYY-MM-DD>``,
    ``hour:<YYYY-MM-DDTHH>``, ``sec:<section>``, ``lang:<language>``, ``id:<code|otp>``,
    ``took:<seconds>``, ``after:<reminder job>``; and ``identified`` (voters who proved who
    they are at least once, cast or not).  Counts only: nothing names a voter."""
    return f"{PREFIX}:{_tag(election_id, shard)}:turnout"


def roll_sections(election_id: str, shard: int) -> str:
    """Hash: section -> supporters of the shard on the roll in it (an electoral college)."""
    return f"{PREFIX}:{_tag(election_id, shard)}:sections"


# --- chat ----------------------------------------------------------------


def _chat_tag(channel: str, address: str) -> str:
    """One hash slot for a chat's keys: its lock, state and deliveries move in one script.

    (An address with a brace in it still gives one slot: each of its keys
    hashes the same text, up to the first closing brace.)
    """
    return f"{{chat/{channel}:{address}}}"


def conversation(channel: str, address: str) -> str:
    """String: one chat address's conversation state (sealed), with a TTL."""
    return f"{PREFIX}:{_chat_tag(channel, address)}:conv"


def sender_lock(channel: str, address: str) -> str:
    """Lock with a short lease, renewed: held while one sender's message is being handled."""
    return f"{PREFIX}:{_chat_tag(channel, address)}:lock"


def delivery(channel: str, address: str, message_id: str) -> str:
    """String with TTL: a done delivery's replies (sealed), to answer its repeats the same way."""
    return f"{PREFIX}:{_chat_tag(channel, address)}:seen:{message_id}"


def _copies_tag(channel: str) -> str:
    """One hash slot for a channel's copies: a chat's trail moves into the queue in one script."""
    return f"{{copies/{channel}}}"


def copies_trail(channel: str, address: str) -> str:
    """Hash with a TTL: message id -> copy, the vote-bearing messages of a chat still choosing."""
    return f"{PREFIX}:{_copies_tag(channel)}:trail:{address}"


def copies_queue(channel: str) -> str:
    """Sorted set: platform copies of vote-bearing messages to remove, scored by when due."""
    return f"{PREFIX}:{_copies_tag(channel)}:queue"


def copies_tries(channel: str) -> str:
    """Hash: queued copy -> attempts at removing it so far."""
    return f"{PREFIX}:{_copies_tag(channel)}:tries"


def telegram_inbox(bot: str, shard: int) -> str:
    """Stream: one shard of a bot's Telegram updates, from the webhook's 200 until handled.

    Every key of one bot's inbox carries the hash tag ``{tg-in/<bot id>}``,
    so one blocking read covers every shard a process holds.
    """
    return f"{PREFIX}:{{tg-in/{bot}}}:updates:{shard}"


def telegram_inbox_owner(bot: str, shard: int) -> str:
    """String with a short lease, renewed: the process that handles one inbox shard."""
    return f"{PREFIX}:{{tg-in/{bot}}}:owner:{shard}"


def telegram_inbox_workers(bot: str) -> str:
    """Sorted set: processes taking a bot's updates, scored by when their heartbeat runs out."""
    return f"{PREFIX}:{{tg-in/{bot}}}:workers"


def health(election_id: str, shard: int, process: str) -> str:
    """String with a short TTL: one server process's write probe (``GET /healthz``), one per
    election shard, so that on a Cluster every node holding ballots is probed."""
    return f"{PREFIX}:{_tag(election_id, shard)}:health:{process}"


def opted_out(channel: str) -> str:
    """Set: addresses on a channel that asked for no more reminders."""
    return f"{PREFIX}:optout:{channel}"


def unreachable(channel: str) -> str:
    """Set: addresses a channel can no longer deliver to (blocked the bot...)."""
    return f"{PREFIX}:unreachable:{channel}"


# --- reminder jobs and sending rates (bot/reminders.py, bot/ratelimit.py) -
#
# Every key of one reminder job carries the hash tag ``{remind/<job>}``, so
# each step of a job (claim, begin, finish, recover) is one single-slot
# script.  The shared sending rate of a channel and its per-chat spacing keys
# share the tag ``{rate/<channel>}`` for the same reason.


def _job_tag(job_id: str) -> str:
    return f"{{remind/{job_id}}}"


def reminder_jobs(election_id: str) -> str:
    """Sorted set: an election's reminder job ids, scored by start time."""
    return f"{PREFIX}:e:{election_id}:reminders"


def reminder(job_id: str) -> str:
    """Hash: a reminder job's definition, status, cursors and outcome counters."""
    return f"{PREFIX}:{_job_tag(job_id)}:job"


def reminder_recipients(job_id: str, channel: str) -> str:
    """List: supporter ids to remind on one channel, fixed when the job starts."""
    return f"{PREFIX}:{_job_tag(job_id)}:to:{channel}"


def reminder_retry(job_id: str, channel: str) -> str:
    """List: recipient indexes handed back unsent (pause, a dead worker's claims)."""
    return f"{PREFIX}:{_job_tag(job_id)}:retry:{channel}"


def reminder_progress(job_id: str, channel: str) -> str:
    """String: 4 bits per recipient index, the state of that recipient's message."""
    return f"{PREFIX}:{_job_tag(job_id)}:progress:{channel}"


def reminder_claims(job_id: str) -> str:
    """Hash: ``<channel>:<index>`` -> ``<worker>:c`` (claimed) or ``<worker>:s`` (sending)."""
    return f"{PREFIX}:{_job_tag(job_id)}:claims"


def reminder_workers(job_id: str) -> str:
    """Sorted set: worker ids draining the job, scored by heartbeat expiry (ms)."""
    return f"{PREFIX}:{_job_tag(job_id)}:workers"


def reminder_doubt(job_id: str) -> str:
    """List: ``<channel>:<index>`` of messages in flight when their worker died."""
    return f"{PREFIX}:{_job_tag(job_id)}:doubt"


def send_rate(channel: str) -> str:
    """Hash: a channel's shared sending schedule (next slot, pause, slow-down)."""
    return f"{PREFIX}:rate:{{rate/{channel}}}"


def chat_rate(channel: str, address: str) -> str:
    """String with a TTL: one chat was just sent to (per-chat spacing)."""
    return f"{PREFIX}:rate:{{rate/{channel}}}:chat:{address}"


def organiser_pending(election_id: str, channel: str, address: str, action: str = "") -> str:
    """String (JSON) with a TTL: what an organiser asked for and has yet to confirm with its
    code (a reminder to send; ``action`` "pause" or "resume" for a job change)."""
    tail = f":{action}" if action else ""
    return f"{PREFIX}:e:{election_id}:organiser:{channel}:{address}{tail}"


def send_window(channel: str) -> str:
    """Sorted set: when each message of the last window went on a channel (the hard cap)."""
    return f"{PREFIX}:rate:{{rate/{channel}}}:window"
