"""``openprimary demo``: the sample election, a sample supporter, a chat in the terminal.

The demo plays the trustees too: it makes the sample election's count key
and keeps the shares beside the embedded database, so that ``demo --count``
can close the sample election, unseal its ballots and count them.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from ballots import keys
from ballots.count import count
from ballots.count.redis_source import read_ballots
from ballots.election import Election, get_election, read_election_file, save_election
from ballots.errors import OpenPrimaryError
from ballots.languages import SHIPPED
from ballots.program import program
from ballots.roll import import_roll, read_roll_file
from ballots.trustees import combine, load_count_key, make_count_key, read_share
from ballots.unseal import unseal, unsealed_at
from bot.count_report import render_text
from bot.messages import Channel
from channels.console import ConsoleOutbox, chat
from openprimary.app import build_core
from openprimary.context import Context

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Marks, in the election's hash, an election the demo made (and so may wipe).
DEMO_MARK = "demo"
#: The demo's trustees: 3 shares, any 2 unseal.
DEMO_SHARES, DEMO_THRESHOLD = 3, 2


def _trustees_dir(ctx: Context) -> Path:
    return ctx.settings.data_dir / "demo-trustees"


async def _ensure_count_key(ctx: Context, election: Election) -> None:
    """Play the trustees: make the sample election's count key once, shares in the data dir."""
    if await load_count_key(ctx.redis, election.id) is not None:
        return
    folder = _trustees_dir(ctx)
    shutil.rmtree(folder, ignore_errors=True)
    await make_count_key(ctx.redis, election, folder, DEMO_SHARES, DEMO_THRESHOLD)
    ctx.out.write(
        f"(The demo made the election's count key; its {DEMO_SHARES} trustees' shares are in "
        f"{folder}.)\n"
    )


async def demo_count(ctx: Context, election_id: str) -> int:
    """Close the sample election now, unseal it with two demo shares, and count it."""
    election = await get_election(ctx.redis, election_id)
    now = ctx.clock.now()
    if now < election.closes:
        election = await save_election(ctx.redis, replace(election, closes=now))
        ctx.out.write(f"Closed the sample election {election.id} now, for the count.\n")
    stored = await load_count_key(ctx.redis, election.id)
    if stored is None:
        ctx.out.write(f"The sample election has no ballots yet: run '{program()} demo' first.\n")
        return 1
    shares = [
        read_share(_trustees_dir(ctx) / f"share-{i}.key") for i in range(1, DEMO_THRESHOLD + 1)
    ]
    seed = combine(shares, election.id, stored)
    report = await unseal(ctx.redis, election, seed, ctx.clock, actor=ctx.actor, shares_used=[1, 2])
    ctx.out.write(
        f"Unsealed with trustees' shares 1 and 2: {report.opened} ballots opened, "
        f"{report.invalid} invalid.\n\n"
    )
    ballots = await read_ballots(ctx.redis, election)
    ctx.out.write(render_text(count(ballots, election.method, seats=election.seats)))
    return 0


async def _check_ours(ctx: Context, election: Election) -> None:
    """Refuse to touch an election of the sample's id that the demo did not make."""
    key = keys.election(election.id)
    if await ctx.redis.exists(key) and not await ctx.redis.hget(key, DEMO_MARK):
        raise OpenPrimaryError(
            f"election {election.id} in {ctx.settings.data_dir} was not made by the demo; "
            "the demo leaves it alone (run the demo with another OPENPRIMARY_DATA_DIR)"
        )


async def _wipe(ctx: Context, election: Election) -> None:
    """Delete everything the demo election holds, so it can start afresh.

    Only an election the demo made itself (marked so when it saved it): an
    election of the same id loaded by an organiser is never touched.
    """
    patterns = [f"{keys.election(election.id)}*", f"{keys.PREFIX}:{{{election.id}/*"]
    patterns.append(keys.conversation("console", "*"))
    for pattern in patterns:
        batch = [k async for k in ctx.redis.scan_iter(match=pattern, count=1000)]
        if batch:
            await ctx.redis.delete(*batch)
    await ctx.redis.srem(keys.ELECTIONS, election.id)


async def run_demo(args: argparse.Namespace, ctx: Context) -> int:
    """Load the sample election and roll, then chat as a sample supporter."""
    election = read_election_file(Path(args.election_file))
    now = ctx.clock.now()
    # The sample must be open whenever someone tries it.
    election = replace(
        election,
        opens=min(election.opens, now - timedelta(hours=1)),
        closes=max(election.closes, now + timedelta(days=7)),
    )
    if args.language:
        # The chosen language first (the bot starts in it), every other one offered.
        others = [code for code in SHIPPED if code != args.language]
        election = replace(election, languages=(args.language, *others))
    await _check_ours(ctx, election)
    if args.reset:
        await _wipe(ctx, election)
        shutil.rmtree(_trustees_dir(ctx), ignore_errors=True)
    if args.count:
        return await demo_count(ctx, election.id)
    if await unsealed_at(ctx.redis, election) is not None:
        ctx.out.write(
            f"The sample election has been counted. Run '{program()} demo --reset' to start "
            "afresh.\n"
        )
        return 0
    election = await save_election(ctx.redis, election)
    await ctx.redis.hset(keys.election(election.id), DEMO_MARK, "1")
    await _ensure_count_key(ctx, election)
    supporters = read_roll_file(Path(args.roll_file), ctx.settings.default_region)
    if args.language:
        # The sample supporters speak it too: the roll's language wins once one is known.
        supporters = [replace(s, language=args.language) for s in supporters]
    await import_roll(ctx.redis, election, supporters)
    core = await build_core(
        ctx.settings,
        ctx.redis,
        ctx.clock,
        election.id,
        senders={Channel.SMS: ConsoleOutbox(Channel.SMS, ctx.out)},
    )

    voter = None
    for s in supporters:
        if not await core.box.has_voted(election, s.supporter_id):
            voter = s
            break
    if voter is None:
        ctx.out.write(
            f"Every sample supporter has voted. Run '{program()} demo --reset' to start "
            "afresh, or see the result with "
            f"'{program()} turnout --election {election.id}'.\n"
        )
        return 0
    rows = await core.codes.issue_voting_codes(election, [voter.supporter_id])
    code = rows[0][3]
    ctx.out.write(
        f"OpenPrimary demo: {election.title}\n"
        f"You are {voter.name}, supporter number {voter.supporter_id}, phone {voter.phone}.\n"
        f"The party posted you this voting code: {code}\n"
        "Say hello, then type the code (or your supporter number, to get a code by SMS).\n"
        "Type HELP at any time, AGAIN to start again, /quit to leave.\n"
        + _languages_line(election)
        + "\n"
    )
    address = f"demo-{voter.supporter_id}"
    await ctx.redis.delete(keys.conversation("console", address))
    try:
        await chat(core.router.handle, channel="console", address=address, out=ctx.out)
    finally:
        await core.conversation.aclose()
    ctx.out.write(
        f"\nSee the turnout: {program()} turnout --election {election.id}\n"
        f"Close the sample election and count it: {program()} demo --count\n"
    )
    return 0


def _languages_line(election: Election) -> str:
    """How to switch language in the demo, when it offers more than one."""
    if len(election.languages) < 2:
        return ""
    names = ", ".join(SHIPPED[code].name for code in election.languages)
    first = SHIPPED[election.languages[0]].english
    return (
        f"The bot starts in {first}; send a language's name to switch ({names}). Its "
        "own words for HELP, YES, AGAIN... work, and so do the English ones.\n"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand."""
    p = sub.add_parser(
        "demo", help="try a vote in the terminal with the sample election (embedded Redis)"
    )
    p.add_argument("--election-file", default=str(EXAMPLES / "election.toml"), help="election TOML")
    p.add_argument("--roll-file", default=str(EXAMPLES / "roll.csv"), help="roll CSV")
    p.add_argument("--reset", action="store_true", help="wipe the sample election first")
    p.add_argument(
        "--language",
        choices=sorted(SHIPPED),
        help="start the chat in this language (the others are offered too): "
        + ", ".join(f"{code} {lang.english}" for code, lang in SHIPPED.items()),
    )
    p.add_argument(
        "--count",
        action="store_true",
        help="close the sample election now, unseal its ballots with the demo's trustees' "
        "shares and count them",
    )
    # The demo never touches a configured Redis: only its own embedded one.
    p.set_defaults(handler=run_demo, embedded_only=True)
