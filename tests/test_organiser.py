"""Organiser commands in the chat: only organisers get them, REMIND waits for SEND."""

from __future__ import annotations

import asyncio

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
    h = await harness(redis)
    tg = Outbox("telegram")
    h.core.senders["telegram"] = tg
    return h, tg


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


async def test_remind_asks_for_confirmation_then_sends(redis: Redis) -> None:
    h, tg = await with_telegram(redis)
    draft = await h.said(REMIND, channel="sms", address=ORGANISER)
    assert "would go to 6 supporters: 4 by SMS (4 SMS segments) and 2 by Telegram" in draft
    assert "Reply SEND" in draft
    assert await reminder_count(redis, h) == 0 and h.sms.sent == []

    started = await h.said("send", channel="sms", address=ORGANISER)
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
    status = await h.said("STATUS", channel="sms", address=ORGANISER)
    assert "finished: 6/6 done, 6 sent" in status

    trail = await audit.read(redis, h.core.election.id)
    started_entry = next(e for e in trail if e.action == "reminder started")
    assert started_entry.actor == f"sms:{ORGANISER}"
    assert started_entry.details["recipients"] == {"sms": 4, "telegram": 2}
    assert [e.action for e in trail][-3:] == [
        "reminder started",
        "reminder finished",
        "status viewed",
    ]


async def test_drop_drops_the_draft(redis: Redis) -> None:
    h, _ = await with_telegram(redis)
    await h.said(REMIND, channel="sms", address=ORGANISER)
    assert "dropped" in await h.said("DROP", channel="sms", address=ORGANISER)
    assert "No reminder is waiting" in await h.said("SEND", channel="sms", address=ORGANISER)
    assert await reminder_count(redis, h) == 0


async def test_an_organisers_yes_casts_their_own_ballot_not_the_reminder(redis: Redis) -> None:
    h, _ = await with_telegram(redis)
    me: dict[str, str] = {"channel": "sms", "address": ORGANISER}
    await h.said(REMIND, **me)
    code = (await h.core.codes.issue_voting_codes(h.core.election, ["S1001"]))[0][3]
    await h.said(code, **me)
    await h.said("2 1", **me)
    assert "Vote cast" in await h.said("YES", **me)
    assert await reminder_count(redis, h) == 0
    assert "Sending reminder job" in await h.said("SEND", **me)


async def test_bad_reminder_text_is_refused(redis: Redis) -> None:
    h, _ = await with_telegram(redis)
    reply = await h.said("REMIND Your code is {code}", channel="sms", address=ORGANISER)
    assert reply.startswith("Not sent: unknown placeholder {code}")
    assert "Usage" in await h.said("REMIND", channel="sms", address=ORGANISER)


async def test_telegram_organiser_turnout_pause_and_resume(redis: Redis) -> None:
    h, tg = await with_telegram(redis)
    me = {"channel": "telegram", "address": "100001", "user_id": "100001"}
    turnout = await h.said("turnout", **me)
    assert turnout == "Turnout: 0 of 6 (0.0%)."
    assert "No reminder" in await h.said("PAUSE", **me)

    await h.said(REMIND, **me)
    await h.said("SEND", **me)
    ext = organiser_ext(h)
    paused = await h.said("PAUSE", **me)
    assert "paused" in paused
    await asyncio.gather(*ext._workers)
    at_pause = len(h.sms.sent) + len(tg.sent)
    assert at_pause < 6
    await asyncio.sleep(0.2)
    assert len(h.sms.sent) + len(tg.sent) == at_pause  # nothing goes while paused
    await h.said("RESUME", **me)
    await asyncio.gather(*ext._workers)
    assert len(h.sms.sent) == 4 and len(tg.sent) == 2
    actions = [e.action for e in await audit.read(redis, h.core.election.id)]
    assert "turnout viewed" in actions and "reminder paused" in actions
    assert actions.count("reminder finished") == 1
    actors = {
        e.actor for e in await audit.read(redis, h.core.election.id) if "reminder" in e.action
    }
    assert actors <= {"tg:100001", "openprimary"}
