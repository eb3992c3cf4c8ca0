"""One-time codes: pre-issued voting codes and codes sent by SMS.

The rules: codes come from ``secrets``; Redis keeps only a keyed
hash; each code is single use; an SMS code lives at most 10 minutes and
allows 5 wrong tries; a voter may fail at most 100 times over the whole
election; asking for a new code never resets that count and waits out a
cooldown; every check of a code is one atomic script with a constant-time
comparison.  A successful check gives a *grant*: a short-lived token that
the cast script spends with the code, so a code opens only its own
supporter's ballot.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import secrets
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from redis.asyncio import Redis

from ballots import keys
from ballots.clock import Clock
from ballots.election import Election
from ballots.lua import CONSTANT_TIME_EQUAL

VOTING_CODE_DIGITS = 12
OTP_DIGITS = 6


@dataclass(frozen=True)
class CodePolicy:
    """The limits on codes; the defaults are the rules above."""

    otp_ttl: int = 600
    otp_max_tries: int = 5
    otp_cooldown: int = 60
    otp_max_sends: int = 5
    otp_send_window: int = 3600
    voter_max_failures: int = 100
    address_max_failures: int = 10
    address_window: int = 3600
    grant_ttl: int = 3600


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of checking a code.

    ``status`` is one of ``ok``, ``wrong``, ``expired``, ``nocode``,
    ``spent`` (too many wrong tries at this code), ``locked`` (too many
    failures for this voter or address), ``voted`` or ``unknown``.
    """

    status: str
    supporter_id: str | None = None
    grant: str | None = None
    tries_left: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class OtpRequest:
    """The outcome of asking for an SMS code: ``sent`` carries the code to text."""

    status: str
    code: str | None = None
    wait: int = 0


_VERIFY = (
    CONSTANT_TIME_EQUAL
    + """
-- KEYS[1] voter hash
-- ARGV: field ('code'|'otp'), presented hash, now, max tries, max fails, grant hash,
--       grant expiry, delivery (the platform's message id, or '')
local v = KEYS[1]
if redis.call('EXISTS', v) == 0 then return {'unknown', 0} end
if redis.call('HGET', v, 'voted') then return {'voted', 0} end
local fails = tonumber(redis.call('HGET', v, 'fails') or '0')
if fails >= tonumber(ARGV[5]) then return {'locked', 0} end
local now = tonumber(ARGV[3])
local used = ARGV[2] .. '|' .. ARGV[8]
local stored = redis.call('HGET', v, ARGV[1])
if not stored then
  -- The same delivery again (its first handling took the code, then failed before the
  -- conversation was saved): the same answer.  Any other use of a spent code fails.
  if ARGV[1] == 'otp' and ARGV[8] ~= '' and redis.call('HGET', v, 'otp_used') == used
     and now < tonumber(redis.call('HGET', v, 'grant_exp') or '0') then
    redis.call('HSET', v, 'grant', ARGV[6], 'grant_exp', ARGV[7])
    return {'ok', 0}
  end
  return {'nocode', 0}
end
if ARGV[1] == 'otp' then
  local exp = tonumber(redis.call('HGET', v, 'otp_exp') or '0')
  if now >= exp then
    redis.call('HDEL', v, 'otp', 'otp_exp', 'otp_tries')
    return {'expired', 0}
  end
end
if ct_equal(stored, ARGV[2]) then
  if ARGV[1] == 'otp' then
    redis.call('HDEL', v, 'otp', 'otp_exp', 'otp_tries')
    redis.call('HSET', v, 'otp_used', used)
  end
  redis.call('HSET', v, 'grant', ARGV[6], 'grant_exp', ARGV[7])
  return {'ok', 0}
end
redis.call('HINCRBY', v, 'fails', 1)
if ARGV[1] ~= 'otp' then return {'wrong', 0} end
local max_tries = tonumber(ARGV[4])
local tries = redis.call('HINCRBY', v, 'otp_tries', 1)
if tries >= max_tries then
  redis.call('HDEL', v, 'otp', 'otp_exp', 'otp_tries')
  return {'spent', 0}
end
return {'wrong', max_tries - tries}
"""
)

_REQUEST_OTP = """
-- KEYS[1] voter hash
-- ARGV: otp hash, now, ttl, cooldown, max fails, max sends, send window, delivery (or '')
local v = KEYS[1]
if redis.call('EXISTS', v) == 0 then return {'unknown', 0} end
if redis.call('HGET', v, 'voted') then return {'voted', 0} end
local fails = tonumber(redis.call('HGET', v, 'fails') or '0')
if fails >= tonumber(ARGV[5]) then return {'locked', 0} end
local now = tonumber(ARGV[2])
if ARGV[8] ~= '' and redis.call('HGET', v, 'otp_for') == ARGV[8] then
  -- The same delivery again, whose first answer (with the code) never went out: a new
  -- code in place of that one, counted as the same send.
  redis.call('HSET', v, 'otp', ARGV[1], 'otp_exp', now + tonumber(ARGV[3]), 'otp_tries', 0)
  return {'sent', 0}
end
local last = tonumber(redis.call('HGET', v, 'otp_sent') or '-1e12')
local cooldown = tonumber(ARGV[4])
if now < last + cooldown then return {'cooldown', last + cooldown - now} end
-- Codes sent are limited per rolling window, so nobody can use up a voter's
-- codes for good by asking on their behalf.
local window = tonumber(ARGV[7])
local since = tonumber(redis.call('HGET', v, 'otp_window') or '-1e12')
local sends = tonumber(redis.call('HGET', v, 'otp_sends') or '0')
if now - since >= window then since = now; sends = 0 end
if sends >= tonumber(ARGV[6]) then return {'too_many', since + window - now} end
redis.call('HSET', v, 'otp', ARGV[1], 'otp_exp', now + tonumber(ARGV[3]),
           'otp_tries', 0, 'otp_sent', now, 'otp_sends', sends + 1, 'otp_window', since,
           'otp_for', ARGV[8])
return {'sent', 0}
"""

_ADDRESS_FAIL = """
-- KEYS[1] address failure counter; ARGV: window seconds
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def normalise_code(text: str) -> str:
    """The digits of a typed code: full-width digits folded, spaces and dashes dropped."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if ch.isascii() and ch.isdigit())


def format_voting_code(code: str) -> str:
    """A voting code as printed for people: 1234-5678-9012."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


class Codes:
    """Issues and checks one-time codes for the elections in one Redis."""

    def __init__(
        self, redis: Redis, secret_key: str, clock: Clock, policy: CodePolicy | None = None
    ) -> None:
        self.redis = redis
        self._key = hashlib.sha256(b"openprimary-codes\0" + secret_key.encode()).digest()
        self.clock = clock
        self.policy = policy or CodePolicy()
        self._verify = redis.register_script(_VERIFY)
        self._request = redis.register_script(_REQUEST_OTP)
        self._address_fail = redis.register_script(_ADDRESS_FAIL)

    def digest(self, election_id: str, purpose: str, value: str) -> str:
        """The keyed hash stored in place of a code or token."""
        msg = f"{election_id}\0{purpose}\0{value}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:40]

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    def _new_grant(self, election: Election) -> tuple[str, str, int]:
        token = secrets.token_urlsafe(18)
        return token, self.digest(election.id, "grant", token), self._now() + self.policy.grant_ttl

    # --- pre-issued voting codes -------------------------------------------

    async def issue_voting_codes(
        self, election: Election, supporter_ids: Iterable[str] | None = None
    ) -> list[tuple[str, str, str, str]]:
        """Give every supporter (or the ones named) a fresh voting code.

        Returns (supporter_id, name, phone, code) rows for a mail merge; the
        codes themselves are not kept.  A new code replaces the old one.
        Supporters who have voted get none.
        """
        eid = election.id
        if supporter_ids is None:
            ids: list[str] = []
            for shard in range(election.shards):
                ids.extend(
                    sorted(str(m) for m in await self.redis.smembers(keys.members(eid, shard)))
                )
        else:
            ids = list(supporter_ids)
        rows: list[tuple[str, str, str, str]] = []
        for start in range(0, len(ids), 2000):
            batch = ids[start : start + 2000]
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid in batch:
                    shard = keys.shard_of(sid, election.shards)
                    pipe.hmget(keys.voter(eid, shard, sid), ["name", "phone", "code", "voted"])
                records = await pipe.execute()
            wanted = [
                sid
                for sid, (name, _phone, _old, voted) in zip(batch, records, strict=True)
                if name is not None and not voted
            ]
            fresh = await self._claim_codes(eid, wanted)
            for sid, (name, phone, _old, _voted) in zip(batch, records, strict=True):
                if sid in fresh:
                    rows.append((sid, name, phone, format_voting_code(fresh[sid][0])))
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid, (_name, _phone, old, _voted) in zip(batch, records, strict=True):
                    if sid not in fresh:
                        continue
                    if old:
                        pipe.hdel(keys.code_index(eid), old)
                    shard = keys.shard_of(sid, election.shards)
                    pipe.hset(keys.voter(eid, shard, sid), "code", fresh[sid][1])
                await pipe.execute()
        return rows

    async def _claim_codes(self, eid: str, ids: list[str]) -> dict[str, tuple[str, str]]:
        """New codes for these supporters, each claimed in the index with HSETNX.

        A clash with a code already issued is astronomically rare at 12
        digits, but it is handled: that supporter simply draws again.
        """
        fresh: dict[str, tuple[str, str]] = {}
        pending = list(ids)
        while pending:
            drawn = []
            for sid in pending:
                code = f"{secrets.randbelow(10**VOTING_CODE_DIGITS):0{VOTING_CODE_DIGITS}d}"
                drawn.append((sid, code, self.digest(eid, "code", code)))
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid, _code, digest in drawn:
                    pipe.hsetnx(keys.code_index(eid), digest, sid)
                claimed = await pipe.execute()
            pending = []
            for (sid, code, digest), ok in zip(drawn, claimed, strict=True):
                if ok:
                    fresh[sid] = (code, digest)
                else:
                    pending.append(sid)
        return fresh

    async def check_voting_code(
        self, election: Election, typed: str, channel: str, address: str
    ) -> CodeCheck:
        """Check a typed voting code; wrong guesses count against the address."""
        if await self.address_locked(election, channel, address):
            return CodeCheck("locked")
        code = normalise_code(typed)
        sid = None
        if len(code) == VOTING_CODE_DIGITS:
            sid = await self.redis.hget(
                keys.code_index(election.id), self.digest(election.id, "code", code)
            )
        if sid is None:
            n = await self.record_address_failure(election, channel, address)
            left = max(self.policy.address_max_failures - n, 0)
            return CodeCheck("wrong" if left else "locked", tries_left=left)
        return await self._check(election, str(sid), "code", code)

    async def address_locked(self, election: Election, channel: str, address: str) -> bool:
        """Whether a chat address has failed too often in the current window."""
        fail_key = keys.address_failures(election.id, channel, address)
        failures = int(await self.redis.get(fail_key) or 0)
        return failures >= self.policy.address_max_failures

    async def record_address_failure(self, election: Election, channel: str, address: str) -> int:
        """Count a failed attempt from a chat address; returns the count in the window."""
        fail_key = keys.address_failures(election.id, channel, address)
        return int(await self._address_fail(keys=[fail_key], args=[self.policy.address_window]))

    # --- codes sent by SMS ---------------------------------------------------

    async def request_otp(
        self, election: Election, supporter_id: str, delivery: str = ""
    ) -> OtpRequest:
        """Make a new SMS code for a supporter, unless the cooldown or a limit says no.

        ``delivery`` (the platform's id for the message that asked) makes a
        repeat of the same message get a code again, whatever the cooldown:
        its first answer may never have gone out.
        """
        code = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
        shard = keys.shard_of(supporter_id, election.shards)
        status, wait = await self._request(
            keys=[keys.voter(election.id, shard, supporter_id)],
            args=[
                self.digest(election.id, "otp", code),
                self._now(),
                self.policy.otp_ttl,
                self.policy.otp_cooldown,
                self.policy.voter_max_failures,
                self.policy.otp_max_sends,
                self.policy.otp_send_window,
                delivery,
            ],
        )
        return OtpRequest(str(status), code if status == "sent" else None, int(wait))

    async def check_otp(
        self, election: Election, supporter_id: str, typed: str, delivery: str = ""
    ) -> CodeCheck:
        """Check a typed SMS code for the supporter it was sent to.

        A code works once, except that a repeat of the same ``delivery`` (the
        platform's id for the message) gets the same answer while the grant lasts.
        """
        return await self._check(election, supporter_id, "otp", normalise_code(typed), delivery)

    async def _check(
        self, election: Election, sid: str, field: str, code: str, delivery: str = ""
    ) -> CodeCheck:
        token, grant_digest, grant_exp = self._new_grant(election)
        shard = keys.shard_of(sid, election.shards)
        status, left = await self._verify(
            keys=[keys.voter(election.id, shard, sid)],
            args=[
                field,
                self.digest(election.id, field, code),
                self._now(),
                self.policy.otp_max_tries,
                self.policy.voter_max_failures,
                grant_digest,
                grant_exp,
                delivery,
            ],
        )
        status = str(status)
        return CodeCheck(status, sid, token if status == "ok" else None, int(left))


def write_codes_csv(rows: Iterable[tuple[str, str, str, str]], out: TextIO) -> int:
    """Write the mail-merge CSV: supporter_id,name,phone,code.  Returns the row count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["supporter_id", "name", "phone", "code"])
    n = 0
    for row in rows:
        writer.writerow(row)
        n += 1
    return n


class PrivateFile:
    """A file only its owner can read, written whole or not at all: it holds live codes.

    It is written as a new temporary file (mode 0600, never an existing file
    or a symlink) beside the target, and renamed over it once complete.  It
    is opened when made, so a path that cannot be written fails before any
    code is issued.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
        self._tmp = Path(tmp)
        self._fh: TextIO = os.fdopen(fd, "w", encoding="utf-8", newline="")

    def __enter__(self) -> TextIO:
        return self._fh

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            self._fh.close()
            if kind is None:
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp.exists():
                self._tmp.unlink()
