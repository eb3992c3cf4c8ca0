"""``openprimary results publish|unpublish --election ID``: the public results page, from the
command line as from the console (the same rules, the same audit entries)."""

from __future__ import annotations

import argparse

from ballots.election import get_election
from bot import results
from openprimary.context import Context


async def publish_command(args: argparse.Namespace, ctx: Context) -> int:
    election = await get_election(ctx.redis, args.election)
    done = await results.publish(ctx.redis, election, ctx.clock, ctx.actor)
    winners = ", ".join(done.result.candidates[w] for w in done.result.winners)
    ctx.out.write(
        f"published the results of {election.id} (elected: {winners}) at /results/"
        f"{election.id}; they stand until unpublished\n"
    )
    return 0


async def unpublish_command(args: argparse.Namespace, ctx: Context) -> int:
    election = await get_election(ctx.redis, args.election)
    at, by = await results.unpublish(ctx.redis, election, ctx.clock, ctx.actor)
    ctx.out.write(
        f"took down the results of {election.id} (published {at} by {by}): /results/"
        f"{election.id} answers 404 again\n"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "results",
        help="after the unseal: publish the results page, or take it down",
        description=(__doc__ or "").split("\n\n")[0],
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("publish", help="publish the count as it stands, once")
    q.add_argument("--election", metavar="ID", required=True)
    q.set_defaults(handler=publish_command)
    q = actions.add_parser("unpublish", help="take the published results down")
    q.add_argument("--election", metavar="ID", required=True)
    q.set_defaults(handler=unpublish_command)
