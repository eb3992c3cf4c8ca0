"""Benchmark the SMS price of a vote in each shipped language, through the whole stack.

Run: .venv/bin/python -m benchmarks.bench_languages [--voters N]

For each shipped language (Welsh twice: folded to GSM-7, the default, and
faithful), an election run in that language alone is served on 127.0.0.1
(``channels.server.make_app``, a private redis-server or REDIS_URL, flushed),
and ``--voters`` supporters vote by signed Twilio webhooks step by step (hi,
code, four single choices, yes in the language: 7 messages), then as many
again with the ranking in one message (hi, code, ranking, yes).  Every SMS
the bot answers is counted as a phone network bills it (GSM-7: 160
characters, 153 a part; UCS-2: 70, 67 a part).  The budget is at most 8
segments a vote step by step and 5 in one message for a GSM-7 language;
UCS-2 languages are reported as they are.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, replace

from redis.asyncio import Redis

from ballots.box import ballot_count
from ballots.clock import ManualClock
from ballots.election import save_election
from ballots.languages import SHIPPED
from ballots.roll import Supporter
from benchmarks.bench_sms import TOKEN, phone, twilio_settings, voter
from benchmarks.harness import run_load
from bot.parse import words_in
from channels.server import make_app
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID
from openprimary.app import build_core
from tests.factories import NOW, sample_election
from tests.redis_server import redis_url
from tests.sms_support import start_app as serve

#: GSM-7 budgets: segments a vote, step by step and with the ranking in one message.
BUDGET_STEP, BUDGET_ONE = 8, 5


@dataclass(frozen=True)
class Case:
    language: str
    sms_text: str  # faithful or folded

    @property
    def label(self) -> str:
        return f"{SHIPPED[self.language].english} ({self.sms_text})"


CASES = [
    Case("en", "folded"),
    Case("cy", "folded"),
    Case("cy", "faithful"),
    Case("ur", "faithful"),
]


@dataclass
class Bills:
    """The segments each completed vote cost, and the encodings its SMS went in."""

    votes: list[int]
    encodings: set[str]

    def line(self) -> str:
        if not self.votes:
            return "no completed votes"
        return f"mean {sum(self.votes) / len(self.votes):.1f}, max {max(self.votes)}"


def yes_word(language: str) -> str:
    """The language's own first word for yes (IE, ہاں), as a voter of it would send."""
    own = words_in(language).yes - words_in("en").yes if language != "en" else {"YES"}
    return sorted(own, key=len)[0] if own else "YES"


async def one_case(url: str, case: Case, voters: int) -> tuple[Bills, Bills]:
    redis = Redis.from_url(url, decode_responses=True)
    twilio = TwilioApiStandIn(ACCOUNT_SID, TOKEN)
    try:
        await redis.flushdb()
        roll = [
            Supporter(f"B{i:07d}", f"Supporter {i}", phone(i), "", case.language)
            for i in range(2 * voters)
        ]
        election = await sample_election(redis, roll=roll, id=f"bench-{case.language}")
        election = await save_election(
            redis,
            replace(election, languages=(case.language,), sms_text={case.language: case.sms_text}),
        )
        config = twilio_settings(await twilio.start())
        core = await build_core(config, redis, ManualClock(NOW), election.id)
        runner, stack = await serve(make_app(core))
        yes = yes_word(case.language)
        step_script = ("hi", "<code>", "2", "4", "1", "3", yes)
        one_script = ("hi", "<code>", "2 4 1 3", yes)
        step, one = Bills([], set()), Bills([], set())
        try:
            numbers = [phone(i) for i in range(2 * voters)]
            await run_load(
                f"{case.label}, step by step",
                [
                    voter(stack, n, step_script, step.votes, step.encodings, cast=None)
                    for n in numbers[:voters]
                ],
                concurrency=10,
            )
            await run_load(
                f"{case.label}, one message",
                [
                    voter(stack, n, one_script, one.votes, one.encodings, cast=None)
                    for n in numbers[voters:]
                ],
                concurrency=10,
            )
        finally:
            await runner.cleanup()
            await core.conversation.aclose()
        cast = await ballot_count(redis, election)
        assert cast == 2 * voters, (case, cast)
        return step, one
    finally:
        await twilio.close()
        await redis.aclose()


async def bench(url: str, voters: int) -> None:
    print(
        f"segments per completed vote by SMS ({voters} votes each way; budget for GSM-7: "
        f"<= {BUDGET_STEP} step by step, <= {BUDGET_ONE} in one message)"
    )
    print(f"  {'language':<20} {'encoding':<16} {'step by step':<22} {'one message':<22}")
    for case in CASES:
        step, one = await one_case(url, case, voters)
        how = " and ".join(sorted(step.encodings | one.encodings))
        within = ""
        if how == "GSM-7":
            ok = max(step.votes) <= BUDGET_STEP and max(one.votes) <= BUDGET_ONE
            within = "  within budget" if ok else "  OVER BUDGET"
        print(f"  {case.label:<20} {how:<16} {step.line():<22} {one.line():<22}{within}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--voters", type=int, default=50, help="votes each way per language (default 50)"
    )
    args = parser.parse_args()
    with redis_url() as url:
        asyncio.run(bench(url, args.voters))


if __name__ == "__main__":
    main()
