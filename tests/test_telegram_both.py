"""Telegram and SMS in one server: codes texted through Twilio, and one ballot per supporter."""

from __future__ import annotations

import asyncio
import re

from redis.asyncio import Redis

from ballots.box import ballot_count
from channels.standins.telegram_api import button_data
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, TwilioPhone
from tests.sms_support import AUTH_TOKEN, PUBLIC_URL
from tests.telegram_support import ANN, ANN_PHONE, BILAL, telegram_world, with_sms


async def test_a_shared_contact_gets_its_code_by_sms_through_twilio(redis: Redis) -> None:
    async with (
        TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        telegram_world(redis, **with_sms(twilio)) as world,
    ):
        await world.deliver(world.updates.contact(ANN, ANN_PHONE))
        [sms] = await twilio.wait_for(1)
        assert sms.to == ANN_PHONE
        code = re.search(r"\b(\d{6})\b", sms.body)
        assert code is not None
        prompt = await world.say(ANN, code.group(1))
        assert "1st choice" in prompt["text"]
        await world.tap(ANN, "Chris Byrne")
        await world.tap(ANN, "Done")
        await world.tap(ANN, "Cast my vote")
        assert await world.ballots() == {"byrne": 1}


async def test_one_supporter_on_sms_and_telegram_at_once_casts_one_ballot(redis: Redis) -> None:
    async with (
        TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        telegram_world(redis, **with_sms(twilio)) as world,
    ):
        election = world.core.election
        phone = TwilioPhone(
            world.session, world.url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, number=ANN_PHONE
        )
        # Ann on her phone, by SMS: her phone is on the roll, so a code comes back.
        [otp] = await phone.text("Hi")
        found = re.search(r"\b(\d{6})\b", otp)
        assert found is not None
        assert "1st choice" in "\n".join(await phone.text(found.group(1)))
        assert "Your ballot" in "\n".join(await phone.text("1 2 0"))

        # Ann on Telegram, with the voting code from her letter, ranking differently.
        await world.say(ANN, await world.voting_code("S1001"))
        await world.tap(ANN, "Jo Okafor")
        confirm = await world.tap(ANN, "Done")
        cast_tap = world.updates.tap(ANN, confirm, button_data(confirm, "Cast my vote"))

        # Both confirm at the same moment.
        sms_reply, status = await asyncio.gather(phone.text("YES"), world.post(cast_tap))
        assert status == 200
        await world.channel.drain()

        assert await ballot_count(redis, election) == 1
        assert sum((await world.ballots()).values()) == 1
        telegram_text = world.api.last_message(ANN.id)["text"]
        outcomes = ["\n".join(sms_reply), telegram_text]
        # One is cast; the other is refused (already cast, or its code check superseded by
        # the later one on the other channel) and casts nothing.
        assert sum(o.startswith("Vote cast") for o in outcomes) == 1, outcomes


async def test_two_supporters_at_once_both_vote(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        for user, sid in ((ANN, "S1001"), (BILAL, "S1002")):
            await world.say(user, await world.voting_code(sid))
            await world.tap(user, "Alex Green")
        taps = []
        for user in (ANN, BILAL):
            confirm = await world.tap(user, "Done")
            taps.append(world.updates.tap(user, confirm, button_data(confirm, "Cast my vote")))
        await asyncio.gather(*(world.post(t) for t in taps))
        await world.channel.drain()
        assert await world.ballots() == {"green": 2}
