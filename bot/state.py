"""Conversation state: one small record per chat address, kept in Redis with a TTL.

Only the election is stored in the clear.  The step, the turn counter, who
the voter is, their grant and the ranking they are building are sealed with
an AEAD (XChaCha20-Poly1305) under a key derived from OPENPRIMARY_SECRET_KEY,
bound to the chat's address and election and padded to one length per
election, so Redis, its append-only file and its backups alone show no
ranking, no count of preferences and no supporter id next to a phone number
or chat id.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum

from nacl.exceptions import CryptoError
from nacl.secret import Aead
from redis.asyncio import Redis

from ballots import keys
from ballots.election import Election
from bot.messages import OutboundMessage

#: How long an idle conversation is remembered (a partial ranking goes with it).
STATE_TTL = 6 * 3600
#: Longest supporter id the roll takes, and the grant's length: for the padding.
_MAX_SUPPORTER = 64
_GRANT = 32


class Step(StrEnum):
    """The named states of the conversation."""

    START = "start"
    IDENTIFY = "identify"
    SMS_CODE = "sms_code"
    RANK = "rank"
    CONFIRM = "confirm"
    DONE = "done"
    #: Many elections served: the chat is asked which one to vote in (``bot.lobby``).
    CHOOSE = "choose"


#: The steps in which the voter's messages, and ours, carry their choices.
CHOOSING = frozenset({Step.RANK, Step.CONFIRM})


@dataclass
class State:
    """Where one chat address is in the conversation."""

    step: Step = Step.START
    turn: int = 0
    election: str = ""
    supporter: str | None = None
    grant: str | None = None
    ranking: list[str] = field(default_factory=list)
    #: "Reveal nothing" mode: the voter typed a supporter number, so every answer and
    #: failure must read (and cost) the same whether or not it is on the roll.
    quiet: bool = False
    #: The language the chat is answered in (None: the election's first).
    language: str | None = None
    #: The elections the chat was last offered, in the order it was shown them (bot/lobby.py).
    offers: list[str] = field(default_factory=list)
    #: A supporter number typed before the chat said which election it is for.
    typed: str | None = None
    #: When this election's conversation began (Unix seconds; 0: not yet): the cast
    #: counts how long voting took, for the pilots' report.
    began: int = 0

    def copy(self) -> State:
        """A copy with lists of its own, to change while this one stays as it was (what
        ``dataclasses.replace`` gives, for a fraction of its cost: every message takes two)."""
        new = object.__new__(State)
        new.__dict__.update(self.__dict__)
        new.ranking = list(self.ranking)
        new.offers = list(self.offers)
        return new

    def to_json(self) -> str:
        """The whole state as JSON, in the clear: for comparing states in memory only."""
        return json.dumps(asdict(self), separators=(",", ":"))


def state_padding(election: Election, others: Sequence[str] = ()) -> int:
    """The one length every sealed chat state of this election is padded to (``others``:
    the other elections served with it, which a chat may be offered)."""
    longest = _private(
        State(
            step=Step.IDENTIFY,
            turn=10**9,
            election=election.id,
            supporter="x" * _MAX_SUPPORTER,
            grant="x" * _GRANT,
            ranking=list(election.candidate_ids),
            quiet=True,
            language="xx-Xxxx",
            offers=[election.id, *others] if others else [],
            typed="x" * _MAX_SUPPORTER if others else None,
            began=10**10,
        )
    )
    return -(-len(longest) // 64) * 64


def _private(state: State) -> bytes:
    """The sealed part, compact: a JSON list in a fixed order."""
    fields = [state.step.value, state.turn, int(state.quiet), state.supporter, state.grant]
    more: list[object] = [state.ranking, state.language]
    if state.offers or state.typed or state.began:
        more += [state.offers, state.typed]
    if state.began:
        more.append(state.began)
    return json.dumps([*fields, *more], separators=(",", ":")).encode()


class StateStore:
    """Loads and saves conversation state in Redis, sealed."""

    def __init__(
        self, redis: Redis, secret_key: str, *, padding: int = 256, ttl: int = STATE_TTL
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        self.padding = padding
        key = hashlib.blake2b(secret_key.encode(), digest_size=32, person=b"op-chat-state")
        self._aead = Aead(key.digest())

    def seal(self, channel: str, address: str, state: State) -> str:
        """The stored form of a state: the election in the clear, a space, and the rest
        sealed (base64).

        The step and the turn counter are sealed with the rest: in the clear, the
        turn counter while choosing would tell how many preferences were given.
        """
        private = _private(state)
        private += b" " * max(self.padding - len(private), 0)
        sealed = self._aead.encrypt(private, aad=_aad(channel, address, state.election))
        return f"{state.election} {base64.b64encode(sealed).decode('ascii')}"

    def open(self, channel: str, address: str, text: str) -> State:
        """A stored state read back; a fresh one if it cannot be read (a changed secret key)."""
        try:
            election, _, encoded = text.partition(" ")
            sealed = base64.b64decode(encoded, validate=True)
            private = self._aead.decrypt(sealed, aad=_aad(channel, address, election))
            step, turn, quiet, supporter, grant, ranking, *more = json.loads(private)
            language = more[0] if more else None  # (states sealed before languages had none)
            offers, typed = more[1:3] if len(more) >= 3 else ([], None)
            began = more[3] if len(more) >= 4 else 0
            return State(
                step=Step(step),
                turn=int(turn),
                election=election,
                supporter=supporter,
                grant=grant,
                ranking=[str(c) for c in ranking],
                quiet=bool(quiet),
                language=language if isinstance(language, str) else None,
                offers=[str(e) for e in offers] if isinstance(offers, list) else [],
                typed=typed if isinstance(typed, str) else None,
                began=began if isinstance(began, int) else 0,
            )
        except (ValueError, TypeError, KeyError, CryptoError):
            return State()

    def seal_replies(self, channel: str, address: str, replies: list[OutboundMessage]) -> str:
        """Replies kept for a repeated delivery, sealed: they may hold a code or a ranking."""
        text = json.dumps([r.to_dict() for r in replies], separators=(",", ":")).encode()
        sealed = self._aead.encrypt(text, aad=_aad(channel, address, "replies"))
        return base64.b64encode(sealed).decode("ascii")

    def open_replies(self, channel: str, address: str, text: str) -> list[OutboundMessage] | None:
        """Kept replies read back; None if they cannot be (a changed secret key)."""
        try:
            sealed = base64.b64decode(text, validate=True)
            data = json.loads(self._aead.decrypt(sealed, aad=_aad(channel, address, "replies")))
            return [OutboundMessage.from_dict(d) for d in data]
        except (ValueError, TypeError, KeyError, CryptoError):
            return None

    async def load(self, channel: str, address: str) -> State:
        raw = await self.redis.get(keys.conversation(channel, address))
        if raw is None:
            return State()
        return self.open(channel, address, str(raw))

    async def save(
        self, channel: str, address: str, state: State, *, until: datetime | None = None
    ) -> None:
        """Store a state: for ``ttl`` seconds, or until a fixed moment (``until``).

        A fixed moment, the same for every voter, is how a finished chat is
        kept: a TTL counted from the last message would date the cast.
        """
        text, expiry, when = self.stored(channel, address, state, until=until)
        key = keys.conversation(channel, address)
        if expiry == "PXAT":
            await self.redis.set(key, text, pxat=when)
        else:
            await self.redis.set(key, text, ex=when)

    def stored(
        self, channel: str, address: str, state: State, *, until: datetime | None = None
    ) -> tuple[str, str, int]:
        """What a save writes: the sealed state, and its expiry as ``SET`` takes it
        ("EX" and the seconds, or "PXAT" and the moment in milliseconds)."""
        text = self.seal(channel, address, state)
        if until is not None:
            return text, "PXAT", int(until.timestamp() * 1000)
        return text, "EX", self.ttl


def _aad(channel: str, address: str, election: str) -> bytes:
    """What a sealed state is bound to: it opens only under its own chat's key, for its election."""
    return f"{channel}:{address}:{election}".encode()
