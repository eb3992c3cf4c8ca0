"""An election: its definition in TOML, its validation, and its copy in Redis."""

from __future__ import annotations

import difflib
import hashlib
import hmac
import json
import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from redis.asyncio import Redis

from ballots import keys
from ballots.errors import ConfigError, ElectionLocked, FileProblems, Problem, UnknownElection
from ballots.languages import FAITHFUL, FOLDED, SHIPPED, right_to_left
from ballots.program import program

METHODS = ("irv", "sv", "stv")
IDENTITY_METHODS = ("code", "sms-otp")
#: One hash slot unless the file asks for more: ballots are only as secret as a
#: shard is large, so spread an election over a cluster only when it is big.
DEFAULT_SHARDS = 1
#: Fewer supporters than this per shard, on average, draws a warning at import.
MIN_SHARD_SIZE = 1000
DEFAULT_TIMEZONE = "Europe/London"
_QUIET = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")
_ID = re.compile(r"^[a-z0-9-]+$")
_FRACTION = re.compile(r"^[0-9]+ */ *[1-9][0-9]*$|^[0-9]*\.?[0-9]+$")
#: The fewest ballots a section of an electoral college may have and still be counted.
DEFAULT_MIN_SECTION_BALLOTS = 20
#: Ids an election may not have: the console's own paths beside ``/organisers/ID/``.
RESERVED_IDS = frozenset({"static", "report"})


def one_line(name: str) -> bool:
    """Whether a name is one line of printable text (no newline, tab or control character)."""
    text = name.strip()
    return bool(text) and text.isprintable()


#: Letters and symbols that show as a blank: the Hangul fillers and the empty Braille
#: cell.  (Format characters such as zero-width spaces are not printable: refused already.)
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def name_problem(name: str, folded: Mapping[str, str]) -> str | None:
    """Why a candidate's name cannot go on the ballot, or None if it can.

    The name must show: not blank once the characters that show nothing are
    left out, and none of those inside it (a name with a filler for a space
    looks like another).  It must be in one direction: SMS has no way to keep a
    right-to-left run in order among left-to-right letters.  And a
    right-to-left name needs every language that SMS folds to GSM-7
    (``folded``: code -> English name) to go faithful instead: folding would
    drop its every letter.
    """
    if not one_line(name):
        return "the name must be one line of printable text"
    if not any(unicodedata.category(ch)[0] in "LNPS" and ch not in _BLANKS for ch in name):
        return "the name shows nothing: without its invisible characters it is blank"
    hidden = next((ch for ch in name if ch in _BLANKS), None)
    if hidden is not None:
        return (
            f"the name holds an invisible character (U+{ord(hidden):04X} "
            f"{unicodedata.name(hidden)}) that shows as a blank; use ordinary spaces"
        )
    if not right_to_left(name):
        return None
    if any(unicodedata.bidirectional(ch) == "L" for ch in name):
        return (
            "the name mixes right-to-left and left-to-right writing, which SMS cannot show "
            "in order; give it in one script"
        )
    if folded:
        languages = " and ".join(folded.values())
        faithful = ", ".join(f'{code} = "faithful"' for code in folded)
        return (
            f"the name is written right-to-left, which SMS in {languages} cannot carry "
            "(folded to GSM-7, it would lose every letter); give the name in Latin letters, "
            f"or send {languages} faithful: sms_text = {{ {faithful} }}"
        )
    return None


#: An organiser: a phone number in E.164 form, or a Telegram user id (ASCII digits only).
_ORGANISER = re.compile(r"^(\+[1-9][0-9]{6,14}|tg:[1-9][0-9]{0,19})$")


@dataclass(frozen=True)
class Candidate:
    """One candidate: a stable id (stored in ballots) and a display name."""

    id: str
    name: str


@dataclass(frozen=True)
class Election:
    """Everything the bot and the count need to know about one election."""

    id: str
    title: str
    method: str
    candidates: tuple[Candidate, ...]
    opens: datetime
    closes: datetime
    identity: tuple[str, ...] = ("code",)
    seats: int = 1
    help: str = ""
    organisers: tuple[str, ...] = ()
    shards: int = DEFAULT_SHARDS
    #: The most preferences a voter may give (None: as many as the method takes).
    max_ranks: int | None = None
    #: The IANA time zone the election's local times are in (quiet hours).
    timezone: str = DEFAULT_TIMEZONE
    #: No reminders from the first time to the second ("HH:MM", local): None for none.
    quiet_hours: tuple[str, str] | None = None
    #: Voters may cast a blank ballot (ABSTAIN): counted in turnout, for no candidate.
    abstain: bool = False
    #: The languages voters may use, the first the default (``ballots/languages.py``).
    languages: tuple[str, ...] = ("en",)
    #: How SMS carries a language, where the file chose (``faithful`` or ``folded``);
    #: the others go as :data:`ballots.languages.SHIPPED` says.
    sms_text: dict[str, str] = field(default_factory=dict)
    #: An electoral college: each section's share of the count (exact, summing to 1), in
    #: the file's order; empty for one body of voters.  The roll's ``section`` column places
    #: each supporter.
    sections: tuple[tuple[str, Fraction], ...] = ()
    #: The fewest ballots a section may have and still be counted (a smaller section's
    #: results would say too much about how its few voters voted).
    min_section_ballots: int = DEFAULT_MIN_SECTION_BALLOTS
    #: Publishing the results also publishes the anonymised ballots (BLT, CSV) for anyone to
    #: recount; the receipts list is published either way.
    publish_ballots: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def section_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.sections)

    @property
    def shares(self) -> dict[str, Fraction]:
        """Each section's share of the count (empty: no sections)."""
        return dict(self.sections)

    @property
    def candidate_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.candidates)

    def candidate(self, candidate_id: str) -> Candidate:
        for c in self.candidates:
            if c.id == candidate_id:
                return c
        raise KeyError(candidate_id)

    @property
    def max_preferences(self) -> int:
        """How many preferences a ballot may carry: 2 for the supplementary vote, every
        candidate otherwise, and never more than ``max_ranks``."""
        most = 2 if self.method == "sv" else len(self.candidates)
        return min(most, self.max_ranks) if self.max_ranks else most

    def sms_faithful(self, language: str) -> bool:
        """Whether SMS in ``language`` keeps its own letters (UCS-2 when one is outside
        GSM-7) rather than folding them to GSM-7."""
        return _faithful(language, self.sms_text)

    def is_open(self, now: datetime) -> bool:
        return self.opens <= now < self.closes

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "title": self.title,
                "method": self.method,
                "seats": self.seats,
                "opens": self.opens.isoformat(),
                "closes": self.closes.isoformat(),
                "identity": list(self.identity),
                "help": self.help,
                "organisers": list(self.organisers),
                "shards": self.shards,
                "max_ranks": self.max_ranks,
                "timezone": self.timezone,
                "quiet_hours": "-".join(self.quiet_hours) if self.quiet_hours else None,
                "abstain": self.abstain,
                "languages": list(self.languages),
                "sms_text": self.sms_text,
                "candidates": [{"id": c.id, "name": c.name} for c in self.candidates],
                "publish_ballots": self.publish_ballots,
                **(
                    {
                        "sections": [[name, str(share)] for name, share in self.sections],
                        "min_section_ballots": self.min_section_ballots,
                    }
                    if self.sections
                    else {}
                ),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Election:
        d = json.loads(text)
        return cls(
            id=d["id"],
            title=d["title"],
            method=d["method"],
            seats=d["seats"],
            opens=datetime.fromisoformat(d["opens"]),
            closes=datetime.fromisoformat(d["closes"]),
            identity=tuple(d["identity"]),
            help=d["help"],
            organisers=tuple(d["organisers"]),
            shards=d["shards"],
            max_ranks=d.get("max_ranks"),
            timezone=d.get("timezone", DEFAULT_TIMEZONE),
            quiet_hours=_window(d.get("quiet_hours")),
            abstain=bool(d.get("abstain", False)),
            languages=tuple(d.get("languages", ["en"])),
            sms_text=dict(d.get("sms_text", {})),
            candidates=tuple(Candidate(c["id"], c["name"]) for c in d["candidates"]),
            sections=tuple((name, Fraction(share)) for name, share in d.get("sections", [])),
            min_section_ballots=d.get("min_section_ballots", DEFAULT_MIN_SECTION_BALLOTS),
            publish_ballots=bool(d.get("publish_ballots", True)),
        )


#: Every key an election file may have, and a candidate's table.
FILE_KEYS = frozenset(
    {
        "id", "title", "method", "seats", "opens", "closes", "identity", "help",
        "organisers", "shards", "languages", "sms_text", "candidates", "max_ranks",
        "timezone", "quiet_hours", "abstain", "sections", "min_section_ballots",
        "publish_ballots",
    }
)  # fmt: skip
CANDIDATE_KEYS = frozenset({"id", "name"})


def _did_you_mean(key: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return (
        f" (did you mean {close[0]!r}?)" if close else f"; the keys are {', '.join(sorted(known))}"
    )


def _faithful(language: str, sms_text: Mapping[str, str]) -> bool:
    """Whether SMS keeps ``language``'s letters: as the file's ``sms_text`` says, or as shipped."""
    shipped = SHIPPED.get(language)
    default = shipped.sms if shipped is not None else FOLDED
    return sms_text.get(language, default) == FAITHFUL


def _line_of(lines: list[str], pattern: str, start: int = 0) -> int:
    """1-based number of the first line at or after ``start`` matching ``pattern``."""
    rx = re.compile(pattern)
    for i in range(start, len(lines)):
        if rx.search(lines[i]):
            return i + 1
    return start + 1 if lines else 1


def _key_line(lines: list[str], key: str, start: int = 0) -> int:
    return _line_of(lines, rf"^\s*{re.escape(key)}\s*=", start)


def parse_election(text: str, path: str) -> Election:
    """Parse and check an election file; every problem is reported at once."""
    lines = text.splitlines()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"line (\d+)", str(err))
        line = int(m.group(1)) if m else 1
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(err))
        raise FileProblems([Problem(path, line, f"not valid TOML: {reason}")]) from err

    problems: list[Problem] = []

    def bad(key: str, reason: str, start: int = 0) -> None:
        problems.append(Problem(path, _key_line(lines, key, start), reason))

    # A misspelt key would be ignored, and its setting silently left at its default.
    for key in data:
        if key not in FILE_KEYS:
            bad(key, f"unknown key {key!r}" + _did_you_mean(key, FILE_KEYS))
    table_line = 0
    for raw in data.get("candidates") or []:
        table_line = _line_of(lines, r"^\s*\[\[\s*candidates\s*\]\]", table_line)
        for key in raw if isinstance(raw, dict) else ():
            if key not in CANDIDATE_KEYS:
                bad(
                    key,
                    f"unknown key {key!r} in a candidate" + _did_you_mean(key, CANDIDATE_KEYS),
                    table_line,
                )

    def text_field(key: str, required: bool = True) -> str:
        value = data.get(key)
        if value is None:
            if required:
                problems.append(Problem(path, 1, f"missing required key '{key}'"))
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            bad(key, f"'{key}' must be a non-empty string")
            return ""
        if key == "title" and not value.strip().isprintable():
            bad(key, "'title' must be one line of printable text")
            return ""
        return value.strip()

    eid = text_field("id")
    if eid and not _ID.match(eid):
        bad("id", f"election id {eid!r} may use only a-z, 0-9 and '-'")
    elif eid in RESERVED_IDS:
        bad("id", f"election id {eid!r} is a name the console keeps for itself; choose another")
    title = text_field("title")
    method = text_field("method")
    if method and method not in METHODS:
        bad("method", f"unknown method {method!r}; use one of: {', '.join(METHODS)}")

    seats = data.get("seats", 1)
    if not isinstance(seats, int) or isinstance(seats, bool) or seats < 1:
        bad("seats", "'seats' must be a whole number of at least 1")
        seats = 1
    elif method in ("irv", "sv") and seats != 1:
        bad("seats", f"method {method!r} elects one candidate; seats must be 1")

    times: dict[str, datetime] = {}
    for key in ("opens", "closes"):
        value = data.get(key)
        if value is None:
            problems.append(Problem(path, 1, f"missing required key '{key}'"))
        elif isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                bad(key, f"'{key}' must be an ISO 8601 date and time with a zone")
                continue
        if isinstance(value, datetime):
            if value.tzinfo is None:
                bad(key, f"'{key}' needs a time zone, e.g. 2028-01-10T08:00:00Z")
            else:
                times[key] = value.astimezone(UTC)
        elif isinstance(value, date):
            bad(key, f"'{key}' needs a time and a zone, e.g. 2028-01-10T08:00:00Z")
        elif value is not None:
            bad(key, f"'{key}' must be an ISO 8601 date and time with a zone")
    if len(times) == 2 and times["opens"] >= times["closes"]:
        bad("closes", "'closes' must be later than 'opens'")

    identity_raw = data.get("identity", ["code"])
    identity: tuple[str, ...] = ()
    if not isinstance(identity_raw, list) or not identity_raw:
        bad("identity", '\'identity\' must be a list such as ["code", "sms-otp"]')
    else:
        for item in identity_raw:
            if item not in IDENTITY_METHODS:
                bad(
                    "identity",
                    f"unknown identity method {item!r}; use {' or '.join(IDENTITY_METHODS)}",
                )
        identity = tuple(dict.fromkeys(str(i) for i in identity_raw))

    help_text = data.get("help", "")
    if not isinstance(help_text, str):
        bad("help", "'help' must be a string")
        help_text = ""

    organisers_raw = data.get("organisers", [])
    organisers: tuple[str, ...] = ()
    if not isinstance(organisers_raw, list) or not all(isinstance(o, str) for o in organisers_raw):
        bad("organisers", "'organisers' must be a list of phone numbers or 'tg:<id>'")
    else:
        wrong = [o for o in organisers_raw if not _ORGANISER.match(o)]
        if wrong:
            bad(
                "organisers",
                f"organiser {wrong[0]!r} is neither a phone number in E.164 form "
                "(+447700900001) nor a Telegram user id (tg:123456789)",
            )
        organisers = tuple(organisers_raw)

    shards = data.get("shards", DEFAULT_SHARDS)
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= 16384:
        bad("shards", "'shards' must be a whole number from 1 to 16384")
        shards = DEFAULT_SHARDS

    languages_raw = data.get("languages", ["en"])
    languages: tuple[str, ...] = ("en",)
    if (
        not isinstance(languages_raw, list)
        or not languages_raw
        or not all(isinstance(code, str) for code in languages_raw)
    ):
        bad("languages", '\'languages\' must be a list of language codes, such as ["en", "cy"]')
    else:
        unknown = [code for code in languages_raw if code not in SHIPPED]
        if unknown:
            bad(
                "languages",
                f"no messages in {', '.join(map(repr, unknown))}; OpenPrimary speaks "
                + ", ".join(f"{code} ({lang.english})" for code, lang in SHIPPED.items()),
            )
        else:
            languages = tuple(dict.fromkeys(languages_raw))
    sms_text = _sms_text(data.get("sms_text", {}), languages, bad)
    # The languages SMS folds to GSM-7, which a candidate's name must survive.
    folded = {code: SHIPPED[code].english for code in languages if not _faithful(code, sms_text)}

    candidates: list[Candidate] = []
    raw_candidates = data.get("candidates")
    if not isinstance(raw_candidates, list) or not raw_candidates:
        problems.append(
            Problem(path, 1, "no candidates: add [[candidates]] tables with id and name")
        )
        raw_candidates = []
    seen: set[str] = set()
    table_line = 0
    for raw in raw_candidates:
        table_line = _line_of(lines, r"^\s*\[\[\s*candidates\s*\]\]", table_line)
        where = table_line
        if not isinstance(raw, dict):
            problems.append(Problem(path, where, "a candidate must be a table"))
            continue
        cid, name = raw.get("id"), raw.get("name")
        if not isinstance(cid, str) or not _ID.match(cid):
            problems.append(
                Problem(path, where, f"candidate id {cid!r} must use only a-z, 0-9 and '-'")
            )
            continue
        if cid in seen:
            problems.append(Problem(path, where, f"candidate id {cid!r} appears twice"))
            continue
        if not isinstance(name, str) or not name.strip():
            problems.append(Problem(path, where, f"candidate {cid!r} needs a name"))
            continue
        unfit = name_problem(name.strip(), folded)
        if unfit is not None:
            problems.append(Problem(path, where, f"candidate {cid!r}: {unfit}"))
            continue
        seen.add(cid)
        candidates.append(Candidate(cid, name.strip()))
    if method == "stv" and isinstance(seats, int) and candidates and seats >= len(candidates):
        bad("seats", f"{seats} seats need more than {len(candidates)} candidates")

    max_ranks = data.get("max_ranks")
    if max_ranks is not None:
        if not isinstance(max_ranks, int) or isinstance(max_ranks, bool) or max_ranks < 1:
            bad("max_ranks", "'max_ranks' must be a whole number of at least 1")
            max_ranks = None
        elif candidates and max_ranks > len(candidates):
            bad(
                "max_ranks",
                f"'max_ranks' is {max_ranks} but there are only {len(candidates)} candidates",
            )
            max_ranks = None
        elif method == "sv" and max_ranks > 2:
            bad("max_ranks", "the supplementary vote takes 2 preferences at most: max_ranks <= 2")
            max_ranks = None

    timezone = data.get("timezone", DEFAULT_TIMEZONE)
    if not isinstance(timezone, str) or not _known_zone(timezone):
        bad("timezone", f"unknown time zone {timezone!r}: use an IANA name such as Europe/London")
        timezone = DEFAULT_TIMEZONE
    quiet_hours: tuple[str, str] | None = None
    quiet_raw = data.get("quiet_hours")
    if quiet_raw is not None:
        found = _QUIET.match(quiet_raw) if isinstance(quiet_raw, str) else None
        if found is None:
            bad("quiet_hours", "'quiet_hours' must be two times of day, such as \"21:00-09:00\"")
        elif quiet_raw[:5] == quiet_raw[6:]:
            bad("quiet_hours", "'quiet_hours' must start and end at different times")
        else:
            quiet_hours = _window(quiet_raw)

    abstain = data.get("abstain", False)
    if not isinstance(abstain, bool):
        bad("abstain", "'abstain' must be true or false")
        abstain = False

    publish_ballots = data.get("publish_ballots", True)
    if not isinstance(publish_ballots, bool):
        bad("publish_ballots", "'publish_ballots' must be true or false")
        publish_ballots = True

    sections = _sections(data.get("sections"), method, bad)
    min_section_ballots = data.get("min_section_ballots", DEFAULT_MIN_SECTION_BALLOTS)
    if (
        not isinstance(min_section_ballots, int)
        or isinstance(min_section_ballots, bool)
        or min_section_ballots < 1
    ):
        bad("min_section_ballots", "'min_section_ballots' must be a whole number of at least 1")
        min_section_ballots = DEFAULT_MIN_SECTION_BALLOTS
    elif "min_section_ballots" in data and not sections:
        bad("min_section_ballots", "'min_section_ballots' applies only with 'sections'")

    if problems:
        raise FileProblems(sorted(problems, key=lambda p: p.line))
    return Election(
        id=eid,
        title=title,
        method=method,
        seats=seats,
        candidates=tuple(candidates),
        opens=times["opens"],
        closes=times["closes"],
        identity=identity,
        help=help_text.strip(),
        organisers=organisers,
        shards=shards,
        max_ranks=max_ranks,
        timezone=timezone,
        quiet_hours=quiet_hours,
        abstain=abstain,
        languages=languages,
        sms_text=sms_text,
        sections=sections,
        min_section_ballots=min_section_ballots,
        publish_ballots=publish_ballots,
    )


def _share(value: Any) -> Fraction | None:
    """A section's share as written: a number (0.5) or a fraction in quotes ("1/3"),
    read exactly (0.1 is one tenth, not the binary float nearest it)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Fraction(str(value))
    if isinstance(value, str) and _FRACTION.match(value.strip()):
        return Fraction(value.strip().replace(" ", ""))
    return None


def _sections(
    raw: Any, method: str, bad: Callable[[str, str], None]
) -> tuple[tuple[str, Fraction], ...]:
    """The file's ``sections`` table: each section's share, exact; they must sum to 1."""
    if raw is None:
        return ()
    example = "'sections' must be a table such as { members = 0.5, affiliates = 0.5 }"
    if not isinstance(raw, dict) or len(raw) < 2:
        bad("sections", example + " (two sections at least)")
        return ()
    found: list[tuple[str, Fraction]] = []
    for name, value in raw.items():
        share = _share(value)
        if not _ID.match(name) or len(name) > 32:
            bad("sections", f"section {name!r}: a name is 1-32 lower-case letters, digits or '-'")
        elif share is None or not 0 < share < 1:
            bad(
                "sections",
                f"section {name!r}: its share must be a number between 0 and 1, such as 0.5 "
                'or "1/3"',
            )
        else:
            found.append((name, share))
    if len(found) != len(raw):
        return ()
    total = sum(share for _, share in found)
    if total != 1:
        bad("sections", f"the sections' shares add up to {total}, not 1")
        return ()
    if method == "stv":
        bad(
            "sections",
            "sections are counted by 'irv' or 'sv' only: a weighted STV count is not "
            "supported (its transfers could not be kept exact and checked)",
        )
        return ()
    return tuple(found)


def _sms_text(
    raw: Any, languages: tuple[str, ...], bad: Callable[[str, str], None]
) -> dict[str, str]:
    """The file's ``sms_text`` table: for each language, ``faithful`` or ``folded``."""
    if not isinstance(raw, dict):
        bad("sms_text", "'sms_text' must be a table such as { cy = \"faithful\" }")
        return {}
    chosen: dict[str, str] = {}
    for code, how in raw.items():
        if code not in languages:
            bad("sms_text", f"'sms_text' names {code!r}, which is not in 'languages'")
        elif how not in (FAITHFUL, FOLDED):
            bad("sms_text", f'\'sms_text\' for {code!r} must be "faithful" or "folded"')
        elif how == FOLDED and not SHIPPED[code].foldable:
            bad(
                "sms_text",
                f"{SHIPPED[code].english} cannot be folded to GSM-7 (its script has no GSM-7 "
                "letters): it goes faithful, as UCS-2",
            )
        else:
            chosen[code] = how
    return chosen


def _window(text: str | None) -> tuple[str, str] | None:
    """Quiet hours as stored ("21:00-09:00") back to their two times."""
    if not text:
        return None
    start, _, end = text.partition("-")
    return start, end


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def read_election_file(path: Path) -> Election:
    """Read an election file from disk."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise FileProblems([Problem(str(path), 1, f"cannot read file: {err}")]) from err
    return parse_election(text, str(path))


async def save_election(redis: Redis, election: Election) -> Election:
    """Store (or update) an election and the window each shard's cast script checks.

    The shard count is fixed by the first load: supporters are already placed
    by it, so a later file cannot change it.  Once ballots have been cast, the
    method, the seats and the candidates' ids are fixed too: the ballots
    already in the box were cast for them.
    """
    stored = await redis.hget(keys.election(election.id), "definition")
    if stored is not None:
        previous = Election.from_json(str(stored))
        if previous.shards != election.shards:
            election = Election(**{**election.__dict__, "shards": previous.shards})
        changed = [
            what
            for what, before, after in (
                ("method", previous.method, election.method),
                ("seats", previous.seats, election.seats),
                ("candidate ids", previous.candidate_ids, election.candidate_ids),
                ("max_ranks", previous.max_ranks, election.max_ranks),
                ("abstain", previous.abstain, election.abstain),
                ("sections", previous.sections, election.sections),
            )
            if before != after
        ]
        window = (previous.opens, previous.closes) != (election.opens, election.closes)
        if window and await redis.exists(keys.unsealing(election.id)):
            raise ElectionLocked(
                f"election {election.id} has been unsealed (or the unseal has begun): its "
                "opening and closing times cannot change"
            )
        if previous.sections != election.sections and await _has_roll(redis, previous):
            # Each supporter's section is set by the roll's import, and each cast stores it
            # beside the sealed ballot: sections changed under a roll would leave ballots in
            # no section, or in one the count does not know.
            raise ElectionLocked(
                f"election {election.id} already has a roll: its sections cannot change "
                "(load the election with its sections before importing the roll)"
            )
        if changed and await has_ballots(redis, previous):
            raise ElectionLocked(
                f"election {election.id} already has ballots: its {' and '.join(changed)} "
                "cannot change (titles, names, times and help text can)"
            )
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(keys.election(election.id), mapping={"definition": election.to_json()})
        # Running servers read the version every second and follow a change (bot/live.py).
        pipe.hincrby(keys.election(election.id), "version", 1)
        pipe.sadd(keys.ELECTIONS, election.id)
        for shard in range(election.shards):
            pipe.hset(
                keys.shard_meta(election.id, shard),
                mapping={
                    "opens": int(election.opens.timestamp()),
                    "closes": int(election.closes.timestamp()),
                },
            )
        await pipe.execute()
    return election


async def _has_roll(redis: Redis, election: Election) -> bool:
    """Whether any supporter has been imported into the election's roll."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(election.shards):
            pipe.exists(keys.members(election.id, shard))
        return any(await pipe.execute())


async def election_version(redis: Redis, election_id: str) -> int:
    """How many times the election has been saved: a change makes running servers follow."""
    return int(await redis.hget(keys.election(election_id), "version") or 0)


async def has_ballots(redis: Redis, election: Election) -> bool:
    """Whether any ballot has been cast (sealed) or unsealed in this election."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(election.shards):
            pipe.exists(keys.sealed(election.id, shard), keys.ballots(election.id, shard))
        return any(await pipe.execute())


async def get_election(redis: Redis, election_id: str) -> Election:
    """Load an election that was stored with :func:`save_election`."""
    stored = await redis.hget(keys.election(election_id), "definition")
    if stored is None:
        raise UnknownElection(
            f"no election {election_id!r} is loaded; run '{program()} election load FILE.toml'"
        )
    return Election.from_json(str(stored))


async def list_elections(redis: Redis) -> list[str]:
    """The ids of every loaded election, sorted."""
    return sorted(str(e) for e in await redis.smembers(keys.ELECTIONS))


async def bind_secret_key(redis: Redis, election: Election, secret_key: str) -> None:
    """Tie the election to the secret key of the first process that used it.

    Codes are stored as keyed hashes: a process with another key would count
    every voter's right code as a failure.  So the key's fingerprint is kept
    with the election, and a process whose key does not match refuses to run.
    """
    fingerprint = hmac.new(
        secret_key.encode(), b"openprimary secret key fingerprint", hashlib.sha256
    ).hexdigest()[:16]
    key = keys.election(election.id)
    await redis.hsetnx(key, "key_fingerprint", fingerprint)
    stored = str(await redis.hget(key, "key_fingerprint"))
    if stored != fingerprint:
        raise ConfigError(
            f"election {election.id} is run with another OPENPRIMARY_SECRET_KEY (fingerprint "
            f"{stored}; this process's is {fingerprint}): every process must use the same key, "
            "or voters' right codes would count as failures"
        )
