"""Organiser subcommands: elections, the roll, voting codes, turnout and the audit trail."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ballots import audit, keys
from ballots.codes import Codes
from ballots.codes_file import PrivateFile, write_codes_csv
from ballots.election import (
    MIN_SHARD_SIZE,
    Election,
    bind_secret_key,
    get_election,
    list_elections,
    read_election_file,
    save_election,
)
from ballots.errors import OpenPrimaryError, UnknownElection
from ballots.languages import SHIPPED
from ballots.program import program
from ballots.quiet import local
from ballots.roll import (
    get_supporter,
    import_roll,
    read_roll_file,
    roll_size,
    unoffered_languages,
)
from ballots.trustees import load_count_key
from ballots.turnout import turnout
from bot import rehearsal, window
from openprimary.context import Context

SubParsers = "argparse._SubParsersAction[argparse.ArgumentParser]"


async def election_load(args: argparse.Namespace, ctx: Context) -> int:
    """Read an election file and store it; the audit entry says what changed."""
    election = read_election_file(Path(args.file))
    try:
        before: Election | None = await get_election(ctx.redis, election.id)
    except UnknownElection:
        before = None
    election = await save_election(ctx.redis, election)
    await audit.record(
        ctx.redis,
        ctx.clock,
        election.id,
        ctx.actor,
        "election loaded",
        file=str(args.file),
        method=election.method,
        candidates=len(election.candidates),
        changes=window.changes(before, election) if before is not None else ["first load"],
    )
    ctx.out.write(
        f"loaded election {election.id}: {election.title} ({election.method}, "
        f"{len(election.candidates)} candidates, {local(election, election.opens, year=True)} "
        f"to {local(election, election.closes, year=True)})\n"
    )
    return 0


async def election_close(args: argparse.Namespace, ctx: Context) -> int:
    """Close the poll now, or at a time before its current close."""
    election = await get_election(ctx.redis, args.election)
    at = window.parse_time(args.at, election, ctx.clock) if args.at else None
    closed = await window.close(ctx.redis, election, ctx.clock, ctx.actor, at)
    ctx.out.write(
        f"{closed.id} closes {window.when(closed, closed.closes)} (it closed "
        f"{window.when(election, election.closes)} before); every running server follows "
        "within a few seconds, and no ballot is taken after it.\n"
    )
    return 0


async def election_extend(args: argparse.Namespace, ctx: Context) -> int:
    """Move the poll's close later (reopening it with --reopen)."""
    election = await get_election(ctx.redis, args.election)
    closes = window.parse_time(args.closes, election, ctx.clock)
    moved = await window.extend(
        ctx.redis, election, closes, ctx.clock, ctx.actor, reopen=args.reopen
    )
    ctx.out.write(
        f"{moved.id} now closes {window.when(moved, moved.closes)} (it was "
        f"{window.when(election, election.closes)}); every running server follows within a "
        "few seconds.\n"
    )
    return 0


async def election_show(args: argparse.Namespace, ctx: Context) -> int:
    """Print a stored election."""
    if args.election is None:
        for eid in await list_elections(ctx.redis):
            ctx.out.write(eid + "\n")
        return 0
    election = await get_election(ctx.redis, args.election)
    ctx.out.write(json.dumps(json.loads(election.to_json()), indent=2) + "\n")
    return 0


async def election_rehearse(args: argparse.Namespace, ctx: Context) -> int:
    """Start a rehearsal: the testers may vote before the opening, every message marked."""
    election = await get_election(ctx.redis, args.election)
    testers = rehearsal.read_testers(Path(args.testers))
    await rehearsal.rehearse(ctx.redis, election, testers, ctx.clock, ctx.actor, args.testers)
    ctx.out.write(
        f"rehearsal of {election.id} started for {len(testers)} testers: they can vote now, by "
        "SMS and Telegram, and every message they get starts 'TEST: '. Everyone else is told "
        f"voting opens {local(election, election.opens, year=True)}. When you are done: "
        f"{program()} election finalise --election {election.id}\n"
    )
    return 0


async def election_finalise(args: argparse.Namespace, ctx: Context) -> int:
    """Wipe the rehearsal: the election as if it had never happened (the audit keeps it)."""
    election = await get_election(ctx.redis, args.election)
    done = await rehearsal.finalise(ctx.redis, election, ctx.clock, ctx.actor)
    ctx.out.write(
        f"rehearsal of {election.id} finalised: wiped {done.ballots} ballots, the records of "
        f"{done.testers} testers, {done.chats} chats and {done.jobs} reminder jobs. It sent "
        f"{done.sms_segments} SMS segments, which no longer count against the SMS budget.\n"
        + await _readiness(ctx, election)
    )
    return 0


async def _readiness(ctx: Context, election: Election) -> str:
    """Whether voting can really open at its time, and if not, what is missing."""
    missing = []
    if await load_count_key(ctx.redis, election.id) is None:
        missing.append(
            f"no count key ({program()} trustees init --election {election.id} --shares N "
            "--threshold K --out DIR)"
        )
    if not await roll_size(ctx.redis, election):
        missing.append(f"no roll ({program()} roll import FILE --election {election.id})")
    when = local(election, election.opens, year=True)
    if missing:
        return f"The election is NOT ready to open at {when}: " + "; ".join(missing) + ".\n"
    return f"The election is ready to open {when}.\n"


async def roll_import(args: argparse.Namespace, ctx: Context) -> int:
    """Import (or update) the roll from a CSV file, all or nothing."""
    election = await get_election(ctx.redis, args.election)
    if await rehearsal.state(ctx.redis, election.id) is not None:
        raise OpenPrimaryError(
            f"election {election.id} is being rehearsed: finalise the rehearsal first "
            f"({program()} election finalise --election {election.id}), or the testers' "
            "records it puts back would undo this import"
        )
    supporters = read_roll_file(
        Path(args.file), args.region or ctx.settings.default_region, election.section_names
    )
    for language, n in sorted(unoffered_languages(supporters, election.languages).items()):
        ctx.err.write(
            f"{args.file}: {n} supporter(s) with language {language!r}, which {election.id} does "
            f"not offer ({', '.join(election.languages)}): they are answered in "
            f"{SHIPPED[election.languages[0]].english}\n"
        )
    summary = await import_roll(ctx.redis, election, supporters)
    await audit.record(
        ctx.redis,
        ctx.clock,
        election.id,
        ctx.actor,
        "roll imported",
        file=str(args.file),
        added=summary.added,
        updated=summary.updated,
        total=summary.total,
    )
    ctx.out.write(
        f"imported {len(supporters)} supporters into {election.id}: {summary.added} new, "
        f"{summary.updated} updated; {summary.total} on the roll\n"
    )
    if election.shards > 1 and summary.total < election.shards * MIN_SHARD_SIZE:
        ctx.err.write(
            f"openprimary: warning: {election.shards} shards for {summary.total} supporters "
            f"leaves about {summary.total // election.shards} per shard; ballots are stored per "
            "shard, so small shards weaken ballot secrecy. Use fewer shards (set 'shards' "
            "in the election file before the first load).\n"
        )
    return 0


async def codes_issue(args: argparse.Namespace, ctx: Context) -> int:
    """Issue voting codes and write the mail-merge CSV."""
    election = await get_election(ctx.redis, args.election)
    if "code" not in election.identity:
        ctx.err.write(
            f"openprimary: election {election.id} does not accept voting codes "
            '(identity has no "code")\n'
        )
        return 2
    if await rehearsal.state(ctx.redis, election.id) is not None:
        raise OpenPrimaryError(
            f"election {election.id} is being rehearsed: issue codes before the rehearsal or "
            f"after '{program()} election finalise --election {election.id}' (the finalise "
            "puts the testers' codes back, so codes issued now could stop working)"
        )
    ctx.settings.require("secret_key")
    await bind_secret_key(ctx.redis, election, ctx.settings.secret_key)
    out = Path(args.out)
    if out.exists() and not args.force:
        ctx.err.write(f"openprimary: {out} exists; use --force to overwrite it\n")
        return 2
    codes = Codes(ctx.redis, ctx.settings.secret_key, ctx.clock)
    ids = args.supporter or None
    unknown = [sid for sid in ids or () if not await get_supporter(ctx.redis, election, sid)]
    if unknown:
        raise OpenPrimaryError(f"not on the roll of {election.id}: {', '.join(unknown)}")
    try:
        private = PrivateFile(out)
    except OSError as err:
        raise OpenPrimaryError(f"cannot write {out}: {err.strerror}; no code was issued") from err
    with private as fh:
        rows = await codes.issue_voting_codes(election, ids)
        try:
            n = write_codes_csv(rows, fh)
        except OSError as err:
            raise OpenPrimaryError(
                f"writing {out} failed ({err.strerror}) after new codes were issued; "
                "run the command again: the codes it issues replace these"
            ) from err
    await audit.record(
        ctx.redis,
        ctx.clock,
        election.id,
        ctx.actor,
        "codes issued",
        count=n,
        file=str(out),
        only=ids and len(ids),
    )
    ctx.out.write(
        f"issued {n} voting codes for {election.id}; wrote {out} (readable by you only). "
        "Any earlier codes for these supporters no longer work.\n"
    )
    return 0


async def turnout_report(args: argparse.Namespace, ctx: Context) -> int:
    """Print turnout: eligible, voted, by channel, by day and by section."""
    election = await get_election(ctx.redis, args.election)
    report = await turnout(ctx.redis, election)
    segments = int(await ctx.redis.get(keys.sms_segments(election.id)) or 0)
    testing = await rehearsal.state(ctx.redis, election.id)
    if args.json:
        shown = report.to_dict() | {"sms_segments_sent": segments, "rehearsal": testing}
        ctx.out.write(json.dumps(shown, indent=2) + "\n")
        return 0
    ctx.out.write(f"{election.title} ({election.id})\n")
    if testing is not None:
        ctx.out.write(
            f"REHEARSAL {testing.upper()}: these are test ballots, wiped by "
            f"'{program()} election finalise --election {election.id}'\n"
        )
    ctx.out.write(
        f"eligible  {report.eligible}\nvoted     {report.voted}  ({report.percent:.1f}%)\n"
    )
    budget = ctx.settings.sms_budget_segments
    of_budget = f" of a budget of {budget:,}" if budget else ""
    ctx.out.write(f"SMS segments sent  {segments:,}{of_budget}\n")
    if report.by_channel:
        ctx.out.write("by channel\n")
        for name, n in sorted(report.by_channel.items()):
            ctx.out.write(f"  {name:<10}{n}\n")
    if report.by_day:
        ctx.out.write("by day\n")
        for day, n in sorted(report.by_day.items()):
            ctx.out.write(f"  {day}  {n}\n")
    if election.sections:
        ctx.out.write("by section (electoral college)\n")
        for name, share in election.sections:
            voted = report.by_section.get(name, 0)
            eligible = report.eligible_by_section.get(name, 0)
            percent = f"{100 * voted / eligible:.1f}%" if eligible else "-"
            ctx.out.write(
                f"  {name:<12}{voted} of {eligible} ({percent}), share {float(share):.2%}\n"
            )
    return 0


async def audit_show(args: argparse.Namespace, ctx: Context) -> int:
    """Print the audit trail."""
    await get_election(ctx.redis, args.election)
    entries = await audit.read(ctx.redis, args.election)
    for e in entries:
        if args.json:
            ctx.out.write(
                json.dumps(
                    {
                        "id": e.id,
                        "at": e.at.isoformat(),
                        "actor": e.actor,
                        "action": e.action,
                        "details": e.details,
                    }
                )
                + "\n"
            )
        else:
            detail = ", ".join(f"{k}={v}" for k, v in e.details.items() if v is not None)
            ctx.out.write(f"{e.at:%Y-%m-%d %H:%M:%S}  {e.actor:<24} {e.action}  {detail}\n")
    if not entries and not args.json:
        ctx.out.write("(no entries)\n")
    return 0


async def codes_locks(args: argparse.Namespace, ctx: Context) -> int:
    """List the supporters and chat addresses that are locked out now."""
    election = await get_election(ctx.redis, args.election)
    codes = Codes(ctx.redis, ctx.settings.secret_key, ctx.clock)
    voters, addresses = await codes.locks(election)
    for sid, fails in voters:
        ctx.out.write(
            f"supporter {sid}: {fails} failed codes; texted codes refused, except to their "
            "own phone (their voting code still works)\n"
        )
    for address, fails in addresses:
        ctx.out.write(f"address {address}: {fails} failures in the last hour\n")
    if not voters and not addresses:
        ctx.out.write(f"nobody is locked out of {election.id}\n")
    return 0


async def codes_unlock(args: argparse.Namespace, ctx: Context) -> int:
    """Clear a supporter's or an address's failures."""
    election = await get_election(ctx.redis, args.election)
    codes = Codes(ctx.redis, ctx.settings.secret_key, ctx.clock)
    if args.supporter:
        if not await get_supporter(ctx.redis, election, args.supporter):
            raise OpenPrimaryError(f"not on the roll of {election.id}: {args.supporter}")
        cleared = await codes.unlock_supporter(election, args.supporter)
        what = f"supporter {args.supporter}"
    else:
        channel, sep, address = str(args.address).partition(":")
        if not sep or not channel or not address:
            raise OpenPrimaryError(
                f"--address {args.address!r}: give CHANNEL:ADDRESS, e.g. telegram:123456 or "
                "sms:+447700900123"
            )
        cleared = await codes.unlock_address(election, channel, address)
        what = f"address {channel}:{address}"
    await audit.record(
        ctx.redis, ctx.clock, election.id, ctx.actor, "unlocked", who=what, had_failures=cleared
    )
    ctx.out.write(f"{what}: {'unlocked' if cleared else 'was not locked'}\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the organiser subcommands."""
    p = sub.add_parser(
        "election", help="load, show, close or extend elections; rehearse one before it opens"
    )
    esub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = esub.add_parser("load", help="read an election TOML file and store it")
    q.add_argument("file", help="the election file (TOML)")
    q.set_defaults(handler=election_load)
    q = esub.add_parser("close", help="close the poll now, or earlier than planned")
    q.add_argument("--election", required=True, help="the election id")
    q.add_argument(
        "--at",
        metavar="TIME",
        help="when, before the current close: 2026-12-13T21:00 in the election's zone, or "
        "with a zone (default: now)",
    )
    q.set_defaults(handler=election_close)
    q = esub.add_parser("extend", help="move the poll's close later (after an outage, say)")
    q.add_argument("--election", required=True, help="the election id")
    q.add_argument(
        "--closes",
        required=True,
        metavar="TIME",
        help="the new close: 2026-12-13T22:00 in the election's zone, or with a zone",
    )
    q.add_argument(
        "--reopen", action="store_true", help="the poll has closed: open it again until TIME"
    )
    q.set_defaults(handler=election_extend)
    q = esub.add_parser("show", help="list loaded elections, or show one")
    q.add_argument("election", nargs="?", help="an election id")
    q.set_defaults(handler=election_show)
    q = esub.add_parser(
        "rehearse",
        help="before the opening: let the testers in FILE vote for real, every message marked TEST",
    )
    q.add_argument("--election", required=True, help="the election id")
    q.add_argument(
        "--testers",
        required=True,
        metavar="FILE",
        help="supporter ids, one a line (a roll or codes CSV works: its first column)",
    )
    q.set_defaults(handler=election_rehearse)
    q = esub.add_parser(
        "finalise",
        help="end a rehearsal: wipe its ballots, codes spent, chats and jobs (the audit stays)",
    )
    q.add_argument("--election", required=True, help="the election id")
    q.set_defaults(handler=election_finalise)

    p = sub.add_parser("roll", help="manage the voter roll")
    rsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = rsub.add_parser(
        "import", help="import the roll CSV (supporter_id,name,phone[,telegram_id,language])"
    )
    q.add_argument("file", help="the roll CSV")
    q.add_argument("--election", required=True, help="the election id")
    q.add_argument("--region", help="region for numbers without +country (default GB)")
    q.set_defaults(handler=roll_import)

    p = sub.add_parser("codes", help="pre-issued voting codes, and locks from failed codes")
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = csub.add_parser("issue", help="issue voting codes and write a mail-merge CSV")
    q.add_argument("--election", required=True, help="the election id")
    q.add_argument("--out", required=True, help="CSV to write: supporter_id,name,phone,code")
    q.add_argument("--supporter", action="append", help="only this supporter (repeatable)")
    q.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    q.set_defaults(handler=codes_issue)
    q = csub.add_parser("locks", help="list the supporters and chat addresses locked out now")
    q.add_argument("--election", required=True, help="the election id")
    q.set_defaults(handler=codes_locks)
    q = csub.add_parser("unlock", help="clear a supporter's or a chat address's failed codes")
    q.add_argument("--election", required=True, help="the election id")
    who = q.add_mutually_exclusive_group(required=True)
    who.add_argument("--supporter", metavar="ID", help="a supporter on the roll")
    who.add_argument(
        "--address", metavar="CHANNEL:ADDRESS", help="a chat, e.g. telegram:123456, sms:+4477..."
    )
    q.set_defaults(handler=codes_unlock)

    p = sub.add_parser("turnout", help="eligible supporters, ballots cast, by channel and day")
    p.add_argument("--election", required=True, help="the election id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=turnout_report)

    p = sub.add_parser("audit", help="print the organisers' audit trail")
    p.add_argument("--election", required=True, help="the election id")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=audit_show)
