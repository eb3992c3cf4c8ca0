"""The audit trail, filterable by words in the action, the actor or the details."""

from __future__ import annotations

import json

from aiohttp import web

from ballots import audit
from channels.web.render import core_of, page

#: The most entries one page shows, newest first.
SHOWN = 500


async def audit_page(request: web.Request) -> web.StreamResponse:
    """GET /organisers/audit?q=WORDS."""
    core = core_of(request)
    wanted = request.query.get("q", "").strip()
    words = wanted.lower().split()
    entries = []
    for entry in reversed(await audit.read(core.redis, core.election.id)):
        details = json.dumps(entry.details, sort_keys=True)
        text = f"{entry.action} {entry.actor} {details}".lower()
        if all(w in text for w in words):
            entries.append((entry, details))
            if len(entries) >= SHOWN:
                break
    return page(request, "audit.html", nav="audit", entries=entries, q=wanted)
