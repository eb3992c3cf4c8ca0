"""One-time codes: pre-issued voting codes and codes sent by SMS.

The rules: codes come from ``secrets``; Redis keeps only a keyed
hash (and, for an SMS code, a sealed copy to send it again); each code is
single use; an SMS code lives at most 10 minutes and allows 5 wrong tries;
each chat that asks for a voter's SMS code gets its own, so one chat's
guesses never spend another's; asking again while a code is valid sends the
same one; a voter may fail at most 100 times over the whole election, after
which only their own phone and their posted voting code still work; asking
waits out a cooldown; every check of a code is one atomic script with a
constant-time comparison.  A successful check gives a *grant*: a short-lived token that
the cast script spends with the code, so a code opens only its own
supporter's ballot.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import CryptoError
from nacl.secret import Aead
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ballots import keys
from ballots.clock import Clock
from ballots.codes_scripts import ADDRESS_FAIL, REQUEST_OTP, VERIFY
from ballots.connection import Batch, in_one_round_trip, run_script
from ballots.election import Election

log = logging.getLogger(__name__)

#: 16 digits: with 550,000 codes out, one guess in 18 billion hits one (see docs/security.md,
#: "What guessing could win", for what an attacker with 10,000 accounts could expect over a
#: three-week poll).
VOTING_CODE_DIGITS = 16
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
    #: Code SMS the whole election may send in an hour; past it none go until the next.
    code_sms_per_hour: int = 2000
    #: The share of that ceiling that codes asked for by a typed supporter number may take
    #: (anyone can type anyone's number); the rest is kept for supporters asking from their
    #: own phone or Telegram account.
    typed_share: float = 0.5
    #: Wrong voting codes the whole election tolerates in an hour; past it every chat
    #: address may try only once per ``slowed_interval`` seconds until the hour is out.
    guess_budget_per_hour: int = 200
    slowed_interval: int = 600


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of checking a code.

    ``status`` is one of ``ok``, ``wrong``, ``expired``, ``nocode``,
    ``spent`` (too many wrong tries at this code), ``locked`` (too many
    failures for this voter or address), ``slowed`` (too many wrong voting
    codes in the election this hour: wait ``tries_left`` seconds), ``voted``
    or ``unknown``.
    """

    status: str
    supporter_id: str | None = None
    grant: str | None = None
    tries_left: int = 0
    #: This wrong guess was the first past the election's hourly budget: alert organisers.
    budget_exceeded: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class OtpRequest:
    """The outcome of asking for an SMS code: ``sent`` carries the code to text."""

    status: str
    code: str | None = None
    wait: int = 0
    #: The supporter's phone on the roll: where the code goes.
    phone: str = ""


@dataclass(frozen=True)
class SmsBudget:
    """The election's hourly ceiling on code SMS, for one code: may it go, and is this the
    first refusal this hour (the one to alert organisers about)."""

    allowed: bool
    first_refusal: bool = False
    #: The election's SMS segments sent so far, when asked for (``spent_key``).
    segments_spent: int = 0


#: Anything but an ASCII digit (what ``str.isdigit`` accepts of ASCII).
_NOT_DIGIT = re.compile("[^0-9]")


def normalise_code(text: str) -> str:
    """The digits of a typed code: full-width digits and other scripts' (۱۲۳, ১২৩)
    folded to 0-9, spaces and dashes dropped."""
    folded = unicodedata.normalize("NFKC", text)
    if folded.isascii():
        return _NOT_DIGIT.sub("", folded)
    return "".join(
        str(unicodedata.decimal(ch)) for ch in folded if unicodedata.decimal(ch, None) is not None
    )


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
        box_key = hashlib.blake2b(secret_key.encode(), digest_size=32, person=b"op-otp-resend")
        #: Codes texted are also kept sealed, to send the same one again while it is valid.
        self._aead = Aead(box_key.digest())
        self.clock = clock
        self.policy = policy or CodePolicy()
        self._verify = redis.register_script(VERIFY)
        self._request = redis.register_script(REQUEST_OTP)
        self._address_fail = redis.register_script(ADDRESS_FAIL)
        #: Code SMS being given back to the hourly ceiling (see :meth:`ask_for_code`).
        self._refunds: set[asyncio.Task[None]] = set()

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

        A clash with a code already issued, in this election or another loaded one, is
        astronomically rare at 16 digits, but it is handled: that supporter draws again.
        """
        fresh: dict[str, tuple[str, str]] = {}
        pending = list(ids)
        # One number and bot may serve several elections, and a code says which: none is
        # issued that another loaded election has issued.
        others = [str(e) for e in await self.redis.smembers(keys.ELECTIONS) if str(e) != eid]
        while pending:
            drawn = []
            for sid in pending:
                code = f"{secrets.randbelow(10**VOTING_CODE_DIGITS):0{VOTING_CODE_DIGITS}d}"
                drawn.append((sid, code, self.digest(eid, "code", code)))
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid, code, digest in drawn:
                    pipe.hsetnx(keys.code_index(eid), digest, sid)
                    for other in others:
                        pipe.hexists(keys.code_index(other), self.digest(other, "code", code))
                answers = await pipe.execute()
            pending = []
            clashes = []
            width = 1 + len(others)
            for n, (sid, code, digest) in enumerate(drawn):
                ok, *elsewhere = answers[n * width : (n + 1) * width]
                if ok and not any(elsewhere):
                    fresh[sid] = (code, digest)
                    continue
                if ok:
                    clashes.append(digest)  # ours now, but another election's too: let it go
                pending.append(sid)
            if clashes:
                await self.redis.hdel(keys.code_index(eid), *clashes)
        return fresh

    def look_up_voting_code(
        self, batch: Batch, election: Election, typed: str, channel: str, address: str
    ) -> None:
        """Queue the reads :meth:`check_voting_code` starts with (three results: the
        address's failures, the election's wrong guesses this hour, whose code it is), for
        a caller that has a round trip to make anyway."""
        code = normalise_code(typed)
        batch.pipe.get(keys.address_failures(election.id, channel, address))
        batch.pipe.get(keys.code_guesses_hour(election.id, self._now() // 3600))
        batch.pipe.hget(keys.code_index(election.id), self.digest(election.id, "code", code))

    async def check_voting_code(
        self,
        election: Election,
        typed: str,
        channel: str,
        address: str,
        looked_up: Sequence[Any] | None = None,
        *,
        telegram_user: str = "",
        admit: Callable[[str], Awaitable[bool]] | None = None,
    ) -> CodeCheck:
        """Check a typed voting code; wrong guesses count against the address and the election.

        ``admit``: whether the code's owner may vote now (a rehearsal admits its testers
        only); a right code of someone it refuses is ``not_testing``, and nothing is written.

        Past the election's hourly budget of wrong guesses, each address may
        try once per ``slowed_interval`` (``slowed``, with the seconds to wait
        in ``tries_left``) until the hour is out: a voter typing their code
        right the first time never notices; a guessing campaign crawls.
        """
        code = normalise_code(typed)
        fail_key = keys.address_failures(election.id, channel, address)
        guesses = keys.code_guesses_hour(election.id, self._now() // 3600)
        # One round trip, unless the caller made it (``looked_up``, from
        # :meth:`look_up_voting_code`): the address's failures, the election's wrong
        # guesses this hour, and whose code this is.
        if looked_up is None:
            looked_up = await in_one_round_trip(
                self.redis,
                lambda batch: self.look_up_voting_code(batch, election, typed, channel, address),
            )
        failures, wrong_so_far, sid = looked_up
        if int(failures or 0) >= self.policy.address_max_failures:
            return CodeCheck("locked")
        if int(wrong_so_far or 0) >= self.policy.guess_budget_per_hour:
            turn = keys.slowed_address(election.id, channel, address)
            if not await self.redis.set(turn, "1", nx=True, ex=self.policy.slowed_interval):
                wait = int(await self.redis.ttl(turn))
                return CodeCheck("slowed", tries_left=max(wait, 1))
        if len(code) != VOTING_CODE_DIGITS:
            sid = None
        if sid is None:

            def fill(batch: Batch) -> None:
                batch.pipe.incr(guesses)
                batch.pipe.expire(guesses, 7200)
                batch.script(self._address_fail, [fail_key], [self.policy.address_window])

            wrong, _, n = await in_one_round_trip(self.redis, fill)
            left = max(self.policy.address_max_failures - int(n), 0)
            first_over = int(wrong) == self.policy.guess_budget_per_hour + 1
            return CodeCheck(
                "wrong" if left else "locked", tries_left=left, budget_exceeded=first_over
            )
        if admit is not None and not await admit(str(sid)):
            return CodeCheck("not_testing", str(sid))
        return await self._check(election, str(sid), "code", code, telegram_user=telegram_user)

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

    async def as_if_requested(
        self, election: Election, *, spent_key: str | None = None
    ) -> SmsBudget:
        """The round trip of asking for a code, for a supporter who is not on the roll.

        After a typed supporter number the answer must take as long, and read the
        same, whether or not the number is on the roll: this runs the request script
        (on a key that does not exist: it changes nothing) and reads the hourly
        ceilings, in one round trip, as :meth:`ask_for_code` does.  Returns whether a
        code asked for by a typed number could go now (``allowed``), and the election's
        SMS segments when ``spent_key`` is given, so the reply can say what a supporter
        on the roll would be told.
        """
        nobody = "\x00nobody"
        hour = self._now() // 3600

        def fill(batch: Batch) -> None:
            self._queue_request(batch, election, nobody, "", "\x00", "", "000000")
            batch.pipe.get(keys.code_sms_hour(election.id, hour))
            batch.pipe.get(keys.code_sms_hour_typed(election.id, hour))
            if spent_key is not None:
                batch.pipe.get(spent_key)

        results = await in_one_round_trip(self.redis, fill)
        spent = int(results.pop() or 0) if spent_key is not None else 0
        total, typed = int(results[-2] or 0), int(results[-1] or 0)
        allowed = total < self.policy.code_sms_per_hour and typed < self._typed_ceiling()
        return SmsBudget(allowed, segments_spent=spent)

    def _typed_ceiling(self) -> int:
        return int(self.policy.code_sms_per_hour * self.policy.typed_share)

    async def locks(
        self, election: Election
    ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """Who is locked out now: (supporter id, failures) past the voter-wide limit, and
        ("channel:address", failures) past the per-address one."""
        voters: list[tuple[str, int]] = []
        for shard in range(election.shards):
            async for sid in self.redis.sscan_iter(keys.members(election.id, shard), count=1000):
                fails = await self.redis.hget(keys.voter(election.id, shard, str(sid)), "fails")
                if fails is not None and int(fails) >= self.policy.voter_max_failures:
                    voters.append((str(sid), int(fails)))
        addresses: list[tuple[str, int]] = []
        prefix = keys.address_failures(election.id, "", "")[:-1]
        async for key in self.redis.scan_iter(match=prefix + "*", count=1000):
            n = int(await self.redis.get(key) or 0)
            if n >= self.policy.address_max_failures:
                addresses.append((str(key)[len(prefix) :], n))
        return sorted(voters), sorted(addresses)

    async def unlock_supporter(self, election: Election, supporter_id: str) -> bool:
        """Clear a voter's failures; False if they had none."""
        shard = keys.shard_of(supporter_id, election.shards)
        return bool(await self.redis.hdel(keys.voter(election.id, shard, supporter_id), "fails"))

    async def unlock_address(self, election: Election, channel: str, address: str) -> bool:
        """Clear a chat address's failures; False if it had none."""
        return bool(await self.redis.delete(keys.address_failures(election.id, channel, address)))

    def asker(self, election: Election, channel: str, address: str) -> str:
        """The tag a chat's texted codes are kept under (a keyed hash: no address in Redis)."""
        return self.digest(election.id, "asker", f"{channel}:{address}")[:16]

    async def request_otp(
        self,
        election: Election,
        supporter_id: str,
        delivery: str = "",
        *,
        asker: str = "",
        sms_from: str = "",
    ) -> OtpRequest:
        """A code to text to a supporter's phone, unless the cooldown or a limit says no.

        Each asking chat (``asker``, from :meth:`asker`) has a code of its own,
        so nobody else's asking or guessing can spend it.  A code still valid
        is sent again rather than replaced.  A request from the voter's own
        phone on the roll (``sms_from``, the number an SMS came from) is never
        refused for the voter's failures or for the codes others asked for.
        ``delivery`` (the platform's id for the message that asked) makes a
        repeat of the same message get the same code again, whatever the
        cooldown: its first answer may never have gone out.
        """
        request, _ = await self.ask_for_code(
            election, supporter_id, delivery, asker=asker, sms_from=sms_from, texted=False
        )
        return request

    async def ask_for_code(
        self,
        election: Election,
        supporter_id: str,
        delivery: str = "",
        *,
        asker: str = "",
        sms_from: str = "",
        charge: tuple[str, str] | None = None,
        texted: bool = True,
        spent_key: str | None = None,
        typed: bool = False,
    ) -> tuple[OtpRequest, SmsBudget]:
        """:meth:`request_otp` and the rest of asking for a code, in one round trip.

        With it go the failure counted against the asking address (``charge``:
        channel and address; every request costs one) and, when the code is to
        be ``texted``, one code SMS taken from the election's hourly ceiling.
        A request that sends nothing gives that SMS back, off the reply's path
        (so the answer takes as long whatever the request's outcome); until
        then the ceiling counts it, which can only refuse a code early, never
        let one more through.  ``spent_key``: a counter read in the same round
        trip (the election's SMS segments: ``SmsBudget.segments_spent``).
        ``typed``: asked for by a typed supporter number, which may take only
        ``typed_share`` of the hourly ceiling.
        """
        code = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
        hour = self._now() // 3600
        budget_key = keys.code_sms_hour(election.id, hour)
        typed_key = keys.code_sms_hour_typed(election.id, hour)
        counted = [budget_key, typed_key] if typed else [budget_key]

        def fill(batch: Batch) -> None:
            if charge is not None:
                fail_key = keys.address_failures(election.id, *charge)
                batch.script(self._address_fail, [fail_key], [self.policy.address_window])
            self._queue_request(batch, election, supporter_id, delivery, asker, sms_from, code)
            if texted:
                for key in counted:
                    batch.pipe.incr(key)
                    batch.pipe.expire(key, 7200)
            if spent_key is not None:
                batch.pipe.get(spent_key)

        results = await in_one_round_trip(self.redis, fill)
        spent = int(results.pop() or 0) if spent_key is not None else 0
        reply = results[1 if charge is not None else 0]
        request = self._requested(election, supporter_id, asker, code, reply)
        if not texted:
            return request, SmsBudget(True)
        ceiling = self.policy.code_sms_per_hour
        if request.status != "sent":
            self._give_back(counted)
            # Whether one could have gone (what :meth:`as_if_requested` says for a number
            # not on the roll), so a typed number's answer is the same either way.
            before = [int(results[i]) - 1 for i in range(-2 * len(counted), 0, 2)]
            could = before[0] < ceiling and (not typed or before[1] < self._typed_ceiling())
            return request, SmsBudget(could, segments_spent=spent)
        if typed:
            n, t = int(results[-4]), int(results[-2])
            if t > self._typed_ceiling():
                # Nothing goes: the supporters' own requests keep the rest of the hour.
                self._give_back(counted)
                return request, SmsBudget(False, t == self._typed_ceiling() + 1, spent)
        else:
            n = int(results[-2])
        return request, SmsBudget(n <= ceiling, n == ceiling + 1, spent)

    def _give_back(self, counted: list[str]) -> None:
        """Give a code SMS that was not sent back to the hourly ceilings, off the reply's
        path (so the answer takes as long whatever the request's outcome)."""
        refund = asyncio.create_task(self._refund(counted))
        self._refunds.add(refund)
        refund.add_done_callback(self._refunds.discard)

    async def _refund(self, counted: list[str]) -> None:
        try:
            for key in counted:
                await self.redis.decr(key)
        except RedisError as err:  # the ceiling counts one SMS too many this hour: safe
            log.warning("could not give a code SMS back to the hourly ceiling: %s", err)

    def _aad(self, election: Election, supporter_id: str, asker: str) -> bytes:
        return f"{election.id}:{supporter_id}:{asker}".encode()

    def _queue_request(
        self,
        batch: Batch,
        election: Election,
        supporter_id: str,
        delivery: str,
        asker: str,
        sms_from: str,
        code: str,
    ) -> None:
        shard = keys.shard_of(supporter_id, election.shards)
        sealed = self._aead.encrypt(code.encode(), aad=self._aad(election, supporter_id, asker))
        batch.script(
            self._request,
            [keys.voter(election.id, shard, supporter_id)],
            [
                self._now(),
                self.policy.otp_ttl,
                self.policy.otp_cooldown,
                self.policy.voter_max_failures,
                self.policy.otp_max_sends,
                self.policy.otp_send_window,
                delivery,
                asker,
                sms_from,
                self.digest(election.id, "otp", code),
                base64.b64encode(sealed).decode("ascii"),
            ],
        )

    def _requested(
        self, election: Election, supporter_id: str, asker: str, code: str, reply: Any
    ) -> OtpRequest:
        status, wait, phone = str(reply[0]), int(reply[1]), str(reply[3])
        if status == "resend":
            try:
                sealed = base64.b64decode(str(reply[2]), validate=True)
                aad = self._aad(election, supporter_id, asker)
                code = self._aead.decrypt(sealed, aad=aad).decode()
            except (ValueError, CryptoError):
                return OtpRequest("locked")  # sealed under another key: nothing to send
            status = "sent"
        return OtpRequest(status, code if status == "sent" else None, wait, phone)

    async def check_otp(
        self,
        election: Election,
        supporter_id: str,
        typed: str,
        delivery: str = "",
        *,
        asker: str = "",
        sms_from: str = "",
        telegram_user: str = "",
    ) -> CodeCheck:
        """Check a typed SMS code: the one texted at the request of this chat (``asker``).

        A code works once, except that a repeat of the same ``delivery`` (the
        platform's id for the message) gets the same answer while the grant
        lasts.  From the voter's own phone on the roll (``sms_from``) it is
        never refused for the voter's failures.  ``telegram_user``: see :meth:`_check`.
        """
        return await self._check(
            election,
            supporter_id,
            "otp",
            normalise_code(typed),
            delivery,
            asker,
            sms_from,
            telegram_user=telegram_user,
        )

    async def _check(
        self,
        election: Election,
        sid: str,
        field: str,
        code: str,
        delivery: str = "",
        asker: str = "",
        sms_from: str = "",
        *,
        telegram_user: str = "",
    ) -> CodeCheck:
        """Run the check script; a code that works grants a vote, and links the Telegram
        user it came from (``telegram_user``) to the voter's record."""
        token, grant_digest, grant_exp = self._new_grant(election)
        shard = keys.shard_of(sid, election.shards)
        status, left = await run_script(
            self.redis,
            self._verify,
            [keys.voter(election.id, shard, sid), keys.turnout(election.id, shard)],
            [
                field,
                self.digest(election.id, field, code),
                self._now(),
                self.policy.otp_max_tries,
                self.policy.voter_max_failures,
                grant_digest,
                grant_exp,
                delivery,
                asker,
                sms_from,
                telegram_user,
            ],
        )
        status = str(status)
        return CodeCheck(status, sid, token if status == "ok" else None, int(left))
