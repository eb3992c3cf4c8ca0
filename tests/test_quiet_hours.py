"""Quiet hours: ``timezone`` and ``quiet_hours`` in the election file hold reminders overnight,
``remind --status`` says so, ``--dry-run`` says when a job would finish, and a voter's own
conversation is never held."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from ballots import audit
from ballots.clock import ManualClock
from ballots.election import Election, get_election, parse_election, save_election
from ballots.errors import FileProblems
from ballots.quiet import quiet_until, sending_finishes
from bot import texts
from bot.i18n import speaking
from bot.reminders import Reminders, Worker, plan
from channels.rules import TEXT_RULES
from openprimary.cli import build_parser
from openprimary.context import Context
from openprimary.remind_cli import remind
from tests.factories import EXAMPLES, Outbox, harness, settings
from tests.reminders_support import election_with_roll, fast_limiter, phone

SAMPLE = (EXAMPLES / "election.toml").read_text()
#: 22:30 in London on a winter's night (GMT: UTC+0).
NIGHT = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)


def with_lines(*lines: str) -> str:
    return SAMPLE.replace("[[candidates]]", "\n".join(lines) + "\n\n[[candidates]]", 1)


def quiet(election: Election, hours: str = "21:00-09:00", zone: str = "Europe/London") -> Election:
    start, end = hours.split("-")
    return replace(election, quiet_hours=(start, end), timezone=zone)


def test_the_election_file_takes_a_zone_and_quiet_hours_and_says_what_is_wrong() -> None:
    election = parse_election(
        with_lines('timezone = "Europe/London"', 'quiet_hours = "21:00-09:00"'), "e.toml"
    )
    assert (election.timezone, election.quiet_hours) == ("Europe/London", ("21:00", "09:00"))
    assert Election.from_json(election.to_json()).quiet_hours == ("21:00", "09:00")
    text = with_lines('timezone = "Mars/Olympus"', 'quiet_hours = "9pm-9am"')
    zone_line = text.splitlines().index('timezone = "Mars/Olympus"') + 1
    with pytest.raises(FileProblems) as caught:
        parse_election(text, "e.toml")
    assert [str(p) for p in caught.value.problems] == [
        f"e.toml:{zone_line}: unknown time zone 'Mars/Olympus': use an IANA name such as "
        "Europe/London",
        f"e.toml:{zone_line + 1}: 'quiet_hours' must be two times of day, such as \"21:00-09:00\"",
    ]


def test_quiet_hours_cross_midnight_in_the_elections_own_zone() -> None:
    election = quiet(parse_election(SAMPLE, "e.toml"))
    assert quiet_until(election, datetime(2026, 11, 20, 20, 59, tzinfo=UTC)) is None
    morning = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    assert quiet_until(election, datetime(2026, 11, 20, 21, 0, tzinfo=UTC)) == morning
    assert quiet_until(election, datetime(2026, 11, 21, 3, 0, tzinfo=UTC)) == morning
    assert quiet_until(election, morning) is None
    # In summer London is UTC+1: 21:00 local is 20:00 UTC.
    june = datetime(2026, 6, 20, 20, 30, tzinfo=UTC)
    assert quiet_until(election, june) == datetime(2026, 6, 21, 8, 0, tzinfo=UTC)
    # A window inside one day.
    lunch = quiet(election, "12:00-14:00", "America/New_York")
    assert quiet_until(lunch, datetime(2026, 11, 20, 17, 30, tzinfo=UTC)) == datetime(
        2026, 11, 20, 19, 0, tzinfo=UTC
    )


def test_a_job_that_runs_into_the_night_finishes_the_next_morning() -> None:
    election = quiet(parse_election(SAMPLE, "e.toml"))
    start = datetime(2026, 11, 20, 20, 50, tzinfo=UTC)
    # 1,000 at 1 a second: 600 before 21:00, the other 400 from 09:00.
    assert sending_finishes(election, start, 1000, 1.0) == datetime(
        2026, 11, 21, 9, 6, 40, tzinfo=UTC
    )
    unquiet = parse_election(SAMPLE, "e.toml")
    assert sending_finishes(unquiet, start, 1000, 1.0) == datetime(
        2026, 11, 20, 21, 6, 40, tzinfo=UTC
    )


async def test_a_worker_holds_the_job_in_the_quiet_hours_and_resumes_after(
    redis: Redis,
) -> None:
    election = await election_with_roll(redis, 20)
    election = await save_election(redis, quiet(election))
    clock = ManualClock(NIGHT)
    job = await Reminders(redis, clock).create(
        election, await plan(redis, election, "Vote, {name}!", rules=TEXT_RULES, clock=clock), "t"
    )
    sms = Outbox("sms")
    worker = Worker(
        redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES, clock=clock, quiet_poll=0.05
    )
    running = asyncio.create_task(worker.run(job))
    await asyncio.sleep(1.0)
    assert not running.done() and sms.sent == []  # held
    out = io.StringIO()
    ctx = Context(settings=settings(), redis=redis, clock=clock, out=out, err=io.StringIO())
    assert await remind(build_parser().parse_args(["remind", "--status", job]), ctx) == 0
    assert "waiting for quiet hours to end (21:00-09:00 Europe/London): sends resume " in (
        out.getvalue()
    )
    assert "Sat 21 Nov 09:00 GMT" in out.getvalue()
    shown = io.StringIO()
    ctx = replace(ctx, out=shown)
    await remind(build_parser().parse_args(["remind", "--status", job, "--json"]), ctx)
    assert json.loads(shown.getvalue().split("\n", 1)[1])["quiet_until"] == (
        "2026-11-21T09:00:00+00:00"
    )
    clock.set(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    final = await asyncio.wait_for(running, 30)
    assert final.status == "finished" and final.outcome("sent") == 20
    assert sorted(sms.addresses) == sorted(phone(i) for i in range(20))


async def test_a_dry_run_says_when_the_job_would_finish(redis: Redis) -> None:
    election = await election_with_roll(redis, 30)
    await save_election(redis, quiet(election))
    clock = ManualClock(datetime(2026, 11, 20, 20, 59, 50, tzinfo=UTC))
    out = io.StringIO()
    ctx = Context(
        settings=settings(sms_rate=1.0), redis=redis, clock=clock, out=out, err=io.StringIO()
    )
    argv = ["remind", "--election", election.id, "--message", "Vote, {name}!", "--dry-run"]
    assert await remind(build_parser().parse_args(argv), ctx) == 0
    # 10 go before 21:00, the other 20 from 09:00.
    assert "started now it would finish Sat 21 Nov 09:00 GMT" in out.getvalue(), out.getvalue()
    assert "(quiet hours: 21:00-09:00 Europe/London)" in out.getvalue()


async def test_a_voters_own_conversation_is_never_held(redis: Redis) -> None:
    h = await harness(redis)
    await save_election(redis, quiet(h.core.election))
    assert (await get_election(redis, h.core.election.id)).quiet_hours is not None
    h.core.conversation.election = quiet(h.core.election)
    h.clock.set(NIGHT)
    replies = await h.say("vote", channel="sms", address="+447700900103")
    assert "is your code to vote" in replies[0].text
    assert "1st choice" in await h.said(
        replies[0].text.split()[0], channel="sms", address="+447700900103"
    )


async def test_a_dry_run_warns_when_the_job_would_finish_after_the_close(redis: Redis) -> None:
    election = await election_with_roll(redis, 30)
    # Closing at 06:53 in the quiet hours: the messages held until 09:00 would be too late.
    await save_election(
        redis, replace(quiet(election), closes=datetime(2026, 11, 21, 6, 53, tzinfo=UTC))
    )
    clock = ManualClock(datetime(2026, 11, 20, 20, 59, 50, tzinfo=UTC))
    out = io.StringIO()
    ctx = Context(
        settings=settings(sms_rate=1.0), redis=redis, clock=clock, out=out, err=io.StringIO()
    )
    argv = ["remind", "--election", election.id, "--message", "Vote, {name}!", "--dry-run"]
    assert await remind(build_parser().parse_args(argv), ctx) == 0
    assert (
        "WARNING: at these rates it would finish Sat 21 Nov 09:00 GMT, after voting closes "
        "Sat 21 Nov 06:53 GMT: whoever is not reached by then is not reminded"
    ) in out.getvalue()


async def test_a_running_job_stops_at_the_close(redis: Redis) -> None:
    """Closed while it runs (the command line's close, or the planned time passing), a job
    reminds nobody more: it is cancelled, saying why."""
    election = await election_with_roll(redis, 40)
    clock = ManualClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    job = await Reminders(redis, clock).create(
        election, await plan(redis, election, "Vote, {name}!", rules=TEXT_RULES, clock=clock), "t"
    )
    sms = Outbox("sms")

    async def hook(n: int) -> None:
        if n == 9:  # the poll closes with the tenth message
            clock.set(election.closes)

    sms.hook = hook
    worker = Worker(redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES, clock=clock)
    final = await asyncio.wait_for(worker.run(job), 30)
    assert final.status == "cancelled"
    assert 10 <= len(sms.sent) < 40
    entries = [e for e in await audit.read(redis, election.id) if e.action == "reminder cancelled"]
    assert entries[-1].details.get("factor") == "the poll closed"


def test_times_voters_read_are_in_the_election_s_zone_with_its_abbreviation() -> None:
    """Not "UTC": the zone the election is held in, GMT in winter and BST in summer, in the
    voter's language."""
    election = parse_election((EXAMPLES / "election.toml").read_text(), "e.toml")
    winter = datetime(2027, 12, 1, 17, 0, tzinfo=UTC)
    summer = datetime(2027, 6, 1, 17, 0, tzinfo=UTC)
    assert texts.when(election, winter) == "1 Dec 2027 17:00 GMT"
    assert texts.when(election, summer) == "1 Jun 2027 18:00 BST"
    with speaking("cy"):
        assert texts.when(election, summer) == "1 Meh 2027 18:00 BST"
    karachi = replace(election, timezone="Asia/Karachi")
    assert texts.when(karachi, winter) == "1 Dec 2027 22:00 PKT"
    assert "closed 1 Dec 2027 17:00 GMT" in texts.closed(replace(election, closes=winter))
