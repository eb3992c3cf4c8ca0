"""OPENPRIMARY_REDIS_URL, read without importing the Redis client (settings stay quick)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from ballots.errors import ConfigError

SENTINEL = "redis+sentinel"
CLUSTER = "redis+cluster"
SCHEMES = ("redis", "rediss", "unix", SENTINEL, CLUSTER)


@dataclass(frozen=True)
class RedisTarget:
    """Where OPENPRIMARY_REDIS_URL points: one server, a Sentinel-watched primary, a Cluster."""

    kind: Literal["server", "sentinel", "cluster"]
    url: str
    #: Sentinels, or a Cluster's seed nodes.
    nodes: tuple[tuple[str, int], ...] = ()
    #: The name the Sentinels know the primary by.
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    #: The Sentinels' own password, if they have one (``?sentinel_password=``).
    sentinel_password: str | None = None


def parse_redis_url(url: str) -> RedisTarget:
    """Read OPENPRIMARY_REDIS_URL; ConfigError saying what is wrong with it.

    ``redis://``, ``rediss://`` and ``unix://`` name one server (redis-py's
    own URL form); ``redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/DB]``
    the primary that Sentinels watch; ``redis+cluster://[user:password@]host:port[,host:port...]``
    any seed nodes of a Redis Cluster.
    """
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in SCHEMES:
        raise ConfigError(
            f"OPENPRIMARY_REDIS_URL={_masked(url)!r}: must start with redis://, rediss://, "
            "unix://, redis+sentinel:// or redis+cluster://"
        )
    if scheme not in (SENTINEL, CLUSTER):
        return RedisTarget("server", url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    nodes = tuple(_node(url, h) for h in hosts.split(",") if h.strip())
    if not nodes:
        raise ConfigError(f"OPENPRIMARY_REDIS_URL={_masked(url)!r}: names no host:port")
    path = [p for p in parts.path.split("/") if p]
    query = parse_qs(parts.query)
    common = {
        "url": url,
        "nodes": nodes,
        "username": unquote(username) or None,
        "password": unquote(password) or None,
    }
    if scheme == CLUSTER:
        if path:
            raise ConfigError(
                f"OPENPRIMARY_REDIS_URL={_masked(url)!r}: a Cluster has no service or "
                "database: redis+cluster://host:port[,host:port...]"
            )
        return RedisTarget("cluster", **common)  # type: ignore[arg-type]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError(
            f"OPENPRIMARY_REDIS_URL={_masked(url)!r}: must name the primary's service, as in "
            "redis+sentinel://host:26379,host:26379/mymaster[/DB]"
        )
    return RedisTarget(
        "sentinel",
        service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        sentinel_password=query.get("sentinel_password", [None])[0],
        **common,  # type: ignore[arg-type]
    )


def _node(url: str, text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"OPENPRIMARY_REDIS_URL={_masked(url)!r}: {text.strip()!r} is not host:port"
        )
    return host.strip("[]"), int(port)


def _masked(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{hosts}").geturl()
