"""``openprimary cost``: what the poll's SMS will cost, before anything is sent.

The estimate is built from the election and its roll, and from the texts
the bot really sends, rendered as the SMS channel renders them (GSM-7
folding, replies joined into one SMS where that costs nothing more):

- **codes**: one code SMS for each supporter who can vote by SMS code
  (``sms-otp``), by SMS or on Telegram (the code always goes by SMS);
- **conversations**: what an SMS voter receives for one vote, from the
  code to the receipt, when they send their ranking in one message and when
  they give it one choice at a time (the two bound what voters do);
- **reminders**: ``--reminders N`` reminders (default 1) of ``--message``
  to the supporters reminded by SMS (those with no Telegram chat linked).

In an election with several languages each supporter is counted in their
roll entry's language, SMS in it sent faithful or folded as the election
file says (``sms_text``), so the segments are each language's own.

Everyone is assumed to vote (``--turnout`` lowers that), so it is a
ceiling to budget for, not a forecast.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field

from redis.asyncio import Redis

from ballots import keys
from ballots.election import Election, get_election
from ballots.languages import SHIPPED, best
from bot import texts
from bot.i18n import speaking
from bot.messages import OutboundMessage
from bot.reminders.text import language_of, render
from channels.gsm import encoding, segments
from channels.sms import sms_parts
from openprimary.context import Context

#: A stand-in reminder, when none is given: the length of a usual one.
DEFAULT_REMINDER = "Hi {name}, {time_left} to vote. Polls close {closes}."


@dataclass(frozen=True)
class RollMix:
    """Who is on the roll, by how they would be reached (``sms_by_language``: those with
    no Telegram chat linked, by the language they would be answered in)."""

    supporters: int
    telegram: int
    sms_by_language: dict[str, int] = field(default_factory=dict)

    @property
    def sms_only(self) -> int:
        return self.supporters - self.telegram


@dataclass(frozen=True)
class LanguageCost:
    """What an SMS vote and a reminder cost in one language."""

    language: str
    encoding: str
    sms_voters: int
    per_vote_one_message: int
    per_vote_step_by_step: int
    reminder: int


@dataclass(frozen=True)
class Estimate:
    """Outbound SMS segments for the poll, by what they are for."""

    supporters: int
    sms_voters: int
    telegram_voters: int
    code_sms: int
    per_vote_one_message: int
    per_vote_step_by_step: int
    conversations_low: int
    conversations_high: int
    reminders: int
    languages: tuple[LanguageCost, ...] = ()

    @property
    def low(self) -> int:
        return self.code_sms + self.conversations_low + self.reminders

    @property
    def high(self) -> int:
        return self.code_sms + self.conversations_high + self.reminders


async def roll_mix(redis: Redis, election: Election) -> RollMix:
    """How many supporters there are, how many have a Telegram chat linked, and the
    languages of the others."""
    supporters = telegram = 0
    by_language = dict.fromkeys(election.languages, 0)
    for shard in range(election.shards):
        batch: list[str] = []
        async for sid in redis.sscan_iter(keys.members(election.id, shard), count=2000):
            batch.append(str(sid))
            if len(batch) >= 2000:
                telegram += await _linked(redis, election, shard, batch, by_language)
                supporters += len(batch)
                batch = []
        if batch:
            telegram += await _linked(redis, election, shard, batch, by_language)
            supporters += len(batch)
    return RollMix(supporters, telegram, by_language)


async def _linked(
    redis: Redis, election: Election, shard: int, ids: list[str], by_language: dict[str, int]
) -> int:
    """How many of ``ids`` have a Telegram chat linked; the others counted by language."""
    async with redis.pipeline(transaction=False) as pipe:
        for sid in ids:
            pipe.hmget(keys.voter(election.id, shard, sid), ["telegram_id", "language"])
        linked = 0
        for chat, wanted in await pipe.execute():
            if chat:
                linked += 1
            else:
                code = best(wanted, election.languages) or election.languages[0]
                by_language[code] += 1
        return linked


def _billed(*replies: OutboundMessage) -> int:
    """The segments one answer costs, as the SMS channel sends it."""
    return sum(segments(part.text) for part in sms_parts(replies))


def vote_texts(election: Election, *, step_by_step: bool) -> list[str]:
    """The answers an SMS voter receives for one vote, in the language being spoken: the
    code (with ``sms-otp``), the prompts, the ballot to confirm and the receipt, ranking
    every candidate they may."""
    ids = list(election.candidate_ids)[: election.max_preferences]
    numbered = list(enumerate(election.candidates, 1))
    answers = []
    if "sms-otp" in election.identity:
        answers.append(texts.otp(election, "123456", 10))
    for k in range(len(ids) if step_by_step else 1):
        left = [(n, c) for n, c in numbered if c.id not in ids[:k]]
        answers.append(texts.rank_prompt(election, ids[:k], left))
    answers.append(texts.confirm(election, ids))
    answers.append(texts.cast("0123456789"))
    return answers


def vote_segments(election: Election, *, step_by_step: bool, language: str | None = None) -> int:
    """What one SMS vote costs in ``language`` (the election's first by default), sent
    faithful or folded as the election says."""
    code = language or election.languages[0]
    faithful = election.sms_faithful(code)
    with speaking(code):
        answers = vote_texts(election, step_by_step=step_by_step)
    return sum(_billed(OutboundMessage(text, faithful=faithful)) for text in answers)


def vote_encoding(election: Election, language: str) -> str:
    """How SMS in ``language`` travels in this election: GSM-7, or UCS-2 (some or all)."""
    faithful = election.sms_faithful(language)
    with speaking(language):
        answers = vote_texts(election, step_by_step=True)
    found = {
        encoding(part.text)
        for text in answers
        for part in sms_parts([OutboundMessage(text, faithful=faithful)])
    }
    return found.pop() if len(found) == 1 else "GSM-7 and UCS-2"


def estimate(
    election: Election, mix: RollMix, *, turnout: float, reminders: int, message: str
) -> Estimate:
    voters_sms = round(mix.sms_only * turnout)
    voters_tg = round(mix.telegram * turnout)
    code_sms = 0
    first = election.languages[0]
    if "sms-otp" in election.identity:
        with speaking(first):
            otp = texts.otp(election, "123456", 10)
        code_sms = voters_tg * _billed(OutboundMessage(otp, faithful=election.sms_faithful(first)))
    by_language = mix.sms_by_language or {first: mix.sms_only}
    costs = []
    for code in election.languages:
        # A language with no version of its own gets the first's, sent as that one goes.
        written = language_of(message, election, code)
        text = render(message, election, "Alexandra Example", election.opens, written)
        costs.append(
            LanguageCost(
                language=code,
                encoding=vote_encoding(election, code),
                sms_voters=round(by_language.get(code, 0) * turnout),
                per_vote_one_message=vote_segments(election, step_by_step=False, language=code),
                per_vote_step_by_step=vote_segments(election, step_by_step=True, language=code),
                reminder=_billed(OutboundMessage(text, faithful=election.sms_faithful(written))),
            )
        )
    one, step = costs[0].per_vote_one_message, costs[0].per_vote_step_by_step
    return Estimate(
        supporters=mix.supporters,
        sms_voters=voters_sms,
        telegram_voters=voters_tg,
        code_sms=code_sms,
        per_vote_one_message=one,
        per_vote_step_by_step=step,
        conversations_low=sum(c.sms_voters * c.per_vote_one_message for c in costs),
        conversations_high=sum(c.sms_voters * c.per_vote_step_by_step for c in costs),
        reminders=reminders * sum(by_language.get(c.language, 0) * c.reminder for c in costs),
        languages=tuple(costs),
    )


async def cost_command(args: argparse.Namespace, ctx: Context) -> int:
    """Print the estimate, in segments and, with a price, in money."""
    if not 0 <= args.turnout <= 100:
        ctx.err.write("openprimary: --turnout is a percentage from 0 to 100\n")
        return 2
    if args.reminders < 0 or (args.price_per_segment is not None and args.price_per_segment < 0):
        ctx.err.write("openprimary: --reminders and --price-per-segment cannot be negative\n")
        return 2
    election = await get_election(ctx.redis, args.election)
    mix = await roll_mix(ctx.redis, election)
    try:
        result = estimate(
            election,
            mix,
            turnout=args.turnout / 100,
            reminders=args.reminders,
            message=args.message or DEFAULT_REMINDER,
        )
    except (KeyError, IndexError, ValueError) as err:
        ctx.err.write(
            f"openprimary: --message: {err} is not a placeholder a reminder can use "
            "({name}, {days_left}, {time_left}, {closes})\n"
        )
        return 2
    if args.json:
        shown = asdict(result) | {"low": result.low, "high": result.high}
        if args.price_per_segment is not None:
            shown |= {
                "price_per_segment": args.price_per_segment,
                "cost_low": round(result.low * args.price_per_segment, 2),
                "cost_high": round(result.high * args.price_per_segment, 2),
            }
        ctx.out.write(json.dumps(shown, indent=2) + "\n")
        return 0
    price = args.price_per_segment

    def money(n: int) -> str:
        return f"  ({price * n:,.2f})" if price is not None else ""

    out = ctx.out
    out.write(
        f"SMS for {election.title}: {mix.supporters:,} supporters, {mix.sms_only:,} by SMS and "
        f"{mix.telegram:,} with Telegram linked; {args.turnout:g}% voting\n"
    )
    low, high = result.conversations_low, result.conversations_high
    rows = [
        ("code SMS to Telegram voters", f"{result.code_sms:,}", result.code_sms),
        (
            "SMS conversations",
            f"{low:,} to {high:,}",
            high,
        ),
        (f"reminders ({args.reminders} by SMS)", f"{result.reminders:,}", result.reminders),
        ("in all", f"{result.low:,} to {result.high:,}", result.high),
    ]
    for label, figure, most in rows:
        out.write(f"  {label:<30}{figure:>16} segments{money(most)}\n")
    out.write(
        f"  (a vote by SMS: {result.per_vote_one_message} segments with the ranking in one "
        f"message, {result.per_vote_step_by_step} one choice at a time)\n"
    )
    if len(result.languages) > 1:
        out.write("  by language (segments: a vote in one message / step by step; a reminder)\n")
        for c in result.languages:
            how = "faithful" if election.sms_faithful(c.language) else "folded"
            out.write(
                f"    {SHIPPED[c.language].english:<8} {c.sms_voters:>8,} SMS voters  "
                f"{c.per_vote_one_message} / {c.per_vote_step_by_step}; "
                f"{c.reminder}  ({how}, {c.encoding})\n"
            )
    if price is None:
        out.write("  (--price-per-segment 0.04 shows it in money)\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cost",
        help="estimate the poll's SMS segments (codes, conversations, reminders) and their cost",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument("--election", metavar="ID", required=True)
    p.add_argument(
        "--price-per-segment", type=float, metavar="PRICE", help="also show the cost at this price"
    )
    p.add_argument(
        "--reminders", type=int, default=1, metavar="N", help="reminders to plan for (default 1)"
    )
    p.add_argument("--message", help="the reminder's text (default: a usual one)")
    p.add_argument(
        "--turnout",
        type=float,
        default=100.0,
        metavar="PERCENT",
        help="the share of supporters who vote (default 100: a ceiling to budget for)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cost_command)
