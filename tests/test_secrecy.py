"""Ballot secrecy end to end: nothing Redis persists or logs ties a voter to a readable ranking,
and the platforms are asked to forget the messages that showed one.

The big test votes 20 ballots by SMS and Telegram through the real app against a redis-server
of its own, with the append-only file fsynced on every write and every command in SLOWLOG,
then reads the append-only file, SLOWLOG and every key as an attacker holding them would.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ballots import keys
from ballots.connection import client_from_url
from ballots.roll import Supporter, import_roll
from ballots.seal import encode_ranking
from bot import texts
from bot.copies import Kind
from channels.standins.telegram_api import TelegramUser
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, OUR_NUMBER, TwilioPhone
from tests.redis_server import private_server
from tests.sms_support import AUTH_TOKEN, PUBLIC_URL
from tests.telegram_support import TelegramWorld, telegram_world, with_sms

VOTERS = 20
#: Rankings of two or more preferences: each is a pattern an attacker could look for.
RANKINGS = [
    ("patel", "byrne", "green"),
    ("okafor", "green"),
    ("byrne", "okafor", "patel", "green"),
    ("green", "patel"),
    ("okafor", "byrne", "patel"),
]
NUMBER = {"green": 1, "patel": 2, "okafor": 3, "byrne": 4}
NAMES = {"green": "Alex Green", "patel": "Sam Patel", "okafor": "Jo Okafor", "byrne": "Chris Byrne"}


def sms_phone(i: int) -> str:
    return f"+4477009003{i:02d}"


async def vote_by_sms(world: TelegramWorld, twilio: TwilioApiStandIn, i: int) -> str:
    """Supporter S3<i> votes from the phone on the roll; returns the receipt reply."""
    ranking = RANKINGS[i % len(RANKINGS)]
    phone = TwilioPhone(
        world.session,
        world.url,
        public_url=PUBLIC_URL,
        auth_token=AUTH_TOKEN,
        number=sms_phone(i),
        twilio=twilio,
    )
    [otp] = await phone.text("Hi")
    code = re.search(r"\b(\d{6})\b", otp)
    assert code is not None, otp
    await phone.text(code.group(1))
    if i % 2:
        assert "Your ballot" in "\n".join(
            await phone.text(" ".join(str(NUMBER[c]) for c in ranking))
        )
    else:  # one preference a message, the way a voter unsure of the order goes
        for cid in ranking:
            last = await phone.text(str(NUMBER[cid]))
        if len(ranking) < len(NUMBER):
            last = await phone.text("0")
        assert "Your ballot" in "\n".join(last)
    return "\n".join(await phone.text("YES"))


async def vote_by_telegram(world: TelegramWorld, i: int) -> str:
    """Supporter S3<i> votes on Telegram with a voting code; returns the receipt."""
    user = TelegramUser(500_000 + i, f"Voter{i}")
    ranking = RANKINGS[i % len(RANKINGS)]
    await world.say(user, await world.voting_code(f"S3{i:02d}"))
    if i % 2:
        await world.say(user, " ".join(str(NUMBER[c]) for c in ranking))
        await world.say(user, "yes")
    else:
        for cid in ranking:
            await world.tap(user, NAMES[cid])
        if len(ranking) < len(NUMBER):
            await world.tap(user, "Done")
        await world.tap(user, "Cast my vote")
    return str(world.api.last_message(user.id)["text"])


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for something a background task does (a remover's next turn)."""
    async with asyncio.timeout(seconds):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


def ranking_patterns(ranking: Sequence[str]) -> list[bytes]:
    """How a ranking could show in plain text: ids joined, a JSON list, the sealed record."""
    ids = list(ranking)
    return [
        ",".join(ids).encode(),
        json.dumps(ids, separators=(",", ":")).encode(),
        json.dumps(ids).encode(),
        encode_ranking(list(NUMBER), ids),
        "\n".join(f"{n} {NAMES[c]}" for n, c in enumerate(ids, 1)).encode(),
        ("So far: " + ", ".join(NAMES[c] for c in ids[:2])).encode(),
    ]


def readable(arg: bytes) -> list[bytes]:
    """An argument as stored, and what it decodes to if it is base64 or JSON holding base64."""
    found = [arg]
    for token in re.findall(rb"[A-Za-z0-9+/=]{8,}", arg):
        try:
            found.append(base64.b64decode(token, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def leaks(blob: Sequence[bytes]) -> list[str]:
    """The rankings readable anywhere in one group of values."""
    decoded = [d for arg in blob for d in readable(arg)]
    return [
        ",".join(r)
        for r in RANKINGS
        for pattern in ranking_patterns(r)
        if any(pattern in d for d in decoded)
    ]


def names_a_voter(blob: Sequence[bytes]) -> bool:
    text = b"\n".join(blob)
    return bool(re.search(rb"S3\d\d|\+4477009003\d\d", text))


def aof_commands(workdir: Path) -> Iterator[list[bytes]]:
    """Every command in the append-only file(s), in order (RESP arrays)."""
    for path in sorted(workdir.rglob("appendonly*")):
        if not path.is_file() or path.suffix == ".manifest":
            continue
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            if data[pos : pos + 1] != b"*":
                # An RDB preamble or a timestamp annotation: skip to the next command.
                nxt = data.find(b"\r\n*", pos)
                if nxt < 0:
                    break
                pos = nxt + 2
                continue
            end = data.index(b"\r\n", pos)
            count = int(data[pos + 1 : end])
            pos = end + 2
            args = []
            for _ in range(count):
                end = data.index(b"\r\n", pos)
                size = int(data[pos + 1 : end])
                args.append(data[end + 2 : end + 2 + size])
                pos = end + 2 + size + 2
            yield args


def transactions(commands: Iterator[list[bytes]]) -> Iterator[list[bytes]]:
    """The AOF grouped as Redis wrote it: a MULTI ... EXEC block, or one command."""
    block: list[bytes] | None = None
    for cmd in commands:
        name = cmd[0].upper()
        if name == b"MULTI":
            block = []
        elif name == b"EXEC" and block is not None:
            yield block
            block = None
        elif block is not None:
            block.extend(cmd)
        else:
            yield cmd


@pytest.fixture
async def logged_redis() -> AsyncIterator[tuple[Redis, Path]]:
    """A redis-server of its own that persists every write and logs every command."""
    with private_server(
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--slowlog-log-slower-than",
        "0",
        "--slowlog-max-len",
        "1000000",
    ) as (url, workdir):
        client = client_from_url(url)
        try:
            yield client, workdir
        finally:
            await client.aclose()


async def test_no_readable_ranking_next_to_a_voter_in_the_aof_slowlog_or_keys(
    logged_redis: tuple[Redis, Path],
) -> None:
    redis, workdir = logged_redis
    async with (
        TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        telegram_world(redis, **with_sms(twilio)) as world,
    ):
        election = world.core.election
        await import_roll(
            redis,
            election,
            [Supporter(f"S3{i:02d}", f"Voter {i}", sms_phone(i)) for i in range(VOTERS)],
        )
        receipts = await asyncio.gather(
            *(
                vote_by_sms(world, twilio, i) if i < VOTERS // 2 else vote_by_telegram(world, i)
                for i in range(VOTERS)
            )
        )
        assert all("Vote cast" in r for r in receipts), receipts
        assert sum((await world.ballots()).values()) == VOTERS

        # Nothing persisted, logged or kept readable holds a ranking in plain text: the
        # append-only file, command by command ...
        commands = list(aof_commands(workdir))
        # The casts are there: the scripts' effects, sealed ballots added next to the voters.
        assert sum(c[0].upper() == b"ZADD" and c[1].endswith(b":sealed") for c in commands) == 20
        for block in transactions(iter(commands)):
            assert not leaks(block), block
        # ... SLOWLOG, where every command (logged slower than 0 µs) keeps its arguments ...
        slowlog = await redis.slowlog_get(-1)
        assert len(slowlog) > 100
        for entry in slowlog:
            command = entry["command"]
            text = command if isinstance(command, bytes) else str(command).encode()
            assert not leaks([text]), entry
        # ... and every key, the chat states (sealed) and the ballots (sealed) included.
        async for key in redis.scan_iter(count=1000):
            kind = await redis.type(key)
            values: list[object] = [key]
            if kind == "hash":
                values += [x for kv in (await redis.hgetall(key)).items() for x in kv]
            elif kind == "string":
                values.append(await redis.get(key))
            elif kind == "zset":
                values += list(await redis.zrange(key, 0, -1))
            elif kind == "set":
                values += list(await redis.smembers(key))
            elif kind == "list":
                values += list(await redis.lrange(key, 0, -1))
            blob = [str(v).encode() for v in values]
            assert not leaks(blob), (key, values)
            if key.startswith("op:{chat/") and key.endswith(":conv"):
                # No supporter id in a chat state, but sealed (random bytes, not searched).
                clear, _, sealed = str(values[1]).partition(" ")
                assert clear == election.id and sealed, values


async def test_twilio_is_asked_to_delete_the_messages_that_showed_the_choices(
    redis: Redis,
) -> None:
    async with (
        TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        telegram_world(redis, **with_sms(twilio)) as world,
    ):
        await import_roll(redis, world.core.election, [Supporter("S300", "Voter", sms_phone(0))])
        phone = TwilioPhone(
            world.session,
            world.url,
            public_url=PUBLIC_URL,
            auth_token=AUTH_TOKEN,
            number=sms_phone(0),
            twilio=twilio,
        )
        [otp] = await phone.text("Hi")
        code = re.search(r"\b(\d{6})\b", otp)
        assert code is not None
        await phone.text(code.group(1))
        # What was said before the ranking began: hello, the SMS code, the code typed back.
        before_ranking = {sid for sid, m in twilio.log.items() if "choice" not in m.body}
        assert len(before_ranking) == 3
        await phone.text("2")
        await phone.text("4 1")
        receipt = "\n".join(await phone.text("YES"))
        assert "Vote cast" in receipt

        def choices_held() -> list[str]:
            return [
                m.body
                for m in twilio.log.values()
                if "Sam Patel" in m.body or "So far" in m.body or m.body in ("2", "4 1", "YES")
            ]

        await until(lambda: not choices_held())
        held = twilio.bodies_held(sms_phone(0))
        # The ranking, the prompts that echoed it, the confirmation and the YES are deleted;
        # the code, the greeting and the receipt stay.
        assert not any("Sam Patel" in b or "So far" in b for b in held), held
        assert any("Vote cast" in b for b in held)
        assert any(code.group(1) in b for b in held)
        deleted = set(twilio.deleted)
        # The first ranking prompt, "2", "So far...", "4 1", the ballot to confirm, "YES".
        assert len(deleted) == 6 and not deleted & before_ranking
        assert all(sid.startswith("SM") for sid in deleted)
        # Every DELETE is the real API call, authenticated, and answered 204.
        assert {status for _, status in twilio.delete_attempts} == {204}
        assert await world.core.copies.pending("sms") == 0  # type: ignore[union-attr]


async def test_a_message_not_yet_final_is_deleted_once_it_is(redis: Redis) -> None:
    async with (
        TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        telegram_world(redis, **with_sms(twilio)) as world,
    ):
        copies = world.core.copies
        assert copies is not None
        twilio.fail_next_delete(20009, times=1)
        twilio.record_inbound("SM" + "1" * 32, sms_phone(1), OUR_NUMBER, "3 1")
        await copies.note("sms", sms_phone(1), "SM" + "1" * 32, Kind.VOTER)
        # 20009: not final yet; tried again after a backoff (shortened here), then deleted.
        await until(lambda: bool(twilio.delete_attempts))
        assert twilio.delete_attempts[0][1] == 409
        [copy_member] = await redis.zrange(keys.copies_queue("sms"), 0, -1)
        await redis.zadd(keys.copies_queue("sms"), {str(copy_member): 0})  # due now
        await until(lambda: "SM" + "1" * 32 in twilio.deleted)
        assert await copies.pending("sms") == 0


async def test_telegram_deletes_the_typed_ranking_and_edits_the_confirmation(
    redis: Redis,
) -> None:
    async with telegram_world(redis) as world:
        user = TelegramUser(600_001, "Ann")
        prompt = await world.say(user, await world.voting_code("S1001"))
        typed = world.api.user_messages(user.id)[-1]
        assert "1st choice" in prompt["text"]
        await world.say(user, "2 4 1")
        ranking_msg = world.api.user_messages(user.id)[-1]
        confirm = world.api.last_message(user.id)
        assert "1 Sam Patel" in confirm["text"]
        await world.say(user, "YES")
        yes_msg = world.api.user_messages(user.id)[-1]
        receipt = world.api.last_message(user.id)
        assert receipt["text"].startswith("Vote cast")

        await world.removed(user, confirm["message_id"])
        async with asyncio.timeout(10):
            await world.api.wait_until(
                lambda: (
                    {ranking_msg["message_id"], yes_msg["message_id"], prompt["message_id"]}
                    <= set(world.api.deleted(user.id))
                )
            )
        # The voting code the voter typed was not part of their choices: it stays, as does
        # the receipt; nothing left in the chat names a candidate as their choice.
        assert typed["message_id"] not in world.api.deleted(user.id)
        shown = [m["text"] for m in world.api.messages(user.id)]
        assert not any("Sam Patel" in t or "So far" in t for t in shown), shown
        assert any(t.startswith("Vote cast") for t in shown)
        assert texts.choices_removed() in shown
        assert await redis.exists(keys.copies_trail("telegram", str(user.id))) == 0


async def test_with_the_setting_off_nothing_is_deleted(redis: Redis) -> None:
    async with (
        TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        telegram_world(redis, delete_copies=False, **with_sms(twilio)) as world,
    ):
        assert world.core.copies is None
        user = TelegramUser(600_002, "Ann")
        await world.say(user, await world.voting_code("S1001"))
        await world.say(user, "2 4 1")
        await world.say(user, "YES")
        await asyncio.sleep(1.5)  # longer than a remover's idle pause
        assert world.api.deleted(user.id) == []
        assert any("1 Sam Patel" in m["text"] for m in world.api.messages(user.id))


def test_ranking_patterns_would_catch_a_plain_ranking() -> None:
    """The scan is not blind: a plain ranking, or a sealed record left unsealed, is found."""
    sample = RANKINGS[0]
    assert leaks([b"ZADD op:{x/0}:ballots 1 " + ",".join(sample).encode()])
    record = base64.b64encode(encode_ranking(list(NUMBER), sample))
    assert leaks([b"state " + record])
    assert names_a_voter([b"op:{riverside-2027/0}:v:S301"])


async def test_a_channel_nobody_removes_copies_from_leaves_nothing_queued(redis: Redis) -> None:
    """The console (the demo) has no platform copies: nothing is noted for it."""
    from tests.factories import harness

    h = await harness(redis)
    code = (await h.core.codes.issue_voting_codes(h.core.election, ["S1001"]))[0][3]
    await h.said(code)
    await h.said("2 4 1")
    assert "Vote cast" in await h.said("YES")
    assert [k async for k in redis.scan_iter(match="op:{copies/*")] == []
