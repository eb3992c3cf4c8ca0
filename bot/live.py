"""A running server follows its election as organisers change it, with no restart.

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

from ballots.election import election_version, get_election
from bot.core import Core

log = logging.getLogger(__name__)

#: Seconds between two reads of the election's version.
EVERY = 1.0


async def follow(core: Core, every: float = EVERY) -> None:
    """Keep ``core`` on the election as stored, until cancelled."""
    eid = core.election.id
    seen = await election_version(core.redis, eid)
    while True:
        await asyncio.sleep(every)
        try:
            version = await election_version(core.redis, eid)
            if version == seen:
                continue
            core.follow(await get_election(core.redis, eid))
            seen = version
            log.info("election %s changed (version %d): following it", eid, version)
        except RedisError as err:  # Redis away for a moment: the next read tries again
            log.warning("could not read election %s's version: %s", eid, err)
