"""The public recount: the published ballots and receipts, their SHA-256, and a recount by an
independent counter that agrees; a voter finds their receipt; ``publish_ballots = false``."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from datetime import timedelta

import votelib.evaluate.sequential as votelib_sequential
from redis.asyncio import Redis

from ballots import keys
from ballots.roll import Supporter
from ballots.unseal import unseal
from bot import results, texts
from bot.i18n import current, speaking
from bot.messages import OutboundMessage
from channels.gsm import segments
from channels.sms import sms_text
from tests.console_support import Organiser
from tests.factories import TEST_SEED, Harness, Outbox
from tests.telegram_support import telegram_world

PUBLIC = "https://vote.example.org"
ROLL = [Supporter(f"S{i:03d}", f"Supporter {i}", f"+4477009005{i:02d}") for i in range(24)]
#: (how many, ranking by ballot-paper number: 1 Green, 2 Patel, 3 Okafor, 4 Byrne).
VOTES = [(7, "1 3"), (6, "2 1"), (5, "3 2 1"), (4, "4 3"), (2, "2")]


async def _vote(h: Harness, sid: str, ranking: str) -> str:
    code = (await h.core.codes.issue_voting_codes(h.core.election, [sid]))[0][3]
    chat = {"channel": "console", "address": f"chat-{sid}"}
    await h.said("hi", **chat)
    await h.said(code, **chat)
    await h.said(ranking, **chat)
    await h.said("0", **chat)
    return await h.said("YES", **chat)


async def test_the_published_ballots_recount_the_same_and_a_voter_finds_their_receipt(
    redis: Redis,
) -> None:
    async with telegram_world(redis, election_changes={"roll": ROLL}, public_url=PUBLIC) as world:
        election = world.core.election
        h = Harness(world.core, world.clock, Outbox("sms"))
        voters = iter(ROLL)
        receipts = []
        for n, ranking in VOTES:
            for _ in range(n):
                reply = await _vote(h, next(voters).supporter_id, ranking)
                # The receipt message says where to check it.
                assert reply.endswith(f"After the count, find it at {PUBLIC}/results/{election.id}")
                receipts.append(re.search(r"Receipt (\S+)\.", reply).group(1))  # type: ignore[union-attr]
        world.clock.set(election.closes + timedelta(minutes=1))
        await unseal(redis, election, TEST_SEED, world.clock, actor="trustees")
        await results.publish(redis, election, world.clock, "test")
        public = Organiser(world)
        try:
            page = await public.get(f"/results/{election.id}")
            row = r'>([\w.-]+\.(?:blt|csv|soi|txt))</a>.*?<code class="digest">([0-9a-f]{64})<'
            listed = dict(re.findall(row, page.text, re.S))
            assert sorted(listed) == ["ballots.blt", "ballots.csv", "ballots.soi", "receipts.txt"]
            files = {}
            for name, digest in listed.items():
                got = await public.get(f"/results/{election.id}/{name}")
                assert got.status == 200
                assert hashlib.sha256(got.text.encode()).hexdigest() == digest
                files[name] = got.text

            # An independent recount of the CSV: votelib's instant-runoff, and the first
            # preferences, against the published report.
            rows = [
                r
                for r in csv.reader(io.StringIO(files["ballots.csv"]))
                if r and not r[0].startswith("#")
            ]
            assert len(rows) == 24
            profile = Counter(tuple(r) for r in rows)
            (winner,) = votelib_sequential.TransferableVoteSelector().evaluate(dict(profile), 1)
            report = json.loads(str(await redis.hget(keys.published(election.id), "report")))
            names = report["candidates"]
            assert [names[w] for w in report["winners"]] == [winner]
            first = Counter(r[0] for r in rows)
            assert {names[c]: v for c, v in report["rounds"][0]["tallies"].items() if v} == first
            # Sorted by ranking (by ballot-paper numbers): nothing tells the order of casting.
            number = {name: i for i, name in enumerate(names.values(), 1)}
            numbered = [tuple(number[n] for n in row) for row in rows]
            assert numbered == sorted(numbered)

            # Every receipt given is in the sorted list, once.
            listed_receipts = files["receipts.txt"].splitlines()
            assert listed_receipts == sorted(receipts)
            # And RECEIPT says where to look.
            again = await h.said("RECEIPT", channel="console", address="chat-S000")
            assert receipts[0] in again and f"{PUBLIC}/results/{election.id}" in again
        finally:
            await public.close()


async def test_an_election_that_keeps_its_ballots_back_publishes_only_the_receipts(
    redis: Redis,
) -> None:
    changes = {"roll": ROLL, "publish_ballots": False}
    async with telegram_world(redis, election_changes=changes) as world:
        election = world.core.election
        h = Harness(world.core, world.clock, Outbox("sms"))
        reply = await _vote(h, "S000", "2 1")
        # No public address configured: the receipt message gives none.
        assert "After the count" not in reply
        world.clock.set(election.closes + timedelta(minutes=1))
        await unseal(redis, election, TEST_SEED, world.clock, actor="trustees")
        await results.publish(redis, election, world.clock, "test")
        public = Organiser(world)
        try:
            page = await public.get(f"/results/{election.id}")
            assert "chose not to publish the ballots" in page.text
            assert "ballots.blt" not in page.text
            for name in ("ballots.blt", "ballots.csv"):
                assert (await public.get(f"/results/{election.id}/{name}")).status == 404
            assert (await public.get(f"/results/{election.id}/receipts.txt")).status == 200
        finally:
            await public.close()


def test_where_to_check_goes_by_sms_only_where_it_costs_no_more_segments() -> None:
    url = f"{PUBLIC}/results/riverside-2027"

    def cast_sms() -> str:
        text = texts.cast("9RSTT4NTKJ", url)
        return sms_text(
            OutboundMessage(text, spare=texts.check_receipt(url), faithful=True, language=current())
        )

    english = cast_sms()
    assert english.endswith(url) and segments(english) == 1
    with speaking("ur"):
        urdu = cast_sms()
        assert url in texts.cast("9RSTT4NTKJ", url)  # on Telegram it is always there
    # In Urdu (UCS-2, 70 characters a segment) it would take two more: by SMS it is left off,
    # and RECEIPT gives it.
    assert url not in urdu and segments(urdu) == 1
