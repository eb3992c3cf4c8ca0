"""``openprimary remind``: start, resume, watch, pause and cancel reminder jobs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from datetime import datetime
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ballots.election import Election, bind_secret_key, get_election
from ballots.languages import SHIPPED
from ballots.program import program
from ballots.quiet import describe, local, quiet_until
from bot.alerts import Alerts, ChannelHealth
from bot.ratelimit import limiter_for
from bot.reminders import (
    CHANNELS,
    HEARTBEAT,
    MAX_SMS_SEGMENTS,
    JobStatus,
    Plan,
    Reminders,
    Worker,
    after_the_close,
    finishes,
    plan,
)
from bot.settings import Settings
from channels.rules import TEXT_RULES
from channels.senders import opened_senders
from openprimary.app import reminder_worker, sms_spend
from openprimary.context import Context


def _finishes(p: Plan, election: Election, settings: Settings, now: datetime) -> datetime:
    """When the plan's messages would all be out, at the set rates (``bot.reminders.plan``)."""
    rates = {"sms": settings.sms_rate, "telegram": settings.telegram_rate}
    return finishes(p, election, rates, now)


def _describe_plan(
    p: Plan, out: Any, election: Election, settings: Settings, now: datetime
) -> None:
    out.write(f"would remind {p.total} supporters of {p.election}:\n")
    if p.rehearsal:
        out.write("  rehearsal: only its testers are reminded, and each message starts 'TEST: '\n")
    for ch in CHANNELS:
        extra = f" ({p.sms_segments} SMS segments)" if ch == "sms" else ""
        out.write(f"  {ch:<9} {p.count(ch)}{extra}\n")
    if len(election.languages) > 1:
        for code, counts in p.languages.items():
            how = "faithful" if election.sms_faithful(code) else "folded"
            out.write(
                f"  in {SHIPPED[code].english:<8} {counts['sms']} by SMS "
                f"({counts['sms_segments']} segments, {how}), "
                f"{counts['telegram']} by Telegram\n"
            )
    finish = _finishes(p, election, settings, now)
    held = quiet_until(election, now)
    out.write(
        f"  at {settings.sms_rate:g} SMS/s and {settings.telegram_rate:g} Telegram messages/s, "
        f"started now it would finish {local(election, finish)}"
        f" (quiet hours: {describe(election)}"
        + (f"; it would wait for them to end, {local(election, held)}" if held else "")
        + ")\n"
    )
    late = after_the_close(p, election, finish)
    if late:
        out.write(f"  WARNING: {late}\n")
    skipped = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in p.skipped.items() if n)
    if skipped:
        out.write(f"  skipped: {skipped}\n")
    for ch, text in p.sample.items():
        out.write(f"  first {ch} message: {text!r}\n")


async def _describe_status(s: JobStatus, out: Any, reminders: Reminders) -> None:
    out.write(s.summary() + "\n")
    if s.status == "running":
        election = await get_election(reminders.redis, s.election)
        held = quiet_until(election, reminders.clock.now())
        if held is not None:
            out.write(
                f"  waiting for quiet hours to end ({describe(election)}): sends resume "
                f"{local(election, held)}\n"
            )
    for ch in CHANNELS:
        if s.totals[ch]:
            counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in s.counts[ch].items() if n)
            out.write(f"  {ch:<9} {s.totals[ch]} recipients: {counts or 'nothing yet'}\n")
    if s.outcome("in_doubt"):
        out.write(
            f"  {s.outcome('in_doubt')} message(s) in doubt: a worker died while they were on "
            "their way, or the platform's answer never came; not sent again. "
            "--resend-in-doubt sends them again (some may arrive twice)\n"
        )
        doubt = await reminders.in_doubt(s.job)
        out.write("  in doubt: " + ", ".join(f"{sid} ({ch})" for ch, sid in doubt[:20]))
        out.write(" ...\n" if len(doubt) > 20 else "\n")


async def _work(job: str, args: argparse.Namespace, ctx: Context) -> int:
    """Drain a job in this process, with a progress bar on a terminal."""
    reminders = Reminders(ctx.redis, ctx.clock)
    status = await reminders.status(job)
    if status.status != "running":
        await _describe_status(status, ctx.out, reminders)
        return 0
    # Telegram's buttons are signed with the secret key: the same one as serve's.
    ctx.settings.require("secret_key")
    election = await get_election(ctx.redis, status.election)
    await bind_secret_key(ctx.redis, election, ctx.settings.secret_key)
    limiter = limiter_for(ctx.settings, ctx.redis)
    needed = {ch for ch in CHANNELS if status.totals[ch]}
    # The worker takes each SMS's turn itself, then checks the recipient again.
    async with opened_senders(
        ctx.settings, ctx.redis, limiter, wanted=needed, connections=128, pace_sms=False
    ) as senders:
        alerts = Alerts(ctx.redis, ctx.clock, election, senders)
        worker = reminder_worker(
            ctx.settings,
            ctx.redis,
            ctx.clock,
            senders,
            limiter,
            spend=sms_spend(ctx.settings, ctx.redis, election, alerts),
            health=ChannelHealth(alerts),
            concurrency=args.concurrency,
            heartbeat=args.heartbeat,
            max_segments=args.max_segments,
        )
        if ctx.out.isatty():
            final = await _with_progress(worker, reminders, job, status.total)
        else:
            final = await worker.run(job)
    await _describe_status(final, ctx.out, reminders)
    if final.status == "running":
        ctx.out.write("other workers are finishing the rest\n")
    return 0


async def _with_progress(worker: Worker, reminders: Reminders, job: str, total: int) -> JobStatus:
    columns = (
        TextColumn("reminding"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:
        task = bar.add_task("job", total=total, note="")
        running = asyncio.create_task(worker.run(job))
        while not running.done():
            s = await reminders.status(job)
            note = f"{s.outcome('sent')} sent"
            bar.update(task, completed=s.done, note=note)
            await asyncio.wait({running}, timeout=0.5)
        final = await running
        bar.update(task, completed=final.done, note=f"{final.outcome('sent')} sent")
    return final


async def remind(args: argparse.Namespace, ctx: Context) -> int:
    """Start, resume, show, pause or cancel a reminder."""
    reminders = Reminders(ctx.redis, ctx.clock)
    if args.status:
        status = await reminders.status(args.status)
        ctx.out.write(f"job: {status.job}\n")
        if args.json:
            shown = status.to_dict()
            held = quiet_until(await get_election(ctx.redis, status.election), ctx.clock.now())
            shown["quiet_until"] = held.isoformat() if held and status.status == "running" else None
            ctx.out.write(json.dumps(shown, indent=2) + "\n")
        else:
            await _describe_status(status, ctx.out, reminders)
        return 0
    if args.pause or args.cancel:
        job = args.pause or args.cancel
        change = reminders.pause if args.pause else reminders.cancel
        status = await change(job, ctx.actor)
        ctx.out.write(f"job: {job}\n")
        await _describe_status(status, ctx.out, reminders)
        return 0
    if args.resume:
        ctx.out.write(f"job: {args.resume}\n")
        ctx.out.flush()
        await reminders.resume(args.resume, ctx.actor)
        if args.resend_in_doubt:
            n = await reminders.resend_in_doubt(args.resume, ctx.actor)
            ctx.out.write(f"{n} in-doubt message(s) queued again\n")
        return await _work(args.resume, args, ctx)

    if not args.election or args.message is None:
        ctx.err.write("openprimary: remind needs --election and --message (or --resume JOB)\n")
        return 2
    election = await get_election(ctx.redis, args.election)
    ready = await plan(
        ctx.redis,
        election,
        args.message,
        args.channel,
        rules=TEXT_RULES,
        clock=ctx.clock,
        max_segments=args.max_segments,
    )
    if args.dry_run:
        ctx.out.write("job: none (dry run: nothing was sent)\n")
        now = ctx.clock.now()
        _describe_plan(ready, ctx.out, election, ctx.settings, now)
        if args.json:
            shown = ready.to_dict()
            shown["finishes"] = _finishes(ready, election, ctx.settings, now).isoformat()
            ctx.out.write(json.dumps(shown, indent=2) + "\n")
        for problem in ready.problems:
            ctx.err.write(f"openprimary: {problem}\n")
        return 1 if ready.problems else 0
    if ready.problems:
        for problem in ready.problems:
            ctx.err.write(f"openprimary: {problem}\n")
        ctx.err.write("openprimary: nothing was sent\n")
        return 1
    # Refuse before the job exists if a channel it needs has no sender.
    needed = {ch for ch in CHANNELS if ready.count(ch)}
    if "sms" in needed:
        ctx.settings.require("twilio_account_sid", "twilio_auth_token", "twilio_from")
    if "telegram" in needed:
        ctx.settings.require("telegram_bot_token")
    job = await reminders.create(election, ready, ctx.actor)
    ctx.out.write(f"job: {job}\n")
    ctx.out.flush()
    with contextlib.suppress(asyncio.CancelledError):
        return await _work(job, args, ctx)
    ctx.err.write(f"openprimary: interrupted; continue with: {program()} remind --resume {job}\n")
    return 130


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``openprimary remind``."""
    p = sub.add_parser(
        "remind",
        help="remind supporters who have not voted (SMS and Telegram)",
        description=(
            "Send a reminder to every supporter who has not voted, has not opted out and "
            "can be reached: on Telegram where linked, otherwise by SMS. The message may use "
            "{name}, {days_left}, {time_left} and {closes}. The job lives in Redis: any number of "
            "'remind --resume JOB' processes can drain it together, at the rates set by "
            "OPENPRIMARY_SMS_RATE and OPENPRIMARY_TELEGRAM_RATE (all processes together)."
        ),
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--election", metavar="ID", help="start a reminder for this election")
    mode.add_argument("--resume", metavar="JOB", help="continue a job after a crash or pause")
    mode.add_argument("--status", metavar="JOB", help="show a job's progress")
    mode.add_argument("--pause", metavar="JOB", help="pause a job (resume it with --resume)")
    mode.add_argument("--cancel", metavar="JOB", help="cancel a job for good")
    p.add_argument(
        "--message",
        metavar="TEXT",
        help=(
            "the reminder; may use {name} {days_left} {time_left} {closes}. For each other "
            "language, a line [cy] then its version: each supporter gets their roll language's"
        ),
    )
    p.add_argument(
        "--channel",
        choices=("sms", "telegram", "all"),
        default="all",
        help="only supporters reached on this channel (default: all)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="count recipients and SMS segments; send nothing"
    )
    p.add_argument("--json", action="store_true", help="with --status or --dry-run: print JSON")
    p.add_argument(
        "--resend-in-doubt",
        action="store_true",
        help="with --resume: send again the messages in flight when a worker died",
    )
    p.add_argument(
        "--max-segments",
        type=int,
        default=MAX_SMS_SEGMENTS,
        metavar="N",
        help="refuse an SMS longer than N segments (default: %(default)s)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="messages on their way at once per channel in this process (default: from the rate)",
    )
    p.add_argument(
        "--heartbeat",
        type=float,
        default=HEARTBEAT,
        metavar="SECONDS",
        help="a dead worker's claims are taken over after this long (default: %(default)s)",
    )
    p.set_defaults(handler=remind)
