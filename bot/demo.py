"""``openprimary demo``: the sample election, a sample supporter, a chat in the terminal."""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from ballots import keys
from ballots.election import Election, read_election_file, save_election
from ballots.roll import import_roll, read_roll_file
from bot.context import Context
from bot.core import build_core
from channels.console import ConsoleOutbox, chat

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def _wipe(ctx: Context, election: Election) -> None:
    """Delete everything the demo election holds, so it can start afresh."""
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
    if args.reset:
        await _wipe(ctx, election)
    election = await save_election(ctx.redis, election)
    supporters = read_roll_file(Path(args.roll_file), ctx.settings.default_region)
    await import_roll(ctx.redis, election, supporters)
    core = await build_core(ctx.settings, ctx.redis, ctx.clock, election.id)
    core.senders["sms"] = ConsoleOutbox("sms", ctx.out)

    voter = None
    for s in supporters:
        if not await core.box.has_voted(election, s.supporter_id):
            voter = s
            break
    if voter is None:
        ctx.out.write(
            "Every sample supporter has voted. Run 'openprimary demo --reset' to start "
            "afresh, or see the result with "
            f"'openprimary turnout --election {election.id}'.\n"
        )
        return 0
    rows = await core.codes.issue_voting_codes(election, [voter.supporter_id])
    code = rows[0][3]
    ctx.out.write(
        f"OpenPrimary demo: {election.title}\n"
        f"You are {voter.name}, supporter number {voter.supporter_id}, phone {voter.phone}.\n"
        f"The party posted you this voting code: {code}\n"
        "Say hello, then type the code (or your supporter number, to get a code by SMS).\n"
        "Type HELP at any time, AGAIN to start again, /quit to leave.\n\n"
    )
    address = f"demo-{voter.supporter_id}"
    await ctx.redis.delete(keys.conversation("console", address))
    try:
        await chat(core.router.handle, channel="console", address=address, out=ctx.out)
    finally:
        await core.conversation.aclose()
    ctx.out.write(f"\nSee the turnout: openprimary turnout --election {election.id}\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand."""
    p = sub.add_parser(
        "demo", help="try a vote in the terminal with the sample election (embedded Redis)"
    )
    p.add_argument("--election-file", default=str(EXAMPLES / "election.toml"), help="election TOML")
    p.add_argument("--roll-file", default=str(EXAMPLES / "roll.csv"), help="roll CSV")
    p.add_argument("--reset", action="store_true", help="wipe the sample election first")
    p.set_defaults(handler=run_demo)
