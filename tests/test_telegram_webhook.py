"""POST /telegram: the secret token, repeated and malformed updates, group chats."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from ballots import keys
from bot import texts
from channels.standins.telegram_api import button_data
from tests.telegram_support import ANN, BILAL, telegram_world

GROUP = -1001234567890


async def _keys(redis: Redis) -> set[str]:
    """Every key but the inbox's own bookkeeping (which shard which process holds)."""
    found = {str(k) async for k in redis.scan_iter(match="op:*")}
    return {k for k in found if ":owner:" not in k and not k.endswith(":workers")}


async def test_a_forged_or_missing_secret_gets_403_and_changes_nothing(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        before = await _keys(redis)
        update = world.updates.text(ANN, "hello")
        assert await world.post(update, secret="test-webhook-secret_0123456788") == 403
        assert await world.post(update, secret="") == 403
        assert await world.post(update, secret=None) == 403
        assert await world.post(b"{not json", secret="wrong") == 403
        await world.channel.drain()
        assert await _keys(redis) == before
        assert [c.method for c in world.api.calls] == ["getMe"]
        # The genuine delivery of the same update is then handled as new.
        await world.deliver(update)
        assert "voting code" in world.api.last_message(ANN.id)["text"]


async def test_a_repeated_update_is_acknowledged_and_changes_nothing(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        await world.say(ANN, "hello")
        update = world.updates.text(ANN, await world.voting_code())
        await world.deliver(update)
        state = await world.state(ANN)
        sent = len(world.api.calls_to("sendMessage"))
        await world.deliver(update)  # Telegram retries: 200, and nothing more
        await world.deliver(update)
        assert await world.state(ANN) == state
        assert len(world.api.calls_to("sendMessage")) == sent
        # A repeated tap update is answered (Telegram wants an answer) but does nothing else.
        prompt = world.api.last_message(ANN.id)
        tap = world.updates.tap(ANN, prompt, button_data(prompt, "Sam Patel"))
        await world.deliver(tap)
        state = await world.state(ANN)
        await world.deliver(tap)
        assert await world.state(ANN) == state
        assert len(world.api.calls_to("editMessageText")) == 1


async def test_updates_arriving_together_are_all_taken(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        code = await world.voting_code()
        updates = [world.updates.text(ANN, "hello"), world.updates.text(ANN, code)]
        statuses = await asyncio.gather(*(world.post(u) for u in updates))
        assert statuses == [200, 200]
        await world.channel.drain()
        # One chat's updates are handled in the order they came.
        assert "1st choice" in world.api.last_message(ANN.id)["text"]


async def test_malformed_bodies_get_400(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        assert await world.post(b"{not json") == 400
        assert await world.post(b"[1, 2]") == 400
        assert await world.post({"message": {"text": "no update id"}}) == 400
        assert await world.post({"update_id": 5, "message": {"text": "no chat"}}) == 400


async def test_update_types_the_bot_does_not_handle_are_acknowledged(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        edited = world.updates.text(ANN, "hello")
        edited["edited_message"] = edited.pop("message")
        await world.deliver(edited)
        assert world.api.calls_to("sendMessage") == []


async def test_a_group_chat_is_told_voting_is_private(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        await world.deliver(world.updates.group_text(ANN, GROUP, "/start"))
        answer = world.api.last_message(GROUP)
        assert answer["text"].startswith(texts.private_only())
        assert "https://t.me/openprimary_test_bot" in answer["text"]
        await world.deliver(world.updates.group_text(BILAL, GROUP, "@openprimary_test_bot vote?"))
        assert len(world.api.messages(GROUP)) == 2
        # Chatter not addressed to the bot gets nothing.
        await world.deliver(world.updates.group_text(BILAL, GROUP, "who is everyone voting for"))
        await world.deliver(world.updates.group_text(BILAL, GROUP, "/start@some_other_bot"))
        assert len(world.api.messages(GROUP)) == 2
        # Nothing was routed: no conversation, no delivery record, for the group or the people.
        assert not [k for k in await _keys(redis) if k.startswith("op:{chat/")]
        # Even a code typed in a group is never checked.
        await world.deliver(
            world.updates.group_text(ANN, GROUP, "/vote " + await world.voting_code())
        )
        assert not [k for k in await _keys(redis) if ":fail:" in k or k.startswith("op:{chat/")]


async def test_a_button_in_a_group_is_refused(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        await world.deliver(world.updates.group_text(ANN, GROUP, "/start"))
        message = dict(world.api.last_message(GROUP))
        signed = world.channel.sender.signer.sign(str(GROUP), "x:0:c1")
        message["reply_markup"] = {"inline_keyboard": [[{"text": "A", "callback_data": signed}]]}
        await world.deliver(world.updates.tap(ANN, message, signed))
        answer = world.api.calls_to("answerCallbackQuery")[-1]
        assert answer.params["text"] == texts.private_only()
        assert await redis.get(keys.conversation("telegram", str(GROUP))) is None


async def test_updates_taken_in_are_handled_before_the_server_stops(redis: Redis) -> None:
    async with telegram_world(redis) as world:
        updates = [world.updates.text(user, "hello") for user in (ANN, BILAL)]
        assert [await world.post(u) for u in updates] == [200, 200]
        api = world.api
    # The server has stopped: both 200s were honoured.
    assert len(api.messages(ANN.id)) == len(api.messages(BILAL.id)) == 1
