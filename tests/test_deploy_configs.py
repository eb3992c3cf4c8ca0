"""The deployment files in docs/deploy, run as written (bar addresses, ports and directories).

Redis with a primary, two replicas and three Sentinels from primary.conf,
replica.conf and sentinel.conf; a six-node Cluster from cluster-node.conf,
created with the redis-cli command the file gives.  OpenPrimary reaches each
through the OPENPRIMARY_REDIS_URL docs/deployment.md names, with durable casts on.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ballots.connection import client_from_url, close_client
from bot.state import Step
from tests.factories import Harness, harness, settings
from tests.faults.support import RedisProcess, free_port
from tests.redis_server import redis_server_binary
from tests.replication import _cluster_port, _start_sentinel, wait_in_sync

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"
PASSWORD = "CHANGE-ME-redis-password"


def from_file(name: str, *extra: str) -> RedisProcess:
    """A redis-server started from a deploy file, on loopback and a port and dir of its own.

    The copy differs from the file in its ``dir`` line only (Redis moves there as it
    reads the file); --port and --bind on the command line override the rest.
    """
    node = RedisProcess(*extra)
    text = (DEPLOY / name).read_text()
    lines = [f"dir {node.dir}" if line.startswith("dir ") else line for line in text.splitlines()]
    node.conf_file = node.dir / name
    node.conf_file.write_text("\n".join(lines) + "\n")
    return node


def _start(node: RedisProcess) -> None:
    node.start()  # --port, --bind 127.0.0.1 and --dir after the file: they win


def redis_cli() -> str:
    found = shutil.which("redis-cli")
    return found or str(Path(redis_server_binary()).with_name("redis-cli"))


async def vote(h: Harness) -> str:
    code = (await h.core.codes.issue_voting_codes(h.core.election, ["S1001"]))[0][3]
    for text in ("hi", code, "2 1"):
        await h.said(text)
    return await h.said("YES")


async def test_primary_replicas_and_sentinels_as_documented() -> None:
    primary = from_file("primary.conf")
    _start(primary)
    replicas = [
        from_file("replica.conf", "--replicaof", "127.0.0.1", str(primary.port)) for _ in range(2)
    ]
    for r in replicas:
        _start(r)
    watchers: list[RedisProcess] = []
    try:
        direct = client_from_url(f"redis://:{PASSWORD}@127.0.0.1:{primary.port}/0")
        await wait_in_sync(direct, 2)
        assert await direct.config_get("appendfsync") == {"appendfsync": "always"}
        assert (await direct.config_get("min-replicas-to-write"))["min-replicas-to-write"] == "1"
        await close_client(direct)
        for _ in range(3):
            w = RedisProcess()
            w.port = free_port()
            text = (DEPLOY / "sentinel.conf").read_text()
            for documented, here in (
                ("port 26379", f"port {w.port}"),
                ("10.0.0.11 6379", f"127.0.0.1 {primary.port}"),
                ("bind 10.0.0.11", "bind 127.0.0.1"),
                ("dir /var/lib/redis", f"dir {w.dir}"),
            ):
                text = text.replace(documented, here)
            conf = w.dir / "sentinel.conf"
            conf.write_text(text)
            _start_sentinel(w, conf)
            watchers.append(w)
        hosts = ",".join(f"127.0.0.1:{w.port}" for w in watchers)
        redis = client_from_url(f"redis+sentinel://:{PASSWORD}@{hosts}/ballots")
        try:
            h = await harness(redis, config=settings(durable_replicas=1))
            assert "Vote cast" in await vote(h)
            assert (await h.state()).step is Step.DONE
            await h.core.stop_background()
        finally:
            await close_client(redis)
    finally:
        for w in watchers:
            w.close()
        for r in replicas:
            r.close()
        primary.close()


async def test_a_six_node_cluster_as_documented() -> None:
    nodes = []
    for _ in range(6):
        node = from_file("cluster-node.conf")
        node.port = _cluster_port()
        nodes.append(node)
    try:
        for node in nodes:
            _start(node)
        created = subprocess.run(  # noqa: ASYNC221 (the servers run on their own)
            [redis_cli(), "-a", PASSWORD, "--no-auth-warning", "--cluster", "create",
             *(f"127.0.0.1:{n.port}" for n in nodes), "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert created.returncode == 0, created.stdout + created.stderr
        url = f"redis+cluster://:{PASSWORD}@" + ",".join(f"127.0.0.1:{n.port}" for n in nodes[:3])
        redis = client_from_url(url)
        try:
            import asyncio

            for _ in range(100):  # until every node agrees the slots are covered
                try:
                    info = await redis.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
                    if "cluster_state:ok" in str(info):
                        break
                except Exception:
                    pass
                await asyncio.sleep(0.1)
            h = await harness(redis, config=settings(durable_replicas=1))
            assert "Vote cast" in await vote(h)
            await h.core.stop_background()
        finally:
            await close_client(redis)
    finally:
        for node in nodes:
            node.close()
