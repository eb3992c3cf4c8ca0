"""``openprimary cost``: the SMS estimate, checked against what a real vote by SMS is billed."""

from __future__ import annotations

import io
import json

import pytest
from redis.asyncio import Redis

from openprimary.cli import build_parser
from openprimary.context import Context
from tests.factories import settings
from tests.sms_support import ANN, BILAL, sms_stack
from tests.test_sms_vote import Voter, vote_step_by_step


async def cost(redis: Redis, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(settings=settings(), redis=redis, out=out, err=err)
    args = build_parser(["cost", *argv]).parse_args(["cost", *argv])
    return await args.handler(args, ctx), out.getvalue(), err.getvalue()


async def test_the_estimate_per_vote_is_what_a_real_vote_by_sms_is_billed(redis: Redis) -> None:
    async with sms_stack(redis) as stack:
        eid = stack.core.election.id
        status, shown, _ = await cost(redis, "--election", eid, "--json")
        assert status == 0
        estimate = json.loads(shown)
        step = Voter(stack.phone(ANN))
        assert "Vote cast" in await vote_step_by_step(step, ["2", "4", "1", "3"])
        one = Voter(stack.phone(BILAL))
        await one.text("Hi")
        await one.text(one.code())
        await one.text("2 4 1 3")
        assert "Vote cast" in await one.text("YES")
    assert estimate["per_vote_step_by_step"] == step.segments
    assert estimate["per_vote_one_message"] == one.segments
    # The sample roll: 6 supporters, two with Telegram linked.
    assert (estimate["supporters"], estimate["sms_voters"], estimate["telegram_voters"]) == (
        6,
        4,
        2,
    )
    otp = 1  # a Telegram voter's code goes by SMS: one segment each
    assert estimate["code_sms"] == 2 * otp
    assert estimate["conversations_low"] == 4 * one.segments
    assert estimate["conversations_high"] == 4 * step.segments
    assert estimate["reminders"] == 4  # one one-segment reminder to each SMS supporter
    assert estimate["high"] == 2 * otp + 4 * step.segments + 4


async def test_the_text_report_prices_it_and_bad_options_are_refused(redis: Redis) -> None:
    async with sms_stack(redis) as stack:
        eid = stack.core.election.id
        status, out, _ = await cost(
            redis, "--election", eid, "--price-per-segment", "0.04", "--reminders", "3"
        )
        assert status == 0
        assert "6 supporters, 4 by SMS and 2 with Telegram linked; 100% voting" in out
        assert "reminders (3 by SMS)" in out and "12 segments  (0.48)" in out
        status, _, err = await cost(redis, "--election", eid, "--turnout", "150")
        assert status == 2 and "--turnout is a percentage" in err
        status, _, err = await cost(redis, "--election", eid, "--message", "Hi {nmae}")
        assert status == 2 and "'nmae' is not a placeholder" in err
        # A long reminder costs what the channel would bill for it.
        status, shown, _ = await cost(
            redis, "--election", eid, "--message", "x" * 200 + " {name}", "--json"
        )
        assert json.loads(shown)["reminders"] == 4 * 2


@pytest.mark.parametrize("turnout", ["50"])
async def test_a_lower_turnout_lowers_the_conversations_not_the_reminders(
    redis: Redis, turnout: str
) -> None:
    async with sms_stack(redis) as stack:
        eid = stack.core.election.id
        _, full, _ = await cost(redis, "--election", eid, "--json")
        _, half, _ = await cost(redis, "--election", eid, "--json", "--turnout", turnout)
    full_d, half_d = json.loads(full), json.loads(half)
    assert half_d["sms_voters"] < full_d["sms_voters"]
    assert half_d["reminders"] == full_d["reminders"]
