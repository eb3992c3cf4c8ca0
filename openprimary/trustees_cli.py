"""Ballot secrecy subcommands: ``trustees init``, ``unseal`` and ``receipts``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ballots import audit
from ballots.election import get_election, has_ballots
from ballots.errors import OpenPrimaryError
from ballots.program import program
from ballots.quiet import local
from ballots.receipts import all_receipts
from ballots.trustees import combine, load_count_key, make_count_key, read_share
from ballots.unseal import UnsealRefused, require_closed, unseal, unsealed_at
from openprimary.context import Context


async def trustees_init(args: argparse.Namespace, ctx: Context) -> int:
    """Make the count key, store its public half and write the trustees' shares."""
    election = await get_election(ctx.redis, args.election)
    if await has_ballots(ctx.redis, election):
        raise OpenPrimaryError(
            f"election {election.id} already has ballots sealed to its count key; the key "
            "cannot be replaced under them"
        )
    existing = await load_count_key(ctx.redis, election.id)
    if existing is not None:
        if not args.replace:
            raise OpenPrimaryError(
                f"election {election.id} already has a count key (id {existing.id}); "
                "use --replace to make a new one before voting opens (the old shares "
                "then open nothing)"
            )
        if ctx.clock.now() >= election.opens:
            raise OpenPrimaryError(
                f"election {election.id} opened {local(election, election.opens, year=True)}; its "
                "count key cannot be replaced once voting has opened"
            )
    key, paths = await make_count_key(
        ctx.redis,
        election,
        Path(args.out),
        args.shares,
        args.threshold,
        replace=existing.id if existing else None,
    )
    await audit.record(
        ctx.redis,
        ctx.clock,
        election.id,
        ctx.actor,
        "count key made",
        shares=args.shares,
        threshold=args.threshold,
        key_id=key.id,
        replaced=existing.id if existing is not None else None,
    )
    ctx.out.write(
        f"count key {key.id} for {election.id}: public key stored; the private key was split "
        f"into {args.shares} shares, any {args.threshold} of which open the ballots, and "
        "forgotten.\n"
    )
    for path in paths:
        ctx.out.write(f"  {path}\n")
    ctx.out.write(
        "Give each share to a different trustee and delete it from this machine. Voting can "
        "now open.\n"
    )
    return 0


async def unseal_command(args: argparse.Namespace, ctx: Context) -> int:
    """Rebuild the count key from the shares and open the sealed ballots into the ballot box."""
    election = await get_election(ctx.redis, args.election)
    require_closed(election, ctx.clock.now())  # before the shares are even read
    stored = await load_count_key(ctx.redis, election.id)
    if stored is None:
        raise UnsealRefused(f"election {election.id} has no count key, so no sealed ballots")
    shares = [read_share(Path(p)) for p in args.share]
    seed = combine(shares, election.id, stored)
    report = await unseal(
        ctx.redis,
        election,
        seed,
        ctx.clock,
        actor=ctx.actor,
        shares_used=sorted({s.index for s in shares}),
        workers=args.workers,
    )
    if report.already:
        when = await unsealed_at(ctx.redis, election)
        ctx.out.write(
            f"{election.id} was already unsealed"
            + (f" {local(election, when, year=True)}" if when else "")
            + f": {report.opened:,} ballots; nothing changed.\n"
        )
        return 0
    ctx.out.write(
        f"unsealed {election.id}: {report.sealed:,} sealed ballots, {report.opened:,} opened, "
        f"{report.invalid} invalid; {report.rankings:,} different rankings.\n"
        f"Count them: {program()} count --election {election.id}\n"
    )
    if report.shared_receipts:
        ctx.err.write(
            f"note: {report.shared_receipts:,} receipts were each given to two voters (a clash "
            "from before receipts were checked at the cast, not tampering: every voter's "
            "ballot is there); those voters find their receipt in the published list once.\n"
        )
    return 0


async def receipts_command(args: argparse.Namespace, ctx: Context) -> int:
    """Write every receipt id, sorted, one a line: for publication after the close."""
    election = await get_election(ctx.redis, args.election)
    if ctx.clock.now() < election.closes:
        raise OpenPrimaryError(
            f"election {election.id} closes {local(election, election.closes, year=True)}; "
            "receipts are published after the close"
        )
    receipts = await all_receipts(ctx.redis, election)
    text = "".join(f"{r}\n" for r in receipts)
    if args.out is None:
        ctx.out.write(text)
    else:
        out = Path(args.out)
        try:
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            tmp.write_text(text, encoding="ascii")
            tmp.replace(out)
        except OSError as err:
            raise OpenPrimaryError(f"cannot write {out}: {err.strerror}") from err
        ctx.err.write(f"wrote {len(receipts):,} receipts to {out}\n")
    await audit.record(
        ctx.redis,
        ctx.clock,
        election.id,
        ctx.actor,
        "receipts listed",
        receipts=len(receipts),
        file=str(args.out) if args.out else "-",
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``trustees``, ``unseal`` and ``receipts``."""
    p = sub.add_parser("trustees", help="the count key that seals ballots, held as shares")
    tsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = tsub.add_parser(
        "init",
        help="make the election's count key and split it into trustees' shares",
        description=(
            "Make the key pair that ballots are sealed to, store the public key with the "
            "election, and write DIR/share-1.key ... DIR/share-N.key (readable by you only): "
            "any K of them rebuild the private key, which is not kept anywhere. Voting cannot "
            "open until an election has its count key."
        ),
    )
    q.add_argument("--election", required=True, metavar="ID")
    q.add_argument("--shares", type=int, required=True, metavar="N", help="shares to write")
    q.add_argument(
        "--threshold", type=int, required=True, metavar="K", help="shares needed to unseal"
    )
    q.add_argument("--out", required=True, metavar="DIR", help="directory for the share files")
    q.add_argument(
        "--replace",
        action="store_true",
        help="replace an existing count key (only before voting opens)",
    )
    q.set_defaults(handler=trustees_init)

    p = sub.add_parser(
        "unseal",
        help="after the close: open the sealed ballots with K trustees' shares",
        description=(
            "Rebuild the count key from K share files, check it against the election's public "
            "key, open every sealed ballot and write the ballot box that count and export read. "
            "Refused before the election closes. Safe to run again after a crash."
        ),
    )
    p.add_argument("--election", required=True, metavar="ID")
    p.add_argument(
        "--share", action="append", required=True, metavar="FILE", help="a share file (repeat)"
    )
    p.add_argument(
        "--workers", type=int, metavar="N", help="processes opening ballots (default: one a core)"
    )
    p.set_defaults(handler=unseal_command)

    p = sub.add_parser(
        "receipts",
        help="after the close: every receipt id, sorted, for publication",
    )
    p.add_argument("--election", required=True, metavar="ID")
    p.add_argument("--out", metavar="FILE", help="file to write (default: standard output)")
    p.set_defaults(handler=receipts_command)
