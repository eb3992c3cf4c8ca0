"""The project's exceptions: one base class, specific subclasses."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class OpenPrimaryError(Exception):
    """Base class for every error OpenPrimary raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one line of an organiser's file."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


class FileProblems(OpenPrimaryError):
    """An organiser's file has one or more bad lines; nothing was changed."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: Sequence[Problem] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UnknownElection(OpenPrimaryError):
    """No election with this id has been loaded."""


class ElectionLocked(OpenPrimaryError):
    """A change to an election that its cast ballots forbid."""


class ConfigError(OpenPrimaryError):
    """A setting is missing or malformed."""


class StoreUnavailable(OpenPrimaryError):
    """Redis cannot be reached, or refuses writes: nothing was done; try again later."""


def unavailable(err: BaseException) -> bool:
    """Whether an error means Redis is down, or up but refusing writes (out of memory,
    MISCONF after a failed save, a read-only replica, too few replicas for
    min-replicas-to-write, a Cluster failing over, a restarted server that has not got our
    scripts back yet): nothing to do but try again later."""
    from redis.exceptions import (
        ClusterDownError,
        MasterDownError,
        NoScriptError,
        OutOfMemoryError,
        ReadOnlyError,
        ResponseError,
        SlotNotCoveredError,
        TryAgainError,
    )
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(err, StoreUnavailable):
        return True
    if isinstance(err, RedisConnectionError | RedisTimeoutError | OutOfMemoryError | ReadOnlyError):
        return True
    if isinstance(err, ClusterDownError | TryAgainError | MasterDownError | SlotNotCoveredError):
        return True
    if isinstance(err, NoScriptError):
        # redis-py loads a missing script and tries again; a server restarted in between
        # can still answer NOSCRIPT, and the platform's retry loads it.
        return True
    return isinstance(err, ResponseError) and str(err).startswith(
        ("MISCONF", "NOREPLICAS", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN")
    )
