"""The ``openprimary count`` and ``openprimary export`` subcommands."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ballots.count import METHODS, count
from ballots.count.chart import write_chart
from ballots.count.formats import FORMATS, check_writable, read_ballots, write_ballots
from ballots.count.model import Ballots, CountError
from ballots.count.report import render_json
from ballots.count.result import Result
from bot.count_report import render_text

if TYPE_CHECKING:
    from ballots.election import Election
    from openprimary.context import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``count`` and ``export`` to the ``openprimary`` parser."""
    p = sub.add_parser(
        "count",
        help="count an election's ballots, or a ballot file, round by round",
        description=(
            "Count the ballots of an election in Redis (--election) or of a ballot file "
            "(--ballots: .blt, .soi, .toi or .csv) and print the round-by-round report."
        ),
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--election", metavar="ID", help="count this election's ballots")
    source.add_argument("--ballots", metavar="FILE", type=Path, help="count a ballot file")
    p.add_argument(
        "--method",
        choices=METHODS,
        help="for --ballots: irv, sv or stv (default: stv if the file has more than one "
        "seat, else irv)",
    )
    p.add_argument("--seats", type=int, metavar="N", help="for --ballots with stv: seats to fill")
    p.add_argument(
        "--max-ranks",
        type=int,
        metavar="N",
        help="for --ballots: refuse the file if a ballot gives more than N preferences",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed for any tie decided by lot; recorded in the report (default 0)",
    )
    p.add_argument(
        "--bulk-exclusion",
        action="store_true",
        help="irv: exclude together the candidates who cannot catch up",
    )
    p.add_argument(
        "--min-section-ballots",
        type=int,
        metavar="N",
        help="an electoral college: count a section with as few as N valid ballots (default: "
        "the election's min_section_ballots); fewer can show how its voters voted",
    )
    p.add_argument("--json", action="store_true", help="print the JSON report instead")
    p.add_argument("--chart", metavar="FILE", type=Path, help="also draw the rounds (.png/.html)")
    p.set_defaults(handler=count_command)

    e = sub.add_parser(
        "export",
        help="write an election's ballots for other counting tools",
        description=(
            "Write an election's ballots as BLT, PrefLib (.soi) or CSV, with no voter data, "
            "sorted by ranking."
        ),
    )
    e.add_argument("--election", metavar="ID", required=True)
    e.add_argument("--format", choices=FORMATS, required=True)
    e.add_argument(
        "--out",
        metavar="FILE",
        type=Path,
        help="file to write (default: stdout); an electoral college writes one file per "
        "section beside it (FILE-SECTION.EXT) and the weights (FILE-weights.json)",
    )
    e.set_defaults(handler=export_command)


def _file_count(args: argparse.Namespace) -> Result:
    """Read and count a ballot file (run in a worker thread)."""
    if args.max_ranks is not None and args.max_ranks < 1:
        raise CountError("--max-ranks must be at least 1")
    ballots = read_ballots(args.ballots, args.max_ranks)
    seats = args.seats if args.seats is not None else (ballots.seats or 1)
    method = args.method or ("stv" if seats > 1 else "irv")
    if method != "stv" and args.seats is None:
        seats = 1
    return count(ballots, method, seats=seats, seed=args.seed, bulk_exclusion=args.bulk_exclusion)


async def _unsealed(ctx: Context, election_id: str, verb: str) -> Election:
    """The election, once its ballots are unsealed.  (Imported here: counting a file needs
    no Redis client, and starts without loading one.)"""
    from ballots.election import get_election
    from ballots.unseal import require_unsealed

    election = await get_election(ctx.redis, election_id)
    await require_unsealed(ctx.redis, election, verb)
    return election


async def _audit(ctx: Context, election_id: str, action: str, **details: object) -> None:
    from ballots import audit

    await audit.record(ctx.redis, ctx.clock, election_id, ctx.actor, action, **details)


async def count_command(args: argparse.Namespace, ctx: Context) -> int:
    """Count, then print the report (text or JSON) and draw the chart if asked."""
    if args.ballots is not None:
        result = await asyncio.to_thread(_file_count, args)
    else:
        if args.method is not None or args.seats is not None or args.max_ranks is not None:
            raise CountError(
                "--method, --seats and --max-ranks apply to --ballots; an election is counted "
                "by its own method, seats and max_ranks"
            )
        from ballots.count.redis_source import count_election

        election = await _unsealed(ctx, args.election, "count")
        if args.min_section_ballots is not None and not election.sections:
            raise CountError(f"--min-section-ballots: election {election.id} has no sections")
        if args.min_section_ballots is not None and args.min_section_ballots < 1:
            raise CountError("--min-section-ballots must be at least 1")
        result = await count_election(
            ctx.redis,
            election,
            seed=args.seed,
            bulk_exclusion=args.bulk_exclusion,
            min_section_ballots=args.min_section_ballots,
        )
        await _audit(
            ctx,
            election.id,
            "count run",
            method=election.method,
            seats=election.seats,
            ballots=result.ballots,
            seed=args.seed,
            **(
                {"min_section_ballots": args.min_section_ballots}
                if args.min_section_ballots is not None
                else {}
            ),
        )
    ctx.out.write(render_json(result) if args.json else render_text(result))
    if args.chart is not None:
        await asyncio.to_thread(write_chart, result, args.chart)
        ctx.err.write(f"chart: {args.chart}\n")
    return 0


def _write(ballots: Ballots, fmt: str, seats: int, out: Path) -> None:
    """Write the export to a file (run in a worker thread)."""
    check_writable(ballots, fmt)  # before the file exists: nothing half-written
    try:
        with out.open("w", encoding="utf-8", newline="") as f:
            write_ballots(ballots, fmt, f, seats)
    except OSError as err:
        raise CountError(f"cannot write {out}: {err}") from err


def section_files(out: Path, fmt: str, sections: Sequence[str]) -> dict[str, Path]:
    """Where an electoral college's export goes: one file per section beside ``out``, and
    the weights (key ``""``)."""
    suffix = out.suffix or {"blt": ".blt", "preflib": ".soi", "csv": ".csv"}[fmt]
    stem = out.with_suffix("")
    files = {name: stem.with_name(f"{stem.name}-{name}{suffix}") for name in sections}
    files[""] = stem.with_name(f"{stem.name}-weights.json")
    return files


async def _export_college(args: argparse.Namespace, ctx: Context, election: Election) -> int:
    from ballots.count.college import weights_json
    from ballots.count.redis_source import read_college

    if args.out is None:
        raise CountError(
            f"election {election.id} is an electoral college: its export is one file per "
            "section and the weights, so give --out FILE (they are written beside it)"
        )
    college = await read_college(ctx.redis, election)
    files = section_files(args.out, args.format, election.section_names)
    for name in election.section_names:
        check_writable(college.sections[name], args.format)
    await _audit(
        ctx,
        election.id,
        "ballots exported",
        format=args.format,
        ballots=sum(b.total for b in college.sections.values()),
        file=", ".join(str(f) for f in files.values()),
    )
    for name in election.section_names:
        ballots = college.sections[name]
        await asyncio.to_thread(_write, ballots, args.format, election.seats, files[name])
        ctx.err.write(f"wrote {ballots.total:,} ballots of section {name} to {files[name]}\n")
    try:
        files[""].write_text(weights_json(election, college), encoding="utf-8")
    except OSError as err:
        raise CountError(f"cannot write {files['']}: {err}") from err
    ctx.err.write(f"wrote the sections' weights to {files['']}\n")
    return 0


async def export_command(args: argparse.Namespace, ctx: Context) -> int:
    """Write the election's ballots in the chosen format (an electoral college: a file per
    section and the weights)."""
    from ballots.count.redis_source import read_ballots as read_redis_ballots

    election = await _unsealed(ctx, args.election, "export")
    if election.sections:
        return await _export_college(args, ctx, election)
    ballots = await read_redis_ballots(ctx.redis, election)
    await _audit(
        ctx,
        election.id,
        "ballots exported",
        format=args.format,
        ballots=ballots.total,
        file=str(args.out) if args.out is not None else "-",
    )
    if args.out is None:
        write_ballots(ballots, args.format, ctx.out, election.seats)
    else:
        await asyncio.to_thread(_write, ballots, args.format, election.seats, args.out)
        ctx.err.write(f"wrote {ballots.total:,} ballots to {args.out}\n")
    return 0
