"""The conversation through the router: every path a voter can take, and every wrong turn."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from ballots import keys
from ballots.box import ballot_count
from ballots.codes import CodePolicy
from bot import texts
from bot.state import Step
from openprimary.app import build_core
from tests.factories import Harness, Outbox, harness, stored_ballots
from tests.factories import settings as make_settings


async def code_for(h: Harness, sid: str = "S1001") -> str:
    return (await h.core.codes.issue_voting_codes(h.core.election, [sid]))[0][3]


async def ballots(h: Harness) -> dict[str, int]:
    return await stored_ballots(h.core.redis, h.core.election)


async def test_vote_with_a_voting_code_step_by_step(redis: Redis) -> None:
    h = await harness(redis)
    code = await code_for(h)
    greeting = await h.said("Hello")
    assert "reply with your voting code or your supporter number" in greeting
    prompt = await h.said(code)
    assert "1st choice" in prompt and "1 Alex Green" in prompt and "4 Chris Byrne" in prompt
    second = await h.said("2")
    assert "So far: Sam Patel" in second and "2 Sam Patel" not in second
    assert "0 to finish" in second
    await h.said("chris")
    confirm = await h.said("0")
    assert confirm.startswith("Your ballot:\n1 Sam Patel\n2 Chris Byrne")
    receipt = await h.said("YES!")
    assert "Vote cast" in receipt and "Receipt" in receipt
    assert await ballots(h) == {"patel,byrne": 1}
    # The chat remembers that it is done and, sealed, for whom (to give the receipt
    # again): no ranking, no step count, and nothing readable without the secret key.
    state = await h.core.router.store.load("console", "chat-1")
    assert (state.step, state.supporter, state.ranking, state.turn) == ("done", "S1001", [], 0)
    raw = str(await h.core.redis.get(keys.conversation("console", "chat-1")))
    assert "S1001" not in raw and "patel" not in raw
    # Kept until a fixed moment after the close, the same for every voter.
    expires = await h.core.redis.pexpiretime(keys.conversation("console", "chat-1"))
    assert expires == int((h.core.election.closes + timedelta(days=1)).timestamp() * 1000)
    receipt_id = receipt.split("Receipt ")[1].split(".")[0]
    again = await h.said("hi again")
    assert "already been cast" in again and receipt_id in again
    assert await h.said("receipt") == f"Your ballot was cast on 20 Nov 2026. Receipt: {receipt_id}."


async def test_whole_order_in_one_message(redis: Redis) -> None:
    h = await harness(redis)
    await h.said("hi")
    await h.said(await code_for(h))
    confirm = await h.said("2 > 4 > 1.")
    assert "1 Sam Patel\n2 Chris Byrne\n3 Alex Green" in confirm
    assert "Vote cast" in await h.said("y")
    assert await ballots(h) == {"patel,byrne,green": 1}


async def test_first_message_can_be_the_code(redis: Redis) -> None:
    h = await harness(redis)
    assert "1st choice" in await h.said(await code_for(h))


async def test_supporter_number_gets_a_code_by_sms_to_the_phone_on_the_roll(redis: Redis) -> None:
    h = await harness(redis)
    await h.said("hi", address="tg-chat", channel="telegram", user_id="999")
    reply = await h.said("s1002", address="tg-chat", channel="telegram", user_id="999")
    assert "a code is on its way" in reply
    ((address, message),) = h.sms.sent
    assert address == "+447700900102" and message.kind == "code"
    prompt = await h.said(h.sms.last_code(), address="tg-chat", channel="telegram", user_id="999")
    assert "1st choice" in prompt
    # Telegram is linked only now that a code has succeeded.
    assert await redis.hget(keys.telegram_index(h.core.election.id), "999") == "S1002"


async def test_an_unknown_supporter_number_gets_the_same_answer(redis: Redis) -> None:
    h = await harness(redis)
    await h.said("hi")
    known = await h.said("S1001", address="a")
    unknown = await h.said("S9999", address="b")
    assert known.replace("S1001", "X") == unknown.replace("S9999", "X")
    assert len(h.sms.sent) == 1
    assert "not right" in await h.said("123456", address="b")


async def test_texting_from_the_phone_on_the_roll_sends_a_code_at_once(redis: Redis) -> None:
    h = await harness(redis)
    replies = await h.say("vote", channel="sms", address="+447700900103")
    assert len(replies) == 1 and "is your code to vote" in replies[0].text
    code = replies[0].text.split()[0]
    assert "1st choice" in await h.said(code, channel="sms", address="+447700900103")


async def test_wrong_and_expired_sms_codes(redis: Redis) -> None:
    h = await harness(redis)
    phone: dict[str, str] = {"channel": "sms", "address": "+447700900103"}
    code = (await h.say("vote", **phone))[0].text.split()[0]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert "4 tries left" in await h.said(wrong, **phone)
    h.clock.advance(601)
    assert "expired" in await h.said(code, **phone)
    fresh = (await h.say("again", **phone))[0].text.split()[0]
    assert "1st choice" in await h.said(fresh, **phone)


async def test_names_prefixes_and_full_width_digits(redis: Redis) -> None:
    h = await harness(redis)
    await h.said("hi")
    await h.said(await code_for(h))
    await h.said("okafor")
    assert (await h.state()).ranking == ["okafor"]
    await h.said("al")
    assert (await h.state()).ranking == ["okafor", "green"]
    await h.said("４")  # full width 4: Chris Byrne, 4th on the list
    assert (await h.state()).ranking == ["okafor", "green", "byrne"]
    await h.said("0")
    state = await h.state()
    assert state.step is Step.CONFIRM and state.ranking == ["okafor", "green", "byrne"]


async def test_bad_ranking_input_gets_a_helpful_reply(redis: Redis) -> None:
    h = await harness(redis)
    await h.said("hi")
    await h.said(await code_for(h))
    assert "7 is not on the list; use 1-4" in await h.said("7")
    assert "no candidate matches 'zed'" in await h.said("zed")
    await h.said("1")
    assert "already ranked" in await h.said("1")
    assert "Your 1st choice" in await h.said("undo")
    state = await h.core.router.store.load("console", "chat-1")
    assert state.ranking == []


async def test_confirmation_can_change_the_ranking(redis: Redis) -> None:
    h = await harness(redis)
    await h.said("hi")
    await h.said(await code_for(h))
    await h.said("1 2")
    await h.said("change")
    state = await h.state()
    assert state.step is Step.RANK and state.ranking == []
    await h.said("3 4")
    # Anything but YES or CHANGE asks again, without echoing it.
    assert "maybe" not in (reply := await h.said("maybe")) and "YES" in reply
    assert (await h.state()).step is Step.CONFIRM
    await h.said("2")
    assert (await h.state()).ranking == ["patel"]
    await h.said("done")
    await h.said("yes")
    assert (await h.state()).step is Step.DONE
    assert await ballots(h) == {"patel": 1}


async def test_help_stop_start_and_again_work_in_every_state(redis: Redis) -> None:
    h = await harness(redis)
    phone: dict[str, str] = {"channel": "sms", "address": "+447700900199"}
    for step_input in ("hi", await code_for(h), "2", "0"):
        assert "Riverside Party HQ" in await h.said("HELP", **phone)
        assert "no more reminders" in await h.said("stop", **phone)
        assert await redis.sismember(keys.opted_out("sms"), "+447700900199")
        assert "back on" in await h.said("START", **phone)
        assert not await redis.sismember(keys.opted_out("sms"), "+447700900199")
        await h.said(step_input, **phone)
    # In confirmation, AGAIN goes back to ranking and keeps the identity.
    assert "1st choice" in await h.said("start again", **phone)


async def test_yes_is_an_answer_at_confirmation_not_an_opt_in(redis: Redis) -> None:
    h = await harness(redis)
    phone: dict[str, str] = {"channel": "sms", "address": "+447700900199"}
    await h.said("STOP", **phone)
    await h.said(await code_for(h), **phone)
    await h.said("1 2", **phone)
    assert "Vote cast" in await h.said("YES", **phone)
    assert await redis.sismember(keys.opted_out("sms"), "+447700900199")
    assert "back on" in await h.said("YES", **phone)


async def test_state_survives_a_restart(redis: Redis) -> None:
    h = await harness(redis)
    await h.said("hi")
    await h.said(await code_for(h))
    await h.said("3")
    # A new process: a fresh core over the same Redis.
    h.core = await build_core(
        make_settings(), redis, h.clock, h.core.election.id, senders={"sms": h.sms}
    )
    await h.said("2")
    assert (await h.state()).ranking == ["okafor", "patel"]
    await h.said("0")
    assert (await h.state()).step is Step.CONFIRM


async def test_a_repeated_delivery_changes_nothing(redis: Redis) -> None:
    h = await harness(redis)
    await h.said("hi")
    from bot.messages import InboundMessage

    code = await code_for(h)
    msg = InboundMessage("sms", "+447700900199", code, message_id="SM123")
    first = await h.core.router.handle(msg)
    assert "1st choice" in first[0].text
    state = await redis.get(keys.conversation("sms", "+447700900199"))
    # A repeat gets the same replies again (a platform retrying it lost the first answer),
    # and changes nothing.
    assert await h.core.router.handle(msg) == first
    assert await h.core.router.handle(msg, replay=False) == []
    assert await redis.get(keys.conversation("sms", "+447700900199")) == state
    # What is kept to answer repeats is sealed: the code is not in it.
    kept = await redis.get(keys.delivery("sms", "+447700900199", "SM123"))
    assert kept is not None and code not in kept and "Alex Green" not in kept
    assert 0 < await redis.ttl(keys.delivery("sms", "+447700900199", "SM123")) <= 24 * 3600


async def test_closed_and_not_yet_open(redis: Redis) -> None:
    h = await harness(redis)
    h.clock.set(h.core.election.closes)
    assert "closed" in await h.said("hi")
    h.clock.set(h.core.election.opens.replace(year=2026, month=10))
    assert "opens" in await h.said("hi", address="other")


async def test_buttons_carry_the_turn_and_stale_ones_are_refused(redis: Redis) -> None:
    h = await harness(redis)
    await h.said("hi", channel="telegram", address="77")
    (prompt,) = await h.say(await code_for(h), channel="telegram", address="77")
    buttons = [b for row in prompt.buttons for b in row]
    assert [b.label for b in buttons[:4]] == ["Alex Green", "Sam Patel", "Jo Okafor", "Chris Byrne"]
    assert all(len(b.payload.encode()) <= 40 for b in buttons)
    (after,) = await h.say(channel="telegram", address="77", choice=buttons[1].payload)
    assert after.edit and "So far: Sam Patel" in after.text
    # A double tap of the same button is stale and changes nothing.
    (stale,) = await h.say(channel="telegram", address="77", choice=buttons[1].payload)
    assert "earlier message" in stale.text and stale.kind == "notice"
    state = await h.core.router.store.load("telegram", "77")
    assert state.ranking == ["patel"]
    (foreign,) = await h.say(channel="telegram", address="77", choice="ffffff:1:c1")
    assert "not for this election" in foreign.text
    done = next(b for row in after.buttons for b in row if b.label == "Done")
    (confirm,) = await h.say(channel="telegram", address="77", choice=done.payload)
    cast = next(b for row in confirm.buttons for b in row if b.label == "Cast my vote")
    (receipt,) = await h.say(channel="telegram", address="77", choice=cast.payload)
    assert "Vote cast" in receipt.text
    (again,) = await h.say(channel="telegram", address="77", choice=cast.payload)
    assert await ballots(h) == {"patel": 1}
    del again


async def test_a_failed_code_sms_is_reported_to_the_voter_who_shared_their_phone(
    redis: Redis,
) -> None:
    h = await harness(redis)
    h.sms.status = "opted_out"
    await h.said("hi", channel="telegram", address="5")
    replies = await h.say(channel="telegram", address="5", contact="+447700900101")
    assert any("could not text a code" in r.text for r in replies)


async def test_a_typed_supporter_number_tells_nothing_about_the_roll(redis: Redis) -> None:
    """On the roll or not, voted or not, texted or not: the same reply and the same cost."""
    h = await harness(redis)
    election = h.core.election
    shard = keys.shard_of("S1003", election.shards)
    await h.core.redis.hset(keys.voter(election.id, shard, "S1003"), "voted", "sms")
    h.sms.status = "opted_out"  # texting fails: the replies must not show it
    answers = {}
    for number in ("S1001", "S1002", "S1003", "S9999"):
        address = f"tg-{number}"
        await h.said("hi", channel="telegram", address=address)
        answers[number] = await h.said(number, channel="telegram", address=address)
    await h.core.router.aclose()  # the code SMS go after the reply
    assert {a.replace(n, "N") for n, a in answers.items()} == {texts.supporter_number_sent("N")}
    counts = [
        await h.core.redis.get(keys.address_failures("riverside-2027", "telegram", f"tg-{n}"))
        for n in answers
    ]
    assert counts == ["1", "1", "1", "1"]
    # Only the two on the roll who have not voted were texted.
    assert [address for address, _ in h.sms.sent] == ["+447700900101", "+447700900102"]


async def test_locked_after_too_many_bad_codes(redis: Redis) -> None:
    h = await harness(redis, policy=CodePolicy(address_max_failures=3))
    await h.said("hi")
    for _ in range(3):
        await h.said("0000-0000-0000-0000")
    assert "Too many wrong codes" in await h.said(await code_for(h))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts=st.lists(st.text(max_size=200), min_size=1, max_size=6))
async def test_any_input_gets_a_reply_and_never_an_exception(texts: list[str]) -> None:
    # Hypothesis runs this many times, so it makes its own Redis client per example.
    from ballots.connection import client_from_url
    from tests.conftest import current_redis_url

    redis = client_from_url(current_redis_url())
    try:
        await redis.flushdb()
        h = await harness(redis)
        await h.said("hi")
        await h.said(await code_for(h))
        for text in texts:
            replies = await h.say(text)
            assert replies and all(r.text.strip() for r in replies)
            assert not any("went wrong" in r.text for r in replies)
        assert await ballot_count(redis, h.core.election) == 0
    finally:
        await redis.flushdb()
        await redis.aclose()


async def test_digits_of_other_scripts_get_a_reply(redis: Redis) -> None:
    h = await harness(redis)
    await h.said("hi")
    await h.said(await code_for(h))
    # Numerals that are not decimal digits (Ethiopic, Kharoshthi) match nothing.
    for text in ("፩", "𐩀"):
        assert (await h.said(text)).startswith("Sorry, no candidate matches")
    # A script's decimal digits are its numbers: Arabic-Indic three, Urdu's two (۲)...
    assert (await h.said("٣")).startswith("So far: Jo Okafor.")
    assert (await h.said("۲")).startswith("So far: Jo Okafor, Sam Patel.")
    # ... and a superscript one is a one once folded (NFKC), as full-width digits are.
    assert (await h.said("¹")).startswith("So far: Jo Okafor, Sam Patel, Alex Green.")


async def test_a_typed_supporter_number_never_reveals_who_is_on_the_roll_or_voted(
    redis: Redis,
) -> None:
    h = await harness(redis)
    # S1002 has voted already (by code); S9999 is not on the roll; S1003 is.
    await h.said(await code_for(h, "S1002"), address="voter")
    await h.said("1", address="voter")
    await h.said("0", address="voter")
    assert "Vote cast" in await h.said("yes", address="voter")

    def same(a: str, b: str, x: str, y: str) -> None:
        assert a.replace(x, "N") == b.replace(y, "N")

    answers: dict[str, list[str]] = {}
    for number in ("S1002", "S9999", "S1003"):
        chat = f"probe-{number}"
        replies = [await h.said("hi", address=chat), await h.said(number, address=chat)]
        replies += [await h.said("000000", address=chat) for _ in range(6)]
        replies.append(await h.said("again", address=chat))
        answers[number] = replies
    for a, b in zip(answers["S1002"], answers["S9999"], strict=True):
        same(a, b, "S1002", "S9999")
    for a, b in zip(answers["S9999"], answers["S1003"], strict=True):
        same(a, b, "S9999", "S1003")


async def test_wrong_sms_codes_count_against_the_chat(redis: Redis) -> None:
    h = await harness(redis, policy=CodePolicy(address_max_failures=4))
    await h.said("hi")
    await h.said("S1003")  # asking costs the chat one attempt too
    await h.core.router.aclose()
    for _ in range(3):
        assert "not right" in await h.said("000000")
    assert "Too many wrong codes" in await h.said(h.sms.last_code())
    assert "Too many wrong codes" in await h.said("S1004")
    await h.core.router.aclose()
    assert len(h.sms.sent) == 1


async def test_one_chat_cannot_pump_code_sms_through_the_roll(redis: Redis) -> None:
    """Typing supporter numbers one after another costs the chat each time: it is locked
    after a few, and only that many texts go out."""
    from ballots.roll import Supporter, import_roll

    h = await harness(redis)
    roll = [Supporter(f"P{i:03d}", f"Pat {i}", f"+4477009{i:05d}") for i in range(30)]
    await import_roll(redis, h.core.election, roll)
    replies = []
    for i in range(30):
        await h.said("AGAIN", channel="telegram", address="666")
        replies.append(await h.said(f"P{i:03d}", channel="telegram", address="666"))
    await h.core.router.aclose()
    limit = h.core.codes.policy.address_max_failures
    assert len(h.sms.sent) == limit
    assert all("Too many wrong codes" in r for r in replies[limit:])


async def test_the_hourly_ceiling_on_code_sms_stops_texts_and_tells_organisers(
    redis: Redis,
) -> None:
    from ballots import audit
    from bot.metrics import CODE_SMS_REFUSED

    h = await harness(redis, policy=CodePolicy(code_sms_per_hour=2))
    refused_before = CODE_SMS_REFUSED._value.get()
    answers = [
        await h.said("hi", channel="sms", address=phone)
        for phone in ("+447700900101", "+447700900102", "+447700900103")
    ]
    assert [bool(re_code(a)) for a in answers] == [True, True, False]
    assert "cannot text codes just now" in answers[2]
    h.clock.advance(61)
    assert "cannot text codes just now" in await h.said(
        "hi", channel="sms", address="+447700900103"
    )
    assert CODE_SMS_REFUSED._value.get() - refused_before == 2
    alerts = [e for e in await audit.read(redis, h.core.election.id) if "ceiling" in e.action]
    assert len(alerts) == 1  # once an hour, not once a text
    # The next hour, texts go again.
    h.clock.advance(3600)
    assert re_code(await h.said("hi", channel="sms", address="+447700900103"))


def re_code(text: str) -> bool:
    import re

    return re.search(r"\b\d{6}\b", text) is not None


async def test_voting_code_guessing_past_the_budget_is_slowed_and_reported(
    redis: Redis,
) -> None:
    from ballots import audit

    telegram = Outbox("telegram")
    h = await harness(
        redis, policy=CodePolicy(guess_budget_per_hour=2), senders={"telegram": telegram}
    )
    wrong = "1111-2222-3333-4444"
    for n in range(4):
        await h.said(wrong, channel="telegram", address=f"g{n}")
    assert "try again in 10 min" in await h.said(wrong, channel="telegram", address="g3")
    trail = await audit.read(redis, h.core.election.id)
    slowed = [e for e in trail if e.action == "voting code guessing slowed"]
    assert len(slowed) == 1 and slowed[0].details["per_hour"] == 2
    # And the organisers on Telegram are told, once.
    assert [e.action for e in trail].count("alert: code_guessing") == 1
    [(organiser, alert)] = [(a, m) for a, m in telegram.sent if m.kind == "alert"]
    assert organiser == "100001" and "wrong voting codes this hour" in alert.text
