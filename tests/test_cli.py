"""The organiser's command line: files in, clear errors out, nothing half-done."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ballots import audit, keys
from ballots.clock import ManualClock
from ballots.errors import FileProblems, OpenPrimaryError
from openprimary import commands
from openprimary.cli import build_parser
from openprimary.context import Context
from tests.demo_support import demo_env, running, server_pid, start_demo
from tests.factories import EXAMPLES, NOW, sample_election, settings


def ctx_for(redis: Redis) -> Context:
    return Context(
        settings=settings(),
        redis=redis,
        clock=ManualClock(NOW),
        out=io.StringIO(),
        err=io.StringIO(),
        actor="test",
    )


def args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**kw)


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        assert p.format_help().startswith("usage: openprimary"), name


async def test_a_bad_roll_changes_nothing(redis: Redis, tmp_path: Path) -> None:
    election = await sample_election(redis)
    before = await redis.dbsize()
    roll = tmp_path / "roll.csv"
    roll.write_text("supporter_id,name,phone\nN1,Nia,07700 900150\nN2,Olu,not-a-phone\n")
    with pytest.raises(FileProblems) as info:
        await commands.roll_import(
            args(file=str(roll), election=election.id, region=None), ctx_for(redis)
        )
    (only,) = info.value.problems
    assert str(only).startswith(f"{roll}:3: phone 'not-a-phone' is not a phone number")
    assert await redis.dbsize() == before
    assert not await redis.hexists(keys.phone_index(election.id), "+447700900150")


async def test_codes_file_is_private_and_complete(redis: Redis, tmp_path: Path) -> None:
    election = await sample_election(redis)
    out = tmp_path / "codes.csv"
    out.write_text("old\n")
    out.chmod(0o644)
    ctx = ctx_for(redis)
    assert (
        await commands.codes_issue(
            args(election=election.id, out=str(out), supporter=None, force=True), ctx
        )
        == 0
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and set(rows[0]) == {"supporter_id", "name", "phone", "code"}
    assert list(tmp_path.iterdir()) == [out]


async def test_codes_are_not_replaced_when_the_file_cannot_be_written(
    redis: Redis, tmp_path: Path
) -> None:
    election = await sample_election(redis)
    ctx = ctx_for(redis)
    good = tmp_path / "first.csv"
    await commands.codes_issue(
        args(election=election.id, out=str(good), supporter=None, force=False), ctx
    )
    index = await redis.hgetall(keys.code_index(election.id))
    with pytest.raises(OpenPrimaryError, match="no code was issued"):
        await commands.codes_issue(
            args(
                election=election.id,
                out=str(tmp_path / "missing" / "c.csv"),
                supporter=None,
                force=False,
            ),
            ctx,
        )
    assert await redis.hgetall(keys.code_index(election.id)) == index


async def test_codes_for_an_unknown_supporter_is_an_error(redis: Redis, tmp_path: Path) -> None:
    election = await sample_election(redis)
    with pytest.raises(OpenPrimaryError, match="not on the roll of riverside-2027: S404"):
        await commands.codes_issue(
            args(
                election=election.id,
                out=str(tmp_path / "c.csv"),
                supporter=["S1001", "S404"],
                force=False,
            ),
            ctx_for(redis),
        )
    assert not (tmp_path / "c.csv").exists()
    assert await redis.hlen(keys.code_index(election.id)) == 0


def test_the_console_script_reports_file_line_reason(redis_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "e.toml"
    bad.write_text((EXAMPLES / "election.toml").read_text().replace('"irv"', '"borda"'))
    env = {
        **os.environ,
        "OPENPRIMARY_REDIS_URL": redis_url,
        "OPENPRIMARY_SECRET_KEY": "x0y1z2w3" * 4,
    }
    run = subprocess.run(
        [sys.executable, "-m", "openprimary.cli", "election", "load", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 1
    line = (EXAMPLES / "election.toml").read_text().splitlines().index('method = "irv"') + 1
    assert run.stderr.splitlines()[0] == (
        f"{bad}:{line}: unknown method 'borda'; use one of: irv, sv, stv"
    )
    assert "nothing was changed" in run.stderr
    assert run.stdout == ""


async def test_small_shards_draw_a_warning(redis: Redis, tmp_path: Path) -> None:
    election = tmp_path / "e.toml"
    election.write_text("shards = 4\n" + (EXAMPLES / "election.toml").read_text())
    ctx = ctx_for(redis)
    await commands.election_load(args(file=str(election)), ctx)
    await commands.roll_import(
        args(file=str(EXAMPLES / "roll.csv"), election="riverside-2027", region=None), ctx
    )
    assert isinstance(ctx.err, io.StringIO)
    assert "4 shards for 6 supporters" in ctx.err.getvalue()
    assert "ballot secrecy" in ctx.err.getvalue()


def test_counting_a_ballot_file_leaves_nothing_behind(tmp_path: Path) -> None:
    ballots = tmp_path / "b.csv"
    ballots.write_text("a,b\nb,a\na\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENPRIMARY_")}
    run = subprocess.run(
        [sys.executable, "-m", "openprimary.cli", "count", "--ballots", str(ballots), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["winners"] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.csv"]


@pytest.mark.parametrize("how", ["/quit", "end of input", "SIGINT", "SIGTERM", "SIGHUP"])
def test_the_embedded_redis_stops_with_the_command_that_started_it(
    tmp_path: Path, how: str
) -> None:
    proc = start_demo(tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    while "/quit to leave" not in (line := proc.stdout.readline()):
        assert line, "the demo ended before its chat began"
    pid = server_pid(tmp_path / "var")
    assert running(pid)
    if how == "/quit":
        proc.stdin.write("/quit\n")
        proc.stdin.flush()
    elif how == "end of input":
        proc.stdin.close()
    else:
        proc.send_signal(getattr(signal, how))
    proc.wait(timeout=20)
    assert proc.returncode in (0, 130)
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(pid), f"redis-server {pid} outlived the demo ({how})"


async def test_organisers_see_and_clear_locks(redis: Redis) -> None:
    from ballots.codes import Codes

    election = await sample_election(redis)
    codes = Codes(redis, settings().secret_key, ManualClock(NOW))
    shard = keys.shard_of("S1002", election.shards)
    await redis.hset(keys.voter(election.id, shard, "S1002"), "fails", 100)
    for _ in range(10):
        await codes.record_address_failure(election, "telegram", "987654")
    ctx = ctx_for(redis)
    assert await commands.codes_locks(args(election=election.id), ctx) == 0
    listed = ctx.out.getvalue()  # type: ignore[attr-defined]
    assert "supporter S1002: 100 failed codes" in listed
    assert "address telegram:987654: 10 failures" in listed

    ctx = ctx_for(redis)
    unlock = args(election=election.id, supporter="S1002", address=None)
    assert await commands.codes_unlock(unlock, ctx) == 0
    unlock = args(election=election.id, supporter=None, address="telegram:987654")
    assert await commands.codes_unlock(unlock, ctx) == 0
    assert ctx.out.getvalue().count("unlocked") == 2  # type: ignore[attr-defined]
    ctx = ctx_for(redis)
    await commands.codes_locks(args(election=election.id), ctx)
    assert "nobody is locked out" in ctx.out.getvalue()  # type: ignore[attr-defined]
    trail = [e.action for e in await audit.read(redis, election.id)]
    assert trail.count("unlocked") == 2
    with pytest.raises(OpenPrimaryError, match="CHANNEL:ADDRESS"):
        await commands.codes_unlock(
            args(election=election.id, supporter=None, address="987654"), ctx_for(redis)
        )


async def demo_reset(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``openprimary demo --reset`` as a person would run it, leaving at once."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "openprimary.cli", "demo", "--reset"],
        input="/quit\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


async def test_demo_reset_never_touches_a_configured_redis_or_an_election_it_did_not_make(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    from tests.demo_support import demo_env

    election = await sample_election(redis)  # the sample's id, loaded by an organiser
    await audit.record(redis, ManualClock(NOW), election.id, "organiser", "election loaded")
    before = await redis.dbsize()
    env = {**demo_env(), "OPENPRIMARY_REDIS_URL": redis_url}
    run = await demo_reset(env, tmp_path)
    assert run.returncode == 0, run.stderr
    # It ran on its own embedded Redis, and the real one is as it was.
    assert "OpenPrimary demo:" in run.stdout and (tmp_path / "var").is_dir()
    assert await redis.dbsize() == before
    assert [e.action for e in await audit.read(redis, election.id)] == ["election loaded"]

    # An election of the sample's id that the demo did not make, in the demo's own Redis,
    # is left alone too.
    from ballots.connection import open_redis

    handle = open_redis(None, tmp_path / "other")
    try:
        await sample_election(handle.client)
    finally:
        await handle.close()
    env = {**demo_env(), "OPENPRIMARY_DATA_DIR": str(tmp_path / "other")}
    run = await demo_reset(env, tmp_path)
    assert run.returncode == 1
    assert "was not made by the demo" in run.stderr


def test_the_demo_s_hints_work_as_printed_without_an_activated_venv(tmp_path: Path) -> None:
    """The commands the demo prints at the end run, copied as printed, from the same folder."""
    script = Path(sys.executable).parent / "openprimary"
    assert script.exists(), "the console script is installed beside this Python"
    env = demo_env()
    # As for someone who made the venv and never activated it.
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != script.parent
    )
    demo = subprocess.Popen(
        [str(script), "demo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert demo.stdout is not None
    greeting = ""
    while "/quit to leave" not in greeting:
        line = demo.stdout.readline()
        assert line, f"the demo ended before its chat began: {greeting}"
        greeting += line
    code = greeting.split("voting code: ")[1].split()[0]
    # A vote, so that the count hint has a ballot to count.
    said, _ = demo.communicate(f"hello\n{code}\n1 2 3 4\nYES\n/quit\n", timeout=60)
    assert demo.returncode == 0, said
    assert "Vote cast" in said
    hints = dict(
        line.split(": ", 1)
        for line in said.splitlines()
        if line.startswith(("See the turnout: ", "Close the sample election and count it: "))
    )
    assert set(hints) == {"See the turnout", "Close the sample election and count it"}
    for hint in hints.values():
        assert hint.startswith(str(script)), hint  # not a bare name the shell cannot find
        done = subprocess.run(
            ["bash", "-c", hint],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, f"{hint}: {done.stderr}"
