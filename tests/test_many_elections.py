"""One ``serve``, one number and one bot, for many selections at once.

Three elections are loaded: the sample one (Riverside: codes and SMS codes), Hackney North
(SMS codes only, a roll that shares Ann's phone) and the London Mayor (voting codes only,
a roll that shares Bilal).  A supporter on two rolls votes in both through one chat; one on
a single roll goes straight into its ballot; a code from one election is refused in
another's ballot; a typed number learns nothing of the rolls it is on.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from ballots.codes import CodePolicy
from ballots.election import Candidate
from ballots.roll import Supporter
from bot.messages import InboundMessage
from channels.standins.telegram_api import TelegramUser
from tests.factories import NOW, Harness, Outbox, install_test_key, sample_election, settings
from tests.round_trips import counting_client
from tests.sms_support import ANN, CARYS, sms_stack
from tests.telegram_support import telegram_world

RIVERSIDE = "riverside-2027"
HACKNEY = "hackney-north"
LONDON = "london-mayor"
#: Bilal on the sample roll (S1002) and on the London roll (L7), by Telegram.
BILAL = TelegramUser(200002, "Bilal")
GUEST = TelegramUser(300003, "Guest")  # on no roll
DEV = "+447700900104"  # S1004, on the Riverside roll only

CANDIDATES = (
    Candidate("ahmed", "Rushanara Ahmed"),
    Candidate("byrne", "Ellie Byrne"),
    Candidate("cole", "Dan Cole"),
)


async def load_the_others(redis: Redis) -> None:
    """Hackney North and the London Mayor beside the sample election."""
    await sample_election(
        redis,
        id=HACKNEY,
        title="Hackney North selection",
        identity=("sms-otp",),
        candidates=CANDIDATES,
        organisers=("+447700900077",),
        roll=[
            Supporter("H1", "Ann Hughes", ANN),
            Supporter("H2", "Hana Ito", "+447700900201", telegram_id="200002"),
        ],
    )
    await sample_election(
        redis,
        id=LONDON,
        title="London Mayor selection",
        identity=("code",),
        candidates=CANDIDATES[:2],
        organisers=("tg:100088",),
        roll=[Supporter("L7", "Bilal Khan", "+447700900102", telegram_id="200002")],
        opens=NOW - timedelta(days=3),
        closes=NOW + timedelta(days=3),
    )


def code_in(text: str) -> str:
    found = re.findall(r"\b(\d{6})\b", text)
    assert found, text
    return str(found[-1])


async def test_an_sms_voter_on_two_rolls_votes_in_both_through_one_chat(redis: Redis) -> None:
    await load_the_others(redis)
    async with sms_stack(redis, every_election=True) as stack:
        ann = stack.phone(ANN)
        menu = "\n".join(await ann.text("Hi"))
        # Her two selections, by title: the London Mayor (not on its roll) is not offered.
        assert "2 selections" in menu, menu
        assert "1 Hackney North selection" in menu and "Riverside" in menu, menu
        assert "London" not in menu
        asked = "\n".join(await ann.text("1"))
        assert "code" in asked.lower(), asked
        ranking = "\n".join(await ann.text(code_in(asked)))
        assert "Rushanara Ahmed" in ranking, ranking  # Hackney's ballot
        confirm = "\n".join(await ann.text("2 1"))
        assert "Ellie Byrne" in confirm
        cast = "\n".join(await ann.text("YES"))
        assert "Receipt" in cast or "receipt" in cast, cast
        # ... and the next one is offered at once.
        assert "also vote in 1 more selection" in cast and "Riverside" in cast, cast
        asked = "\n".join(await ann.text("1"))
        assert "code" in asked.lower(), asked
        ranking = "\n".join(await ann.text(code_in(asked)))
        assert "Alex Green" in ranking, ranking  # Riverside's ballot
        await ann.text("1 2")
        cast = "\n".join(await ann.text("YES"))
        assert "also vote" in cast and "Hackney" in cast  # (already voted there: it says so)
        receipts = "\n".join(await ann.text("RECEIPT"))
        assert receipts.count("Receipt:") == 2, receipts
        assert "Hackney North selection:" in receipts and "Riverside" in receipts
        deployment = stack.core.deployment
        assert deployment is not None
        hackney, riverside = deployment.cores[HACKNEY], deployment.cores[RIVERSIDE]
        from tests.factories import stored_ballots

        assert await stored_ballots(redis, hackney.election) == {"byrne,ahmed": 1}
        assert await stored_ballots(redis, riverside.election) == {"green,patel": 1}
        # Voted in both: choosing one again says so, with its receipt; no second ballot.
        again = "\n".join(await ann.text("1"))
        assert "already been cast" in again, again
        assert await stored_ballots(redis, hackney.election) == {"byrne,ahmed": 1}


async def test_a_voter_on_one_roll_goes_straight_into_its_ballot(redis: Redis) -> None:
    await load_the_others(redis)
    async with sms_stack(redis, every_election=True) as stack:
        carys = stack.phone(CARYS)  # on the Riverside roll only
        first = "\n".join(await carys.text("Hi"))
        assert "selection" not in first.split(".")[0] or "Reply with" in first
        assert "You can vote in" not in first, first
        ranking = "\n".join(await carys.text(code_in(first)))
        assert "Alex Green" in ranking, ranking


async def test_a_typed_number_is_asked_which_selection_whatever_the_rolls(
    redis: Redis,
) -> None:
    await load_the_others(redis)
    async with telegram_world(redis, every_election=True) as world:
        on_roll = (await world.say(GUEST, "S1001"))["text"]
        # Another chat, a number on no roll: the very same question.
        other = TelegramUser(300004, "Other")
        off_roll = (await world.say(other, "X9999"))["text"]
        assert on_roll == off_roll, (on_roll, off_roll)
        assert "Which selection is that number for?" in on_roll
        # Only the elections that take supporter numbers are offered.
        assert "Hackney" in on_roll and "Riverside" in on_roll and "London" not in on_roll
        # The chosen one goes on with the number typed before: Riverside's answer.
        chosen = await world.tap(GUEST, "Riverside Party selection: Mayor of Riverside")
        assert chosen is not None
        assert "If S1001 is on the roll" in world.api.last_message(GUEST.id)["text"]


async def test_a_telegram_voter_on_two_rolls_votes_in_both_through_one_chat(
    redis: Redis,
) -> None:
    await load_the_others(redis)
    async with telegram_world(redis, every_election=True) as world:
        deployment = world.core.deployment
        assert deployment is not None
        london = deployment.cores[LONDON]
        rows = await london.codes.issue_voting_codes(london.election, ["L7"])
        riverside_code = await world.voting_code("S1002")
        # A London code goes straight into London's ballot, whatever chat types it.
        ranking = (await world.say(BILAL, rows[0][3]))["text"]
        assert "Rushanara Ahmed" in ranking and "Alex Green" not in ranking, ranking
        await world.tap(BILAL, "Rushanara Ahmed")
        await world.tap(BILAL, "Done")
        await world.tap(BILAL, "Cast my vote")
        texts = world.texts(BILAL)
        # The rolls link his Telegram account in Riverside and Hackney too: both offered.
        assert any("also vote in 2 more selections" in t and "Riverside" in t for t in texts), texts
        # Riverside's code, typed after: Riverside's ballot.
        ranking = (await world.say(BILAL, riverside_code))["text"]
        assert "Alex Green" in ranking, ranking
        await world.tap(BILAL, "Sam Patel")
        await world.tap(BILAL, "Done")
        await world.tap(BILAL, "Cast my vote")
        receipts = (await world.say(BILAL, "RECEIPT"))["text"]
        assert receipts.count("Receipt:") == 2, receipts
        from tests.factories import stored_ballots

        assert await stored_ballots(redis, london.election) == {"ahmed": 1}
        assert await stored_ballots(redis, world.core.election) == {"patel": 1}


async def test_a_code_of_one_election_is_refused_in_another_s_ballot(redis: Redis) -> None:
    from tests.factories import stored_ballots

    await load_the_others(redis)
    async with telegram_world(redis, every_election=True) as world:
        deployment = world.core.deployment
        assert deployment is not None
        london = deployment.cores[LONDON]
        rows = await london.codes.issue_voting_codes(london.election, ["L7"])
        london_code = rows[0][3]
        riverside_code = await world.voting_code("S1002")
        # In Riverside's ballot (identified there), London's code is no vote at all.
        assert "Alex Green" in (await world.say(BILAL, riverside_code))["text"]
        refused = (await world.say(BILAL, london_code))["text"]
        assert "Rushanara" not in refused, refused
        assert await stored_ballots(redis, london.election) == {}
        assert await stored_ballots(redis, world.core.election) == {}
        # Typed while a chat is still identifying in Riverside, it is London's ballot that
        # opens, never Riverside's.
        greeting = (await world.say(GUEST, "hello"))["text"]
        assert "3 selections" in greeting, greeting
        await world.tap(GUEST, "Riverside Party selection: Mayor of Riverside")
        ranking = (await world.say(GUEST, london_code))["text"]
        assert "Rushanara Ahmed" in ranking and "Alex Green" not in ranking, ranking


async def test_start_help_and_stale_buttons_leave_the_chat_free_to_choose(redis: Redis) -> None:
    await load_the_others(redis)
    async with sms_stack(redis, every_election=True) as stack:
        carys = stack.phone(CARYS)  # on Riverside's roll only
        started = "\n".join(await carys.text("START"))
        assert "3 selections" in started, started
        # ... and she is not held in whichever election sorts first: her own roll's code.
        asked = "\n".join(await carys.text("Hi"))
        assert "code to vote in Riverside" in asked, asked
        assert "\n".join(await carys.text("⓵"))  # an odd digit is no crash
    async with telegram_world(redis, every_election=True) as world:
        menu = await world.say(GUEST, "hello")
        assert "3 selections" in menu["text"]
        await world.say(GUEST, "S1001")  # a newer menu: the elections that take numbers
        # The old menu's London button no longer stands for anything offered: refused.
        old = await world.tap(GUEST, "London Mayor selection", menu)
        assert old is not None
        last = world.api.last_message(GUEST.id)["text"]
        assert "If S1001 is on the roll" not in last, last
        assert "Which selection is that number for?" in last, last


@pytest.fixture
async def three(redis: Redis, redis_url: str) -> AsyncIterator[tuple[Harness, object]]:
    """Three elections in one deployment, on a client that counts round trips."""
    from ballots.clock import ManualClock
    from openprimary.app import build

    client, trips = counting_client(redis_url)
    try:
        await load_the_others(client)
        election = await sample_election(client)
        await install_test_key(client, election)
        sms = Outbox("sms")
        deployment = await build(
            settings(), client, ManualClock(NOW), None, CodePolicy(), senders={"sms": sms}
        )
        assert len(deployment.cores) == 3
        yield Harness(deployment.cores[RIVERSIDE], ManualClock(NOW), sms), trips
    finally:
        await client.aclose()


async def test_a_voter_on_one_roll_still_takes_three_round_trips_a_message_at_most(
    three: tuple[Harness, object],
) -> None:
    h, counted = three
    from tests.round_trips import RoundTrips

    assert isinstance(counted, RoundTrips)
    # The first voter's messages also load the scripts into the fresh server.
    for phone in (DEV, CARYS):
        each = []
        replies = ""
        for text in ("Hi", "code", "1", "2", "0", "YES"):
            if text == "code":
                text = code_in(replies)  # (texted to the phone it came from: a reply)
            h.counter += 1
            msg = InboundMessage("sms", phone, text, message_id=f"m{h.counter}")
            before = counted.count
            out = await h.core.router.handle(msg)
            replies = "\n".join(r.text for r in out)
            each.append(counted.since(before))
        assert "Receipt" in replies, replies
    assert max(each) <= 3, each


async def test_no_voting_code_is_issued_that_another_election_has_issued(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await load_the_others(redis)
    h = await _harness(redis)
    deployment = h.core.deployment
    assert deployment is not None
    riverside, london = deployment.cores[RIVERSIDE], deployment.cores[LONDON]
    draws = iter([42, 42, 43])
    with monkeypatch.context() as patched:
        patched.setattr("ballots.codes.secrets.randbelow", lambda _n: next(draws))
        [(_, _, _, taken)] = await riverside.codes.issue_voting_codes(riverside.election, ["S1001"])
        [(_, _, _, drawn)] = await london.codes.issue_voting_codes(london.election, ["L7"])
    # London's first draw was Riverside's code: it drew again.
    assert taken.replace("-", "").endswith("42") and drawn.replace("-", "").endswith("43")
    replies = await h.say(drawn, channel="telegram", address="55", user_id="55")
    assert "Rushanara Ahmed" in "\n".join(r.text for r in replies)


async def _harness(redis: Redis) -> Harness:
    """The three elections served by one deployment, recording SMS."""
    from ballots.clock import ManualClock
    from openprimary.app import build

    await sample_election(redis)
    sms = Outbox("sms")
    clock = ManualClock(NOW)
    deployment = await build(settings(), redis, clock, None, senders={"sms": sms})
    return Harness(deployment.cores[RIVERSIDE], clock, sms)


async def test_each_organiser_sees_their_own_elections_and_nothing_of_another(
    redis: Redis,
) -> None:
    from channels.web.guard import CONSOLE_APP, SIGNINS
    from tests.console_support import Organiser

    await load_the_others(redis)
    async with telegram_world(redis, every_election=True) as world:
        riverside = Organiser(world)  # tg:100001 organises Riverside only
        london = Organiser(world)  # tg:100088 organises the London Mayor only
        try:
            page = await riverside.sign_in()
            assert page.status == 200 and page.url.endswith("/organisers/riverside-2027/")
            listed = await riverside.get("/organisers/")
            assert "Mayor of Riverside" in listed.text
            assert "London" not in listed.text and "Hackney" not in listed.text
            # Another election's pages are not theirs: sent to that election's sign-in.
            for path in ("/", "/roll", "/audit", "/results", "/reminders"):
                other = await riverside.get(f"/organisers/{LONDON}{path}")
                assert other.url.endswith(f"/organisers/{LONDON}/sign-in"), path
                assert "L7" not in other.text and "Bilal" not in other.text
            # Their session, carried to the other election's cookie, opens nothing there.
            cookies = {c.key: c.value for c in riverside.session.cookie_jar}
            forged = Organiser(world)
            forged.session.cookie_jar.update_cookies(
                {f"op_console-{LONDON}": cookies["op_console-riverside-2027"]}
            )
            stolen = await forged.get(f"/organisers/{LONDON}/roll")
            assert stolen.url.endswith(f"/organisers/{LONDON}/sign-in")
            await forged.close()
            # Nor can they sign in to it: no code goes, and no code works.
            before = await _london(redis)
            sent = len(world.api.messages(100001))
            await riverside.get(f"/organisers/{LONDON}/sign-in")
            await riverside.post(f"/organisers/{LONDON}/sign-in", {"address": "tg:100001"})
            refused = await riverside.post(
                f"/organisers/{LONDON}/sign-in/code", {"address": "tg:100001", "code": "123456"}
            )
            assert refused.status == 403
            await world.app[CONSOLE_APP][SIGNINS][LONDON].drain()
            assert len(world.api.messages(100001)) == sent
            # A POST to London's roll with Riverside's token changes nothing.
            await riverside.get("/organisers/riverside-2027/roll")
            posted = await riverside.post(f"/organisers/{LONDON}/roll/unlock", {"supporter": "L7"})
            assert posted.status in (403, 200) and posted.url.endswith("/sign-in")
            assert await _london(redis) == before
            # London's organiser sees London, and only London.
            await london.sign_in("tg:100088", LONDON)
            mine = await london.get("/organisers/")
            assert "London Mayor selection" in mine.text and "Riverside" not in mine.text
            roll = await london.get(f"/organisers/{LONDON}/roll")
            assert roll.status == 200 and "London Mayor selection" in roll.text
            theirs = await london.get("/organisers/riverside-2027/")
            assert theirs.url.endswith("/organisers/riverside-2027/sign-in")
        finally:
            await riverside.close()
            await london.close()


async def _london(redis: Redis) -> dict[str, object]:
    """London's keys and values, but for the sign-in's counters and the audit trail, which a
    refused sign-in writes (the limits are what stop guessing, the trail says it happened)."""
    found = sorted(str(k) for k in await redis.keys(f"*{LONDON}*"))
    return {
        k: await redis.dump(k) for k in found if "console" not in k and not k.endswith(":audit")
    }


async def test_the_deployment_s_sms_budget_counts_every_election_s_segments(
    redis: Redis,
) -> None:
    from ballots import keys
    from ballots.clock import ManualClock
    from openprimary.app import build

    await load_the_others(redis)
    await sample_election(redis)
    sms = Outbox("sms")
    clock = ManualClock(NOW)
    deployment = await build(settings(sms_budget_total=3), redis, clock, None, senders={"sms": sms})
    h = Harness(deployment.cores[RIVERSIDE], clock, sms)
    # Ann's messages (the menu, Hackney's code) are Hackney's segments...
    await h.say("Hi", channel="sms", address=ANN)
    await h.say("1", channel="sms", address=ANN)
    spent = {eid: int(await redis.get(keys.sms_segments(eid)) or 0) for eid in deployment.cores}
    assert spent[HACKNEY] >= 2 and spent[RIVERSIDE] == 0, spent
    assert int(await redis.get(keys.SMS_SEGMENTS_TOTAL) or 0) == sum(spent.values())
    # Riverside's code to Dev goes (2 of the 3 are spent) and takes the last one.
    dev = "\n".join(r.text for r in await h.say("Hi", channel="sms", address=DEV))
    assert re.search(r"\b\d{6}\b", dev), dev
    assert int(await redis.get(keys.SMS_SEGMENTS_TOTAL) or 0) == 3
    # ... and with every election's together at the ceiling, Riverside texts no new code.
    refused = "\n".join(r.text for r in await h.say("AGAIN", channel="sms", address=CARYS))
    assert "budget" in refused.lower() or "cannot send" in refused.lower(), refused
    assert not re.search(r"\b\d{6}\b", refused)


async def test_a_phone_number_typed_as_a_supporter_number_reveals_nothing(
    redis: Redis,
) -> None:
    await load_the_others(redis)
    async with telegram_world(redis, every_election=True) as world:
        # Ann's phone, typed (not shared): asked which selection, then answered as any
        # typed number is, never "a code went to your phone".
        for user, typed in ((GUEST, ANN), (TelegramUser(300005, "Other"), "+447700900998")):
            await world.say(user, typed)
            await world.tap(user, "Hackney North selection")
        said = [world.api.last_message(u.id)["text"] for u in (GUEST,)]
        other = world.api.last_message(300005)["text"]
        assert said[0].replace(ANN, "N") == other.replace("+447700900998", "N"), (said, other)
        # (the answer to any typed number: not the one to a phone shared with the button)
        assert f"If {ANN} is on the roll" in said[0], said


async def test_an_election_loaded_while_serving_is_served_within_seconds(redis: Redis) -> None:
    import asyncio

    async with telegram_world(redis, every_election=True) as world:
        deployment = world.core.deployment
        assert deployment is not None and set(deployment.cores) == {RIVERSIDE}
        # One election: its own greeting, as ever.
        assert "Riverside" in (await world.say(GUEST, "hi"))["text"]
        await load_the_others(redis)
        async with asyncio.timeout(10):
            while len(deployment.cores) < 3:  # noqa: ASYNC110 (the follower polls; so do we)
                await asyncio.sleep(0.1)
        london = deployment.cores[LONDON]
        rows = await london.codes.issue_voting_codes(london.election, ["L7"])
        ranking = (await world.say(BILAL, rows[0][3]))["text"]
        assert "Rushanara Ahmed" in ranking, ranking
        # A chat with no election yet is now asked which.
        other = TelegramUser(300009, "Other")
        assert "3 selections" in (await world.say(other, "hi"))["text"]
