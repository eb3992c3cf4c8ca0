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
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from ballots import audit, keys
from ballots.clock import Clock
from ballots.election import Election
from ballots.lua import CONSTANT_TIME_EQUAL
from ballots.roll import PhoneError, normalise_phone
from bot.messages import Channel, OutboundMessage
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
_CHECK = (
    CONSTANT_TIME_EQUAL
    + """
-- KEYS[1] the organiser's code record; ARGV: the typed code's digest, tries allowed
local stored = redis.call('HGET', KEYS[1], 'code')
if not stored then return 'none' end
if ct_equal(stored, ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 'ok'
end
if redis.call('HINCRBY', KEYS[1], 'tries', 1) >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
end
return 'wrong'
"""
)

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
    ) -> None:
        self.redis = redis
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

        Whatever the address, the answer is the same (``sent``) and comes as fast: the code
        goes off the request's path, and an organiser past their hourly limit, or one whose
        code could not be sent, is told nothing different (the log and the audit say).
        Only the browser address's own limit gets a different answer (``limited``).
        """
        hour = int(self.clock.now().timestamp()) // 3600
        eid = self.election.id
        if not await self._within(keys.console_limit(eid, f"ip:{client}", hour), REQUESTS_PER_HOUR):
            return CodeRequest("limited")
        actor = self.organiser(typed)
        if actor is None:
            return CodeRequest("sent")
        if not await self._within(keys.console_limit(eid, f"actor:{actor}", hour), CODES_PER_HOUR):
            log.warning(
                "console sign-in: %s asked for more than %d codes this hour", actor, CODES_PER_HOUR
            )
            await audit.record(
                self.redis, self.clock, eid, actor, "console code refused", why="hourly limit"
            )
            return CodeRequest("sent", actor)
        code = f"{secrets.randbelow(10**6):06d}"
        record = keys.console_code(eid, actor)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(record)
            pipe.hset(record, mapping={"code": self._digest(actor, code), "tries": 0})
            pipe.expire(record, CODE_TTL)
            await pipe.execute()
        await audit.record(self.redis, self.clock, eid, actor, "console code requested")
        task = asyncio.create_task(self._send(actor, code))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return CodeRequest("sent", actor)

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
        if actor is None:
            return None
        typed_code = "".join(ch for ch in code if ch.isdigit())
        outcome = str(
            await self._check(
                keys=[keys.console_code(eid, actor)],
                args=[self._digest(actor, typed_code), CODE_TRIES],
            )
        )
        if outcome != "ok":
            if outcome == "wrong":
                await audit.record(self.redis, self.clock, eid, actor, "console sign-in refused")
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
        async with self.redis.pipeline(transaction=True) as pipe:
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

    async def session(self, session_id: str, *, touch: bool = True) -> Session | None:
        """The live session with this id, or None; ``touch``: its idle time starts again
        (not for a page's own polling, or an open tab would never time out)."""
        name = keys.console_session(session_id)
        found = {str(k): str(v) for k, v in (await self.redis.hgetall(name)).items()}
        if not found or found.get("election") != self.election.id:
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
        await self.redis.delete(keys.console_session(session.id))
        await audit.record(
            self.redis,
            self.clock,
            self.election.id,
            session.actor,
            "console sign-out",
            factor=session.factor,
        )

    def cookie(self, session_id: str) -> str:
        """The cookie value for a session: its id, signed."""
        mac = hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{session_id}.{mac}"

    def session_id(self, cookie: str) -> str | None:
        """The session id a cookie carries, if its signature is ours."""
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
