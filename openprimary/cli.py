"""The ``openprimary`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from ballots.connection import open_redis
from ballots.errors import ConfigError, FileProblems, OpenPrimaryError
from bot import commands, trustees_cli
from bot.context import Context, Handler
from bot.settings import Settings
from channels import telegram_cli
from openprimary import count_cli, demo, remind_cli, serve_cli

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="openprimary",
        description="Run an open primary by SMS and Telegram: ranked ballots in Redis.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.register(sub)
    commands.register(sub)
    remind_cli.register(sub)
    trustees_cli.register(sub)
    count_cli.register(sub)
    serve_cli.register(sub)
    telegram_cli.register(sub)
    return parser


async def _run(handler: Handler, args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "ballots", None):
        # Counting a ballot file needs no Redis: don't start (or create) the embedded one.
        offline = Redis()  # never used; redis-py connects only on a first command
        try:
            return await handler(args, Context(settings=settings, redis=offline))
        finally:
            await offline.aclose()
    handle = open_redis(settings.redis_url, settings.data_dir)
    try:
        return await handler(args, Context(settings=settings, redis=handle.client))
    finally:
        await handle.close()


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C, SIGTERM or SIGHUP (a closed terminal) ends a command cleanly.

    SIGINT too: asyncio's own handler would only cancel the main task, and a
    cancellation that lands inside a Redis call can be lost (redis-py), which
    left the demo waiting for input.  ``serve`` sets its own handlers.
    """
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    # So that a command's finally blocks run, and an embedded Redis it started stops.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings()
    try:
        settings = Settings.from_env(
            local_secret=not getattr(args, "ballots", None),
            embedded=getattr(args, "embedded_only", False),
        )
        return asyncio.run(_run(args.handler, args, settings))
    except FileProblems as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        print(f"openprimary: {len(err.problems)} problem(s); nothing was changed", file=sys.stderr)
        return 1
    except ConfigError as err:
        print(f"openprimary: configuration: {err}", file=sys.stderr)
        return 2
    except OpenPrimaryError as err:
        print(f"openprimary: {err}", file=sys.stderr)
        return 1
    except RedisConnectionError as err:
        where = settings.redis_url or f"the embedded server in {settings.data_dir}"
        print(f"openprimary: cannot reach Redis at {where}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
