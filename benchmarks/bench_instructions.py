"""Instructions a message: ``openprimary serve`` (or the checked floor) under callgrind.

Run: .venv/bin/python -m benchmarks.bench_instructions [--voters 200] [--concurrency 32]
         [--floor]

Wall-clock rates on a shared VM drift by a quarter from one minute to the next, so a change
worth a few per cent cannot be seen in them.  Instructions can: valgrind's callgrind counts
them, and the count for the same code and load comes out the same run after run (to within
a fraction of a per cent).  This starts ``openprimary serve`` (one process, as deployed)
under ``valgrind --tool=callgrind`` with counting off, warms it up with 20 votes, switches
counting on (``callgrind_control -i on``), has ``--voters`` supporters vote by SMS step by
step (7 signed webhooks each) from the Python load generator in a process of its own,
``--concurrency`` at once, and prints the instructions the server executed per message.
``--floor`` measures the checked floor instead (``bench_sms.checked_floor_app``: the
signature check, the form, three Redis round trips, TwiML), served the same way.

Instructions are not time: a system call, a cache miss or a page the kernel must find cost
time they do not count, so the ratio of two counts is a guide to the ratio of two rates,
not a measure of it (``bench_sms`` measures that).  Needs valgrind (Debian's package).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shutil
import signal
import sys
import tempfile

from aiohttp import web

from ballots.connection import client_from_url
from benchmarks.bench_sms import (
    PUBLIC_URL,
    STEP_BY_STEP,
    TOKEN,
    _generate,
    _setup,
    checked_floor_app,
    phone,
    voter,
)
from benchmarks.harness import run_load
from tests.factories import SECRET
from tests.faults.support import free_port
from tests.redis_server import redis_url
from tests.sms_support import serve_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARM_UP = 20


async def floor_main(url: str, port: int) -> None:
    """The checked floor as a process of its own (``--serve-floor``)."""
    redis = client_from_url(url)
    runner = web.AppRunner(checked_floor_app(redis), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("listening on", port, flush=True)
    await asyncio.Event().wait()


async def measure(url: str, voters: int, concurrency: int, floor: bool) -> float:
    """The server's instructions per message."""
    redis = client_from_url(url)
    try:
        election, twilio, _core = await _setup(redis, voters + WARM_UP)
    finally:
        await redis.aclose()
    port = free_port()
    env = {
        **serve_env(url, twilio.base_url, TOKEN),
        "OPENPRIMARY_PUBLIC_URL": PUBLIC_URL,
        "OPENPRIMARY_SECRET_KEY": SECRET,
        "OPENPRIMARY_CODE_SMS_PER_HOUR": str(10 * (voters + WARM_UP)),
        "PYTHONHASHSEED": "0",
    }
    if floor:
        server_args = [sys.executable, "-m", "benchmarks.bench_instructions", "--serve-floor"]
        server_args += [url, str(port)]
    else:
        server_args = [sys.executable, "-m", "openprimary.cli", "serve", "--port", str(port)]
        server_args += ["--election", election.id]
    out_dir = tempfile.mkdtemp(prefix="openprimary-callgrind-")
    out = os.path.join(out_dir, "callgrind.out")
    server = await asyncio.create_subprocess_exec(
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        *server_args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert server.stdout is not None
    base = f"http://127.0.0.1:{port}"
    kind = "checked" if floor else "step"
    try:
        while b"listening on" not in await server.stdout.readline():
            assert server.returncode is None, "the server stopped"
        if not floor:
            bills: list[int] = []
            jobs = [voter(base, phone(voters + i), STEP_BY_STEP, bills) for i in range(WARM_UP)]
            await run_load("warm-up", jobs, concurrency=4)
        await _callgrind_control("-i", "on", server.pid)
        result, _ = await asyncio.to_thread(_generate, kind, base, 0, voters, concurrency, None)
        await _callgrind_control("-d", server.pid)
        assert not result.errors, result.statuses
    finally:
        server.send_signal(signal.SIGINT)
        await server.wait()
        await twilio.close()
    total = await asyncio.to_thread(_counted, out)
    shutil.rmtree(out_dir, ignore_errors=True)
    return total / result.requests


async def _callgrind_control(*args: object) -> None:
    process = await asyncio.create_subprocess_exec(
        "callgrind_control",
        *map(str, args),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    if await process.wait():
        raise RuntimeError(f"callgrind_control {args} failed")


def _counted(out: str) -> int:
    """The instructions in the dump asked for (the one written at exit has no number)."""
    total = 0
    for dump in glob.glob(out + ".*"):
        with open(dump, errors="replace") as lines:
            total += sum(int(line.split()[1]) for line in lines if line.startswith("summary:"))
    return total


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-floor":
        asyncio.run(floor_main(sys.argv[2], int(sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voters", type=int, default=200, help="voters counted (default 200)")
    parser.add_argument("--concurrency", type=int, default=32, help="at once (default 32)")
    parser.add_argument("--floor", action="store_true", help="the checked floor instead")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("bench_instructions: valgrind is not installed (apt-get install valgrind)")
    with redis_url() as url:
        per = asyncio.run(measure(url, args.voters, args.concurrency, args.floor))
    what = "checked floor" if args.floor else "openprimary serve"
    print(
        f"{what}: {per / 1e6:.3f} M instructions a message "
        f"({args.voters * len(STEP_BY_STEP):,} messages, {args.concurrency} at once)"
    )


if __name__ == "__main__":
    main()
