"""The audit trail, filterable by words in the action, the actor or the details."""

from __future__ import annotations

from aiohttp import web

from ballots import audit
from channels.web.render import core_of, page

#: The most entries one page shows, newest first.
SHOWN = 500


def sentence(details: dict[str, object]) -> str:
    """An entry's details as a person reads them: "Changes: closes: Sun 13 Dec 2026 21:00 GMT
    → Sun 13 Dec 2026 22:00 GMT. Factor: console code by telegram." (not JSON)."""
    said = []
    for key, value in sorted(details.items()):
        if isinstance(value, list | tuple):
            shown = "; ".join(str(v) for v in value) or "none"
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        elif isinstance(value, dict):
            shown = ", ".join(f"{k} {v}" for k, v in sorted(value.items())) or "none"
        else:
            shown = str(value)
        said.append(f"{key.replace('_', ' ').capitalize()}: {shown.replace(' -> ', ' → ')}.")
    return " ".join(said)


async def audit_page(request: web.Request) -> web.StreamResponse:
    """GET /organisers/audit?q=WORDS."""
    core = core_of(request)
    wanted = request.query.get("q", "").strip()
    words = wanted.lower().split()
    entries = []
    for entry in reversed(await audit.read(core.redis, core.election.id)):
        details = sentence(entry.details)
        text = f"{entry.action} {entry.actor} {details}".lower()
        if all(w in text for w in words):
            entries.append((entry, details))
            if len(entries) >= SHOWN:
                break
    return page(request, "audit.html", nav="audit", entries=entries, q=wanted)
