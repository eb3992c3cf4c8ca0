"""One round trip on one server (``ballots.connection``): what redis-py would answer, packed
as redis-py packs, one deadline for the whole exchange, kept connections that recover."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ballots import connection
from ballots.connection import Batch, client_from_url, in_one_round_trip, run_script
from tests.redis_server import private_server

#: Arguments of the kinds the project's commands carry (and redis-py accepts).
ARGUMENTS = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["GET", "EVALSHA", "HSET"]), st.lists(ARGUMENTS))))
def test_commands_are_packed_byte_for_byte_as_redis_py_packs_them(
    commands: list[tuple[str, list[object]]],
) -> None:
    conn = _connection()
    stack: list[tuple[Any, dict[str, Any]]] = [((name, *args), {}) for name, args in commands]
    ours = b"".join(connection._packed(conn, stack))
    theirs = b"".join(b"".join(conn.pack_command(*args)) for args, _ in stack)
    assert ours == theirs


def _connection() -> Any:
    """A connection of the app's client (never connected: packing needs no server)."""
    return client_from_url("redis://127.0.0.1:1/0").connection_pool.make_connection()  # type: ignore[no-untyped-call]


def test_what_hiredis_is_not_given_goes_redis_py_s_way() -> None:
    conn = _connection()
    two_words: list[tuple[Any, dict[str, Any]]] = [(("SCRIPT LOAD", "return 1"), {})]
    assert connection._packed(conn, two_words) == conn.pack_command("SCRIPT LOAD", "return 1")
    with pytest.raises(Exception, match="bool"):
        connection._packed(conn, [(("SET", "k", True), {})])  # redis-py refuses a bool


async def test_replies_are_what_redis_py_s_pipeline_gives(redis: Redis) -> None:
    await redis.set("counter", "x")

    def fill(batch: Batch) -> None:
        batch.pipe.set("a", "1")
        batch.pipe.hset("h", mapping={"f": "v", "g": "w"})
        batch.pipe.hgetall("h")
        batch.pipe.sadd("s", "x", "y")
        batch.pipe.smembers("s")
        batch.pipe.exists("a", "nope")
        batch.pipe.incr("counter")  # not an integer: an error, in its place
        batch.pipe.get("a")

    ours = await in_one_round_trip(redis, fill, raise_on_error=False)
    await redis.flushdb()
    await redis.set("counter", "x")
    async with redis.pipeline(transaction=False) as pipe:
        fill(Batch(pipe))
        theirs = await pipe.execute(raise_on_error=False)
    assert [type(r) for r in ours] == [type(r) for r in theirs]
    assert ours[:6] + ours[7:] == theirs[:6] + theirs[7:]
    assert ours[:6] == [True, 2, {"f": "v", "g": "w"}, 2, {"x", "y"}, 1]
    assert isinstance(ours[6], ResponseError) and ours[7] == "1"
    with pytest.raises(ResponseError):
        await in_one_round_trip(redis, fill)


async def test_a_script_runs_and_one_lost_by_the_server_is_loaded_again(redis: Redis) -> None:
    script = redis.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert await run_script(redis, script, ["n"], [2]) == 2
    await redis.script_flush()  # as a restarted server forgets them
    assert await run_script(redis, script, ["n"], [3]) == 5


async def test_a_frozen_server_times_out_once_and_its_late_replies_reach_nobody() -> None:
    """Past the one deadline the caller is told Redis timed out (as redis-py tells it), and
    the connection is dropped: its late replies are never read as the next caller's."""
    with private_server() as (url, _):
        client = Redis.from_url(url, decode_responses=True, socket_timeout=0.5)
        pid = int((await client.info("server"))["process_id"])
        try:
            await client.set("k", "before")
            os.kill(pid, signal.SIGSTOP)
            started = time.monotonic()
            try:
                with pytest.raises(RedisTimeoutError):
                    await in_one_round_trip(client, _set_during)
            finally:
                os.kill(pid, signal.SIGCONT)
            assert time.monotonic() - started < 2.0
            # The SET sent before the freeze ran once the server woke: it was in doubt,
            # never lost or doubled; the next round trip reads its own replies.
            await asyncio.sleep(0.1)
            results = await in_one_round_trip(client, _get_and_count)
            assert results == ["during", 1]
        finally:
            await client.aclose()


async def test_kept_connections_the_server_closed_are_replaced_without_an_error() -> None:
    """A restart or a failover closes the connections the round trips keep: the next
    round trip is retried on a new connection, as redis-py's pipeline is."""
    with private_server() as (url, _):
        client = client_from_url(url)
        try:
            await asyncio.gather(*(in_one_round_trip(client, _count) for _ in range(8)))
            assert len(connection._KEPT[client.connection_pool]) >= 1
            await client.client_kill_filter(_type="normal", skipme=True)
            results = await in_one_round_trip(client, _count)
            assert results == [9]
        finally:
            await client.aclose()


def _set_during(batch: Batch) -> None:
    batch.pipe.set("k", "during")


def _get_and_count(batch: Batch) -> None:
    batch.pipe.get("k")
    batch.pipe.incr("n")


def _count(batch: Batch) -> None:
    batch.pipe.incr("n")


def test_the_app_s_connections_are_read_from_their_parser_and_sentinel_s_are_not() -> None:
    """The replies of a round trip on one server are read straight from the parser; a
    Sentinel-managed connection (which turns a demoted primary's READONLY into a
    reconnection in its own read) is read the whole way."""
    from redis.asyncio.sentinel import SentinelManagedConnection

    assert connection._plain_reads(_connection())
    assert not connection._plain_reads(
        SentinelManagedConnection(connection_pool=None)  # type: ignore[no-untyped-call]
    )
