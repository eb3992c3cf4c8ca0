"""Voting on Telegram end to end: by buttons, by typed text, by a shared phone number."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from ballots import keys
from bot import texts
from channels.standins.telegram_api import button_labels
from channels.telegram.sending import SHARE_PHONE
from tests.telegram_support import ANN, ANN_PHONE, STRANGER, telegram_world


async def test_a_whole_vote_by_buttons(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        greeting = await world.say(ANN, "/start")
        assert "voting code or your supporter number" in greeting["text"]
        assert greeting["_keyboard"]["keyboard"] == [
            [{"text": SHARE_PHONE, "request_contact": True}]
        ]

        prompt = await world.say(ANN, await world.voting_code())
        assert "1st choice" in prompt["text"]
        assert button_labels(prompt) == [
            "Alex Green",
            "Sam Patel",
            "Jo Okafor",
            "Chris Byrne",
            "Done",
            "Undo",
            "Start again",
        ]
        for row in prompt["reply_markup"]["inline_keyboard"]:
            for button in row:
                assert len(button["callback_data"].encode()) <= 64

        after = await world.tap(ANN, "Sam Patel")
        assert after["message_id"] == prompt["message_id"]  # the same message, edited
        assert "So far: Sam Patel" in after["text"]
        assert "Sam Patel" not in button_labels(after)

        after = await world.tap(ANN, "Chris Byrne")
        assert "So far: Sam Patel, Chris Byrne" in after["text"]
        assert button_labels(after) == ["Alex Green", "Jo Okafor", "Done", "Undo", "Start again"]

        confirm = await world.tap(ANN, "Done")
        assert confirm["message_id"] == prompt["message_id"]
        assert "Your ballot:\n1 Sam Patel\n2 Chris Byrne" in confirm["text"]
        assert button_labels(confirm) == ["Cast my vote", "Change"]
        assert await world.ballots() == {}

        await world.tap(ANN, "Cast my vote")
        cast = world.api.last_message(ANN.id)
        assert cast["message_id"] != confirm["message_id"]
        assert cast["text"].startswith("Vote cast, thank you!")
        assert "reply_markup" not in cast  # nothing left to tap
        # The ballot shown for confirming no longer shows the choices, or any button.
        await world.removed(ANN, confirm["message_id"])

        assert await world.ballots() == {"patel,byrne": 1}
        # Every tap was answered, once each.
        taps = [c for c in world.api.calls_to("answerCallbackQuery") if c.status == 200]
        assert len(taps) == 4 and len({c.params["callback_query_id"] for c in taps}) == 4
        # The whole ranking happened in one message; the receipt is a message of its own.
        assert [m["message_id"] for m in world.api.messages(ANN.id)] == [
            greeting["message_id"],
            prompt["message_id"],
            cast["message_id"],
        ]
        # The Telegram account is now linked to the supporter, for reminders.
        assert await redis.hget(keys.telegram_index(world.core.election.id), str(ANN.id)) == "S1001"


async def test_undo_and_start_again_by_buttons(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        await world.say(ANN, await world.voting_code())
        await world.tap(ANN, "Jo Okafor")
        await world.tap(ANN, "Alex Green")
        undone = await world.tap(ANN, "Undo")
        assert "So far: Jo Okafor." in undone["text"]
        again = await world.tap(ANN, "Start again")
        assert "So far" not in again["text"]
        assert len(button_labels(again)) == 7
        await world.tap(ANN, "Alex Green")
        await world.tap(ANN, "Done")
        changed = await world.tap(ANN, "Change")
        assert "1st choice" in changed["text"]
        await world.tap(ANN, "Jo Okafor")
        await world.tap(ANN, "Done")
        await world.tap(ANN, "Cast my vote")
        assert await world.ballots() == {"okafor": 1}


async def test_a_whole_vote_by_typed_text(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        await world.say(ANN, "hello")
        prompt = await world.say(ANN, await world.voting_code())
        assert "Reply with a number" in prompt["text"]
        second = await world.say(ANN, "2")
        assert "So far: Sam Patel" in second["text"]
        await world.say(ANN, "okafor")
        confirm = await world.say(ANN, "0")
        assert "1 Sam Patel\n2 Jo Okafor" in confirm["text"]
        done = await world.say(ANN, "yes")
        assert done["text"].startswith("Vote cast, thank you!")
        assert await world.ballots() == {"patel,okafor": 1}
        # Typed answers get new messages; nothing was edited, no button was needed.
        assert world.api.calls_to("editMessageText") == []
        assert len(world.api.messages(ANN.id)) == 6
        again = await world.say(ANN, "1")
        assert "already been cast" in again["text"]


async def test_a_shared_phone_number_then_the_texted_code(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        await world.say(ANN, "/start")
        # Telegram sends the user's own number, usually without the '+'.
        await world.deliver(world.updates.contact(ANN, ANN_PHONE.lstrip("+")))
        assert [address for address, _ in world.sms.sent] == [ANN_PHONE]
        note = world.api.last_message(ANN.id)
        assert "phone ending 101" in note["text"]
        sent = world.api.calls_to("sendMessage")[-1]
        assert sent.params["reply_markup"] == {"remove_keyboard": True}
        # Not linked until the code proves the phone is theirs.
        index = keys.telegram_index(world.core.election.id)
        assert await redis.hget(index, str(ANN.id)) is None

        prompt = await world.say(ANN, world.sms.last_code())
        assert "1st choice" in prompt["text"]
        assert await redis.hget(index, str(ANN.id)) == "S1001"
        await world.tap(ANN, "Alex Green")
        await world.tap(ANN, "Done")
        await world.tap(ANN, "Cast my vote")
        assert await world.ballots() == {"green": 1}


async def test_a_contact_that_is_not_the_senders_own_changes_nothing(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        await world.say(ANN, "/start")
        before = await world.state(ANN)
        await world.deliver(world.updates.contact(ANN, ANN_PHONE, owner=STRANGER))
        answer = world.api.last_message(ANN.id)
        assert answer["text"] == texts.not_own_contact()
        assert answer["_keyboard"]["keyboard"][0][0]["request_contact"] is True
        assert world.sms.sent == []
        assert await world.state(ANN) == before
        # Someone else's contact with no user id at all (a phone-book entry) is refused too.
        contact = world.updates.contact(ANN, ANN_PHONE)
        del contact["message"]["contact"]["user_id"]
        await world.deliver(contact)
        assert world.api.last_message(ANN.id)["text"] == texts.not_own_contact()
        assert world.sms.sent == []
        assert json.loads(await world.state(ANN) or "{}")["step"] == "identify"


async def test_a_contact_not_on_the_roll(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        await world.deliver(world.updates.contact(ANN, "447700900999"))
        assert "not on the roll" in world.api.last_message(ANN.id)["text"]
        assert world.sms.sent == []


async def test_a_sticker_gets_the_question_again(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        prompt = await world.say(ANN, await world.voting_code())
        await world.deliver(world.updates.sticker(ANN))
        assert "1st choice" in world.api.last_message(ANN.id)["text"]
        # Nothing changed, so the buttons already shown still work.
        after = await world.tap(ANN, "Jo Okafor", prompt)
        assert "So far: Jo Okafor" in after["text"]
