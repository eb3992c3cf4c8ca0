"""The pilots' report: several elections side by side, in aggregates only.

Parties pilot primaries in several constituencies at once with different settings; this
puts each election's settings beside its figures (turnout, by channel, day and hour since
opening, reminder follow-up, time to cast, SMS spent, how voters identified, languages,
abandoned conversations, and after the unseal the count's rounds and winner's share), for
``openprimary report`` and the console's ``/organisers/report``.

The privacy rule: nothing here may identify a voter or a ballot.  So every count of voters
or ballots from 1 to 9 is shown as ``"<10"`` (:func:`few`; 0 reveals nothing about anyone and
is shown), and every percentage, share, median or 90th percentile computed from fewer than
10 voters is shown as ``"<10"`` too (:func:`percent`).  Where a breakdown (by channel, day,
hour, language...) hides exactly one cell, the total minus the others would give it away,
so the smallest other cell is withheld as well and shown as ``"hidden"``
(:func:`breakdown`); the hours are withheld within each day, so the days cannot give an
hour away either.  The rule is applied here, as the figures are gathered: a :class:`Pilot`
holds only what may be shown, so no renderer (text, CSV, JSON, the page, its charts) can
show more.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar

from redis.asyncio import Redis

from ballots import keys
from ballots.count.model import CountError
from ballots.count.result import Result
from ballots.election import Election
from ballots.errors import UnknownElection
from ballots.program import program
from ballots.quiet import describe
from ballots.turnout import Turnout, turnout
from bot.reminders.common import CHANNELS, Outcome
from bot.results import counted

#: The fewest voters a figure may be shown for.
FEW = 10
#: What a count of 1 to 9 voters, or a figure computed from fewer than 10, is shown as.
BELOW = "<10"
#: What a cell is shown as when showing it would give away a cell shown as ``BELOW``.
HIDDEN = "hidden"
#: Outcomes of a reminder that mean it reached the supporter (``bot.reminders.common``).
_REACHED = (Outcome.SENT, Outcome.SENT_BY_SMS)

#: A count as the report may show it: the number, or ``BELOW`` or ``HIDDEN``.
Count = int | str
#: A percentage (one decimal place), ``BELOW``, or None where there is nothing to divide.
Percent = float | str | None

K = TypeVar("K", bound=Hashable)


def few(n: int) -> Count:
    """A count of voters or ballots as the report may show it: 0, and 10 or more, as they
    are; 1 to 9 as ``"<10"``."""
    return BELOW if 0 < n < FEW else n


def percent(part: int | Fraction, whole: int | Fraction, voters: int) -> Percent:
    """``part`` of ``whole`` in percent, one decimal place; ``"<10"`` if it is computed from
    fewer than 10 voters (``voters``: the fewest voters either number counts) and None if
    ``whole`` is 0."""
    if not whole:
        return None
    if voters < FEW:
        return BELOW
    return round(float(Fraction(part) * 100 / Fraction(whole)), 1)


def _voters(*counts: int) -> int:
    """The fewest voters behind a figure made from these counts (0 counts as none hidden:
    a share of 0 voters reveals nobody)."""
    return min((n for n in counts if n), default=FEW)


def breakdown(counts: Mapping[K, int]) -> dict[K, Count]:
    """A breakdown of voters (by channel, language...) as it may be shown: each count as
    :func:`few` says, and then, while the cells kept back add up to fewer than 10, the
    smallest shown non-zero count withheld too (``"hidden"``).  The total less the cells
    shown is the sum of those kept back: it must never be small enough to give one away
    (one cell under 10 alone, or two that add up to 2 and so are 1 each)."""
    shown: dict[K, Count] = {k: few(n) for k, n in counts.items()}
    hidden = [k for k, v in shown.items() if v == BELOW]
    kept_back = sum(counts[k] for k in hidden)
    others = sorted((n, str(k), k) for k, n in counts.items() if k not in hidden and n)
    while hidden and kept_back < FEW and others:
        n, _, k = others.pop(0)
        shown[k] = HIDDEN
        kept_back += n
    return shown


def nearest_rank(histogram: Mapping[int, int], p: float) -> int | None:
    """The ``p``-th percentile (0 < p <= 100) of a histogram (value -> how many), by the
    nearest-rank definition: the smallest value with at least ``ceil(p/100 * n)`` of the n
    observations at or below it; None for no observations.  The median is ``p=50``."""
    n = sum(histogram.values())
    if not n:
        return None
    rank = max(math.ceil(p / 100 * n), 1)
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    raise AssertionError("unreachable: the ranks add up to n")


@dataclass(frozen=True)
class Price:
    """What one SMS segment costs, exactly (``currency``: an ISO code, or None)."""

    amount: Decimal
    currency: str | None = None

    def __str__(self) -> str:
        return f"{self.currency} {self.amount}" if self.currency else str(self.amount)


@dataclass(frozen=True)
class PilotSettings:
    """An election's settings, as the report puts them beside its figures."""

    method: str
    seats: int
    identity: tuple[str, ...]
    languages: tuple[str, ...]
    abstain: bool
    max_ranks: int | None
    quiet_hours: str
    opens: str
    closes: str
    #: Each section of an electoral college and its share, exact ("1/3").
    sections: tuple[tuple[str, str], ...]
    reminder_jobs: int

    @classmethod
    def of(cls, election: Election, jobs: int) -> PilotSettings:
        return cls(
            method=election.method,
            seats=election.seats,
            identity=election.identity,
            languages=election.languages,
            abstain=election.abstain,
            max_ranks=election.max_ranks,
            quiet_hours=describe(election),
            opens=_utc(election.opens),
            closes=_utc(election.closes),
            sections=tuple((name, str(share)) for name, share in election.sections),
            reminder_jobs=jobs,
        )


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


@dataclass(frozen=True)
class FollowUp:
    """One reminder job: supporters it reached, and of them those who voted within 24 hours."""

    job: str
    sent: Count
    voted_within_24h: Count
    percent: Percent


@dataclass(frozen=True)
class SectionFigures:
    """One section of an electoral college: its share, supporters on its roll, ballots."""

    name: str
    share: str
    eligible: Count
    voted: Count
    percent: Percent


@dataclass(frozen=True)
class CountFigures:
    """What the count found, after the unseal."""

    rounds: int
    #: Candidate id -> name, of those elected.
    winners: dict[str, str]
    #: Winner -> their tally as a percent of the last round's tallies together.
    winner_share: dict[str, Percent]
    blank: Count


@dataclass(frozen=True)
class Pilot:
    """One election's figures, as they may be shown: every count and percentage has been
    through the privacy rule (:func:`few`, :func:`percent`, :func:`breakdown`)."""

    election: str
    title: str
    settings: PilotSettings
    #: Supporters on the roll (not a count of voters: shown as it is).
    eligible: int
    voted: Count
    turnout: Percent
    did_not_vote: Count
    #: Proved who they are but never cast.
    abandoned: Count
    by_channel: dict[str, Count]
    by_day: dict[str, Count]
    #: Hours since the hour the poll opened in (0: that hour) -> ballots.
    by_hour: dict[int, Count]
    #: ``code``: a posted voting code; ``otp``: a code texted by SMS.
    by_identity: dict[str, Count]
    by_language: dict[str, Count]
    reminders: tuple[FollowUp, ...]
    #: Seconds from a chat's first message to its cast (nearest rank), or ``"<10"``.
    took_median: int | str | None
    took_p90: int | str | None
    sms_segments: int
    segments_per_vote: Decimal | str | None
    price: Price | None
    sms_cost: Decimal | None
    cost_per_vote: Decimal | str | None
    sections: tuple[SectionFigures, ...]
    #: None while the ballots are sealed (or the count is refused).
    count: CountFigures | None
    #: Why the unsealed ballots are not counted (an electoral college's section with fewer
    #: ballots than its min_section_ballots), or None.
    count_refused: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """As JSON takes it: exact amounts as decimal strings (no reader turns them into
        floats), hidden figures as their strings."""
        s = self.settings
        return {
            "election": self.election,
            "title": self.title,
            "settings": {
                "method": s.method,
                "seats": s.seats,
                "identity": list(s.identity),
                "languages": list(s.languages),
                "abstain": s.abstain,
                "max_ranks": s.max_ranks,
                "quiet_hours": s.quiet_hours,
                "opens": s.opens,
                "closes": s.closes,
                "sections": dict(s.sections),
                "reminder_jobs": s.reminder_jobs,
            },
            "eligible": self.eligible,
            "voted": self.voted,
            "turnout_percent": self.turnout,
            "did_not_vote": self.did_not_vote,
            "abandoned": self.abandoned,
            "by_channel": self.by_channel,
            "by_day": self.by_day,
            "by_hour_since_opening": {str(h): n for h, n in self.by_hour.items()},
            "by_identity": self.by_identity,
            "by_language": self.by_language,
            "reminders": [
                {
                    "job": r.job,
                    "sent": r.sent,
                    "voted_within_24h": r.voted_within_24h,
                    "percent": r.percent,
                }
                for r in self.reminders
            ],
            "took_median_seconds": self.took_median,
            "took_p90_seconds": self.took_p90,
            "sms_segments": self.sms_segments,
            "segments_per_vote": _json_amount(self.segments_per_vote),
            "price_per_segment": str(self.price.amount) if self.price else None,
            "currency": self.price.currency if self.price else None,
            "sms_cost": _json_amount(self.sms_cost),
            "cost_per_vote": _json_amount(self.cost_per_vote),
            "sections": {
                x.name: {
                    "share": x.share,
                    "eligible": x.eligible,
                    "voted": x.voted,
                    "turnout_percent": x.percent,
                }
                for x in self.sections
            },
            "count_refused": self.count_refused,
            "count": None
            if self.count is None
            else {
                "rounds": self.count.rounds,
                "winners": self.count.winners,
                "winner_share_percent": self.count.winner_share,
                "blank": self.count.blank,
            },
        }


def _json_amount(value: Decimal | str | None) -> str | None:
    return None if value is None else str(value)


# --- gathering ---------------------------------------------------------------------


async def load_elections(redis: Redis, ids: Sequence[str]) -> list[Election]:
    """The elections with these ids, in this order (one round trip); UnknownElection naming
    every id that is not loaded."""
    async with redis.pipeline(transaction=False) as pipe:
        for eid in ids:
            pipe.hget(keys.election(eid), "definition")
        found = await pipe.execute()
    missing = [eid for eid, stored in zip(ids, found, strict=True) if stored is None]
    if missing:
        named = ", ".join(repr(eid) for eid in missing)
        hint = f"'{program()} election show' lists those that are"
        raise UnknownElection(
            f"no election {named} is loaded ({hint})"
            if len(missing) == 1
            else f"no elections {named} are loaded ({hint})"
        )
    return [Election.from_json(str(stored)) for stored in found]


async def gather(
    redis: Redis, elections: Sequence[Election], price: Price | None = None
) -> list[Pilot]:
    """Every election's figures, through the privacy rule.

    Reads in two waits on Redis whatever the number of elections: each election's turnout
    (``ballots.turnout``, one pipeline each) beside one pipeline of every election's SMS
    segments, reminder jobs and unseal; then one pipeline of every job's record beside the
    count of each unsealed election (``bot.results.counted``).
    """

    async def others() -> list[Any]:
        async with redis.pipeline(transaction=False) as pipe:
            for e in elections:
                pipe.get(keys.sms_segments(e.id))
                pipe.zrange(keys.reminder_jobs(e.id), 0, -1)
                pipe.hget(keys.unsealing(e.id), "done")
            return list(await pipe.execute())

    turnouts, replies = await asyncio.gather(
        asyncio.gather(*(turnout(redis, e) for e in elections)), others()
    )
    segments = [int(n or 0) for n in replies[0::3]]
    jobs = [[str(j) for j in found] for found in replies[1::3]]
    unsealed = [bool(done) for done in replies[2::3]]

    async def records() -> list[Any]:
        async with redis.pipeline(transaction=False) as pipe:
            for job in (j for found in jobs for j in found):
                pipe.hgetall(keys.reminder(job))
            return list(await pipe.execute())

    async def count_of(election: Election, done: bool) -> Result | str | None:
        """The count, or why it is refused (an electoral college's section too small)."""
        try:
            return await counted(redis, election) if done else None
        except CountError:
            # Never the refusal's own words: they give the small section's ballot count.
            return "a section has fewer valid ballots than the election's min_section_ballots"

    metas, results = await asyncio.gather(
        records(),
        asyncio.gather(*(count_of(e, done) for e, done in zip(elections, unsealed, strict=True))),
    )
    sent_by_job = {
        job: sum(int(meta.get(f"n:{o}:{ch}", 0)) for o in _REACHED for ch in CHANNELS)
        for job, meta in zip((j for found in jobs for j in found), metas, strict=True)
    }
    return [
        _pilot(e, t, n, [(j, sent_by_job[j]) for j in js], result, price)
        for e, t, n, js, result in zip(elections, turnouts, segments, jobs, results, strict=True)
    ]


def _pilot(
    election: Election,
    t: Turnout,
    segments: int,
    jobs: Sequence[tuple[str, int]],
    result: Result | str | None,
    price: Price | None,
) -> Pilot:
    """One election's figures from what was read, through the privacy rule."""
    voted = t.voted
    took = sum(t.took.values())
    abandoned = max(t.identified - voted, 0)
    sms_cost = segments * price.amount if price else None
    return Pilot(
        election=election.id,
        title=election.title,
        settings=PilotSettings.of(election, len(jobs)),
        eligible=t.eligible,
        voted=few(voted),
        turnout=percent(voted, t.eligible, _voters(voted, t.eligible)),
        # Eligible less voted: hidden with the voted it would give away.
        did_not_vote=HIDDEN if few(voted) == BELOW else few(max(t.eligible - voted, 0)),
        abandoned=few(abandoned),
        by_channel=breakdown(dict(sorted(t.by_channel.items()))),
        by_day=breakdown(dict(sorted(t.by_day.items()))),
        by_hour=_hours(election, t.by_hour),
        by_identity=breakdown(dict(sorted(t.by_identity.items()))),
        by_language=breakdown(dict(sorted(t.by_language.items()))),
        reminders=tuple(_follow_up(job, sent, t.after_reminder.get(job, 0)) for job, sent in jobs),
        took_median=_took(t.took, 50, took),
        took_p90=_took(t.took, 90, took),
        sms_segments=segments,
        segments_per_vote=_per_vote(Decimal(segments), voted, Decimal("0.01")),
        price=price,
        sms_cost=sms_cost.quantize(Decimal("0.01")) if sms_cost is not None else None,
        cost_per_vote=_per_vote(sms_cost, voted, Decimal("0.0001")),
        sections=_sections(election, t),
        count=_count(result) if isinstance(result, Result) else None,
        count_refused=result if isinstance(result, str) else None,
    )


def _sections(election: Election, t: Turnout) -> tuple[SectionFigures, ...]:
    """Each section's eligible and voted, each set through :func:`breakdown` like any other
    breakdown of the whole: the total less the other sections must not give one away, and a
    percentage is withheld with the count it divides."""
    names = election.section_names
    eligible = breakdown({n: t.eligible_by_section.get(n, 0) for n in names})
    voted = breakdown({n: t.by_section.get(n, 0) for n in names})
    figures = []
    for name, share in election.sections:
        cast, of = t.by_section.get(name, 0), t.eligible_by_section.get(name, 0)
        withheld = voted[name] in (BELOW, HIDDEN) or eligible[name] in (BELOW, HIDDEN)
        shown_percent: Percent = BELOW if withheld and of else percent(cast, of, _voters(cast, of))
        figures.append(SectionFigures(name, str(share), eligible[name], voted[name], shown_percent))
    return tuple(figures)


def _hours(election: Election, by_hour: Mapping[str, int]) -> dict[int, Count]:
    """Ballots by whole hours since the hour the poll opened in, from the UTC
    ``YYYY-MM-DDTHH`` keys; withheld as :func:`breakdown` says within each day, and the
    days' own breakdown withheld likewise (``by_day``), so neither gives the other away."""
    start = election.opens.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    by_day: dict[str, dict[int, int]] = {}
    for key, n in sorted(by_hour.items()):
        at = datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC)
        by_day.setdefault(key[:10], {})[(at - start) // timedelta(hours=1)] = n
    shown: dict[int, Count] = {}
    days = breakdown({day: sum(hours.values()) for day, hours in by_day.items()})
    for day, hours in by_day.items():
        if days[day] in (BELOW, HIDDEN):
            # The day is kept back in ``by_day``: no hour of it shows a number, which would
            # give it away.
            shown.update(
                {h: BELOW if 0 < n < FEW else HIDDEN if n else 0 for h, n in hours.items()}
            )
        else:
            shown.update(breakdown(hours))
    return dict(sorted(shown.items()))


def _follow_up(job: str, sent: int, voted: int) -> FollowUp:
    return FollowUp(job, few(sent), few(voted), percent(voted, sent, _voters(voted, sent)))


def _took(histogram: Mapping[int, int], p: float, n: int) -> int | str | None:
    """A percentile of the time to cast; ``"<10"`` from fewer than 10 voters (a percentile
    is one voter's own time)."""
    if not n:
        return None
    return BELOW if n < FEW else nearest_rank(histogram, p)


def _per_vote(amount: Decimal | None, voted: int, places: Decimal) -> Decimal | str | None:
    """``amount`` per ballot cast, to ``places``; ``"<10"`` for fewer than 10 ballots."""
    if amount is None or not voted:
        return None
    if voted < FEW:
        return BELOW
    return (amount / voted).quantize(places)


def _count(result: Result) -> CountFigures:
    """Rounds to the winners, each winner's share of the last round, and blank ballots."""
    last = result.rounds[-1].tallies if result.rounds else {}
    total = sum((Fraction(v) for v in last.values()), Fraction(0))
    return CountFigures(
        rounds=len(result.rounds),
        winners={w: result.name(w) for w in result.winners},
        winner_share={
            w: percent(Fraction(last.get(w, 0)), total, result.ballots) for w in result.winners
        },
        blank=few(result.blank),
    )


# --- rendering ----------------------------------------------------------------------


def to_json(pilots: Sequence[Pilot]) -> dict[str, Any]:
    """The report for scripts: each election's figures, and the rule they went through."""
    return {
        "privacy": (
            f"counts of 1 to {FEW - 1} voters, and figures computed from fewer than {FEW} "
            f'voters, are "{BELOW}"; a cell that would give one away is "{HIDDEN}"'
        ),
        "elections": [p.to_dict() for p in pilots],
    }


def measures(pilot: Pilot) -> list[tuple[str, str]]:
    """Every figure of one election as (measure, value) in the report's order: the rows of
    the text table and of the CSV.  Hidden figures keep their strings; nothing is "—" here
    but what does not apply (no voters to divide by, no price, no count yet)."""
    s = pilot.settings
    rows: list[tuple[str, str]] = [
        ("title", pilot.title),
        ("method", s.method),
        ("seats", str(s.seats)),
        ("identity", ", ".join(s.identity)),
        ("languages", ", ".join(s.languages)),
        ("abstain", "yes" if s.abstain else "no"),
        ("max_ranks", str(s.max_ranks) if s.max_ranks else "all"),
        ("quiet_hours", s.quiet_hours),
        ("opens", s.opens),
        ("closes", s.closes),
        ("sections", ", ".join(f"{n} {share}" for n, share in s.sections) or "none"),
        ("reminder_jobs", str(s.reminder_jobs)),
        ("eligible", _n(pilot.eligible)),
        ("voted", _n(pilot.voted)),
        ("turnout_percent", _pc(pilot.turnout)),
        ("did_not_vote", _n(pilot.did_not_vote)),
        ("abandoned", _n(pilot.abandoned)),
    ]
    rows += [(f"by_channel.{k}", _n(v)) for k, v in pilot.by_channel.items()]
    rows += [(f"by_day.{k}", _n(v)) for k, v in pilot.by_day.items()]
    rows += [(f"by_hour.{k}", _n(v)) for k, v in pilot.by_hour.items()]
    rows += [(f"by_identity.{k}", _n(v)) for k, v in pilot.by_identity.items()]
    rows += [(f"by_language.{k}", _n(v)) for k, v in pilot.by_language.items()]
    for r in pilot.reminders:
        rows += [
            (f"reminder.{r.job}.sent", _n(r.sent)),
            (f"reminder.{r.job}.voted_within_24h", _n(r.voted_within_24h)),
            (f"reminder.{r.job}.percent", _pc(r.percent)),
        ]
    rows += [
        ("took_median", duration(pilot.took_median)),
        ("took_p90", duration(pilot.took_p90)),
        ("sms_segments", _n(pilot.sms_segments)),
        ("segments_per_vote", _amount(pilot.segments_per_vote)),
    ]
    if pilot.price is not None:
        rows += [
            ("price_per_segment", str(pilot.price)),
            ("sms_cost", _money(pilot.sms_cost, pilot.price)),
            ("cost_per_vote", _money(pilot.cost_per_vote, pilot.price)),
        ]
    for x in pilot.sections:
        rows += [
            (f"section.{x.name}.share", x.share),
            (f"section.{x.name}.eligible", _n(x.eligible)),
            (f"section.{x.name}.voted", _n(x.voted)),
            (f"section.{x.name}.turnout_percent", _pc(x.percent)),
        ]
    if pilot.count_refused is not None:
        rows.append(("count", f"not counted: {pilot.count_refused}"))
    elif pilot.count is None:
        rows.append(("count", "sealed"))
    else:
        c = pilot.count
        rows += [
            ("rounds", str(c.rounds)),
            ("winners", ", ".join(c.winners.values()) or "none"),
            *((f"winner_share.{w}", _pc(v)) for w, v in c.winner_share.items()),
            ("blank", _n(c.blank)),
        ]
    return rows


#: The kinds of measure in the report's order (a measure ``by_hour.3`` is of ``by_hour``).
_KINDS = (
    "title", "method", "seats", "identity", "languages", "abstain", "max_ranks",
    "quiet_hours", "opens", "closes", "sections", "reminder_jobs", "eligible", "voted",
    "turnout_percent", "did_not_vote", "abandoned", "by_channel", "by_day", "by_hour",
    "by_identity", "by_language", "reminder", "took_median", "took_p90", "sms_segments",
    "segments_per_vote", "price_per_segment", "sms_cost", "cost_per_vote", "section", "count",
    "rounds", "winners", "winner_share", "blank",
)  # fmt: skip


def table(pilots: Sequence[Pilot]) -> list[tuple[str, list[str]]]:
    """Each measure any election has, in the report's order (the hours in their order, the
    rest of a kind as first met), with every election's value ("" for one that has no such
    measure: another's channel, reminder job or section)."""
    each = [dict(measures(p)) for p in pilots]
    met = list(dict.fromkeys(m for values in each for m in values))

    def place(m: str) -> tuple[int, int, int]:
        kind, _, what = m.partition(".")
        return _KINDS.index(kind), int(what) if kind == "by_hour" else 0, met.index(m)

    return [(m, [values.get(m, "") for values in each]) for m in sorted(met, key=place)]


def render_text(pilots: Sequence[Pilot]) -> str:
    """The side-by-side table: one row per measure, one column per election."""
    rows = [("election", [p.election for p in pilots]), *table(pilots)]
    label = max(len(m) for m, _ in rows)
    widths = [max(len(values[i]) for _, values in rows) for i in range(len(pilots))]
    lines = [
        f"{m:<{label}}  " + "  ".join(v.rjust(w) for v, w in zip(values, widths, strict=True))
        for m, values in rows
    ]
    note = (
        f'"{BELOW}": 1 to {FEW - 1} voters, or a figure from fewer than {FEW}; '
        f'"{HIDDEN}": withheld, as it would give a "{BELOW}" away; "—": does not apply'
    )
    return "\n".join(line.rstrip() for line in lines) + "\n" + note + "\n"


def to_csv(pilots: Sequence[Pilot]) -> str:
    """One row per election and measure: ``election,measure,value``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["election", "measure", "value"])
    for p in pilots:
        writer.writerows((p.election, m, v) for m, v in measures(p))
    return out.getvalue()


def _n(value: Count) -> str:
    return f"{value:,}" if isinstance(value, int) else value


def _pc(value: Percent) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}%" if isinstance(value, float) else value


def _amount(value: Decimal | str | None) -> str:
    return "—" if value is None else str(value)


def _money(value: Decimal | str | None, price: Price) -> str:
    """An amount in the price's currency ("GBP 0.0600"); a hidden one as it is."""
    if isinstance(value, Decimal) and price.currency:
        return f"{price.currency} {value}"
    return _amount(value)


def duration(value: int | str | None) -> str:
    """A time to cast as people read it: "45s", "3m 05s", "2h 10m"."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if value < 60:
        return f"{value}s"
    if value < 3600:
        return f"{value // 60}m {value % 60:02d}s"
    return f"{value // 3600}h {value % 3600 // 60:02d}m"
