"""Building blocks for tests: the sample election on a controlled clock, and a recording outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from ballots import keys
from ballots.clock import ManualClock
from ballots.codes import CodePolicy
from ballots.election import Election, read_election_file, save_election
from ballots.roll import Supporter, import_roll, read_roll_file
from ballots.seal import decode_ranking, open_sealed, private_key_from_seed, public_key_from_seed
from ballots.trustees import load_count_key, store_count_key
from bot.core import Core
from bot.messages import InboundMessage, OutboundMessage
from bot.ports import Sender, SendResult
from bot.settings import Settings
from bot.state import State
from openprimary.app import build_core

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SECRET = "test-secret-key-0123456789abcdef"
#: Inside the sample election's window.
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


#: The count key's seed in tests: known, so a test can open what was sealed.
TEST_SEED = bytes(range(16))
TEST_PUBLIC = public_key_from_seed(TEST_SEED)
TEST_PRIVATE = bytes(private_key_from_seed(TEST_SEED))


def settings(**overrides: object) -> Settings:
    base: dict[str, object] = {"secret_key": SECRET, "copy_delays": {"sms": 0.0}}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


async def sample_election(
    redis: Redis, *, roll: Sequence[Supporter] | None = None, **changes: object
) -> Election:
    """The tests' one election loader: the sample election (with ``changes``: another id,
    shards, times...), its count key, and a roll (the sample roll unless ``roll`` is given)."""
    election = read_election_file(EXAMPLES / "election.toml")
    if changes:
        election = Election(**{**election.__dict__, **changes})
    election = await save_election(redis, election)
    await install_test_key(redis, election)
    supporters = list(roll) if roll is not None else read_roll_file(EXAMPLES / "roll.csv")
    await import_roll(redis, election, supporters)
    return election


async def install_test_key(redis: Redis, election: Election) -> None:
    """Give an election the test count key, as ``trustees init`` would, unless it has one."""
    if await load_count_key(redis, election.id) is None:
        await store_count_key(redis, election, TEST_PUBLIC)


async def put_sealed(
    redis: Redis, election: Election, shard: int, sealed: list[str], public: bytes = TEST_PUBLIC
) -> None:
    """Put already sealed ballots straight into a shard, with a voter counted and a receipt
    for each, as that many casts would have left it (loading many ballots fast)."""
    import secrets

    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(keys.sealed(election.id, shard), dict.fromkeys(sealed, 0))
        pipe.hincrby(keys.turnout(election.id, shard), "total", len(sealed))
        pipe.zadd(
            keys.receipts(election.id, shard),
            {secrets.token_hex(8).upper(): 0 for _ in sealed},
        )
        await pipe.execute()


async def stored_ballots(redis: Redis, election: Election) -> dict[str, int]:
    """Every shard's sealed ballots, opened with the test key and merged: ranking -> count."""
    merged: dict[str, int] = {}
    for shard in range(election.shards):
        async for sealed, _ in redis.zscan_iter(keys.sealed(election.id, shard)):
            record = open_sealed(TEST_PUBLIC, TEST_PRIVATE, str(sealed))
            ranking = ",".join(decode_ranking(election.candidate_ids, record))
            merged[ranking] = merged.get(ranking, 0) + 1
    return merged


@dataclass
class Outbox:
    """The tests' one recording Sender (a platform stand-in).

    ``status`` is what every send answers, or a function of the address;
    ``hook`` runs with the send's number before it answers.
    """

    channel: str
    sent: list[tuple[str, OutboundMessage]] = field(default_factory=list)
    status: str | Callable[[str], str] = "sent"
    hook: Callable[[int], Awaitable[None]] | None = None
    #: As a real sender built without the shared rate: the reminder worker takes the turns.
    paces_itself: bool = False

    async def send(self, address: str, message: OutboundMessage) -> SendResult:
        n = len(self.sent)
        self.sent.append((address, message))
        if self.hook is not None:
            await self.hook(n)
        await asyncio.sleep(0)
        return SendResult(self.status if isinstance(self.status, str) else self.status(address))

    @property
    def addresses(self) -> list[str]:
        return [a for a, _ in self.sent]

    def last_code(self) -> str:
        import re

        for _address, message in reversed(self.sent):
            m = re.search(r"\b(\d{6})\b", message.text)
            if m:
                return m.group(1)
        raise AssertionError("no code was sent")


@dataclass
class Harness:
    """A core on a manual clock with a recording SMS outbox, and a chat helper."""

    core: Core
    clock: ManualClock
    sms: Outbox
    counter: int = 0

    async def say(
        self,
        text: str = "",
        *,
        channel: str = "console",
        address: str = "chat-1",
        choice: str | None = None,
        user_id: str | None = None,
        contact: str | None = None,
    ) -> list[OutboundMessage]:
        self.counter += 1
        msg = InboundMessage(
            channel=channel,
            address=address,
            text=text,
            message_id=f"m{self.counter}",
            choice=choice,
            user_id=user_id,
            contact=contact,
        )
        replies = await self.core.router.handle(msg)
        await self.core.router.drain()  # and the sends that follow the replies
        return replies

    async def state(self, *, channel: str = "console", address: str = "chat-1") -> State:
        """Where the chat is, as stored: its step and the ranking so far."""
        return await self.core.router.store.load(channel, address)

    async def said(
        self,
        text: str = "",
        *,
        channel: str = "console",
        address: str = "chat-1",
        user_id: str | None = None,
    ) -> str:
        """The replies to one message, joined."""
        replies = await self.say(text, channel=channel, address=address, user_id=user_id)
        return "\n".join(r.text for r in replies)


async def harness(
    redis: Redis,
    policy: CodePolicy | None = None,
    *,
    senders: Mapping[str, Sender] | None = None,
    config: Settings | None = None,
    **election_changes: Any,
) -> Harness:
    """The sample election's core, recording SMS in ``Harness.sms`` (and ``senders``'s others),
    with the test settings or ``config``."""
    clock = ManualClock(NOW)
    election = await sample_election(redis, **election_changes)
    sms = Outbox("sms")
    given = {"sms": sms, **(senders or {})}
    core = await build_core(
        config or settings(), redis, clock, election.id, policy=policy, senders=given
    )
    return Harness(core, clock, sms)
