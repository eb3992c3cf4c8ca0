"""The ``openprimary`` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from ballots.errors import ConfigError, FileProblems, OpenPrimaryError
from bot.settings import Settings
from openprimary.context import Context, Handler

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

#: Every command, in the order ``--help`` lists them: the module whose ``register()`` adds it,
#: and its one line of help.  A command's module is imported only when that command runs (or
#: its help is asked for), so ``openprimary --help`` and ``count --ballots`` start at once.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "openprimary.demo",
        "try a vote in the terminal with the sample election (embedded Redis)",
    ),
    "sandbox": (
        "openprimary.sandbox_cli",
        "try serve and the console locally: simulated phones, no Twilio or Telegram",
    ),
    "election": (
        "openprimary.commands",
        "load, show, close or extend elections; rehearse one before it opens",
    ),
    "roll": ("openprimary.commands", "manage the voter roll"),
    "codes": ("openprimary.commands", "pre-issued voting codes, and locks from failed codes"),
    "turnout": ("openprimary.commands", "eligible supporters, ballots cast, by channel and day"),
    "audit": ("openprimary.commands", "print the organisers' audit trail"),
    "backup": (
        "openprimary.backup_cli",
        "write one election to a file encrypted to the organisers' backup key",
    ),
    "restore": (
        "openprimary.backup_cli",
        "put an election back from a backup file (the private backup key opens it)",
    ),
    "remind": ("openprimary.remind_cli", "remind supporters who have not voted (SMS and Telegram)"),
    "trustees": ("openprimary.trustees_cli", "the count key that seals ballots, held as shares"),
    "unseal": (
        "openprimary.trustees_cli",
        "after the close: open the sealed ballots with K trustees' shares",
    ),
    "receipts": (
        "openprimary.trustees_cli",
        "after the close: every receipt id, sorted, for publication",
    ),
    "count": (
        "openprimary.count_cli",
        "count an election's ballots, or a ballot file, round by round",
    ),
    "export": ("openprimary.count_cli", "write an election's ballots for other counting tools"),
    "serve": ("openprimary.serve_cli", "run the web server for the SMS and Telegram webhooks"),
    "cost": (
        "openprimary.cost_cli",
        "estimate the poll's SMS segments (codes, conversations, reminders) and their cost",
    ),
    "report": ("openprimary.report_cli", "compare pilot elections side by side, in aggregates"),
    "telegram": ("openprimary.telegram_cli", "set up the Telegram bot's webhook"),
    "results": (
        "openprimary.results_cli",
        "after the unseal: publish the results page, or take it down",
    ),
    "console": (
        "openprimary.console_cli",
        "the organisers' console: sessions, and sign-ins locked by wrong codes",
    ),
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser: every command in full, or with ``argv``, only the one it names (the
    others by name and help alone, so that their modules are not imported)."""
    parser = argparse.ArgumentParser(
        prog="openprimary",
        description="Run an open primary by SMS and Telegram: ranked ballots in Redis.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if argv is None:
        wanted = list(dict.fromkeys(module for module, _ in COMMANDS.values()))
    else:
        named = next((a for a in argv if not a.startswith("-")), None)
        wanted = [COMMANDS[named][0]] if named in COMMANDS else []
    loaded = {module: importlib.import_module(module) for module in wanted}
    for name, (module, help_text) in COMMANDS.items():
        if name in sub.choices:
            continue
        if module in loaded:
            loaded[module].register(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


async def _run(handler: Handler, args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "ballots", None) or getattr(args, "own_redis", False):
        # Counting a ballot file needs no Redis: don't start (or create, or import) one.  A
        # sandbox starts its own, in a folder of its own, once it has checked its settings.
        return await handler(args, Context(settings=settings, redis=cast("Redis", _NoRedis())))
    from ballots.connection import open_redis

    handle = open_redis(settings.redis_url, settings.data_dir)
    try:
        return await handler(args, Context(settings=settings, redis=handle.client))
    finally:
        await handle.close()


class _NoRedis:
    """What a command that needs no Redis is given: any use of it is a bug, said plainly."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"this command runs without Redis (it used .{name})")


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
    given = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(given)
    args = parser.parse_args(given)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings()
    try:
        settings = Settings.from_env(
            local_secret=not (getattr(args, "ballots", None) or getattr(args, "own_redis", False)),
            embedded=getattr(args, "embedded_only", False),
        )
        import asyncio  # not before: ``--help`` and argument errors end without it

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
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:
        if not _redis_unreachable(err):
            raise
        where = settings.redis_url or f"the embedded server in {settings.data_dir}"
        print(f"openprimary: cannot reach Redis at {where}: {err}", file=sys.stderr)
        return 2


def _redis_unreachable(err: Exception) -> bool:
    """A redis-py ConnectionError (redis is imported only by the commands that use it)."""
    errors = sys.modules.get("redis.exceptions")
    return errors is not None and isinstance(err, errors.ConnectionError)


if __name__ == "__main__":
    sys.exit(main())
