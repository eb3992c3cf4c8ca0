"""``openprimary console``: the organisers' console sessions, and locked sign-ins.

``console sessions --election ID`` lists the live sessions (who, since when, by which
factor); ``--revoke ORGANISER`` ends that organiser's, ``--revoke-all`` everyone's.  A
session also ends by itself the moment its organiser is no longer in the election file.
``console unlock --election ID --organiser ORGANISER`` lets an organiser sign in again after
too many wrong sign-in codes locked them out.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from ballots.election import get_election
from ballots.errors import OpenPrimaryError
from bot.signin import SignIn
from openprimary.context import Context


async def _signin(args: argparse.Namespace, ctx: Context) -> SignIn:
    election = await get_election(ctx.redis, args.election)
    ctx.settings.require("secret_key")
    return SignIn(
        ctx.redis,
        election,
        ctx.clock,
        ctx.settings.secret_key,
        {},
        region=ctx.settings.default_region,
    )


def _actor(signin: SignIn, typed: str) -> str:
    """The organiser as the audit names them (``tg:<id>``, ``sms:<E.164>``), from what an
    organiser would type; refused if the election file does not list them."""
    actor = signin.organiser(typed.removeprefix("sms:"))
    if actor is None:
        raise OpenPrimaryError(
            f"{typed!r} is not an organiser of {signin.election.id} "
            f"(the election file lists: {', '.join(signin.actors()) or 'nobody'})"
        )
    return actor


async def sessions_command(args: argparse.Namespace, ctx: Context) -> int:
    signin = await _signin(args, ctx)
    if args.revoke_all or args.revoke:
        actor = _actor(signin, args.revoke) if args.revoke else None
        ended = await signin.revoke(ctx.actor, actor)
        ctx.out.write(f"ended {ended} console session(s) of {actor or 'every organiser'}\n")
        return 0
    live = await signin.sessions()
    if not live:
        ctx.out.write(f"no live console sessions for {signin.election.id}\n")
    for short, session in live:
        since = datetime.fromtimestamp(session.started, UTC)
        ctx.out.write(
            f"{short}  {session.actor}  since {since:%Y-%m-%d %H:%M} UTC  {session.factor}\n"
        )
    locked = await signin.locked()
    if locked:
        ctx.out.write(f"locked out after too many wrong codes: {', '.join(locked)}\n")
    return 0


async def unlock_command(args: argparse.Namespace, ctx: Context) -> int:
    signin = await _signin(args, ctx)
    actor = _actor(signin, args.organiser)
    if not await signin.unlock(actor, ctx.actor):
        ctx.out.write(f"{actor} was not locked out of the console\n")
        return 0
    ctx.out.write(f"{actor} may sign in to the console again\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "console",
        help="the organisers' console: sessions, and sign-ins locked by wrong codes",
        description=(__doc__ or "").split("\n\n")[0],
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = actions.add_parser("sessions", help="list the live console sessions, or end them")
    s.add_argument("--election", metavar="ID", required=True)
    which = s.add_mutually_exclusive_group()
    which.add_argument("--revoke", metavar="ORGANISER", help="end this organiser's sessions")
    which.add_argument("--revoke-all", action="store_true", help="end every session")
    s.set_defaults(handler=sessions_command)
    u = actions.add_parser("unlock", help="let an organiser locked by wrong codes sign in again")
    u.add_argument("--election", metavar="ID", required=True)
    u.add_argument("--organiser", metavar="ORGANISER", required=True, help="tg:<id> or a phone")
    u.set_defaults(handler=unlock_command)
