"""``openprimary serve``: the web server for the SMS and Telegram webhooks."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile

from redis.exceptions import RedisError

from ballots.connection import fewest_replicas
from ballots.errors import ConfigError
from ballots.program import program
from channels.monitoring import MULTIPROC_DIR
from channels.server import check_settings, make_app, run_app
from channels.sms_channel import sms_installers, sms_outbound
from channels.telegram import serve_installers
from openprimary.app import build
from openprimary.context import Context

log = logging.getLogger(__name__)


async def serve(args: argparse.Namespace, ctx: Context) -> int:
    """Run the webhooks server until SIGINT or SIGTERM (with ``--workers N``, N of them)."""
    settings = ctx.settings
    check_settings(settings)
    workers = getattr(args, "workers", 1)
    if workers < 1:
        raise ConfigError("--workers: at least 1")
    if workers > 1 and not getattr(args, "worker", False):
        return await _supervise(args, ctx, workers)
    try:
        await ctx.redis.ping()
    except (RedisError, OSError) as err:
        raise ConfigError(f"cannot reach Redis (OPENPRIMARY_REDIS_URL): {err}") from err
    deployment = await build(settings, ctx.redis, ctx.clock, args.election)
    if settings.durable_replicas:
        have = await fewest_replicas(ctx.redis)
        if have < settings.durable_replicas:
            log.warning(
                "OPENPRIMARY_DURABLE_REPLICAS=%d, %d connected", settings.durable_replicas, have
            )
            ctx.err.write(
                f"openprimary: warning: OPENPRIMARY_DURABLE_REPLICAS={settings.durable_replicas} "
                f"but the primary has {have} replica(s) connected: until enough are, voters are "
                "told their vote is being recorded and get their receipt later\n"
            )
    for core in deployment.cores.values():
        if await core.box.count_key(core.election) is not None:
            continue
        eid = core.election.id
        log.warning("election %s has no count key; no ballot can be cast yet", eid)
        ctx.err.write(
            f"openprimary: warning: election {eid} has no count key, so voters are told voting "
            f"has not opened; run '{program()} trustees init --election {eid} ...'\n"
        )
    by_sms = any("sms-otp" in c.election.identity for c in deployment.cores.values())
    if not sms_outbound(settings) and by_sms:
        log.warning(
            "SMS sending is off (TWILIO_ACCOUNT_SID, TWILIO_FROM unset): voters on other "
            "channels cannot be texted a code"
        )
    polling = getattr(args, "telegram_polling", False)
    app = make_app(
        deployment, [*sms_installers(settings), *serve_installers(settings, polling=polling)]
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        served = sorted(deployment.cores)
        ctx.out.write(f"serving election{'s' if len(served) > 1 else ''} {', '.join(served)}\n")
        await run_app(
            app,
            args.host,
            args.port,
            stop=stop,
            out=ctx.out,
            reuse_port=getattr(args, "worker", False),
        )
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    ctx.out.write("stopped\n")
    return 0


async def _supervise(args: argparse.Namespace, ctx: Context, workers: int) -> int:
    """Start ``workers`` serve processes on one port (SO_REUSEPORT) and stop them together.

    SIGINT or SIGTERM here is passed on to every worker, which finishes what it
    has in hand; a worker that dies stops the others too (and this exits 1), so
    a supervisor such as systemd restarts the whole set.  The workers share one fresh
    directory for their metrics (prometheus_client's multiprocess mode), so that whichever
    answers GET /metrics reports them all (``channels.monitoring``).
    """
    if args.port == 0:
        raise ConfigError("--workers: give a --port (every worker listens on the same one)")
    if getattr(args, "telegram_polling", False):
        raise ConfigError("--workers and --telegram-polling: only one process may poll")
    command = [sys.executable, "-m", "openprimary.cli"]
    if logging.getLogger().isEnabledFor(logging.INFO):
        command.append("--verbose")
    command += ["serve", "--worker", "--host", args.host, "--port", str(args.port)]
    if args.election:
        command += ["--election", args.election]
    metrics_dir = tempfile.mkdtemp(prefix="openprimary-metrics-")
    try:
        env = {**os.environ, MULTIPROC_DIR: metrics_dir}
        procs = [await asyncio.create_subprocess_exec(*command, env=env) for _ in range(workers)]
        return await _watch(ctx, procs, args.port)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


async def _watch(ctx: Context, procs: list[asyncio.subprocess.Process], port: int) -> int:
    """Wait for SIGINT, SIGTERM or a worker's exit, then stop every worker."""
    workers = len(procs)
    ctx.out.write(f"serving with {workers} workers on port {port}\n")
    ctx.out.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    exits = [asyncio.create_task(p.wait()) for p in procs]
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([stopping, *exits], return_when=asyncio.FIRST_COMPLETED)
        died = [p for p in procs if p.returncode is not None]
        for p in procs:
            if p.returncode is None:
                p.terminate()
        try:
            async with asyncio.timeout(60):
                await asyncio.gather(*exits)
        except TimeoutError:
            for p in procs:
                if p.returncode is None:
                    p.kill()
            await asyncio.gather(*exits)
    finally:
        stopping.cancel()
        for sig in signals:
            loop.remove_signal_handler(sig)
    if died and not stop.is_set():
        ctx.err.write(
            f"openprimary: a serve worker exited ({died[0].returncode}); stopped the others\n"
        )
        return 1
    ctx.out.write("stopped\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``openprimary serve`` to the command line."""
    parser = sub.add_parser(
        "serve",
        help="run the web server for the SMS and Telegram webhooks",
        description=(
            "Serve POST /sms/twilio, POST /telegram, GET /healthz and GET /metrics. "
            "Settings come from the environment: TWILIO_AUTH_TOKEN, TWILIO_ACCOUNT_SID, "
            "TWILIO_FROM and OPENPRIMARY_PUBLIC_URL for SMS, TELEGRAM_BOT_TOKEN for "
            "Telegram. Several serve processes can share one Redis."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--election",
        metavar="ID",
        help="serve only these elections, ID or ID,ID,... (default: OPENPRIMARY_ELECTION, "
        "or every one loaded that has not closed more than a day ago, and the ones loaded "
        "while it runs)",
    )
    parser.add_argument(
        "--telegram-polling",
        action="store_true",
        help="fetch Telegram updates by polling instead of the webhook: for development "
        "without a public URL (removes the bot's webhook)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N server processes on the one port, sharing its connections "
        "(SO_REUSEPORT; default: %(default)s)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=serve)
