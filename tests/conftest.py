"""Fixtures shared by every test: a real Redis, wiped before each test."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from ballots.connection import client_from_url
from tests.redis_server import redis_url as _redis_url

_current: list[str] = []


def current_redis_url() -> str:
    """The session's Redis URL, for code that cannot take a fixture (hypothesis tests)."""
    return _current[-1]


@pytest.fixture(scope="session", autouse=True)
def redis_url() -> Iterator[str]:
    with _redis_url() as url:
        _current.append(url)
        yield url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = client_from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    """Fail loudly if a test tries to reach anything but this machine."""
    if isinstance(address, tuple):
        host = str(address[0])
        if not (host.startswith("127.") or host in ("::1", "localhost")):
            raise RuntimeError(f"test tried to leave the machine: {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)
