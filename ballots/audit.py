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
#: Alerts kept in an election's stream of alerts (the audit trail keeps them all).
ALERTS_KEPT = 1_000


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
    entry_id = await redis.xadd(
        keys.audit(election_id),
        _fields(clock, actor, action, details),  # type: ignore[arg-type]
    )
    return str(entry_id)


async def record_alert(
    redis: Redis, clock: Clock, election_id: str, kind: str, **details: object
) -> None:
    """An alert: in the audit trail, and in the election's own stream of alerts, which
    nothing else writes, so no flood of other entries can push an alert out of sight."""
    fields = _fields(clock, "openprimary", f"alert: {kind}", details)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd(keys.audit(election_id), fields)  # type: ignore[arg-type]
        pipe.xadd(
            keys.alerts(election_id),
            fields,  # type: ignore[arg-type]
            maxlen=ALERTS_KEPT,
            approximate=True,
        )
        await pipe.execute()


async def latest_alerts(redis: Redis, election_id: str, count: int) -> list[AuditEntry]:
    """The newest ``count`` alerts, newest first."""
    rows: list[tuple[str, dict[str, str]]] = await redis.xrevrange(  # type: ignore[assignment]
        keys.alerts(election_id), count=count
    )
    return [_entry(entry_id, f) for entry_id, f in rows]


def _fields(clock: Clock, actor: str, action: str, details: dict[str, object]) -> dict[str, str]:
    bad = _FORBIDDEN & set(details)
    if bad:
        raise ValueError(f"audit entries must not carry {', '.join(sorted(bad))}")
    return {
        "at": clock.now().astimezone(UTC).isoformat(timespec="seconds"),
        "actor": actor,
        "action": action,
        "details": json.dumps(details, sort_keys=True, default=str),
    }


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
