"""Conversation state: one small JSON record per chat address, kept in Redis with a TTL."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from redis.asyncio import Redis

from ballots import keys

#: How long an idle conversation is remembered (a partial ranking goes with it).
STATE_TTL = 6 * 3600


class Step(StrEnum):
    """The named states of the conversation."""

    START = "start"
    IDENTIFY = "identify"
    SMS_CODE = "sms_code"
    RANK = "rank"
    CONFIRM = "confirm"
    DONE = "done"


@dataclass
class State:
    """Where one chat address is in the conversation."""

    step: Step = Step.START
    turn: int = 0
    election: str = ""
    supporter: str | None = None
    grant: str | None = None
    ranking: list[str] = field(default_factory=list)
    receipt: str | None = None
    #: The voter typed a supporter number: failures must all read the same.
    quiet: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> State:
        data = json.loads(text)
        data["step"] = Step(data["step"])
        return cls(**data)


class StateStore:
    """Loads and saves conversation state in Redis."""

    def __init__(self, redis: Redis, ttl: int = STATE_TTL) -> None:
        self.redis = redis
        self.ttl = ttl

    async def load(self, channel: str, address: str) -> State:
        raw = await self.redis.get(keys.conversation(channel, address))
        if raw is None:
            return State()
        try:
            return State.from_json(str(raw))
        except (ValueError, TypeError, KeyError):
            return State()

    async def save(self, channel: str, address: str, state: State) -> None:
        await self.redis.set(keys.conversation(channel, address), state.to_json(), ex=self.ttl)
