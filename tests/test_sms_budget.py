"""The SMS budget: every outbound segment counted in Redis; at OPENPRIMARY_SMS_BUDGET_SEGMENTS
no new code SMS and no reminders go (replies mid-vote still do), and organisers are alerted
near it and at it."""

from __future__ import annotations

import io
import json

from redis.asyncio import Redis

from ballots import audit, keys
from ballots.election import save_election
from bot import texts
from bot.alerts import Alerts
from bot.reminders import Reminders, Worker, plan
from bot.spend import SmsSpend
from channels.gsm import segments
from channels.rules import TEXT_RULES
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID
from openprimary.commands import turnout_report
from openprimary.context import Context
from tests.factories import Harness, Outbox, harness, settings
from tests.reminders_support import clock, election_with_roll, fast_limiter
from tests.sms_support import AUTH_TOKEN, sms_stack
from tests.telegram_support import ANN as TG_ANN
from tests.telegram_support import ANN_PHONE as TG_ANN_PHONE
from tests.telegram_support import telegram_world, with_sms

ANN, CARYS = "+447700900101", "+447700900103"  # S1001 and S1003, by SMS


async def spent(h: Harness) -> int:
    return int(await h.core.redis.get(keys.sms_segments(h.core.election.id)) or 0)


async def sms_vote(h: Harness, phone: str) -> int:
    """Vote by SMS from the phone on the roll; the segments of every reply."""
    billed = 0
    replies = await h.say("vote", channel="sms", address=phone)
    billed += sum(segments(r.text) for r in replies)
    for text in (replies[0].text.split()[0], "2 4", "YES"):
        replies = await h.say(text, channel="sms", address=phone)
        billed += sum(segments(r.text) for r in replies)
    assert "Vote cast" in replies[0].text
    return billed


async def test_every_reply_and_code_by_sms_is_counted(redis: Redis) -> None:
    h = await harness(redis)
    billed = await sms_vote(h, ANN)
    assert await spent(h) == billed > 0
    # A Telegram voter's code goes by SMS to the phone on the roll: counted too.
    await h.said("hi", channel="telegram", address="555", user_id="555")
    await h.said("S1002", channel="telegram", address="555", user_id="555")
    ((_, code),) = h.sms.sent
    assert await spent(h) == billed + segments(code.text)
    out = io.StringIO()
    ctx = Context(settings=settings(), redis=redis, out=out, err=io.StringIO())

    class Args:
        election = h.core.election.id
        json = True

    await turnout_report(Args(), ctx)  # type: ignore[arg-type]
    assert json.loads(out.getvalue())["sms_segments_sent"] == billed + segments(code.text)


async def test_at_the_ceiling_no_new_code_goes_but_a_vote_under_way_finishes(
    redis: Redis,
) -> None:
    telegram = Outbox("telegram")
    h = await harness(redis, config=settings(sms_budget_segments=4), senders={"telegram": telegram})
    code_reply = await h.say("vote", channel="sms", address=ANN)  # 1 segment
    await h.say(code_reply[0].text.split()[0], channel="sms", address=ANN)  # the prompt
    # 80% of 4 is 3: the organisers on Telegram are warned once.
    await h.say("2 4", channel="sms", address=ANN)
    assert [a for a, _ in telegram.sent] == ["100001"]
    assert "of the 4 SMS segments budgeted" in telegram.sent[0][1].text
    # Past the ceiling, Ann's vote still finishes ...
    assert "Vote cast" in (await h.say("YES", channel="sms", address=ANN))[0].text
    assert await spent(h) >= 4
    # ... but nobody new is texted a code, and is told why, with the help text.
    refused = await h.said("vote", channel="sms", address=CARYS)
    assert refused.startswith("We cannot text any more codes in this poll")
    assert h.core.election.help in refused
    assert not any(c.isdigit() and len(c) == 6 for c in refused.split())
    trail = [e.action for e in await audit.read(redis, h.core.election.id)]
    assert "alert: sms_budget_near" in trail and "alert: sms_budget_spent" in trail


async def test_reminders_stop_at_the_ceiling_and_resume_when_it_is_raised(
    redis: Redis,
) -> None:
    election = await election_with_roll(redis, 20)
    election = await save_election(redis, election)
    reminders = Reminders(redis, clock())
    job = await reminders.create(
        election, await plan(redis, election, "Vote, {name}!", rules=TEXT_RULES, clock=clock()), "t"
    )
    sms = Outbox("sms")
    alerts = Alerts(redis, clock(), election, {})

    def worker(ceiling: int) -> Worker:
        return Worker(
            redis,
            {"sms": sms},
            fast_limiter(redis),
            TEXT_RULES,
            clock=clock(),
            spend=SmsSpend(redis, election.id, ceiling, alerts),
        )

    paused = await worker(5).run(job)
    assert paused.status == "paused" and paused.outcome("sent") == 5
    assert len(sms.sent) == 5 and int(await redis.get(keys.sms_segments(election.id)) or 0) == 5
    trail = [e.action for e in await audit.read(redis, election.id)]
    assert "alert: sms_budget_spent" in trail
    await reminders.resume(job, "t")
    final = await worker(100).run(job)
    assert final.status == "finished" and final.outcome("sent") == 20
    assert len(sms.sent) == 20 and len(set(sms.addresses)) == 20  # nobody twice


async def test_through_twilio_the_twiml_replies_are_what_is_counted(redis: Redis) -> None:
    """Signed webhooks, TwiML back: the counter matches what the phones received, and at
    the ceiling a new voter's phone is told no code can be texted."""
    async with sms_stack(redis, config_changes={"sms_budget_segments": 3}) as stack:
        ann = stack.phone(ANN)
        received = await ann.text("vote")
        received += await ann.text(received[0].split()[0])
        received += await ann.text("2 4")
        received += await ann.text("YES")
        assert "Vote cast" in received[-1]
        billed = sum(segments(body) for body in received)
        assert await redis.get(keys.sms_segments(stack.core.election.id)) == str(billed)
        assert billed > 3  # the vote under way finished past the ceiling
        carys = await stack.phone(CARYS).text("vote")
        assert len(carys) == 1 and carys[0].startswith("We cannot text any more codes")


async def test_on_telegram_a_shared_phone_gets_no_code_once_the_budget_is_spent(
    redis: Redis,
) -> None:
    async with (
        TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        telegram_world(redis, sms_budget_segments=10, **with_sms(twilio)) as world,
    ):
        await redis.set(keys.sms_segments(world.core.election.id), 10)
        await world.say(TG_ANN, "/start")
        await world.deliver(world.updates.contact(TG_ANN, TG_ANN_PHONE.lstrip("+")))
        answer = world.api.last_message(TG_ANN.id)["text"]
        assert answer == texts.sms_budget_spent(world.core.election)
        assert twilio.messages == []  # nothing went to Twilio
        assert await spent_of(redis, world.core.election.id) == 10
        # A voting code still works: Telegram costs no SMS.
        prompt = await world.say(TG_ANN, await world.voting_code())
        assert "1st choice" in prompt["text"]


async def spent_of(redis: Redis, election_id: str) -> int:
    return int(await redis.get(keys.sms_segments(election_id)) or 0)
