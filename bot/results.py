"""Publishing an election's results, and taking them down: for the console and the command line.

Publishing stores the count as it stands (its JSON report and its pictures) with who published
it and when, once: publishing again is refused (and audited), so the first publication's time
and publisher stand until an organiser unpublishes (audited too).  Before the trustees'
unseal there is nothing to publish.

So that anyone can check the count, publishing also stores the files of a public recount,
each with its SHA-256: the sorted receipts list (a voter finds theirs), and, unless the
election file says ``publish_ballots = false``, the anonymised ballots as BLT, CSV and
PrefLib, sorted by ranking so nothing in them tells the order of casting (an electoral
college: a file per section and the weights).  The files are made once, at publication, so
their digests stand as long as the publication does.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from ballots import audit, keys
from ballots.clock import Clock
from ballots.count.college import weights_json
from ballots.count.formats import check_writable, write_ballots
from ballots.count.model import Ballots, CountError
from ballots.count.redis_source import count_election, read_ballots, read_college
from ballots.count.report import to_json
from ballots.count.result import Result
from ballots.count.svg import bars, sankey
from ballots.election import Election
from ballots.errors import OpenPrimaryError
from ballots.quiet import local
from ballots.receipts import all_receipts
from ballots.unseal import unsealed_at

log = logging.getLogger(__name__)

#: The ballot files of a public recount: file suffix -> format (``ballots.count.formats``).
BALLOT_FILES = {"blt": "blt", "csv": "csv", "soi": "preflib"}
_WHAT = {
    "blt": "BLT (OpenSTV, RCTab and other counting programs)",
    "csv": "CSV (one ballot a row, most preferred first)",
    "soi": "PrefLib",
}

#: Store the published results unless some are already: one step, so two organisers
#: publishing at once cannot overwrite each other.  Returns nothing once stored, else
#: when and by whom the results standing were published.
_PUBLISH_ONCE = """
-- KEYS[1] the published results; ARGV: field, value, field, value ...
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HMGET', KEYS[1], 'at', 'by')
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return {}
"""


class ResultsRefused(OpenPrimaryError):
    """Publishing or unpublishing that cannot be done now; nothing was changed."""


class NothingToPublish(ResultsRefused):
    """The ballots are still sealed: there is no count yet."""


@dataclass(frozen=True)
class PublicFile:
    """One file of a public recount: its name, what it holds, and its text."""

    name: str
    what: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))


def _ballot_files(ballots: Ballots, seats: int, stem: str, whose: str) -> list[PublicFile]:
    """The ballot files of one box (an election's, or a section's), in every format that can
    hold its names (one that cannot is left out, and logged)."""
    files = []
    for suffix, fmt in BALLOT_FILES.items():
        try:
            check_writable(ballots, fmt)
        except CountError as err:
            log.warning("%s.%s is not published: %s", stem, suffix, err)
            continue
        out = io.StringIO()
        write_ballots(ballots, fmt, out, seats)
        files.append(PublicFile(f"{stem}.{suffix}", f"{whose}, {_WHAT[suffix]}", out.getvalue()))
    return files


async def public_files(redis: Redis, election: Election) -> list[PublicFile]:
    """The files a publication offers: the ballots (unless ``publish_ballots`` is false)
    and the sorted receipts."""
    files: list[PublicFile] = []
    if election.publish_ballots and election.sections:
        college = await read_college(redis, election)
        for name in election.section_names:
            files += await asyncio.to_thread(
                _ballot_files,
                college.sections[name],
                election.seats,
                f"ballots-{name}",
                f"The ballots of section {name}",
            )
        files.append(
            PublicFile(
                "weights.json",
                "Each section's share and the weight of one of its ballots",
                weights_json(election, college),
            )
        )
    elif election.publish_ballots:
        ballots = await read_ballots(redis, election)
        files += await asyncio.to_thread(
            _ballot_files, ballots, election.seats, "ballots", "The ballots"
        )
    receipts = await all_receipts(redis, election)
    files.append(
        PublicFile(
            "receipts.txt",
            "Every receipt given, sorted: find yours to see that your ballot was counted",
            "".join(f"{r}\n" for r in receipts),
        )
    )
    return files


def published_files(published: dict[str, str]) -> list[dict[str, object]]:
    """The files a stored publication offers: name, what, sha256, bytes (without their text)."""
    listed: list[dict[str, object]] = json.loads(published.get("files", "[]"))
    return listed


@dataclass(frozen=True)
class Published:
    """A publication: when, by whom, and the count it shows."""

    at: str
    by: str
    result: Result


async def counted(redis: Redis, election: Election) -> Result | None:
    """The count of the unsealed ballots (None before the unseal)."""
    if await unsealed_at(redis, election) is None:
        return None
    return await count_election(redis, election)


async def publish(
    redis: Redis, election: Election, clock: Clock, actor: str, **details: object
) -> Published:
    """Make the count public as it stands now, unless it is already (ResultsRefused, saying
    when and by whom).  ``details`` go to the audit entry (the console's factor)."""
    try:
        result = await counted(redis, election)
    except CountError as err:  # a section of an electoral college too small to count
        raise ResultsRefused(f"the count of {election.id} cannot be published: {err}") from err
    if result is None:
        raise NothingToPublish(
            f"there is nothing to publish for {election.id} until the trustees unseal"
        )
    at = clock.now().isoformat(timespec="seconds")
    files = await public_files(redis, election)
    fields = {
        "at": at,
        "by": actor,
        "report": json.dumps(to_json(result)),
        "sankey": sankey(result),
        "bars": bars(result),
        "files": json.dumps(
            [{"name": f.name, "what": f.what, "sha256": f.sha256, "bytes": f.size} for f in files]
        ),
        **{f"file:{f.name}": f.text for f in files},
    }
    standing = await redis.eval(
        _PUBLISH_ONCE,
        1,
        keys.published(election.id),
        *[item for pair in fields.items() for item in pair],
    )
    if standing:
        was_at, was_by = (str(v) for v in standing)
        await audit.record(
            redis, clock, election.id, actor, "results publish refused",
            why="already published", published_at=was_at, published_by=was_by, **details,
        )  # fmt: skip
        raise ResultsRefused(
            f"the results of {election.id} were already published, "
            f"{local(election, datetime.fromisoformat(was_at), year=True)} by {was_by}: that "
            "publication stands; to publish the count again, unpublish it first"
        )
    await audit.record(
        redis, clock, election.id, actor, "results published",
        winners=list(result.winners), ballots=result.ballots,
        files=", ".join(f"{f.name} sha256:{f.sha256}" for f in files), **details,
    )  # fmt: skip
    return Published(at, actor, result)


async def unpublish(
    redis: Redis, election: Election, clock: Clock, actor: str, **details: object
) -> tuple[str, str]:
    """Take the published results down (``/results/ID`` answers 404 again); when and by
    whom they had been published.  ResultsRefused if they are not published."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hmget(keys.published(election.id), ["at", "by"])
        pipe.delete(keys.published(election.id))
        (at, by), removed = await pipe.execute()
    if not removed:
        raise ResultsRefused(
            f"the results of {election.id} are not published, so there is nothing to unpublish"
        )
    await audit.record(
        redis, clock, election.id, actor, "results unpublished",
        published_at=at, published_by=by, **details,
    )  # fmt: skip
    return str(at), str(by)
