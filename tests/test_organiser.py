"""Organiser commands in the chat: only organisers get them, REMIND waits for SEND."""

from __future__ import annotations

import asyncio
import re

from redis.asyncio import Redis

from ballots import audit, keys
from bot.organiser import OrganiserCommands
from tests.factories import Harness, Outbox, harness

ORGANISER = "+447700900001"  # in the sample election's organisers
ANN = "+447700900101"  # on the roll, not an organiser
REMIND = "REMIND Hi {name}, {days_left} days left: vote by {closes}."


def organiser_ext(h: Harness) -> OrganiserCommands:
    ext = h.core.conversation.extensions[0]
    assert isinstance(ext, OrganiserCommands)
    return ext


async def with_telegram(redis: Redis) -> tuple[Harness, Outbox]:
    tg = Outbox("telegram")
    return await harness(redis, senders={"telegram": tg}), tg


async def test_non_organisers_get_the_voter_reply(redis: Redis) -> None:
    h, tg = await with_telegram(redis)
    for text in (REMIND, "STATUS", "TURNOUT", "PAUSE", "SEND"):
        as_ann = await h.said(text, channel="sms", address=ANN)
        as_stranger = await h.said(text, channel="console", address=f"x-{text}")
        for reply in (as_ann, as_stranger):
            assert "would go to" not in reply and "Turnout" not in reply
            assert "Sending reminder" not in reply and "No reminder" not in reply
    # In a group the organiser's Telegram id is not enough.
    group = await h.said("TURNOUT", channel="telegram", address="-100500", user_id="100001")
    assert "Turnout" not in group
    assert await reminder_count(redis, h) == 0
    assert h.sms.sent == [] or all(m.kind == "code" for _, m in h.sms.sent)
    assert tg.sent == []
    actions = {e.action for e in await audit.read(redis, h.core.election.id)}
    assert not actions & {"turnout viewed", "status viewed", "reminder started"}


async def reminder_count(redis: Redis, h: Harness) -> int:
    return int(await redis.zcard(keys.reminder_jobs(h.core.election.id)))


ME = {"channel": "telegram", "address": "100001", "user_id": "100001"}  # tg:100001


def code_in(reply: str, word: str = "SEND") -> str:
    found = re.search(rf"{word} (\d{{6}})", reply)
    assert found, reply
    return found.group(1)


async def test_remind_asks_for_confirmation_with_a_code_then_sends(redis: Redis) -> None:
    h, tg = await with_telegram(redis)
    draft = await h.said(REMIND, **ME)
    assert "would go to 6 supporters: 4 by SMS (4 SMS segments) and 2 by Telegram" in draft
    code = code_in(draft)
    assert await reminder_count(redis, h) == 0 and h.sms.sent == []

    assert "reply SEND and the code" in await h.said("send", **ME)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert "not the code" in await h.said(f"SEND {wrong}", **ME)
    assert await reminder_count(redis, h) == 0
    started = await h.said(f"send {code}", **ME)
    assert started.startswith("Sending reminder job ")
    await asyncio.gather(*organiser_ext(h)._workers)

    assert sorted(a for a, _ in h.sms.sent) == [
        "+447700900101",
        "+447700900103",
        "+447700900104",
        "+447700900106",
    ]
    assert sorted(a for a, _ in tg.sent) == ["200002", "200005"]
    assert tg.sent[0][1].text.startswith("Hi ") and "377 days left" in tg.sent[0][1].text
    # Reading is allowed by SMS.
    status = await h.said("STATUS", channel="sms", address=ORGANISER)
    assert "finished: 6/6 done, 6 sent" in status

    trail = await audit.read(redis, h.core.election.id)
    started_entry = next(e for e in trail if e.action == "reminder started")
    assert started_entry.actor == "tg:100001"
    assert started_entry.details["factor"] == "telegram code"
    assert started_entry.details["recipients"] == {"sms": 4, "telegram": 2}
    assert [e.action for e in trail][-3:] == [
        "reminder started",
        "reminder finished",
        "status viewed",
    ]
    # The code is spent with the draft.
    assert "No reminder is waiting" in await h.said(f"SEND {code}", **ME)


async def test_by_sms_an_organiser_may_only_read(redis: Redis) -> None:
    """A caller's number can be spoofed: an organiser's number texting REMIND, SEND,
    PAUSE or RESUME changes nothing."""
    h, tg = await with_telegram(redis)
    for text in (REMIND, "SEND", "SEND 123456", "DROP", "PAUSE", "RESUME"):
        assert "can only read" in await h.said(text, channel="sms", address=ORGANISER)
    assert await reminder_count(redis, h) == 0
    assert h.sms.sent == [] and tg.sent == []
    refused = [e for e in await audit.read(redis, h.core.election.id) if "refused" in e.action]
    assert len(refused) == 6 and refused[0].actor == f"sms:{ORGANISER}"
    assert "Turnout" in await h.said("TURNOUT", channel="sms", address=ORGANISER)


async def test_drop_drops_the_draft(redis: Redis) -> None:
    h, _ = await with_telegram(redis)
    code = code_in(await h.said(REMIND, **ME))
    assert "dropped" in await h.said("DROP", **ME)
    assert "No reminder is waiting" in await h.said(f"SEND {code}", **ME)
    assert await reminder_count(redis, h) == 0


async def test_an_organisers_yes_casts_their_own_ballot_not_the_reminder(redis: Redis) -> None:
    h, _ = await with_telegram(redis)
    send = code_in(await h.said(REMIND, **ME))
    code = (await h.core.codes.issue_voting_codes(h.core.election, ["S1001"]))[0][3]
    await h.said(code, **ME)
    await h.said("2 1", **ME)
    assert "Vote cast" in await h.said("YES", **ME)
    assert await reminder_count(redis, h) == 0
    assert "Sending reminder job" in await h.said(f"SEND {send}", **ME)


async def test_bad_reminder_text_is_refused(redis: Redis) -> None:
    h, _ = await with_telegram(redis)
    reply = await h.said("REMIND Your code is {code}", **ME)
    assert reply.startswith("Not sent: unknown placeholder {code}")
    assert "Usage" in await h.said("REMIND", **ME)


async def test_telegram_organiser_turnout_pause_and_resume(redis: Redis) -> None:
    h, tg = await with_telegram(redis)
    me = {"channel": "telegram", "address": "100001", "user_id": "100001"}
    turnout = await h.said("turnout", **me)
    assert turnout == "Turnout: 0 of 6 (0.0%)."
    assert "No reminder" in await h.said("PAUSE", **me)

    await h.said(f"SEND {code_in(await h.said(REMIND, **me))}", **me)
    ext = organiser_ext(h)
    asked = await h.said("PAUSE", **me)
    assert "reply PAUSE" in asked
    paused = await h.said(f"PAUSE {code_in(asked, 'PAUSE')}", **me)
    assert "paused" in paused
    await asyncio.gather(*ext._workers)
    at_pause = len(h.sms.sent) + len(tg.sent)
    assert at_pause < 6
    await asyncio.sleep(0.2)
    assert len(h.sms.sent) + len(tg.sent) == at_pause  # nothing goes while paused
    assert "not the code" in await h.said("RESUME 000000", **me)
    await h.said(f"RESUME {code_in(await h.said('RESUME', **me), 'RESUME')}", **me)
    await asyncio.gather(*ext._workers)
    assert len(h.sms.sent) == 4 and len(tg.sent) == 2
    actions = [e.action for e in await audit.read(redis, h.core.election.id)]
    assert "turnout viewed" in actions and "reminder paused" in actions
    assert actions.count("reminder finished") == 1
    actors = {
        e.actor for e in await audit.read(redis, h.core.election.id) if "reminder" in e.action
    }
    assert actors <= {"tg:100001", "openprimary"}
