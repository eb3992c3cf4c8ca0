"""Buttons that should not work: forged, transplanted, stale, foreign, and tapped twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from bot import texts
from bot.buttons import election_tag
from channels.standins.telegram_api import button_data, button_labels
from channels.telegram.signing import CALLBACK_DATA_LIMIT, MAC_CHARS, ButtonSigner
from tests.telegram_support import ANN, BILAL, TelegramWorld, telegram_world


async def ranking_started(world: TelegramWorld) -> dict[str, Any]:
    return await world.say(ANN, await world.voting_code())


async def refused(world: TelegramWorld, message: dict[str, Any], data: str) -> None:
    """Tap ``data`` on ``message``: the channel refuses it and nothing at all changes."""
    state = await world.state(ANN)
    edits = len(world.api.calls_to("editMessageText"))
    sends = len(world.api.calls_to("sendMessage"))
    answered = len(world.api.calls_to("answerCallbackQuery"))
    tap = world.updates.tap(ANN, message, data)
    await world.deliver(tap)
    (answer,) = world.api.calls_to("answerCallbackQuery")[answered:]  # this tap's, and only it
    assert answer.params["callback_query_id"] == tap["callback_query"]["id"]
    assert answer.status == 200 and answer.params["text"] == texts.button_refused()
    assert await world.state(ANN) == state
    assert len(world.api.calls_to("editMessageText")) == edits
    assert len(world.api.calls_to("sendMessage")) == sends


async def test_tampered_callback_data_is_refused_at_the_channel(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        prompt = await ranking_started(world)
        data = button_data(prompt, "Alex Green")
        payload, _, mac = data.rpartition("|")
        await refused(world, prompt, payload.replace(":c1", ":c2") + "|" + mac)
        await refused(world, prompt, payload)  # the MAC stripped
        await refused(world, prompt, data[:-1] + ("A" if data[-1] != "A" else "B"))
        await refused(world, prompt, "")
        await refused(world, prompt, "|" * 64)
        # The genuine button still works afterwards.
        assert "So far: Alex Green" in (await world.tap(ANN, "Alex Green"))["text"]


async def test_a_button_signed_for_another_chat_is_refused(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        prompt = await ranking_started(world)
        await world.say(BILAL, await world.voting_code("S1002"))
        bilals = world.api.last_message(BILAL.id)
        # Bilal's genuine button, replayed from Ann's chat.
        await refused(world, prompt, button_data(bilals, "Jo Okafor"))


async def test_a_stale_button_changes_nothing(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        first = await ranking_started(world)
        old_data = button_data(first, "Jo Okafor")  # as it was before the tap
        await world.tap(ANN, "Sam Patel")
        state = await world.state(ANN)
        old_message = dict(
            first,
            reply_markup={"inline_keyboard": [[{"text": "Jo Okafor", "callback_data": old_data}]]},
        )
        sent = len(world.api.messages(ANN.id))
        await world.deliver(world.updates.tap(ANN, old_message, old_data))
        # The refusal is the tap's own answer (a toast), not one more message in the chat.
        answer = world.api.calls_to("answerCallbackQuery")[-1]
        assert answer.status == 200 and "earlier message" in answer.params["text"]
        assert len(world.api.messages(ANN.id)) == sent
        assert await world.state(ANN) == state


async def test_a_candidate_already_ranked_cannot_be_ranked_again(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        first = await ranking_started(world)
        patel = button_data(first, "Sam Patel")
        await world.tap(ANN, "Sam Patel")
        state = await world.state(ANN)
        old = dict(
            first,
            reply_markup={"inline_keyboard": [[{"text": "Sam Patel", "callback_data": patel}]]},
        )
        await world.deliver(world.updates.tap(ANN, old, patel))
        assert await world.state(ANN) == state
        latest = world.api.message(ANN.id, first["message_id"])  # the prompt, as edited
        confirm = await world.tap(ANN, "Done", latest)
        await world.tap(ANN, "Cast my vote", confirm)
        assert await world.ballots() == {"patel": 1}


async def test_a_button_from_another_election_is_refused(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        prompt = await ranking_started(world)
        state = await world.state(ANN)
        # Correctly signed by this bot, but written for another election.
        signer = ButtonSigner(world.core.settings.secret_key)
        foreign = signer.sign(str(ANN.id), f"{election_tag('another-2027')}:1:c1")
        await world.deliver(world.updates.tap(ANN, prompt, foreign))
        assert (
            "not for this election" in world.api.calls_to("answerCallbackQuery")[-1].params["text"]
        )
        assert await world.state(ANN) == state


async def test_a_double_tap_ranks_once(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        prompt = await ranking_started(world)
        data = button_data(prompt, "Sam Patel")
        taps = [world.updates.tap(ANN, prompt, data) for _ in range(2)]
        assert await asyncio.gather(*(world.post(t) for t in taps)) == [200, 200]
        await world.channel.drain()
        current = world.api.message(ANN.id, prompt["message_id"])
        assert "So far: Sam Patel." in current["text"]
        assert "Sam Patel" not in button_labels(current)
        # Both taps were answered.
        answered = {
            c.params["callback_query_id"] for c in world.api.calls_to("answerCallbackQuery")
        }
        assert answered == {t["callback_query"]["id"] for t in taps}


async def test_a_double_tap_on_cast_casts_once(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        await ranking_started(world)
        await world.tap(ANN, "Jo Okafor")
        confirm = await world.tap(ANN, "Done")
        data = button_data(confirm, "Cast my vote")
        taps = [world.updates.tap(ANN, confirm, data) for _ in range(3)]
        await asyncio.gather(*(world.post(t) for t in taps))
        await world.channel.drain()
        assert await world.ballots() == {"okafor": 1}
        assert sum(t.startswith("Vote cast") for t in world.texts(ANN)) == 1
        await world.removed(ANN, confirm["message_id"])


def test_signed_callback_data_fits_telegrams_64_bytes() -> None:
    signer = ButtonSigner("k" * 32)
    longest = "a" * (CALLBACK_DATA_LIMIT - 1 - MAC_CHARS)
    assert len(signer.sign("123456789", longest).encode()) == CALLBACK_DATA_LIMIT
    assert signer.verify("123456789", signer.sign("123456789", longest)) == longest
    with pytest.raises(ValueError, match="64"):
        signer.sign("1", longest + "a")
    # A 40-byte payload (the conversation's longest) with room to spare.
    assert len(signer.sign("-1001234567890", "x" * 40).encode()) <= CALLBACK_DATA_LIMIT


def test_a_signature_is_bound_to_the_key_and_the_chat() -> None:
    one, other = ButtonSigner("k" * 32), ButtonSigner("j" * 32)
    data = one.sign("42", "abc123:7:c2")
    assert one.verify("42", data) == "abc123:7:c2"
    assert one.verify("43", data) is None
    assert other.verify("42", data) is None
    assert one.verify("42", data.replace(":c2", ":c3")) is None
    assert one.verify("42", "no signature") is None
