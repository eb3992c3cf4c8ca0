"""Each command imports only what it uses: ``--help`` and counting a file load no
Redis client, web server or platform library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLT = ROOT / "tests" / "data" / "glasgow-2007" / "blt" / "Craigton-2007.blt"
HEAVY = ("aiohttp", "twilio", "telegram", "httpx", "redis", "prometheus_client")


def imported_by(*argv: str) -> tuple[list[str], str]:
    """The heavy packages that running ``openprimary ARGV`` imported, and what it printed."""
    code = (
        "import io, json, sys, contextlib\n"
        "from openprimary.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        f"        main({list(argv)!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps([heavy, out.getvalue()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    heavy, printed = json.loads(done.stdout.strip().splitlines()[-1])
    return heavy, printed


def test_help_lists_every_command_and_loads_none_of_them() -> None:
    heavy, printed = imported_by("--help")
    assert heavy == []
    for command in ("demo", "election", "roll", "codes", "remind", "unseal", "count", "serve"):
        assert f"    {command} " in printed


def test_counting_a_ballot_file_loads_no_redis_or_web_library() -> None:
    heavy, printed = imported_by("count", "--ballots", str(BLT))
    assert heavy == []
    assert "Round 1" in printed or "round 1" in printed.lower()


def test_a_commands_own_help_is_complete() -> None:
    _heavy, printed = imported_by("serve", "--help")
    assert "--telegram-polling" in printed and "--election" in printed
    _heavy, printed = imported_by("count", "--help")
    assert "--ballots" in printed and "--method" in printed
