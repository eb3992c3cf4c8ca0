"""What a command-line subcommand is handed: settings, Redis, clock and streams."""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from ballots.clock import Clock, SystemClock
from bot.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass
class Context:
    """One command's view of the world."""

    settings: Settings
    redis: Redis
    clock: Clock = field(default_factory=SystemClock)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    actor: str = field(default_factory=lambda: f"cli:{_user()}@{_host()}")


def _user() -> str:
    """Who runs the command, as the audit trail names them (with :func:`_host`)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _host() -> str:
    return socket.gethostname() or "unknown"


#: A subcommand's body: returns the process exit status.
Handler = Callable[[argparse.Namespace, Context], Awaitable[int]]

#: Adds one or more subcommands to the ``openprimary`` parser.
Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
