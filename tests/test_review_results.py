"""Security review row 17: the published results.

A candidate whose name holds a double quote still has a public BLT file (which
other BLT readers can read, and ours reads back to the same name); the results
can be unpublished (CSRF-protected, audited); and publishing again does not
overwrite the first publication's time and publisher.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from ballots import audit, keys
from ballots.count.formats import parse_blt, parse_preflib, write_ballots
from ballots.count.model import Ballots, CountError
from ballots.election import read_election_file
from ballots.unseal import unseal
from tests.console_support import Organiser
from tests.factories import EXAMPLES, TEST_SEED
from tests.telegram_support import ANN, TelegramWorld, telegram_world

QUOTED = 'Sam "Sunny" Patel'
PUBLISH = "/organisers/riverside-2027/results/publish"
UNPUBLISH = "/organisers/riverside-2027/results/unpublish"


@asynccontextmanager
async def counted(
    redis: Redis, patel: str = "Sam Patel"
) -> AsyncIterator[tuple[TelegramWorld, Organiser]]:
    """The sample election (Sam Patel named ``patel``) closed and unsealed, one vote cast for
    him, and an organiser signed in to the console."""
    sample = read_election_file(EXAMPLES / "election.toml")
    renamed = tuple(replace(c, name=patel) if c.id == "patel" else c for c in sample.candidates)
    async with telegram_world(redis, election_changes={"candidates": renamed}) as world:
        election = world.core.election
        await world.say(ANN, await world.voting_code())
        await world.tap(ANN, patel)
        await world.tap(ANN, "Done")
        await world.tap(ANN, "Cast my vote")
        world.clock.set(election.closes + timedelta(minutes=1))
        await unseal(redis, election, TEST_SEED, world.clock, actor="trustees")
        browser = Organiser(world)
        try:
            await browser.sign_in()
            await browser.get("/organisers/riverside-2027/results")
            yield world, browser
        finally:
            await browser.close()


async def published(world: TelegramWorld) -> dict[str, str]:
    found = await world.core.redis.hgetall(keys.published(world.core.election.id))
    return {str(k): str(v) for k, v in found.items()}


async def actions(world: TelegramWorld) -> list[tuple[str, dict[str, object]]]:
    trail = await audit.read(world.core.redis, world.core.election.id)
    return [(e.action, e.details) for e in trail if e.action.startswith("results")]


async def test_a_name_with_a_double_quote_has_a_public_blt_that_reads_back(redis: Redis) -> None:
    async with counted(redis, QUOTED) as (world, browser):
        eid = world.core.election.id
        assert (await browser.post(PUBLISH, {"confirm": "yes"})).status == 200
        outsider = Organiser(world)
        try:
            blt = await outsider.get(f"/results/{eid}/ballots.blt")
            assert blt.status == 200, blt.text
            again = parse_blt(blt.text)
            assert QUOTED in again.candidates
            assert again.groups == {(QUOTED,): 1}
            # Other readers take a name as what lies between its line's two quotes.
            names = blt.text.splitlines()[-4:-1]
            assert all(line.count('"') == 2 for line in names), names
            soi = await outsider.get(f"/results/{eid}/ballots.soi")
            assert soi.status == 200 and QUOTED in parse_preflib(soi.text).candidates
        finally:
            await outsider.close()


def test_blt_round_trips_a_quote_and_refuses_its_stand_in() -> None:
    ballots = Ballots.from_rankings(["a", "b"], [["a", "b"]])
    quoted = Ballots(
        ballots.candidates, ballots.groups, names={"a": 'Ann "Red"', "b": "Bo"}, title='"X" ward'
    )
    out = io.StringIO()
    write_ballots(quoted, "blt", out)
    again = parse_blt(out.getvalue())
    assert again.candidates == ('Ann "Red"', "Bo") and again.title == '"X" ward'
    stand_in = Ballots(ballots.candidates, ballots.groups, names={"a": "Ann \uff02", "b": "Bo"})
    # It would read back as another name: refused, as a format refuses what it cannot hold.
    with pytest.raises(CountError, match="U\\+FF02"):
        write_ballots(stand_in, "blt", io.StringIO())


async def test_unpublishing_takes_the_public_page_down_and_is_audited(redis: Redis) -> None:
    async with counted(redis) as (world, browser):
        eid = world.core.election.id
        await browser.post(PUBLISH, {"confirm": "yes"})
        assert (await browser.get(f"/results/{eid}")).status == 200
        first = await published(world)
        # A forged unpublish changes nothing.
        forged = await browser.session.post(world.url + UNPUBLISH, data={"csrf": "forged"})
        assert forged.status == 403 and await published(world) == first
        page = await browser.get("/organisers/riverside-2027/results")
        assert "Unpublish the results" in page.text and "Publish the results" not in page.text
        done = await browser.post(UNPUBLISH, {})
        assert done.status == 200 and "Publish the results" in done.text
        assert await published(world) == {}
        for path in (
            f"/results/{eid}",
            f"/results/{eid}/ballots.blt",
            f"/results/{eid}/receipts.txt",
        ):
            gone = await browser.get(path)
            assert gone.status == 404 and "No results have been published" in gone.text, path
        assert (
            "results unpublished",
            {
                "factor": "console code by telegram",
                "published_at": first["at"],
                "published_by": first["by"],
            },
        ) in await actions(world)
        # Nothing left to unpublish: said so, nothing audited.
        again = await browser.post(UNPUBLISH, {})
        assert again.status == 409 and "not published" in again.text
        assert [a for a, _ in await actions(world)].count("results unpublished") == 1


async def test_publishing_again_keeps_the_first_time_and_publisher(redis: Redis) -> None:
    async with counted(redis) as (world, browser):
        eid = world.core.election.id
        await browser.post(PUBLISH, {"confirm": "yes"})
        first = await published(world)
        world.clock.advance(30 * 60)
        refused = await browser.post(PUBLISH, {"confirm": "yes"})
        assert refused.status == 409
        # When, as organisers read it (in the election's zone), and by whom.
        assert f"already published, Wed 1 Dec 2027 17:01 GMT by {first['by']}" in refused.text
        assert first["at"] == "2027-12-01T17:01:00+00:00"
        assert await published(world) == first
        public = await browser.get(f"/results/{eid}")
        assert public.status == 200
        trail = await actions(world)
        assert [a for a, _ in trail] == ["results published", "results publish refused"]
        assert trail[1][1]["published_at"] == first["at"]
        # Two organisers publishing at once: one publication, one refusal.
        await browser.post(UNPUBLISH, {})
        statuses = await asyncio.gather(
            *(browser.post(PUBLISH, {"confirm": "yes"}) for _ in range(2))
        )
        assert sorted(p.status for p in statuses) == [200, 409]
        assert [a for a, _ in await actions(world)].count("results published") == 2
        # After an unpublish, publishing is at the new time.
        assert (await published(world))["at"] != first["at"]
