"""A running server follows its elections as organisers change them, with no restart, and
serves an election loaded while it runs.

Every save of an election bumps its version (``ballots.election.save_election``).  Each
server process reads the version once a second and, when it has moved, loads the election
again and hands it to every part of the core (:meth:`bot.core.Core.follow`): a poll closed
or extended from the command line or the console is followed everywhere within about a
second.  The cast script stays the authority on the window whatever a server holds: it
reads the times each save writes to the shards, so no ballot gets in after the close even
while a server has yet to follow.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from ballots import keys
from ballots.election import election_version, get_election, list_elections
from ballots.errors import ConfigError, UnknownElection
from bot.conversation import DONE_KEPT
from bot.core import Deployment

log = logging.getLogger(__name__)

#: Seconds between two reads of the election's version.
EVERY = 1.0


async def follow(deployment: Deployment, every: float = EVERY) -> None:
    """Keep ``deployment`` on its elections as stored, and serve the ones loaded while it
    runs (unless it serves only the ones named), until cancelled."""
    seen = {eid: await election_version(deployment.redis, eid) for eid in deployment.cores}
    task = asyncio.current_task()
    while True:
        await asyncio.sleep(every)
        try:
            await _catch_up(deployment, seen)
        except RedisError as err:  # Redis away for a moment: the next read tries again
            log.warning("could not read the elections' versions: %s", err)
        if task is not None and task.cancelling():
            # Stopped during a read that did not raise the cancellation (redis-py can give
            # a cancelled command back as a result or a connection error): stop now, or
            # whoever stops the app waits for ever.
            raise asyncio.CancelledError


async def _catch_up(deployment: Deployment, seen: dict[str, int]) -> None:
    """One look: each served election's version, and the elections loaded."""
    redis = deployment.redis
    served = list(deployment.cores.items())
    async with redis.pipeline(transaction=False) as pipe:  # every version, one round trip
        for eid, _ in served:
            pipe.hget(keys.election(eid), "version")
        versions = [int(v or 0) for v in await pipe.execute()]
    for (eid, core), version in zip(served, versions, strict=True):
        if version == seen.get(eid):
            continue
        try:
            election = await get_election(redis, eid)
        except UnknownElection:  # deleted under it: served as it was until the restart
            if seen.get(eid) != -1:
                log.error("election %s is no longer loaded; serving it as it was", eid)
            seen[eid] = -1
            continue
        core.follow(election)
        seen[eid] = version
        log.info("election %s changed (version %d): following it", eid, version)
    if deployment.only is not None or deployment.make_core is None:
        return
    for eid in await list_elections(redis):
        if eid in deployment.cores or eid in deployment.refused:
            continue
        election = await get_election(redis, eid)
        if election.closes + DONE_KEPT <= deployment.clock.now():
            continue
        try:
            core = await deployment.make_core(deployment, election)
        except ConfigError as err:  # (a secret key that is not the election's)
            log.error("cannot serve election %s, loaded while running: %s", eid, err)
            seen[eid] = -1
            deployment.refused.add(eid)
            continue
        deployment.add(core)
        seen[eid] = await election_version(redis, eid)
        log.info("election %s was loaded: serving it too", eid)
