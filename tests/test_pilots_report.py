"""The pilots' report (``openprimary report``, ``/organisers/report``): three elections with
different settings, voters driven through the real core (router, conversation, codes, ballot
box, reminder worker) on a manual clock, and the report's figures checked against what the
test itself did; the privacy rule; the command line; the console's page."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from redis.asyncio import Redis

from ballots import keys
from ballots.clock import ManualClock
from ballots.election import Election, read_election_file
from ballots.roll import Supporter
from ballots.turnout import Turnout
from ballots.unseal import unseal
from bot.core import Deployment
from bot.pilots import (
    BELOW,
    HIDDEN,
    _pilot,
    breakdown,
    few,
    gather,
    load_elections,
    nearest_rank,
)
from bot.pilots_svg import charts
from bot.reminders import Reminders, Worker, plan
from channels.gsm import segments
from channels.rules import TEXT_RULES
from openprimary.app import build
from openprimary.cli import build_parser
from openprimary.context import Context
from openprimary.report_cli import report_command
from tests.console_support import Organiser
from tests.factories import NOW, SECRET, TEST_SEED, Harness, Outbox, sample_election, settings
from tests.reminders_support import fast_limiter
from tests.telegram_support import telegram_world

ROOT = Path(__file__).resolve().parent.parent
NORTH, SOUTH, EAST = "pilot-north", "pilot-south", "pilot-east"
REMINDER = "Hi {name}, {time_left} to vote."
CODE = re.compile(r"\b(\d{6})\b")


@dataclass
class Expected:
    """What the test did in one election, counted by the test: the report must agree."""

    election: Election
    phones: set[str] = field(default_factory=set)
    channel: Counter[str] = field(default_factory=Counter)
    language: Counter[str] = field(default_factory=Counter)
    identity: Counter[str] = field(default_factory=Counter)
    day: Counter[str] = field(default_factory=Counter)
    hour: Counter[int] = field(default_factory=Counter)
    took: list[int] = field(default_factory=list)
    blank: int = 0
    #: SMS segments sent: each reply by SMS, one at a time as the router counts them, and
    #: each reminder by SMS.
    segments: int = 0

    @property
    def voted(self) -> int:
        return sum(self.channel.values())

    def cast(self, h: Harness, channel: str, language: str, identity: str, took: int) -> None:
        at = h.clock.now()
        opened = self.election.opens.replace(minute=0, second=0, microsecond=0)
        self.channel[channel] += 1
        self.language[language] += 1
        self.identity[identity] += 1
        self.day[at.date().isoformat()] += 1
        self.hour[int((at.replace(minute=0, second=0) - opened).total_seconds() // 3600)] += 1
        self.took.append(took)


def roll(
    prefix: str, n: int, first_phone: int, *, telegram: bool = False, cy: int = 0
) -> list[Supporter]:
    """``n`` supporters, each with a phone of their own (and a Telegram account), the first
    ``cy`` speaking Welsh."""
    return [
        Supporter(
            f"{prefix}{i}",
            f"{prefix} Supporter {i}",
            f"+4477009{first_phone + i:05d}",
            telegram_id=str(first_phone * 10 + i) if telegram else "",
            language="cy" if i < cy else "en",
        )
        for i in range(n)
    ]


def percentile(values: Sequence[int], p: float) -> int:
    """The nearest-rank percentile, as a textbook writes it."""
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1]


async def vote_with_code(
    h: Harness, e: Expected, s: Supporter, ranking: str, took: int, *, channel: str,
    language: str = "en",
) -> None:  # fmt: skip
    """A supporter types their posted voting code (by SMS from their phone, or on Telegram),
    ranks and confirms, ``took`` seconds after their first message (in any language: the
    candidates' names are the same in each)."""
    core = h.core.deployment.cores[e.election.id]  # type: ignore[union-attr]
    [(_, _, _, code)] = await core.codes.issue_voting_codes(e.election, [s.supporter_id])
    assert "Alex Green" in await say(h, e, s, code, channel)
    h.clock.advance(took // 2)
    assert "Alex Green" in await say(h, e, s, ranking, channel)
    h.clock.advance(took - took // 2)
    await say(h, e, s, "YES", channel)
    await has_voted(h, e, s, channel)
    e.cast(h, channel, language, "code", took)


async def has_voted(h: Harness, e: Expected, s: Supporter, channel: str) -> None:
    shard = keys.shard_of(s.supporter_id, e.election.shards)
    voter = keys.voter(e.election.id, shard, s.supporter_id)
    assert await h.core.redis.hget(voter, "voted") == channel, s


async def vote_with_sms_code(
    h: Harness, e: Expected, s: Supporter, ranking: str, took: int, *, blank: bool = False
) -> None:
    """A supporter texts from their phone, is texted a code, sends it back, ranks (or
    abstains) and confirms, ``took`` seconds after their first message."""
    code = CODE.search(await say(h, e, s, "vote", "sms"))
    assert code is not None
    h.clock.advance(took // 3)
    assert "choice" in await say(h, e, s, code.group(1), "sms")
    h.clock.advance(took // 3)
    await say(h, e, s, "ABSTAIN" if blank else ranking, "sms")
    h.clock.advance(took - 2 * (took // 3))
    assert "Vote cast" in await say(h, e, s, "YES", "sms")
    await has_voted(h, e, s, "sms")
    e.cast(h, "sms", "en", "otp", took)
    e.blank += blank


async def say(h: Harness, e: Expected, s: Supporter, text: str, channel: str) -> str:
    """One message from a supporter; the replies, joined (their SMS segments counted)."""
    replies = await h.say(text, **_where(s, channel))
    if channel == "sms":
        e.segments += sum(segments(r.text) for r in replies if r.text)
    return "\n".join(r.text for r in replies)


def _where(s: Supporter, channel: str) -> dict[str, Any]:
    if channel == "sms":
        return {"channel": "sms", "address": s.phone}
    return {"channel": "telegram", "address": s.telegram_id, "user_id": s.telegram_id}


async def three_pilots(redis: Redis) -> tuple[Harness, Deployment, dict[str, Expected]]:
    """North: IRV, posted codes only, English; South: SV, codes and SMS codes, English and
    Welsh; East: IRV with abstain, SMS codes, and a reminder job.  Each opens at another
    time, so each has its own hours since opening."""
    north = await sample_election(
        redis, id=NORTH, title="North pilot", identity=("code",),
        opens=NOW - timedelta(hours=2, minutes=30), closes=NOW + timedelta(days=5),
        organisers=("tg:100001",), roll=roll("N", 40, 1000, telegram=True),
    )  # fmt: skip
    south = await sample_election(
        redis, id=SOUTH, title="South pilot", method="sv", identity=("code", "sms-otp"),
        languages=("en", "cy"), opens=NOW - timedelta(days=1), closes=NOW + timedelta(days=5),
        organisers=("tg:100088",), roll=roll("P", 30, 2000, telegram=True, cy=10),
    )  # fmt: skip
    east = await sample_election(
        redis, id=EAST, title="East pilot", identity=("sms-otp",), abstain=True,
        quiet_hours=("23:00", "06:00"), opens=NOW - timedelta(hours=5),
        closes=NOW + timedelta(days=5), organisers=("tg:100077",), roll=roll("E", 35, 3000),
    )  # fmt: skip
    sms, tg = Outbox("sms"), Outbox("telegram")
    clock = ManualClock(NOW)
    deployment = await build(settings(), redis, clock, None, senders={"sms": sms, "telegram": tg})
    h = Harness(deployment.cores[NORTH], clock, sms)
    expected = {e.id: Expected(e) for e in (north, south, east)}
    return h, deployment, expected


async def drive(redis: Redis) -> tuple[Harness, dict[str, Expected]]:
    """Every election's voters, at known times; East's reminder job in between."""
    h, deployment, expected = await three_pilots(redis)
    n, s, e = expected[NORTH], expected[SOUTH], expected[EAST]
    people = {
        NORTH: roll("N", 40, 1000, telegram=True),
        SOUTH: roll("P", 30, 2000, telegram=True, cy=10),
        EAST: roll("E", 35, 3000),
    }
    # 12:00-13:00: ten North voters by SMS, ten East voters by SMS code.
    for i, who in enumerate(people[NORTH][:10]):
        await vote_with_code(h, n, who, "1 2", 30 + 17 * i, channel="sms")
    for i, who in enumerate(people[EAST][:10]):
        await vote_with_sms_code(h, e, who, "2 1", 60 + 23 * i)
    # 13:00: ten North voters on Telegram (8 put Sam Patel first); ten more prove who they
    # are and go no further; East's reminder goes to the 25 who have not voted.
    h.clock.set(NOW + timedelta(hours=1))
    for i, who in enumerate(people[NORTH][10:20]):
        await vote_with_code(h, n, who, "1 2" if i < 2 else "2 1", 40 + 11 * i, channel="telegram")
    north = deployment.cores[NORTH]
    for who in people[NORTH][20:30]:
        [(_, _, _, code)] = await north.codes.issue_voting_codes(n.election, [who.supporter_id])
        assert "1st choice" in await say(h, n, who, code, "telegram")
    ready = await plan(redis, e.election, REMINDER, rules=TEXT_RULES, clock=h.clock)
    job = await Reminders(redis, h.clock).create(e.election, ready, "cli:test")
    east = deployment.cores[EAST]
    sent = await Worker(
        redis, deployment.senders, fast_limiter(redis), TEXT_RULES, clock=h.clock,
        spend=east.spend,
    ).run(job)  # fmt: skip
    assert sent.outcome("sent") == 25
    e.segments += sum(segments(m.text) for _, m in h.sms.sent)
    # Each group in an hour of its own (every hour's figure 10 or more): 14:00 and 15:00,
    # South's voters with posted codes, in English then Welsh; 16:00, ten of those East
    # reminded vote within the day (6 for Sam Patel); 17:00, South's SMS codes.
    h.clock.set(NOW + timedelta(hours=2))
    for i, who in enumerate(people[SOUTH][10:20]):
        await vote_with_code(h, s, who, "1 2", 50 + 7 * i, channel="telegram")
    h.clock.set(NOW + timedelta(hours=3))
    for i, who in enumerate(people[SOUTH][:10]):
        await vote_with_code(h, s, who, "2 1", 90 + 13 * i, channel="telegram", language="cy")
    h.clock.set(NOW + timedelta(hours=4))
    for i, who in enumerate(people[EAST][10:20]):
        await vote_with_sms_code(h, e, who, "1 2" if i < 4 else "2 4", 120 + 31 * i)
    h.clock.set(NOW + timedelta(hours=5))
    for i, who in enumerate(people[SOUTH][20:30]):
        await vote_with_sms_code(h, s, who, "3 1", 200 + 19 * i)
    # The next day, over 25 hours after the reminder: ten more East voters, blank ballots.
    h.clock.set(NOW + timedelta(hours=27))
    for i, who in enumerate(people[EAST][20:30]):
        await vote_with_sms_code(h, e, who, "", 45 + 5 * i, blank=True)
    for exp, everyone in ((n, people[NORTH]), (s, people[SOUTH]), (e, people[EAST])):
        exp.phones = {p.phone for p in everyone}
    return h, expected


async def report(redis: Redis, ids: Sequence[str], *more: str) -> str:
    """``openprimary report --elections IDS MORE...``'s output, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(settings=settings(), redis=redis, out=out, err=err, actor="test")
    args = build_parser(["report"]).parse_args(["report", "--elections", ",".join(ids), *more])
    assert await report_command(args, ctx) == 0, err.getvalue()
    return out.getvalue()


async def test_three_pilots_side_by_side_agree_with_what_was_done(redis: Redis) -> None:
    h, expected = await drive(redis)
    # North and East are closed and unsealed; South stays sealed.
    h.clock.set(NOW + timedelta(days=6))
    for eid in (NORTH, EAST):
        await unseal(redis, expected[eid].election, TEST_SEED, h.clock, actor="trustees")
    shown = json.loads(
        await report(
            redis,
            [NORTH, SOUTH, EAST],
            "--json",
            "--price-per-segment",
            "0.04",
            "--currency",
            "GBP",
        )
    )
    found = {r["election"]: r for r in shown["elections"]}
    assert list(found) == [NORTH, SOUTH, EAST]
    for eid, exp in expected.items():
        r = found[eid]
        eligible = {NORTH: 40, SOUTH: 30, EAST: 35}[eid]
        assert r["eligible"] == eligible
        assert r["voted"] == exp.voted
        assert r["turnout_percent"] == round(100 * exp.voted / eligible, 1)
        assert r["did_not_vote"] == few(eligible - exp.voted)
        assert r["by_channel"] == dict(exp.channel)
        assert r["by_language"] == dict(exp.language)
        assert r["by_identity"] == dict(exp.identity)
        assert r["by_day"] == dict(exp.day)
        assert r["by_hour_since_opening"] == {str(k): v for k, v in sorted(exp.hour.items())}
        assert r["took_median_seconds"] == percentile(exp.took, 50)
        assert r["took_p90_seconds"] == percentile(exp.took, 90)
        assert r["sms_segments"] == exp.segments > 0
        per_vote = Decimal(exp.segments) / exp.voted
        assert r["segments_per_vote"] == str(per_vote.quantize(Decimal("0.01")))
        assert r["sms_cost"] == str(Decimal("0.04") * exp.segments)
        assert r["cost_per_vote"] == str((per_vote * Decimal("0.04")).quantize(Decimal("0.0001")))
        assert r["currency"] == "GBP"
        settings_ = r["settings"]
        assert settings_["method"] == exp.election.method
        assert settings_["identity"] == list(exp.election.identity)
        assert settings_["languages"] == list(exp.election.languages)
        assert settings_["abstain"] == exp.election.abstain
    # The settings that set them apart, side by side.
    assert found[SOUTH]["settings"]["method"] == "sv"
    assert found[EAST]["settings"]["quiet_hours"] == "23:00-06:00 Europe/London"
    assert [found[eid]["settings"]["reminder_jobs"] for eid in (NORTH, SOUTH, EAST)] == [0, 0, 1]
    # North: 20 voted, ten more proved who they are and stopped; 12 put Alex Green first.
    assert found[NORTH]["abandoned"] == 10
    assert found[NORTH]["count"] == {
        "rounds": 1,
        "winners": {"green": "Alex Green"},
        "winner_share_percent": {"green": 60.0},
        "blank": 0,
    }
    assert found[SOUTH]["count"] is None  # sealed
    assert found[SOUTH]["abandoned"] == 0
    # East: 25 reminded, ten voted within the day (the ten after it did not count), ten blank.
    [job] = found[EAST]["reminders"]
    assert (job["sent"], job["voted_within_24h"], job["percent"]) == (25, 10, 40.0)
    assert found[EAST]["count"] == {
        "rounds": 1,
        "winners": {"patel": "Sam Patel"},
        "winner_share_percent": {"patel": 80.0},
        "blank": expected[EAST].blank,
    }
    assert expected[EAST].blank == 10
    # Nothing in it names a voter.
    dump = json.dumps(shown)
    for exp in expected.values():
        for phone in exp.phones:
            assert phone not in dump
    assert "Supporter" not in dump
    # One chart per measure, each bar named in words beside its figure.
    drawn = await drawn_charts(redis, [NORTH, SOUTH, EAST])
    assert sorted(drawn) == sorted(
        f"pilots-{m}"
        for m in (
            "turnout", "channel", "hours", "reminders", "took", "segments", "identity",
            "languages", "abandoned",
        )
    )  # fmt: skip
    assert ">Welsh (cy)</text>" in drawn["pilots-languages"]
    assert ">texted code</text>" in drawn["pilots-identity"]
    assert ">40.0% of 25</text>" in drawn["pilots-reminders"]


def test_the_privacy_rule() -> None:
    assert [few(n) for n in (0, 1, 9, 10, 250)] == [0, BELOW, BELOW, 10, 250]
    # One cell hidden: the smallest other is withheld too, so the total gives neither away.
    assert breakdown({"sms": 40, "telegram": 3, "console": 12}) == {
        "sms": 40,
        "telegram": BELOW,
        "console": HIDDEN,
    }
    # Two cells hidden that add up to fewer than 10 (the total less the others gives their sum):
    # more is withheld until what is kept back is 10 or more.
    assert breakdown({"sms": 40, "telegram": 3, "console": 2}) == {
        "sms": HIDDEN,
        "telegram": BELOW,
        "console": BELOW,
    }
    assert breakdown({"en": 103, "cy": 1, "ur": 1, "gd": 12}) == {
        "en": 103,
        "cy": BELOW,
        "ur": BELOW,
        "gd": HIDDEN,
    }
    assert breakdown({"sms": 40, "telegram": 6, "console": 5}) == {
        "sms": 40,
        "telegram": BELOW,
        "console": BELOW,
    }
    assert breakdown({"sms": 40, "telegram": 0}) == {"sms": 40, "telegram": 0}
    # Nearest rank: the smallest value with at least ceil(p% of n) at or below it.
    assert nearest_rank({10: 3, 20: 1, 30: 1}, 50) == 10
    assert nearest_rank({10: 2, 20: 2, 30: 1}, 50) == 20
    assert nearest_rank({10: 9, 99: 1}, 90) == 10
    assert nearest_rank({10: 8, 99: 2}, 90) == 99
    assert nearest_rank({}, 50) is None


async def test_fewer_than_ten_voters_show_as_below_ten(redis: Redis) -> None:
    small = await sample_election(
        redis, id="tiny-pilot", identity=("sms-otp",), roll=roll("T", 14, 4000)
    )
    sms = Outbox("sms")
    clock = ManualClock(NOW)
    deployment = await build(settings(), redis, clock, None, senders={"sms": sms})
    h = Harness(deployment.cores[small.id], clock, sms)
    e = Expected(small)
    for i, who in enumerate(roll("T", 3, 4000)):
        await vote_with_sms_code(h, e, who, "1 2", 100 + i)
    [r] = json.loads(await report(redis, [small.id], "--json"))["elections"]
    assert r["eligible"] == 14  # the roll's size is no count of voters
    assert r["voted"] == BELOW
    assert r["turnout_percent"] == BELOW
    assert r["did_not_vote"] == HIDDEN  # 14 less it would give it away
    assert r["by_channel"] == {"sms": BELOW}
    assert r["by_identity"] == {"otp": BELOW} and r["by_language"] == {"en": BELOW}
    assert r["took_median_seconds"] == BELOW and r["took_p90_seconds"] == BELOW
    assert r["segments_per_vote"] == BELOW
    assert r["abandoned"] == 0
    assert set(r["by_hour_since_opening"].values()) == {BELOW}
    text = await report(redis, [small.id])
    assert "<10" in text and " 3 " not in text
    # The charts draw no bar for a withheld figure, only its words.
    drawn = await drawn_charts(redis, [small.id])
    assert "&lt;10" in drawn["pilots-turnout"] and "<rect" not in drawn["pilots-turnout"]


async def drawn_charts(redis: Redis, ids: Sequence[str]) -> dict[str, str]:
    """Each chart of the report, by id, checked: well-formed SVG, a title and a description,
    no <style> (the console's CSP drops it) and no script."""
    svgs = charts(await gather(redis, await load_elections(redis, ids)))
    found = {}
    for chart in svgs:
        root = ElementTree.fromstring(chart.svg)
        ns = "{http://www.w3.org/2000/svg}"
        assert root.find(f"{ns}title") is not None and root.find(f"{ns}desc") is not None
        assert root.find(f".//{ns}style") is None and root.find(f".//{ns}script") is None
        found[root.attrib["aria-labelledby"].split("-title")[0]] = chart.svg
    return found


def run_cli(redis_url: str, *argv: str) -> tuple[int, str, str]:
    """The console script itself, as an organiser runs it."""
    import subprocess

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OPENPRIMARY_REDIS_URL": redis_url,
        "OPENPRIMARY_SECRET_KEY": SECRET,
    }
    run = subprocess.run(
        [sys.executable, "-m", "openprimary.cli", *argv],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    return run.returncode, run.stdout, run.stderr


async def test_the_command_line_text_csv_and_an_unknown_election(
    redis: Redis, redis_url: str
) -> None:
    _, expected = await drive(redis)
    ids = f"{NORTH},{SOUTH},{EAST}"
    code, text, _ = await asyncio.to_thread(run_cli, redis_url, "report", "--elections", ids)
    assert code == 0
    lines = text.splitlines()
    assert lines[0].split() == ["election", NORTH, SOUTH, EAST]
    row = {line.split()[0]: line.split()[1:] for line in lines[1:] if line.split()}
    assert row["method"] == ["irv", "sv", "irv"]
    assert row["voted"] == [str(expected[eid].voted) for eid in (NORTH, SOUTH, EAST)]
    assert row["turnout_percent"] == ["50.0%", "100.0%", f"{100 * 30 / 35:.1f}%"]
    assert row["abandoned"] == ["10", "0", "0"]
    code, out, _ = await asyncio.to_thread(
        run_cli, redis_url, "report", "--elections", ids, "--csv"
    )
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["election", "measure", "value"]
    values = {(e, m): v for e, m, v in rows[1:]}
    assert values[(SOUTH, "by_language.cy")] == "10"
    assert values[(SOUTH, "by_identity.otp")] == "10"
    assert values[(EAST, "by_channel.sms")] == "30"
    assert values[(SOUTH, "count")] == "sealed"
    assert {e for e, _, _ in rows[1:]} == {NORTH, SOUTH, EAST}
    code, out, err = await asyncio.to_thread(
        run_cli, redis_url, "report", "--elections", f"{NORTH},no-such-pilot"
    )
    assert code == 1 and out == ""
    assert "no election 'no-such-pilot' is loaded" in err
    code, _, err = await asyncio.to_thread(
        run_cli, redis_url, "report", "--elections", NORTH, "--json", "--csv"
    )
    assert code == 2 and "not allowed with argument" in err


async def test_the_console_shows_only_the_elections_signed_in_to(redis: Redis) -> None:
    await sample_election(
        redis, id=NORTH, title="North pilot", identity=("code",),
        organisers=("tg:100001",), roll=roll("N", 12, 1000, telegram=True),
    )  # fmt: skip
    await sample_election(
        redis, id=SOUTH, title="South pilot", identity=("code",),
        organisers=("tg:100088",), roll=roll("P", 23, 2000, telegram=True),
    )  # fmt: skip
    async with telegram_world(redis, every_election=True) as world:
        north, south = Organiser(world), Organiser(world)
        try:
            await north.sign_in("tg:100001", NORTH)
            page = await north.get("/organisers/report")
            assert page.status == 200
            assert "North pilot" in page.text and NORTH in page.text
            assert SOUTH not in page.text and "South pilot" not in page.text
            assert '<th scope="row">eligible</th><td>12</td>' in page.text
            assert "<td>23</td>" not in page.text  # South's roll size
            assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
            assert "<style" not in page.text and '<title id="pilots-turnout-title">' in page.text
            # Asking for another election's figures: refused, and nothing of either shown.
            for asked in (SOUTH, f"{NORTH},{SOUTH}", "no-such-pilot"):
                refused = await north.get(f"/organisers/report?elections={asked}")
                assert refused.status == 403, asked
                assert "South" not in refused.text and "<td>" not in refused.text
            # The index links to it; South's organiser sees South alone.
            assert "/organisers/report" in (await north.get("/organisers/")).text
            await south.sign_in("tg:100088", SOUTH)
            theirs = await south.get("/organisers/report")
            assert "South pilot" in theirs.text and "North pilot" not in theirs.text
            assert '<th scope="row">eligible</th><td>23</td>' in theirs.text
            nobody = Organiser(world)
            try:
                empty = await nobody.get("/organisers/report")
                assert empty.status == 200 and "signed in to none" in empty.text
                assert "North" not in empty.text and "South" not in empty.text
            finally:
                await nobody.close()
        finally:
            await north.close()
            await south.close()


def test_no_figure_gives_a_small_cell_away_by_subtraction() -> None:
    """Found in review: a small section's turnout from the total less the other section; a
    small day's from its hours; a small section's ballot count from a refused count's words."""
    election = Election(
        **{
            **read_election_file(ROOT / "examples" / "election.toml").__dict__,
            "sections": (("members", Fraction(1, 2)), ("affiliates", Fraction(1, 2))),
        }
    )
    t = Turnout(
        election.id,
        eligible=200,
        voted=105,
        by_day={"2026-11-20": 100, "2026-11-21": 5},
        by_hour={"2026-11-20T10": 50, "2026-11-20T11": 50, "2026-11-21T09": 5},
        by_section={"members": 100, "affiliates": 5},
        eligible_by_section={"members": 150, "affiliates": 50},
    )
    pilot = _pilot(election, t, 0, [], "refused", None)
    members, affiliates = pilot.sections
    assert (members.voted, affiliates.voted) == (HIDDEN, BELOW)
    assert members.percent == BELOW and affiliates.percent == BELOW
    assert pilot.by_day == {"2026-11-20": HIDDEN, "2026-11-21": BELOW}
    assert not [n for n in pilot.by_hour.values() if isinstance(n, int) and n]
    assert pilot.voted == 105  # the whole is still shown


async def test_a_refused_count_never_names_a_sections_size(redis: Redis) -> None:
    roll = [
        Supporter(f"M{i}", f"M {i}", f"+4477009002{i:02d}", section="members") for i in range(3)
    ] + [
        Supporter(f"A{i}", f"A {i}", f"+4477009003{i:02d}", section="affiliates") for i in range(3)
    ]
    sections = (("members", Fraction(1, 2)), ("affiliates", Fraction(1, 2)))
    election = await sample_election(redis, roll=roll, sections=sections)
    await redis.hset(keys.unsealing(election.id), "done", NOW.isoformat())
    (pilot,) = await gather(redis, [election])
    assert pilot.count is None and pilot.count_refused is not None
    assert not re.search(r"\d", pilot.count_refused)
