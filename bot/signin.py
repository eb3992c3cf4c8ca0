"""Organisers signing in to the web console: who may, the one-time code, the session.

An organiser listed in the election file types their phone number or
Telegram id (``tg:<id>``).  A 6-digit code goes to that organiser's Telegram
chat (``tg:`` entries) or phone (SMS), and signs them in when typed back.
The code follows the rules of every other code here: from ``secrets``, kept
only as a keyed hash, single use, valid for 10 minutes, 5 wrong tries.
Requests are limited per organiser and per browser address, and a typed
address that is not an organiser's gets the same answer as one that is, so
the page never tells who the organisers are.

A session is a Redis hash with an idle TTL (and a fixed longest life); the
browser holds its id in a cookie signed with the secret key.  Each session
has its own CSRF token, which every form carries back.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from ballots import audit, keys
from ballots.clock import Clock
from ballots.election import Election
from ballots.lua import CONSTANT_TIME_EQUAL
from ballots.program import program
from ballots.roll import PhoneError, normalise_phone
from bot.alerts import Alerts
from bot.messages import Channel, OutboundMessage
from bot.metrics import CONSOLE_REFUSALS
from bot.ports import Sender

log = logging.getLogger(__name__)

#: How long a sign-in code lasts, and the wrong tries it allows.
CODE_TTL = 600
CODE_TRIES = 5
#: Sign-in codes an organiser may be sent in an hour, and requests from one browser address.
CODES_PER_HOUR = 5
REQUESTS_PER_HOUR = 20
#: Sign-in codes one browser address may try in an hour.
TRIES_PER_HOUR = 30

#: Check a typed code against an organiser's, count a wrong try and spend the code: one step.
#: Wrong codes are also counted for the organiser since their last sign-in, whatever code
#: they were typed against: at the cap the organiser is locked out until another organiser
#: or the command line lifts it.
_CHECK = (
    CONSTANT_TIME_EQUAL
    + """
-- KEYS[1] the organiser's code record, KEYS[2] their guard (wrong, locked)
-- ARGV: the typed code's digest, tries a code allows, wrong codes before the lock, now
if redis.call('HEXISTS', KEYS[2], 'locked') == 1 then return 'locked' end
local stored = redis.call('HGET', KEYS[1], 'code')
if not stored then return 'none' end
if ct_equal(stored, ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], 'wrong')
  return 'ok'
end
if redis.call('HINCRBY', KEYS[2], 'wrong', 1) >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[2], 'locked', ARGV[4])
  redis.call('DEL', KEYS[1])
  return 'locked_now'
end
if redis.call('HINCRBY', KEYS[1], 'tries', 1) >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
end
return 'wrong'
"""
)
#: Wrong sign-in codes an organiser may have typed against them since their last sign-in
#: (over any number of codes) before they are locked out.
LOCK_AFTER = 20
#: What stands for "no organiser" where one is named: the same Redis work is done for an
#: address that is not an organiser's, so the time taken tells nothing.
NOBODY = "nobody"

#: A session ends after this long without a request, and after this long in any case.
IDLE = 30 * 60
LONGEST = 12 * 3600


@dataclass(frozen=True)
class Session:
    """One signed-in organiser's console session."""

    id: str
    election: str
    actor: str
    csrf: str
    started: int
    factor: str


@dataclass(frozen=True)
class CodeRequest:
    """What asking for a code came to: ``sent`` (or, as far as the page says, an address that
    is no organiser's), ``limited`` (too many this hour) or ``failed`` (the platform refused)."""

    status: str
    actor: str | None = None


class SignIn:
    """Sign-in codes and sessions for one election's console."""

    def __init__(
        self,
        redis: Redis,
        election: Election,
        clock: Clock,
        secret_key: str,
        senders: Mapping[str, Sender],
        *,
        region: str = "GB",
        alerts: Alerts | None = None,
    ) -> None:
        self.redis = redis
        #: Where organisers are told that an organiser's console sign-in was locked.
        self.alerts = alerts
        self.election = election
        self.clock = clock
        self.senders = senders
        self.region = region
        self._key = hashlib.sha256(b"openprimary-console\0" + secret_key.encode()).digest()
        self._check = redis.register_script(_CHECK)
        self._sending: set[asyncio.Task[None]] = set()

    def organiser(self, typed: str) -> str | None:
        """The organiser a typed phone number or Telegram id names (as the audit names them:
        ``tg:<id>`` or ``sms:<E.164>``), or None."""
        text = typed.strip()
        listed = set(self.election.organisers)
        if text.lower().startswith("tg:"):
            text = text[3:].strip()
        if text.isdigit() and f"tg:{text}" in listed:
            return f"tg:{text}"
        try:
            phone = normalise_phone(text, self.region)
        except PhoneError:
            return None
        return f"sms:{phone}" if phone in listed else None

    async def request_code(self, typed: str, client: str) -> CodeRequest:
        """Send a sign-in code to the organiser ``typed`` names, within the limits.

        Whatever the address, the answer is the same (``sent``) and takes as long: the
        request only counts against the browser address's limit (its own answer is
        ``limited``); everything about the organiser (their limit, their lock, the code,
        the audit, the send) happens off the request's path, so neither the answer nor its
        time tells whether the address is an organiser's.
        """
        hour = int(self.clock.now().timestamp()) // 3600
        eid = self.election.id
        if not await self._within(keys.console_limit(eid, f"ip:{client}", hour), REQUESTS_PER_HOUR):
            return CodeRequest("limited")
        actor = self.organiser(typed)
        if actor is not None:
            self._background(self._deliver(actor, hour))
        return CodeRequest("sent", actor)

    async def _deliver(self, actor: str, hour: int) -> None:
        """Make and send an organiser's code, unless they are locked or past their hour."""
        eid = self.election.id
        if await self.redis.hexists(keys.console_guard(eid, actor), "locked"):
            await self._refused(actor, "locked", hour)
            return
        if not await self._within(keys.console_limit(eid, f"actor:{actor}", hour), CODES_PER_HOUR):
            log.warning(
                "console sign-in: %s asked for more than %d codes this hour", actor, CODES_PER_HOUR
            )
            await self._refused(actor, "hourly limit", hour)
            return
        code = f"{secrets.randbelow(10**6):06d}"
        record = keys.console_code(eid, actor)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(record)
            pipe.hset(record, mapping={"code": self._digest(actor, code), "tries": 0})
            pipe.expire(record, CODE_TTL)
            await pipe.execute()
        await audit.record(self.redis, self.clock, eid, actor, "console code requested")
        await self._send(actor, code)

    async def _refused(
        self, actor: str, why: str, hour: int, *, action: str = "console code refused"
    ) -> None:
        """Count a refusal; the audit trail gets the first of each kind an hour per organiser,
        so outsiders asking again and again cannot flood it (for :data:`NOBODY`, the same
        Redis work and no entry)."""
        CONSOLE_REFUSALS.labels(why).inc()
        eid = self.election.id
        noted = keys.console_limit(eid, f"noted:{why}:{actor}", hour)
        if await self.redis.set(noted, "1", nx=True, ex=3600) and actor != NOBODY:
            await audit.record(
                self.redis,
                self.clock,
                eid,
                actor,
                action,
                why=why,
                note="later refusals this hour are counted, not listed",
            )

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, actor: str, code: str) -> None:
        channel, address = self._where(actor)
        sender = self.senders.get(channel)
        text = (
            f"{code} is your code to sign in to the {self.election.title} console. "
            f"It lasts {CODE_TTL // 60} min. Never share it."
        )
        try:
            if sender is None:
                raise RuntimeError(f"this server cannot send by {channel}")
            result = await sender.send(address, OutboundMessage(text, channel=channel, kind="code"))
            if not result.ok:
                raise RuntimeError(f"the platform said {result.status}")
        except Exception as err:  # the organiser asks again; the log says why
            log.error("console sign-in: the code for %s could not be sent: %s", actor, err)
            await self.redis.delete(keys.console_code(self.election.id, actor))

    async def drain(self) -> None:
        """Wait for the codes on their way (shutdown, tests)."""
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

    async def sign_in(self, typed: str, code: str, client: str) -> Session | None:
        """A new session if ``code`` is the organiser's current code (then spent), else None.

        Checking, counting a wrong try and spending the code are one script, so parallel
        guesses get no more than ``CODE_TRIES`` between them; and each browser address has
        its own hourly limit of tries, whatever the organiser.
        """
        eid = self.election.id
        hour = int(self.clock.now().timestamp()) // 3600
        if not await self._within(keys.console_limit(eid, f"try:{client}", hour), TRIES_PER_HOUR):
            return None
        actor = self.organiser(typed)
        typed_code = "".join(ch for ch in code if ch.isdigit())
        # The same script for an address that is no organiser's (on a record that never
        # exists): the answer takes as long either way.
        who = actor or NOBODY
        outcome = str(
            await self._check(
                keys=[keys.console_code(eid, who), keys.console_guard(eid, who)],
                args=[
                    self._digest(who, typed_code),
                    CODE_TRIES,
                    LOCK_AFTER,
                    int(self.clock.now().timestamp()),
                ],
            )
        )
        if outcome == "locked_now" and actor is not None:
            await self._locked_out(actor)
            return None
        if outcome != "ok" or actor is None:
            why = {"wrong": "wrong code", "locked": "locked"}.get(outcome, "no code")
            await self._refused(who, why, hour, action="console sign-in refused")
            return None
        channel, _ = self._where(actor)
        factor = f"console code by {'telegram' if channel == Channel.TELEGRAM else 'sms'}"
        session = Session(
            id=secrets.token_urlsafe(24),
            election=self.election.id,
            actor=actor,
            csrf=secrets.token_urlsafe(24),
            started=int(self.clock.now().timestamp()),
            factor=factor,
        )
        name = keys.console_session(session.id)
        # Two hash slots (the session, the election's index of them): one round trip, not
        # one transaction, so that it works on a Cluster; the index is written first, and an
        # entry whose session is gone is dropped when listed.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.console_sessions(eid), session.id, actor)
            pipe.hset(
                name,
                mapping={
                    "election": session.election,
                    "actor": session.actor,
                    "csrf": session.csrf,
                    "started": session.started,
                    "factor": session.factor,
                },
            )
            pipe.expire(name, IDLE)
            await pipe.execute()
        await audit.record(
            self.redis, self.clock, self.election.id, actor, "console sign-in", factor=factor
        )
        return session

    async def _locked_out(self, actor: str) -> None:
        """The organiser's wrong codes reached the cap: audit it and alert the others."""
        await audit.record(
            self.redis,
            self.clock,
            self.election.id,
            actor,
            "console sign-in locked",
            wrong_codes=LOCK_AFTER,
        )
        if self.alerts is not None:
            await self.alerts.alert(
                "console_guessing",
                f"{LOCK_AFTER} wrong console sign-in codes were typed for {actor} since their "
                "last sign-in: they cannot sign in until another organiser or the command "
                f"line lifts the lock ({program()} console unlock --election "
                f"{self.election.id} --organiser {actor}).",
                organiser=actor,
            )

    async def locked(self) -> list[str]:
        """The organisers locked out of the console."""
        eid = self.election.id
        found = []
        for actor in self.actors():
            if await self.redis.hexists(keys.console_guard(eid, actor), "locked"):
                found.append(actor)
        return found

    async def unlock(self, actor: str, by: str) -> bool:
        """Lift an organiser's lock (and their count of wrong codes); False if not locked."""
        eid = self.election.id
        lifted = bool(await self.redis.hdel(keys.console_guard(eid, actor), "locked", "wrong"))
        if lifted:
            await audit.record(
                self.redis, self.clock, eid, by, "console sign-in unlocked", organiser=actor
            )
        return lifted

    def actors(self) -> list[str]:
        """Every organiser of the election as the audit names them."""
        return [
            organiser if organiser.startswith("tg:") else f"sms:{organiser}"
            for organiser in self.election.organisers
        ]

    async def session(self, session_id: str, *, touch: bool = True) -> Session | None:
        """The live session with this id, or None; ``touch``: its idle time starts again
        (not for a page's own polling, or an open tab would never time out)."""
        name = keys.console_session(session_id)
        found = {str(k): str(v) for k, v in (await self.redis.hgetall(name)).items()}
        if not found or found.get("election") != self.election.id:
            return None
        if found["actor"] not in self.actors():
            # No longer an organiser of this election (the election file changed): the
            # session ends at once, whatever its age.
            await self._end(session_id)
            return None
        started = int(found["started"])
        if self.clock.now().timestamp() - started > LONGEST:
            await self.redis.delete(name)
            return None
        if touch:
            await self.redis.expire(name, IDLE)
        return Session(
            session_id, found["election"], found["actor"], found["csrf"], started, found["factor"]
        )

    async def sign_out(self, session: Session) -> None:
        await self._end(session.id)
        await audit.record(
            self.redis,
            self.clock,
            self.election.id,
            session.actor,
            "console sign-out",
            factor=session.factor,
        )

    async def sessions(self) -> list[tuple[str, Session]]:
        """The election's live console sessions, oldest first, as (short id, session); the
        ended ones are dropped from the index on the way."""
        eid = self.election.id
        index = await self.redis.hgetall(keys.console_sessions(eid))
        live = []
        for session_id in sorted(str(s) for s in index):
            found = await self.session(session_id, touch=False)
            if found is None:
                await self.redis.hdel(keys.console_sessions(eid), session_id)
            else:
                live.append((session_id[:8], found))
        return sorted(live, key=lambda pair: pair[1].started)

    async def revoke(self, by: str, actor: str | None = None) -> int:
        """End every live session of ``actor`` (of every organiser with None); how many."""
        ended = 0
        for _, session in await self.sessions():
            if actor is None or session.actor == actor:
                await self._end(session.id)
                ended += 1
        await audit.record(
            self.redis,
            self.clock,
            self.election.id,
            by,
            "console sessions revoked",
            organiser=actor or "all",
            sessions=ended,
        )
        return ended

    async def _end(self, session_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:  # two slots: see sign_in
            pipe.delete(keys.console_session(session_id))
            pipe.hdel(keys.console_sessions(self.election.id), session_id)
            await pipe.execute()

    def cookie(self, session_id: str) -> str:
        """The cookie value for a session: its id, signed."""
        mac = hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{session_id}.{mac}"

    def session_id(self, cookie: str) -> str | None:
        """The session id a cookie carries, if its signature is ours."""
        if not cookie.isascii():  # ours are; and compare_digest takes ASCII text only
            return None
        session_id = cookie.rpartition(".")[0]
        if not session_id or not hmac.compare_digest(self.cookie(session_id), cookie):
            return None
        return session_id

    def _where(self, actor: str) -> tuple[Channel, str]:
        kind, _, address = actor.partition(":")
        return (Channel.TELEGRAM if kind == "tg" else Channel.SMS), address

    def _digest(self, actor: str, code: str) -> str:
        return hmac.new(self._key, f"{actor}\0{code}".encode(), hashlib.sha256).hexdigest()

    async def _within(self, counter: str, limit: int) -> bool:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(counter)
            pipe.expire(counter, 3600)
            n, _ = await pipe.execute()
        return int(n) <= limit
