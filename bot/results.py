"""Publishing an election's results, and taking them down: for the console and the command line.

Publishing stores the count as it stands (its JSON report and its pictures) with who published
it and when, once: publishing again is refused (and audited), so the first publication's time
and publisher stand until an organiser unpublishes (audited too).  Before the trustees'
unseal there is nothing to publish.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from ballots import audit, keys
from ballots.clock import Clock
from ballots.count.model import CountError
from ballots.count.redis_source import count_election
from ballots.count.report import to_json
from ballots.count.result import Result
from ballots.count.svg import bars, sankey
from ballots.election import Election
from ballots.errors import OpenPrimaryError
from ballots.quiet import local
from ballots.unseal import unsealed_at

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
    fields = {
        "at": at,
        "by": actor,
        "report": json.dumps(to_json(result)),
        "sankey": sankey(result),
        "bars": bars(result),
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
        winners=list(result.winners), ballots=result.ballots, **details,
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
