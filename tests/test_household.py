"""A phone or a Telegram account shared in a household: each member votes with their own code.

About 2% of supporters share a phone with someone else on the roll.  After one of them has
cast from it, the other's voting code, typed from the same phone or account, identifies the
code's voter, not the phone's first voter.
"""

from __future__ import annotations

from redis.asyncio import Redis

from ballots.roll import Supporter, read_roll_file
from tests.factories import EXAMPLES, stored_ballots
from tests.sms_support import ANN, sms_stack
from tests.telegram_support import ANN as ANN_TG
from tests.telegram_support import telegram_world

#: Ann's partner, on the roll with Ann's phone.
PARTNER = Supporter("S1007", "Gwen Hughes", ANN)


def household_roll() -> list[Supporter]:
    return [*read_roll_file(EXAMPLES / "roll.csv"), PARTNER]


async def test_by_sms_the_second_voter_on_a_shared_phone_votes_with_their_own_code(
    redis: Redis,
) -> None:
    async with sms_stack(redis, roll=household_roll()) as stack:
        election = stack.core.election
        (_, _, _, ann_code), (_, _, _, gwen_code) = await stack.core.codes.issue_voting_codes(
            election, ["S1001", "S1007"]
        )
        phone = stack.phone(ANN)
        assert "1st choice" in "\n".join(await phone.text(ann_code))
        assert "Your ballot" in "\n".join(await phone.text("1 2"))
        ann_cast = "\n".join(await phone.text("YES"))
        assert "Vote cast" in ann_cast
        ann_receipt = ann_cast.split("Receipt ")[1].split(".")[0]

        prompt = "\n".join(await phone.text(gwen_code))
        assert "1st choice" in prompt, prompt
        assert ann_receipt not in prompt
        assert "Your ballot" in "\n".join(await phone.text("3 4"))
        gwen_cast = "\n".join(await phone.text("YES"))
        assert "Vote cast" in gwen_cast
        assert ann_receipt not in gwen_cast

        assert await stack.core.box.has_voted(election, "S1001")
        assert await stack.core.box.has_voted(election, "S1007")
        assert await stored_ballots(redis, election) == {"green,patel": 1, "okafor,byrne": 1}
        # Ann's code again, from the same phone: she has voted, with her own receipt.
        again = "\n".join(await phone.text(ann_code))
        assert "already" in again and ann_receipt in again


async def test_on_telegram_the_second_voter_on_a_shared_account_votes_with_their_own_code(
    redis: Redis,
) -> None:
    async with telegram_world(redis, election_changes={"roll": household_roll()}) as world:
        await world.say(ANN_TG, "/start")
        assert "1st choice" in (await world.say(ANN_TG, await world.voting_code("S1001")))["text"]
        await world.say(ANN_TG, "1 2")
        await world.say(ANN_TG, "YES")
        assert world.texts(ANN_TG)[-1].startswith("Vote cast")

        prompt = await world.say(ANN_TG, await world.voting_code("S1007"))
        assert "1st choice" in prompt["text"], prompt["text"]
        await world.say(ANN_TG, "4 3")
        await world.say(ANN_TG, "YES")
        assert world.texts(ANN_TG)[-1].startswith("Vote cast")
        assert await world.ballots() == {"green,patel": 1, "byrne,okafor": 1}
