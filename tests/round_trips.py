"""Counting the Redis round trips a client makes: for the test that pins the router's, and
for the benchmarks' "Redis round trips a message".

A round trip is one write of commands to the server and the wait for their
answers: one command, or one whole pipeline.  redis-py sends each of those
with one ``send_packed_command`` on a connection, so a connection class that
counts those calls counts round trips (the server's own count,
``total_commands_processed``, counts the commands inside pipelines and
scripts too, which cost no extra wait).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from ballots.connection import client_from_url


class RoundTrips:
    """A counter shared by the connections of one client."""

    def __init__(self) -> None:
        self.count = 0

    def since(self, before: int) -> int:
        return self.count - before


def counting_client(url: str, pool_size: int = 64) -> tuple[Redis, RoundTrips]:
    """A client for ``url`` (one server) as the app builds it, whose round trips are counted."""
    trips = RoundTrips()

    class Counting(Connection):
        async def send_packed_command(
            self, command: bytes | str | Iterable[bytes], check_health: bool = True
        ) -> Any:
            trips.count += 1
            return await super().send_packed_command(command, check_health)

    client = client_from_url(url, pool_size)
    client.connection_pool.connection_class = Counting
    return client, trips
