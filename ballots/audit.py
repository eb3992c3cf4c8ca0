"""The organisers' audit trail: an append-only Redis stream per election.

Entries say who did what and when.  They never hold a code or a ranking:
``record`` refuses detail keys that could carry one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from ballots import keys
from ballots.clock import Clock

_FORBIDDEN = frozenset({"code", "codes", "otp", "ranking", "ballot", "grant", "token"})


@dataclass(frozen=True)
class AuditEntry:
    """One organiser action."""

    id: str
    at: datetime
    actor: str
    action: str
    details: dict[str, object]


async def record(
    redis: Redis, clock: Clock, election_id: str, actor: str, action: str, **details: object
) -> str:
    """Append an entry; returns its stream id."""
    bad = _FORBIDDEN & set(details)
    if bad:
        raise ValueError(f"audit entries must not carry {', '.join(sorted(bad))}")
    fields = {
        "at": clock.now().astimezone(UTC).isoformat(timespec="seconds"),
        "actor": actor,
        "action": action,
        "details": json.dumps(details, sort_keys=True, default=str),
    }
    entry_id = await redis.xadd(keys.audit(election_id), fields)  # type: ignore[arg-type]
    return str(entry_id)


async def latest(redis: Redis, election_id: str, count: int) -> list[AuditEntry]:
    """The newest ``count`` entries, newest first (read from the end of the stream)."""
    rows: list[tuple[str, dict[str, str]]] = await redis.xrevrange(  # type: ignore[assignment]
        keys.audit(election_id), count=count
    )
    return [_entry(entry_id, f) for entry_id, f in rows]


async def read(redis: Redis, election_id: str, count: int | None = None) -> list[AuditEntry]:
    """The trail, oldest first."""
    rows: list[tuple[str, dict[str, str]]] = await redis.xrange(  # type: ignore[assignment]
        keys.audit(election_id), count=count
    )
    return [_entry(entry_id, f) for entry_id, f in rows]


def _entry(entry_id: str, f: dict[str, str]) -> AuditEntry:
    return AuditEntry(
        id=entry_id,
        at=datetime.fromisoformat(f["at"]),
        actor=f["actor"],
        action=f["action"],
        details=json.loads(f.get("details", "{}")),
    )
