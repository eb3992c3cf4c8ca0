"""The ballot box: casting a sealed ranking, once, in one atomic step.

The ranking is sealed to the election's count key before it leaves this
process (``ballots.seal``), so Redis, its append-only file, its replicas,
SLOWLOG and MONITOR only ever see ciphertext next to the voter's key.  A
sealed ballot is a member of the shard's sealed sorted set with score 0: it
carries no voter id, address, message id or time, and the set is ordered by
the random ciphertext, not by the order of casting (a small hash or set
would keep insertion order).  Who has voted is a flag on the roll entry,
apart from what they voted.  After the close the trustees' unseal turns the
sealed sets into the grouped ballot box the count reads (``ballots.unseal``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC

from redis.asyncio import Redis

from ballots import keys, receipts
from ballots.clock import Clock
from ballots.codes import Codes
from ballots.connection import on_one_connection, run_script
from ballots.election import Election
from ballots.errors import OpenPrimaryError
from ballots.lua import CONSTANT_TIME_EQUAL
from ballots.seal import encode_ranking, seal
from ballots.trustees import CountKey, load_count_key

log = logging.getLogger(__name__)

_CAST = (
    CONSTANT_TIME_EQUAL
    + """
-- KEYS: voter, shard meta, sealed ballots, receipts, turnout
-- ARGV: grant hash, now, sealed ballot, receipt, channel, day, count key id, unconfirmed,
--       hour (UTC, 2026-11-20T12), language the chat spoke, seconds from the chat's first
--       message (a bucket, or '')
local v, meta = KEYS[1], KEYS[2]
if redis.call('EXISTS', v) == 0 then return 'ineligible' end
local now = tonumber(ARGV[2])
local opens = tonumber(redis.call('HGET', meta, 'opens') or '0')
local closes = tonumber(redis.call('HGET', meta, 'closes') or '0')
-- A rehearsal (ballots/ and bot/rehearsal.py): before the opening only its testers may
-- cast; after it nobody may until it is finalised (its ballots are still in the box).
local rehearsal = redis.call('HGET', meta, 'rehearsal')
if rehearsal then
  if now >= opens then return 'rehearsal' end
  if rehearsal ~= 'running' or redis.call('HGET', v, 'tester') ~= '1' then return 'not_open' end
elseif now < opens then return 'not_open' end
if now >= closes or redis.call('HEXISTS', meta, 'frozen') == 1 then return 'closed' end
if redis.call('HGET', meta, 'key') ~= ARGV[7] then return 'no_key' end
if redis.call('HGET', v, 'voted') then return 'already_voted' end
local grant = redis.call('HGET', v, 'grant')
local grant_exp = tonumber(redis.call('HGET', v, 'grant_exp') or '0')
if not grant or not ct_equal(grant, ARGV[1]) or now >= grant_exp then return 'no_grant' end
-- A receipt the shard has given already: the caller draws another (receipts never repeat,
-- so the receipts set always holds one per ballot).
if redis.call('ZSCORE', KEYS[4], ARGV[4]) then return 'receipt_taken' end
-- The receipt stays with the voter so it can always be given again: it carries no vote.
redis.call('HSET', v, 'voted', ARGV[5], 'receipt', ARGV[4], 'voted_on', ARGV[6])
if ARGV[8] == '1' then redis.call('HSET', v, 'unconfirmed', '1') end
local section = redis.call('HGET', v, 'section')
local by = redis.call('HGET', v, 'grant_by')
local reminded = redis.call('HGET', v, 'reminded')
redis.call('HDEL', v, 'grant', 'grant_exp', 'grant_by', 'code')
-- Codes texted for this voter (one per asking chat) are of no more use.
for _, f in ipairs(redis.call('HKEYS', v)) do
  if string.sub(f, 1, 3) == 'otp' then redis.call('HDEL', v, f) end
end
-- In an electoral college the sealed ballot is stored with its section, and only that
-- (base64 holds no ':'); the unseal counts each section's ballots apart.
local sealed = ARGV[3]
if section and section ~= '' then
  sealed = section .. ':' .. sealed
  redis.call('HINCRBY', KEYS[5], 'sec:' .. section, 1)
end
redis.call('ZADD', KEYS[3], 0, sealed)
redis.call('ZADD', KEYS[4], 0, ARGV[4])
redis.call('HINCRBY', KEYS[5], 'total', 1)
redis.call('HINCRBY', KEYS[5], 'ch:' .. ARGV[5], 1)
redis.call('HINCRBY', KEYS[5], 'day:' .. ARGV[6], 1)
redis.call('HINCRBY', KEYS[5], 'hour:' .. ARGV[9], 1)
-- What the pilots' report compares, as counts only: nothing here names the voter.
if ARGV[10] ~= '' then redis.call('HINCRBY', KEYS[5], 'lang:' .. ARGV[10], 1) end
if by then redis.call('HINCRBY', KEYS[5], 'id:' .. by, 1) end
if ARGV[11] ~= '' then redis.call('HINCRBY', KEYS[5], 'took:' .. ARGV[11], 1) end
if reminded then
  local job, at = string.match(reminded, '^(.+):(%d+)$')
  if job and now - tonumber(at) <= 86400 then
    redis.call('HINCRBY', KEYS[5], 'after:' .. job, 1)
  end
end
return 'cast'
"""
)


#: Receipts drawn for one cast before giving up: with 60-bit receipts a second draw is
#: already a one-in-a-billion event, so running out means the generator is broken.
RECEIPT_DRAWS = 8

#: How long a cast waits for the replicas (OPENPRIMARY_DURABLE_REPLICAS) before the
#: voter is told the ballot is being recorded.
DURABLE_WAIT_MS = 2000


class InvalidRanking(OpenPrimaryError):
    """A ranking that cannot be a ballot in this election."""


@dataclass(frozen=True)
class Receipt:
    """The receipt a voter was given, and the day their ballot was cast."""

    id: str
    day: str
    #: Cast, but not yet known to be held by the replicas OPENPRIMARY_DURABLE_REPLICAS
    #: asks for: the receipt is not given until it is (:meth:`BallotBox.confirm`).
    unconfirmed: bool = False


@dataclass(frozen=True)
class CastResult:
    """The outcome of a cast: ``cast`` with a receipt, or the reason it was refused.

    ``recording``: cast on the primary, but fewer replicas than asked for hold
    it yet; the receipt is kept back until they do.
    """

    status: str
    receipt: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "cast"


def took_bucket(seconds: float) -> int:
    """How long a voter took, as the turnout counts it: to the second under an hour, to
    the minute under a day, to the hour after (so the counts stay few), in seconds."""
    whole = max(int(seconds), 0)
    if whole < 3600:
        return whole
    if whole < 86400:
        return whole - whole % 60
    return min(whole - whole % 3600, 90 * 86400)


def check_ranking(election: Election, ranking: Sequence[str]) -> tuple[str, ...]:
    """The ranking as a tuple if it is a valid ballot, else InvalidRanking."""
    ranking = tuple(ranking)
    if not ranking:
        if election.abstain:
            return ranking  # a blank ballot: the voter took part and ranked nobody
        raise InvalidRanking("a ballot needs at least one preference")
    known = set(election.candidate_ids)
    for cid in ranking:
        if cid not in known:
            raise InvalidRanking(f"unknown candidate {cid!r}")
    if len(set(ranking)) != len(ranking):
        raise InvalidRanking("a candidate is ranked twice")
    if len(ranking) > election.max_preferences:
        raise InvalidRanking(
            f"at most {election.max_preferences} preferences in a {election.method} election"
        )
    return ranking


class BallotBox:
    """Casts ballots for the elections in one Redis."""

    def __init__(
        self,
        redis: Redis,
        codes: Codes,
        clock: Clock,
        *,
        durable_replicas: int = 0,
        new_receipt: Callable[[], str] = receipts.new_receipt,
    ) -> None:
        self.redis = redis
        #: Draws a receipt id (tests force a clash through it).
        self.new_receipt = new_receipt
        self.codes = codes
        self.clock = clock
        #: Replicas that must hold a ballot before its receipt is given (0: the primary's
        #: word is enough).
        self.durable_replicas = durable_replicas
        self._cast = redis.register_script(_CAST)
        self._keys: dict[str, CountKey] = {}

    async def count_key(self, election: Election) -> CountKey | None:
        """The election's public count key: None until the trustees have made it."""
        key = self._keys.get(election.id)
        if key is None:
            key = await load_count_key(self.redis, election.id)
            if key is not None:
                self._keys[election.id] = key
        return key

    async def cast(
        self,
        election: Election,
        supporter_id: str,
        grant: str,
        ranking: Sequence[str],
        channel: str,
        *,
        language: str = "",
        took: float | None = None,
    ) -> CastResult:
        """Cast a ballot for a supporter holding a grant from a code check.

        ``language``: the language the chat spoke; ``took``: seconds since the chat's
        first message.  Both are only counted (:func:`took_bucket`), for the pilots' report.
        """
        ballot = check_ranking(election, ranking)
        key = await self.count_key(election)
        if key is None:
            return CastResult("no_key")
        now = self.clock.now()
        shard = keys.shard_of(supporter_id, election.shards)
        eid = election.id
        voter = keys.voter(eid, shard, supporter_id)
        cast_keys = [
            voter,
            keys.shard_meta(eid, shard),
            keys.sealed(eid, shard),
            keys.receipts(eid, shard),
            keys.turnout(eid, shard),
        ]
        cast_args: list[str | int] = [
            self.codes.digest(eid, "grant", grant),
            int(now.timestamp()),
            seal(key.public, encode_ranking(election.candidate_ids, ballot)),
            "",
            channel,
            now.date().isoformat(),
            key.id,
            "1" if self.durable_replicas else "0",
            now.astimezone(UTC).strftime("%Y-%m-%dT%H"),
            language,
            "" if took is None else took_bucket(took),
        ]
        status, receipt = "receipt_taken", ""
        for _ in range(RECEIPT_DRAWS):
            receipt = self.new_receipt()
            cast_args[3] = receipt
            status = await self._cast_once(voter, cast_keys, cast_args)
            if status != "receipt_taken":
                break
        else:
            raise OpenPrimaryError(
                f"{RECEIPT_DRAWS} receipts in a row were taken in {eid}: the receipt generator "
                "is broken; nothing was cast"
            )
        if status == "no_key":
            # Replaced before the opening (trustees init --replace): read it again next time.
            self._keys.pop(eid, None)
        return CastResult(status, receipt if status in ("cast", "recording") else None)

    async def _cast_once(self, voter: str, cast_keys: list[str], cast_args: list[str | int]) -> str:
        """Run the cast script once (with the replicas' WAIT when asked); its outcome."""
        if not self.durable_replicas:
            return str(await run_script(self.redis, self._cast, cast_keys, cast_args))
        # WAIT counts the replicas holding this connection's writes: the cast and the
        # WAIT go down one connection, in one round trip.
        raw, held = await on_one_connection(
            self.redis,
            voter,
            ("EVAL", _CAST, len(cast_keys), *cast_keys, *cast_args),
            ("WAIT", self.durable_replicas, DURABLE_WAIT_MS),
        )
        status = str(raw)
        if status == "cast" and int(held) < self.durable_replicas:
            log.warning(
                "a ballot is on the primary but %d of %d replicas hold it; receipt held back",
                int(held),
                self.durable_replicas,
            )
            return "recording"
        if status == "cast":
            await self.redis.hdel(voter, "unconfirmed")
        return status

    async def confirm(self, election: Election, supporter_id: str) -> bool:
        """Whether the replicas now hold the supporter's cast ballot (then it is confirmed).

        A write and a WAIT on one connection: the replication stream is in
        order, so replicas that hold this write hold the ballot cast before it.
        """
        if not self.durable_replicas:
            return True
        voter = keys.voter(election.id, keys.shard_of(supporter_id, election.shards), supporter_id)
        _, held = await on_one_connection(
            self.redis,
            voter,
            ("HSET", voter, "confirm_check", int(self.clock.now().timestamp())),
            ("WAIT", self.durable_replicas, DURABLE_WAIT_MS),
        )
        if int(held) < self.durable_replicas:
            return False
        await self.redis.hdel(voter, "unconfirmed", "confirm_check")
        return True

    async def receipt(self, election: Election, supporter_id: str) -> Receipt | None:
        """The receipt of a supporter's cast ballot, or None if they have not voted."""
        shard = keys.shard_of(supporter_id, election.shards)
        rid, day, unconfirmed = await self.redis.hmget(
            keys.voter(election.id, shard, supporter_id), ["receipt", "voted_on", "unconfirmed"]
        )
        return Receipt(str(rid), str(day or ""), unconfirmed=bool(unconfirmed)) if rid else None

    async def has_voted(self, election: Election, supporter_id: str) -> bool:
        """Whether a ballot has been cast for this supporter."""
        shard = keys.shard_of(supporter_id, election.shards)
        return bool(await self.redis.hexists(keys.voter(election.id, shard, supporter_id), "voted"))


async def ballot_count(redis: Redis, election: Election) -> int:
    """How many ballots are in the box."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(election.shards):
            pipe.hget(keys.turnout(election.id, shard), "total")
        totals = await pipe.execute()
    return sum(int(t or 0) for t in totals)
