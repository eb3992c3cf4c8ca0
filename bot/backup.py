"""One election's state, taken whole and consistent, and put back (``openprimary backup`` and
``openprimary restore``; the file and its encryption are ``ballots.backup_file``).

**What a backup holds**: the election (its definition, count key's public half, the secret
key's fingerprint), the roll (every supporter's record: codes' hashes, failures, the voted
flag, the receipt; the members, section counts and the phone, Telegram and voting-code
indexes), each shard's window and count key id, the sealed ballots, receipts and turnout,
the SMS counted, the reminder jobs (whole: recipients, progress, claims, messages in doubt),
the audit trail and the alerts, and the opt-outs and unreachable marks of the roll's phones
and Telegram chats (a STOP must survive a restore into another Redis).

**What it never holds**, whatever the election's state:

- *No chat state.*  A conversation's state is per chat, not per election; it is sealed
  with ``OPENPRIMARY_SECRET_KEY``, and while a voter ranks it holds their ranking so far.
  It is also transient (it expires, and a voter who has cast needs none: their receipt is
  on their roll entry).  After a restore every chat starts afresh, as on a new phone; a
  voter part-way through ranking starts again.  Delivery records, locks, platform copies
  to delete, rate and failure counters with a TTL, console sign-ins and sessions are
  left out for the same reason: they are short-lived, and a restore wants none of them.
- *No unsealed ranking.*  The ballot box the unseal writes (``keys.ballots``), its staging,
  the unseal's figures and the published results (which carry the count, and the
  anonymised ballots) are left out: the unseal's ``started`` mark and each shard's
  ``frozen`` flag are kept, so a restored election still takes no ballot and keeps its
  times.  After a restore the trustees unseal again: the box is rebuilt from the sealed
  ballots, with every check the unseal makes (sealed ballots against voters, every ballot
  opening to a valid ranking, none twice), so a count never rests on a box read from a
  file.  Then an organiser publishes again (the audit trail keeps the first publication).
- *Nothing of a rehearsal*: a backup is refused while one is under way (its snapshot of
  testers' records and chats is for the finalise, and holds chat states).

**Consistency.**  Casting changes one shard at a time, in one script: the voter's flag and
receipt, the sealed ballot, the receipts set and turnout.  So each shard is read whole in
one MULTI (its keys share the hash tag ``{election/shard}``: one slot, so on a Cluster too),
and in every shard of a backup the sealed ballots, the receipts, the voters marked as voted
and turnout agree, as the unseal requires.  The election-wide keys (indexes, audit, jobs)
are read after the shards, each whole (a job's keys together, in one Lua script); the
election's own hash is read first and last, and a backup during which it changed (the
election was reloaded, closed or extended) is refused.  A shard's MULTI holds Redis up
while it runs: about 0.2 s per 100,000 supporters in the shard on the 2-core development
machine (a Lua script reading the same took four times as long), so a very large roll is
better spread over shards, and backed up in a quiet hour.

**Typed reads, not DUMP.**  Keys are read as their contents (HGETALL, ZRANGE ... WITHSCORES,
XRANGE...) with their time to live, never as DUMP payloads: those carry Redis's own
serialisation version, and a Redis older than the one that wrote them refuses them; RESTORE
is also refused to the deployment's OpenPrimary users (``deploy/redis/users.acl``: it is
``@dangerous``).  A typed backup restores into any Redis from 6.2, whatever its version or
layout, and a restore can check everything it writes.

**A restore** writes only keys of the named election, of the kinds a backup holds (a file
naming anything else is refused), checks each shard as above, and refuses an election that
exists in Redis unless ``force``.  It marks the restore (``keys.restoring``), deletes every
key of the election and the chat states naming it (its shards' windows first: no cast
after that), writes the election-wide keys, then each shard in one MULTI, frozen (the cast
script refuses every ballot), then the election's own hash, which is what makes the
election exist, and last lets the shards take ballots again.  A failure part-way leaves an
election no server can load and no shard can take a ballot in, and the mark: running the
same restore again starts over and finishes it, without ``--force``.  The audit trail is
merged, never replaced: entries made since the backup stay.  A reminder job that was
running is restored paused: it may have sent more since the backup, so an organiser
decides whether to resume it.  Stop ``serve`` for the election while it is restored.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.client import NEVER_DECODE
from redis.exceptions import WatchError

from ballots import audit, keys
from ballots.backup_file import FORMAT
from ballots.clock import Clock
from ballots.election import Election, get_election
from ballots.errors import OpenPrimaryError
from ballots.program import program
from bot.messages import Channel
from bot.reminders.scripts import job_keys

#: Items written by one command (a field-value pair, a member).
CHUNK = 1_000
#: The fields of the unseal's record a backup keeps: when it began (the times stay fixed).
_UNSEAL_KEPT = ("started",)
_JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: The kinds of key a backup holds (a Redis type each).
_KINDS = frozenset({"string", "hash", "set", "zset", "list", "stream"})

_READ = """
-- Read keys of one hash slot whole, in one step: for each that exists, its name, type,
-- milliseconds to live (-1: none) and contents, as typed reads (not DUMP).
local out = {}
for _, k in ipairs(KEYS) do
  local kind = redis.call('TYPE', k)['ok']
  local v
  if kind == 'string' then v = redis.call('GET', k)
  elseif kind == 'hash' then v = redis.call('HGETALL', k)
  elseif kind == 'set' then v = redis.call('SMEMBERS', k)
  elseif kind == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
  elseif kind == 'list' then v = redis.call('LRANGE', k, 0, -1)
  elseif kind == 'stream' then v = redis.call('XRANGE', k, '-', '+')
  elseif kind ~= 'none' then error('cannot back up ' .. k .. ', a ' .. kind) end
  if v then out[#out + 1] = {k, kind, redis.call('PTTL', k), v} end
end
return out
"""
#: A shard's ``frozen`` mark while a restore writes the election (no cast gets in).
RESTORING = "restoring"
#: Times a shard is read again when its roll changed while it was being read.
WATCH_TRIES = 5


class BackupRefused(OpenPrimaryError):
    """A backup or a restore that cannot be done now, or of this file; nothing was changed."""


@dataclass
class Record:
    """One key as read: its leaves are ``str``, or ``bytes`` in a key holding binary data
    (a reminder job's progress bits)."""

    key: str
    kind: str
    #: Milliseconds it had to live when read (0: no expiry).
    ttl: int
    #: string: the value; hash: {field: value}; set, list: [item]; zset: [[member, score]];
    #: stream: [[id, [field, value, ...]]].
    value: Any

    def text(self) -> Any:
        """The value with every leaf as text (binary replaced), to inspect it."""
        return _leaves(self.value, _as_text)

    def to_json(self) -> list[Any]:
        """The record in a backup's JSON: a binary one with every leaf in base64."""
        if _has_bytes(self.value):
            return [self.key, self.kind, self.ttl, _leaves(self.value, _b64), "b64"]
        return [self.key, self.kind, self.ttl, self.value, ""]

    @classmethod
    def from_json(cls, item: Any) -> Record:
        key, kind, ttl, value, encoding = item
        if encoding == "b64":
            value = _leaves(value, lambda s: base64.b64decode(s, validate=True))
        elif encoding != "":
            raise ValueError(encoding)
        shapes: dict[str, type | tuple[type, ...]] = {"string": (str, bytes), "hash": dict}
        shape = shapes.get(kind, list)
        if not isinstance(key, str) or kind not in _KINDS or not isinstance(value, shape):
            raise ValueError(key)
        if not isinstance(ttl, int) or isinstance(ttl, bool):
            raise ValueError(key)
        return cls(key, kind, max(ttl, 0), value)


def _as_text(leaf: str | bytes) -> str:
    return leaf.decode("utf-8", "replace") if isinstance(leaf, bytes) else leaf


def _b64(leaf: str | bytes) -> str:
    raw = leaf if isinstance(leaf, bytes) else leaf.encode()
    return base64.b64encode(raw).decode("ascii")


def _leaves(value: Any, fn: Callable[[Any], Any]) -> Any:
    """``value`` with ``fn`` applied to each leaf (str or bytes), dict keys included."""
    if isinstance(value, str | bytes):
        return fn(value)
    if isinstance(value, dict):
        return {fn(k): _leaves(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_leaves(v, fn) for v in value]
    return value


def _has_bytes(value: Any) -> bool:
    if isinstance(value, bytes):
        return True
    if isinstance(value, dict):
        return any(_has_bytes(k) or _has_bytes(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_bytes(v) for v in value)
    return False


def _pairs(flat: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    return zip(flat[0::2], flat[1::2], strict=True)


def _record(item: Sequence[Any]) -> Record:
    """A record from the read script's raw reply (every string as bytes)."""
    name, kind_raw, ttl, raw = item
    kind = kind_raw.decode()
    try:
        value: Any = _leaves(raw, lambda b: b.decode("utf-8"))
    except UnicodeDecodeError:
        value = raw
    if kind == "hash":
        value = dict(_pairs(value))
    elif kind == "zset":
        value = [[m, s] for m, s in _pairs(value)]
    elif kind == "stream":
        value = [[entry_id, list(fields)] for entry_id, fields in value]
    return Record(name.decode(), kind, max(int(ttl), 0), value)


async def _read(redis: Redis, names: Sequence[str]) -> list[Record]:
    """Read keys of one slot whole, in one step (see ``_READ``), whatever their type."""
    # NEVER_DECODE: every string as bytes, so that a binary value (a reminder job's progress
    # bits) is read as it is; ``_record`` makes text of the rest.
    raw = await redis.execute_command(  # type: ignore[no-untyped-call]
        "EVAL", _READ, len(names), *names, **{NEVER_DECODE: []}
    )
    return [_record(item) for item in raw]


async def _read_shard(redis: Redis, eid: str, shard: int) -> list[Record]:
    """Read a shard whole in one MULTI: its roll entries, sealed ballots, receipts, turnout,
    section counts and window, as no cast can have changed them in between.

    A MULTI of plain reads holds Redis up about a quarter as long as a Lua script reading
    the same (measured: a script pays for a table of every reply).  The roll entries to read
    are the members read just before, under WATCH: a roll import that adds one in between
    makes the MULTI fail, and the shard is read again.
    """
    members = keys.members(eid, shard)
    kinds = ("hash", "zset", "zset", "hash", "hash")
    rest = list(zip(_shard_keys(eid, shard)[1:], kinds, strict=True))
    for _ in range(WATCH_TRIES):
        try:
            async with redis.pipeline(transaction=True) as pipe:
                await pipe.watch(members)
                ids = sorted(str(m) for m in await pipe.smembers(members))
                pipe.multi()  # type: ignore[no-untyped-call]
                for key, kind in rest:
                    if kind == "hash":
                        pipe.hgetall(key)
                    else:
                        pipe.zrange(key, 0, -1, withscores=True)
                for sid in ids:
                    pipe.hgetall(keys.voter(eid, shard, sid))
                replies = await pipe.execute()
        except WatchError:
            continue
        found = [Record(members, "set", 0, ids)] if ids else []
        for (key, kind), value in zip(rest, replies[: len(rest)], strict=True):
            if value:
                # A score back as the text Redis reads (repr: the same double, exactly).
                shaped = dict(value) if kind == "hash" else [[m, repr(s)] for m, s in value]
                found.append(Record(key, kind, 0, shaped))
        for sid, value in zip(ids, replies[len(rest) :], strict=True):
            if value:  # a roll entry is a hash, which never expires
                found.append(Record(keys.voter(eid, shard, sid), "hash", 0, dict(value)))
        return found
    raise BackupRefused(
        f"the roll of {eid} changed each time its shard {shard} was read (a roll import under "
        "way?): nothing was written; run the backup again once it has finished"
    )


@dataclass
class Snapshot:
    """One election as a backup holds it."""

    election: Election
    taken: datetime
    #: Key -> what it held.
    records: dict[str, Record]
    #: ``opted_out`` / ``unreachable`` -> channel -> the roll's addresses marked so.
    reach: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    #: When the election had been unsealed, and its results published (neither the box nor
    #: the results are in a backup: the trustees unseal again, an organiser publishes again).
    unsealed: str | None = None
    published: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "election": self.election.id,
            "taken": self.taken.isoformat(timespec="seconds"),
            "records": [r.to_json() for r in self.records.values()],
            "reach": self.reach,
            "unsealed": self.unsealed,
            "published": self.published,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any], path: str) -> Snapshot:
        """The snapshot a backup file holds, checked to be one a backup could hold (see
        :func:`check`); BackupRefused naming the file otherwise."""
        try:
            listed = [Record.from_json(item) for item in payload["records"]]
            records = {r.key: r for r in listed}
            if len(records) != len(listed):
                raise ValueError("a key is there twice")
            taken = datetime.fromisoformat(str(payload["taken"]))
            reach = {
                str(what): {str(ch): [str(a) for a in found] for ch, found in by.items()}
                for what, by in dict(payload.get("reach") or {}).items()
            }
            eid = str(payload["election"])
            election = Election.from_json(str(records[keys.election(eid)].text()["definition"]))
            if election.id != eid:
                raise ValueError(f"the definition is of {election.id}")
        except (KeyError, ValueError, TypeError, AttributeError) as err:
            raise BackupRefused(f"{path}: its snapshot is malformed ({err!r})") from err
        unsealed, published = payload.get("unsealed"), payload.get("published")
        snapshot = cls(
            election,
            taken,
            records,
            reach,
            str(unsealed) if unsealed else None,
            str(published) if published else None,
        )
        check(snapshot, path)
        return snapshot

    def find(self, key: str) -> Record | None:
        return self.records.get(key)

    def members(self, shard: int) -> list[str]:
        found = self.find(keys.members(self.election.id, shard))
        return [str(m) for m in found.text()] if found else []

    @property
    def supporters(self) -> int:
        return sum(len(self.members(s)) for s in range(self.election.shards))

    @property
    def sealed(self) -> int:
        return sum(
            self._size(keys.sealed(self.election.id, s)) for s in range(self.election.shards)
        )

    def _size(self, key: str) -> int:
        found = self.find(key)
        return len(found.value) if found else 0

    def jobs(self) -> list[str]:
        found = self.find(keys.reminder_jobs(self.election.id))
        return [str(m) for m, _ in found.text()] if found else []


# --- taking a backup ------------------------------------------------------------------------


def _election_wide(eid: str) -> list[str]:
    """The election-wide keys a backup holds (each read whole, on its own: different slots)."""
    return [
        keys.phone_index(eid),
        keys.telegram_index(eid),
        keys.code_index(eid),
        keys.sms_segments(eid),
        keys.sms_segments_outsiders(eid),
        keys.unsealing(eid),
        keys.alerts(eid),
        keys.audit(eid),
        keys.reminder_jobs(eid),
    ]


def _shard_keys(eid: str, shard: int) -> list[str]:
    """A shard's keys a backup holds, members first (with the roll entries it names); never
    its unsealed box nor the unseal's staging of it."""
    return [
        keys.members(eid, shard),
        keys.shard_meta(eid, shard),
        keys.sealed(eid, shard),
        keys.receipts(eid, shard),
        keys.turnout(eid, shard),
        keys.roll_sections(eid, shard),
    ]


@dataclass(frozen=True)
class Taken:
    """A backup's snapshot, and what the organiser should know about it."""

    snapshot: Snapshot
    #: Shards whose sealed ballots do not match their voters (the live data's, as the unseal
    #: would find them: the backup keeps them as they are, for investigation).
    problems: list[str]
    #: A roll import had staged records not yet switched in: the backup holds part of it.
    import_under_way: bool


async def take(redis: Redis, election_id: str, clock: Clock) -> Taken:
    """Read one election whole and consistent (see the module doc); nothing is written."""
    election = await get_election(redis, election_id)
    eid = election.id
    under_way = str(await redis.hget(keys.rehearsal(eid), "state") or "") or None
    if under_way is not None:
        raise BackupRefused(
            f"election {eid} has a rehearsal {under_way}: a backup holds real voting only; "
            f"finalise it first ({program()} election finalise --election {eid})"
        )
    taken = clock.now().astimezone(UTC)
    first = await _read(redis, [keys.election(eid)])
    records = {r.key: r for r in first}
    for shard in range(election.shards):
        records.update((r.key, r) for r in await _read_shard(redis, eid, shard))
    for key in _election_wide(eid):
        records.update((r.key, r) for r in await _read(redis, [key]))
    snapshot = Snapshot(election, taken, records)
    for job in snapshot.jobs():
        records.update((r.key, r) for r in await _read(redis, job_keys(job)))
    last = await _read(redis, [keys.election(eid)])
    if [r.value for r in first] != [r.value for r in last]:
        raise BackupRefused(
            f"election {eid} changed while the backup was taken (it was loaded, closed or "
            "extended, or its count key made): nothing was written; run the backup again"
        )
    unsealing = snapshot.find(keys.unsealing(eid))
    if unsealing is not None:
        snapshot.unsealed = str(unsealing.text().get("done") or "") or None
        unsealing.value = {k: v for k, v in unsealing.value.items() if k in _UNSEAL_KEPT}
        if not unsealing.value:
            del records[unsealing.key]
    published = await redis.hget(keys.published(eid), "at")
    snapshot.published = str(published) if published else None
    snapshot.reach = await _reach(redis, snapshot)
    staged = [keys.roll_stage(eid, s) for s in range(election.shards)]
    staged += [keys.stage_of(keys.phone_index(eid)), keys.stage_of(keys.telegram_index(eid))]
    import_under_way = False
    for key in staged:  # one EXISTS each: on a Cluster they are in different slots
        import_under_way = import_under_way or bool(await redis.exists(key))
    check(snapshot, "the backup")
    return Taken(snapshot, reconcile(snapshot), import_under_way)


async def _reach(redis: Redis, snapshot: Snapshot) -> dict[str, dict[str, list[str]]]:
    """Which of the roll's phones and Telegram chats are opted out or unreachable."""
    addresses: dict[str, list[str]] = {Channel.SMS: [], Channel.TELEGRAM: []}
    for voter in _voters(snapshot):
        record = voter.text()
        if record.get("phone"):
            addresses[Channel.SMS].append(str(record["phone"]))
        if record.get("telegram_id"):
            addresses[Channel.TELEGRAM].append(str(record["telegram_id"]))
    found: dict[str, dict[str, list[str]]] = {}
    for what, key_of in (("opted_out", keys.opted_out), ("unreachable", keys.unreachable)):
        for channel, wanted in addresses.items():
            unique = sorted(set(wanted))
            hits: list[str] = []
            for start in range(0, len(unique), CHUNK):
                part = unique[start : start + CHUNK]
                flags = await redis.smismember(key_of(channel), part)
                hits += [a for a, hit in zip(part, flags, strict=True) if hit]
            if hits:
                found.setdefault(what, {})[str(channel)] = hits
    return found


def _voters(snapshot: Snapshot) -> Iterator[Record]:
    eid = snapshot.election.id
    for shard in range(snapshot.election.shards):
        prefix = keys.voter(eid, shard, "")
        for sid in snapshot.members(shard):
            found = snapshot.find(prefix + sid)
            if found is not None:
                yield found


# --- checks -------------------------------------------------------------------------------


def check(snapshot: Snapshot, path: str) -> None:
    """Refuse a snapshot holding anything a backup of its election may not: a key of
    another election or of the deployment, a kind of key a backup leaves out (an unsealed
    box, a chat state...), a roll entry outside its shard, the unseal's figures."""
    election = snapshot.election
    eid = election.id
    allowed: dict[str, str] = {keys.election(eid): "hash"}
    wide = ("hash", "hash", "hash", "string", "string", "hash", "stream", "stream", "zset")
    allowed.update(zip(_election_wide(eid), wide, strict=True))
    for shard in range(election.shards):
        kinds = ("set", "hash", "zset", "zset", "hash", "hash")
        allowed.update(zip(_shard_keys(eid, shard), kinds, strict=True))
        for sid in snapshot.members(shard):
            if keys.shard_of(sid, election.shards) != shard:
                raise BackupRefused(f"{path}: supporter {sid} is in the wrong shard ({shard})")
            allowed[keys.voter(eid, shard, sid)] = "hash"
    for job in snapshot.jobs():
        if not _JOB_ID.match(job):
            raise BackupRefused(f"{path}: {job!r} is not a reminder job's id")
        job_kinds = ["hash", "hash", "zset", "list"] + ["list", "list", "string"] * (
            (len(job_keys(job)) - 4) // 3
        )
        allowed.update(zip(job_keys(job), job_kinds, strict=True))
    for record in snapshot.records.values():
        if allowed.get(record.key) != record.kind:
            raise BackupRefused(
                f"{path}: holds {record.key} ({record.kind}), which no backup of {eid} holds; "
                "nothing was restored"
            )
    unsealing = snapshot.find(keys.unsealing(eid))
    if unsealing is not None and set(unsealing.value) - set(_UNSEAL_KEPT):
        raise BackupRefused(f"{path}: holds the unseal's figures, which no backup holds")
    platforms = {str(ch) for ch in Channel.platforms()}
    for what, by in snapshot.reach.items():
        if what not in ("opted_out", "unreachable") or set(by) - platforms:
            raise BackupRefused(f"{path}: holds reach marks of an unknown kind ({what})")


def reconcile(snapshot: Snapshot) -> list[str]:
    """Each shard whose sealed ballots, receipts, voters marked as voted and turnout do not
    agree, as the unseal checks them (a receipt shared by two voters, which their own
    records show, is a clash and not a mismatch)."""
    eid = snapshot.election.id
    problems = []
    for shard in range(snapshot.election.shards):
        sealed = snapshot._size(keys.sealed(eid, shard))
        receipts = snapshot._size(keys.receipts(eid, shard))
        turnout = snapshot.find(keys.turnout(eid, shard))
        total = int(turnout.text().get("total", 0)) if turnout else 0
        prefix = keys.voter(eid, shard, "")
        voters = [
            r.text() for r in map(snapshot.find, (prefix + m for m in snapshot.members(shard))) if r
        ]
        marked = sum(1 for v in voters if v.get("voted"))
        given = [str(v["receipt"]) for v in voters if v.get("receipt")]
        if sealed == total == marked == receipts:
            continue
        if sealed == total == marked == len(given) and len(set(given)) == receipts:
            continue
        problems.append(
            f"shard {shard}: {sealed} sealed ballots, {total} counted in turnout, {marked} "
            f"voters marked as voted, {receipts} receipts"
        )
    return problems


# --- restoring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    """What a restore did."""

    supporters: int
    sealed: int
    #: An election (or an unfinished restore) was there and has been replaced.
    replaced: bool
    #: The same backup's unfinished restore was finished.
    resumed: bool
    #: Reminder jobs that were running, restored paused.
    paused: list[str]
    #: Chat states of the election deleted (every chat starts afresh).
    chats: int


async def restore(
    redis: Redis,
    snapshot: Snapshot,
    clock: Clock,
    actor: str,
    *,
    source: str,
    digest: str,
    force: bool = False,
) -> Restored:
    """Put a backup's election in place of whatever Redis holds of it (see the module doc).

    ``digest`` tells this backup from others (a rerun of the same one finishes it);
    ``source`` names the file for the messages and the audit trail.
    """
    eid = snapshot.election.id
    problems = reconcile(snapshot)
    if problems:
        raise BackupRefused(
            f"{source}: its sealed ballots do not match its voters, so the unseal would refuse "
            f"them; nothing was restored. {'; '.join(problems)}"
        )
    marker = keys.restoring(eid)
    mark = {str(k): str(v) for k, v in (await redis.hgetall(marker)).items()}
    resumed = mark.get("digest") == digest
    live_jobs = [str(j) for j in await redis.zrange(keys.reminder_jobs(eid), 0, -1)]
    found, chats = await _keys_of(redis, eid, {*live_jobs, *snapshot.jobs()})
    listed = bool(await redis.sismember(keys.ELECTIONS, eid))
    if (found or listed or mark) and not resumed and not force:
        if mark:
            raise BackupRefused(
                f"a restore of election {eid} from another backup (taken {mark.get('taken')}, "
                f"{mark.get('file')}) did not finish; nothing was restored. Run that one "
                f"again, or use --force to replace it with {source}"
            )
        raise BackupRefused(
            f"election {eid} is in this Redis already ({len(found)} keys, such as "
            f"{(found or [keys.ELECTIONS])[0]}); nothing was restored. --force replaces it "
            f"wholly with the backup taken {snapshot.taken:%Y-%m-%d %H:%M} UTC"
        )

    # From here on a failure leaves the mark, and the same restore run again finishes.  What
    # the mark says of the Redis before (a first run's, or an abandoned restore's) stands.
    before = await redis.hmget(keys.election(eid), ["version"])
    await redis.hset(
        marker,
        mapping={
            "digest": digest,
            "file": source,
            "taken": snapshot.taken.isoformat(timespec="seconds"),
            "started": clock.now().isoformat(timespec="seconds"),
        },
    )
    await redis.hsetnx(marker, "replaced", "1" if (found or listed) else "")
    await redis.hsetnx(marker, "version_before", str(before[0] or 0))
    await redis.hsetnx(marker, "segments_before", str(await redis.get(keys.sms_segments(eid)) or 0))
    # The audit trail only grows: what Redis holds of it is kept in the mark (so that a rerun
    # still has it once it is deleted) and merged with the backup's.
    trail: list[tuple[str, dict[str, str]]] = await redis.xrange(  # type: ignore[assignment]
        keys.audit(eid)
    )
    kept: list[list[Any]] = json.loads(mark.get("audit") or "[]")
    known = {entry_id for entry_id, _ in kept}
    kept += [[i, [x for pair in f.items() for x in pair]] for i, f in trail if i not in known]
    await redis.hset(marker, "audit", json.dumps(kept))
    await _delete(redis, eid, found, chats, {*live_jobs, *snapshot.jobs()})

    paused = _pause_running(snapshot)
    _merge_trail(snapshot, kept)
    head = keys.election(eid)
    shard_keys = {k for s in range(snapshot.election.shards) for k in _shard_keys(eid, s)}
    for record in snapshot.records.values():
        if record.key == head or record.key in shard_keys or _is_voter(eid, record.key):
            continue
        if record.key.startswith(f"{keys.PREFIX}:{{remind/"):
            continue
        async with redis.pipeline(transaction=True) as pipe:
            _write(pipe, record)
            await pipe.execute()
    for job in snapshot.jobs():
        async with redis.pipeline(transaction=True) as pipe:  # a job's keys: one slot
            for key in job_keys(job):
                job_record = snapshot.find(key)
                if job_record is not None:
                    _write(pipe, job_record)
            await pipe.execute()
    for shard in range(snapshot.election.shards):
        await _write_shard(redis, snapshot, shard)
    for what, key_of in (("opted_out", keys.opted_out), ("unreachable", keys.unreachable)):
        for channel, addresses in snapshot.reach.get(what, {}).items():
            for start in range(0, len(addresses), CHUNK):
                await redis.sadd(key_of(channel), *addresses[start : start + CHUNK])

    mark = {str(k): str(v) for k, v in (await redis.hgetall(marker)).items()}
    segments = snapshot.find(keys.sms_segments(eid))
    spent = int(segments.text()) if segments else 0
    # The deployment's budget counts every election's SMS: as this election's count changes,
    # so does the total, once (a crash between these two steps would count it twice).
    change = spent - int(mark.get("segments_before") or 0)
    applied = int(mark.get("segments_applied") or 0)
    if change != applied:
        await redis.incrby(keys.SMS_SEGMENTS_TOTAL, change - applied)
        await redis.hset(marker, "segments_applied", str(change))
    head_record = snapshot.find(head)
    assert head_record is not None  # check() found the definition in it
    version = max(int(head_record.text().get("version", 0)), int(mark["version_before"])) + 1
    async with redis.pipeline(transaction=True) as pipe:
        _write(pipe, head_record)
        # Above any version a running server saw, so that every one reads it afresh.
        pipe.hset(head, "version", version)
        await pipe.execute()
    await redis.sadd(keys.ELECTIONS, eid)
    await _thaw(redis, snapshot)
    replaced = bool(mark.get("replaced"))
    await redis.delete(marker)
    done = Restored(snapshot.supporters, snapshot.sealed, replaced, resumed, paused, len(chats))
    await audit.record(
        redis,
        clock,
        eid,
        actor,
        "election restored",
        file=source,
        taken=snapshot.taken.isoformat(timespec="seconds"),
        supporters=done.supporters,
        sealed=done.sealed,
        replaced=done.replaced,
        resumed=done.resumed,
        paused_jobs=paused,
        chats_reset=done.chats,
    )
    return done


def _merge_trail(snapshot: Snapshot, kept: list[list[Any]]) -> None:
    """Add to the snapshot's audit trail the entries of ``kept`` it lacks, in id order: a
    restore over an election keeps every entry of its trail (what happened since the backup,
    the backup itself), as a restore into a new Redis keeps the backup's."""
    key = keys.audit(snapshot.election.id)
    record = snapshot.find(key)
    if record is None:
        record = Record(key, "stream", 0, [])
        snapshot.records[key] = record
    ids = {_as_text(entry_id) for entry_id, _ in record.value}
    record.value = sorted(
        [*record.value, *(entry for entry in kept if entry[0] not in ids)],
        key=lambda entry: tuple(int(n) for n in _as_text(entry[0]).split("-")),
    )
    if not record.value:
        del snapshot.records[key]


def _is_voter(eid: str, key: str) -> bool:
    return key.startswith(f"{keys.PREFIX}:{{{eid}/") and ":v:" in key


def _pause_running(snapshot: Snapshot) -> list[str]:
    """Mark the jobs that were running as paused, in the snapshot; their ids."""
    paused = []
    for job in snapshot.jobs():
        record = snapshot.find(keys.reminder(job))
        if record is None or record.text().get("status") != "running":
            continue
        if "status" in record.value:
            record.value["status"] = "paused"
        else:  # a record read as binary
            record.value[b"status"] = b"paused"
        paused.append(job)
    return paused


async def _write_shard(redis: Redis, snapshot: Snapshot, shard: int) -> None:
    """Write one shard in one MULTI (its keys share one slot): it appears whole or not at
    all.  Its window is marked ``frozen`` (the cast script then refuses every ballot) until
    the whole election is written: see :func:`_thaw`."""
    eid = snapshot.election.id
    meta = keys.shard_meta(eid, shard)
    async with redis.pipeline(transaction=True) as pipe:
        for sid in snapshot.members(shard):
            voter = snapshot.find(keys.voter(eid, shard, sid))
            if voter is not None:
                _write(pipe, voter)
        for key in _shard_keys(eid, shard):
            record = snapshot.find(key)
            if record is not None:
                _write(pipe, record)
            else:
                pipe.delete(key)
        pipe.hsetnx(meta, "frozen", RESTORING)
        await pipe.execute()


async def _thaw(redis: Redis, snapshot: Snapshot) -> None:
    """Let each shard take ballots again, as it did when the backup was taken (a shard the
    unseal had frozen stays frozen)."""
    eid = snapshot.election.id
    for shard in range(snapshot.election.shards):
        meta = snapshot.find(keys.shard_meta(eid, shard))
        if meta is None or "frozen" not in meta.text():
            await redis.hdel(keys.shard_meta(eid, shard), "frozen")


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _write(pipe: Pipeline, record: Record) -> None:
    """Queue the commands that make ``record``'s key hold exactly what it held."""
    key, value = record.key, record.value
    pipe.delete(key)
    if record.kind == "string":
        pipe.set(key, value)
    elif record.kind == "hash":
        for part in _chunks(list(value.items())):
            pipe.hset(key, mapping=dict(part))
    elif record.kind == "set":
        for part in _chunks(value):
            pipe.sadd(key, *part)
    elif record.kind == "zset":
        for part in _chunks(value):
            pipe.zadd(key, {member: score for member, score in part})
    elif record.kind == "list":
        for part in _chunks(value):
            pipe.rpush(key, *part)
    else:  # a stream: each entry under its own id, in order
        for entry_id, fields in value:
            pipe.execute_command("XADD", key, entry_id, *fields)
    if record.ttl:
        pipe.pexpire(key, record.ttl)


async def _keys_of(redis: Redis, eid: str, jobs: Iterable[str]) -> tuple[list[str], list[str]]:
    """Every key of the election in Redis but the restore's mark (one pass over the
    keyspace), and the chat states that name it."""
    head = keys.election(eid)
    prefixes = (
        f"{head}:",
        f"{keys.PREFIX}:{{{eid}/",
        "{" + f"{head}:",
        f"{keys.PREFIX}:{{console/{eid}/",
        *(f"{keys.PREFIX}:{{remind/{job}}}:" for job in jobs),
    )
    chat = f"{keys.PREFIX}:{{chat/"
    found: list[str] = []
    states: list[str] = []
    async for raw in redis.scan_iter(count=2_000):
        name = str(raw)
        if name == keys.restoring(eid):
            continue
        if name == head or name.startswith(prefixes):
            found.append(name)
        elif name.startswith(chat) and name.endswith("}:conv"):
            states.append(name)
    chats: list[str] = []
    for part in _chunks(states):
        async with redis.pipeline(transaction=False) as pipe:
            for name in part:
                pipe.get(name)
            values = await pipe.execute()
        # A chat state keeps its election in the clear, before a space (bot.state).
        chats += [
            n for n, v in zip(part, values, strict=True) if str(v or "").startswith(eid + " ")
        ]
    return sorted(found), chats


async def _delete(
    redis: Redis, eid: str, found: list[str], chats: list[str], jobs: Iterable[str]
) -> None:
    """Delete the election: its shards' windows first (no cast after that), then its console
    sessions, every other key and the chat states naming it.  One DEL a key: on a Cluster
    they are in many slots."""
    sessions = [str(s) for s in await redis.hkeys(keys.console_sessions(eid))]
    windows = [k for k in found if k.endswith(":meta") and k.startswith(f"{keys.PREFIX}:{{{eid}/")]
    rest = [k for k in found if k not in set(windows)]
    rest += [keys.console_session(s) for s in sessions]
    rest += [k for job in jobs for k in job_keys(job)]
    rest += chats
    for group in (windows, rest):
        for part in _chunks(group):
            async with redis.pipeline(transaction=False) as pipe:
                for key in part:
                    pipe.delete(key)
                await pipe.execute()
    await redis.srem(keys.ELECTIONS, eid)
