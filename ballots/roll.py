"""The voter roll: reading the party's CSV and keeping supporters in Redis."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import phonenumbers
from babel import Locale
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ballots import keys
from ballots.connection import is_cluster
from ballots.election import Election
from ballots.errors import FileProblems, OpenPrimaryError, Problem
from ballots.languages import best

REQUIRED_COLUMNS = ("supporter_id", "name", "phone")
OPTIONAL_COLUMNS = ("telegram_id", "language", "section")
_SUPPORTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_TELEGRAM_ID = re.compile(r"^[1-9][0-9]{0,19}$")
_BATCH = 2_000
_OFCOM_DRAMA = re.compile(r"^\+447700900\d{3}$")
#: Kinds of number that are no one's own phone, as a refusal names them.  Texts to them
#: reach no supporter, and some earn whoever holds them money for every code and
#: reminder sent (SMS pumping), so a roll must not hold them.
_NOT_A_SUPPORTER = {
    phonenumbers.PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    phonenumbers.PhoneNumberType.SHARED_COST: "a shared-cost number",
    phonenumbers.PhoneNumberType.TOLL_FREE: "a freephone number",
    phonenumbers.PhoneNumberType.UAN: "an organisation's non-geographic number",
    phonenumbers.PhoneNumberType.VOICEMAIL: "a voicemail access number",
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER: "a personal (forwarding) number",
    phonenumbers.PhoneNumberType.PAGER: "a pager number",
}
_WHAT_IS_WANTED = "a supporter's phone must be a mobile or a landline"


#: A roll entry's field for a language the voter chose in the chat: it wins over the roll's
#: ``language`` (which an import sets) for their replies and reminders.
CHOSEN_LANGUAGE = "chosen_language"


#: The languages a roll may name (ISO 639, as CLDR knows them: 'cy', 'gd', 'sco' ...).
_KNOWN_LANGUAGES = frozenset(Locale("en").languages)


def unoffered_languages(supporters: Sequence[Supporter], offered: Sequence[str]) -> Counter[str]:
    """The roll's languages that the election does not offer, with how many supporters each:
    those supporters are answered in the election's first language."""
    return Counter(
        s.language for s in supporters if s.language and best(s.language, offered) is None
    )


class RollImportRefused(OpenPrimaryError):
    """Redis refused the import's writes; nothing was changed."""


@dataclass(frozen=True)
class Supporter:
    """One person on the roll."""

    supporter_id: str
    name: str
    phone: str
    telegram_id: str = ""
    language: str = ""
    #: An electoral college's section the supporter votes in ("" when there are none).
    section: str = ""


class PhoneError(ValueError):
    """A phone number that cannot be a mobile to text."""


def normalise_phone(raw: str, region: str = "GB") -> str:
    """A phone number in E.164 form, or PhoneError saying what is wrong.

    A number of an international network (+882, +883, satellite phones) or one
    that is no one's own phone (premium-rate, freephone...) is refused too.
    """
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as err:
        raise PhoneError(f"phone {raw!r} is not a phone number ({err})") from None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # Ofcom keeps 07700 900000-900999 for drama and testing: never a real
    # subscriber, so the examples and tests can use them safely.
    if not phonenumbers.is_valid_number(number) and not _OFCOM_DRAMA.match(e164):
        raise PhoneError(f"phone {raw!r} is not a valid number for region {region}")
    if number.country_code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        raise PhoneError(
            f"phone {raw!r} belongs to an international network (+{number.country_code}), "
            f"not to a country; {_WHAT_IS_WANTED}"
        )
    kind = _NOT_A_SUPPORTER.get(phonenumbers.number_type(number))
    if kind is not None:
        raise PhoneError(f"phone {raw!r} is {kind}; {_WHAT_IS_WANTED}")
    return e164


def parse_roll(
    text: str, path: str, region: str = "GB", sections: Sequence[str] = ()
) -> list[Supporter]:
    """Read a roll CSV; every bad row is reported, and nothing is returned if any is bad.

    ``sections``: an electoral college's sections; the ``section`` column must then place
    every supporter in one of them (and a roll for an election with none has no such column).
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise FileProblems([Problem(path, line, "a NUL character: this is not a text CSV file")])
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[Problem] = []
    try:
        header = next(reader)
    except StopIteration:
        raise FileProblems([Problem(path, 1, "the file is empty; expected a header row")]) from None
    except csv.Error as err:
        raise FileProblems([Problem(path, 1, f"not valid CSV: {err}")]) from err
    columns = [h.strip().lower() for h in header]
    twice = sorted({c for c in columns if c and columns.count(c) > 1})
    if twice:
        raise FileProblems(
            [Problem(path, 1, f"column(s) {', '.join(twice)} appear more than once")]
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise FileProblems(
            [
                Problem(
                    path,
                    1,
                    f"missing column(s) {', '.join(missing)}; the header must have "
                    f"{','.join(REQUIRED_COLUMNS)} and optionally {','.join(OPTIONAL_COLUMNS)}",
                )
            ]
        )
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS and c]
    if unknown:
        problems.append(Problem(path, 1, f"unknown column(s) {', '.join(unknown)}"))
    if sections and "section" not in columns:
        raise FileProblems(
            [
                Problem(
                    path,
                    1,
                    "missing column section: this election is an electoral college, so each "
                    f"supporter's section ({', '.join(sections)}) must be given",
                )
            ]
        )
    if not sections and "section" in columns:
        problems.append(Problem(path, 1, "column section, but this election declares no sections"))
    index = {c: columns.index(c) for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in columns}

    supporters: list[Supporter] = []
    first_line: dict[str, int] = {}
    telegram_line: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                problems.append(
                    Problem(path, line, f"expected {len(columns)} fields, found {len(row)}")
                )
                continue

            def cell(name: str, row: list[str] = row) -> str:
                return row[index[name]].strip() if name in index else ""

            sid, name = cell("supporter_id"), cell("name")
            reasons: list[str] = []
            if not _SUPPORTER_ID.match(sid):
                reasons.append(
                    f"supporter_id {sid!r} must be 1-64 letters, digits, '.', '_' or '-'"
                )
            elif sid in first_line:
                reasons.append(f"duplicate supporter_id {sid!r} (first on line {first_line[sid]})")
            if not name:
                reasons.append("name is empty")
            elif not name.isprintable():
                reasons.append("name must be one line of printable text")
            phone = ""
            try:
                phone = normalise_phone(cell("phone"), region)
            except PhoneError as err:
                reasons.append(str(err))
            telegram_id = cell("telegram_id")
            if telegram_id and not _TELEGRAM_ID.match(telegram_id):
                reasons.append(f"telegram_id {telegram_id!r} must be a number (digits 0-9)")
            elif telegram_id in telegram_line:
                reasons.append(
                    f"telegram_id {telegram_id} is already on line {telegram_line[telegram_id]}; "
                    "a Telegram account belongs to one supporter"
                )
            language = cell("language").lower()
            if language and not _LANGUAGE.match(language):
                reasons.append(f"language {language!r} must be a code such as 'en' or 'cy'")
            elif language and language.split("-")[0] not in _KNOWN_LANGUAGES:
                reasons.append(
                    f"language {language!r} is not a language code (BCP 47, such as 'en', 'cy' "
                    "or 'cy-GB')"
                )
            section = cell("section") if sections else ""
            if sections and section not in sections:
                reasons.append(
                    f"section {section!r} is not one of the election's sections: "
                    + ", ".join(sections)
                    if section
                    else "section is empty; it must be one of: " + ", ".join(sections)
                )
            if reasons:
                problems.extend(Problem(path, line, r) for r in reasons)
                continue
            first_line[sid] = line
            if telegram_id:
                telegram_line[telegram_id] = line
            supporters.append(Supporter(sid, name, phone, telegram_id, language, section))
    except csv.Error as err:
        problems.append(Problem(path, reader.line_num, f"not valid CSV: {err}"))
    if problems:
        raise FileProblems(problems)
    return supporters


def read_roll_file(path: Path, region: str = "GB", sections: Sequence[str] = ()) -> list[Supporter]:
    """Read a roll CSV from disk (``sections``: as :func:`parse_roll`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise FileProblems([Problem(str(path), 1, f"cannot read file: {err}")]) from err
    return parse_roll(text, str(path), region, sections)


@dataclass(frozen=True)
class ImportSummary:
    """What an import changed."""

    added: int
    updated: int
    total: int


def _chunks(items: list[Supporter], size: int = _BATCH) -> Iterator[list[Supporter]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


#: Separates a staged record's fields: never in a name (printable text), id, phone or code.
_SEP = "\x1f"

_SWITCH = """
-- Apply staged records KEYS[1][ARGV[3]..ARGV[4]] to KEYS[2].
-- ARGV[1] 'voters': records are id, name, phone, telegram id, language, section: the roll
--   entry (ARGV[2] .. id) gets them, and KEYS[2] (the shard's members) the id; its other
--   fields (codes, counters, voted) stay as they are.  KEYS[3] counts the shard's
--   supporters in each section.
-- ARGV[1] 'index': records are field, value: KEYS[2] (a hash) gets it, or loses it if empty.
local items = redis.call('LRANGE', KEYS[1], ARGV[3], ARGV[4])
for _, item in ipairs(items) do
  local f = {}
  for part in string.gmatch(item .. '\\31', '([^\\31]*)\\31') do f[#f + 1] = part end
  if ARGV[1] == 'voters' then
    local v = ARGV[2] .. f[1]
    local was = redis.call('HGET', v, 'section') or ''
    redis.call('HSET', v, 'name', f[2], 'phone', f[3], 'telegram_id', f[4], 'language', f[5])
    if f[6] ~= was then
      if was ~= '' then redis.call('HINCRBY', KEYS[3], was, -1) end
      if f[6] ~= '' then
        redis.call('HSET', v, 'section', f[6])
        redis.call('HINCRBY', KEYS[3], f[6], 1)
      else
        redis.call('HDEL', v, 'section')
      end
    end
    redis.call('SADD', KEYS[2], f[1])
  elseif f[2] == '' then
    redis.call('HDEL', KEYS[2], f[1])
  else
    redis.call('HSET', KEYS[2], f[1], f[2])
  end
end
return #items
"""
#: Staged records applied by one call of the switch script (a few milliseconds of Redis),
#: and by one round trip of such calls.
_SWITCH_CHUNK = 1_000
_SWITCH_STEP = 20_000
#: The switch writes about this many bytes for each staged byte (measured: a new roll entry
#: is a hash with its own key, larger than its staged line); it is refused beforehand if
#: Redis's maxmemory leaves less room than that.
_SWITCH_GROWTH = 3


class _Staging:
    """A roll import's changes, written in bounded batches to staging lists before any of
    them is seen: one list per shard (the roll entries) and one per index."""

    def __init__(self, redis: Redis, election: Election) -> None:
        self.redis = redis
        self.election = election
        eid = election.id
        self.lists: list[tuple[str, str, str, str, str]] = [
            (
                keys.roll_stage(eid, s),
                keys.members(eid, s),
                "voters",
                keys.voter(eid, s, ""),
                keys.roll_sections(eid, s),
            )
            for s in range(election.shards)
        ]
        for index in (keys.phone_index(eid), keys.telegram_index(eid)):
            self.lists.append((keys.stage_of(index), index, "index", "", index))
        self.lengths = dict.fromkeys((stage for stage, *_ in self.lists), 0)
        self.bytes = 0

    async def discard(self) -> None:
        """Forget what was staged (DEL is taken even by a Redis out of memory)."""
        for stage, *_ in self.lists:
            await self.redis.delete(stage)

    async def push(self, records: dict[str, list[str]]) -> None:
        """Stage a batch of records, list by list, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stage, lines in records.items():
                if lines:
                    pipe.rpush(stage, *lines)
                    self.lengths[stage] += len(lines)
                    self.bytes += sum(len(line) for line in lines)
            await pipe.execute()

    async def room_for_switch(self) -> None:
        """Refuse, before the switch, a switch that Redis's maxmemory has no room for."""
        if is_cluster(self.redis):
            return  # each node is asked by its own writes; a slot is imported whole or not
        memory = await self.redis.info("memory")
        limit, used = int(memory.get("maxmemory", 0)), int(memory.get("used_memory", 0))
        needed = self.bytes * _SWITCH_GROWTH
        if limit and used + needed > limit:
            raise RollImportRefused(
                f"Redis has {max(limit - used, 0) // 1024:,} KiB left under its maxmemory and "
                f"the import needs about {needed // 1024:,} KiB; nothing was changed, the roll "
                "is as it was (raise maxmemory, or import the roll in parts)"
            )

    async def switch(self) -> None:
        """Apply everything staged, :data:`_SWITCH_STEP` records a round trip, then drop the
        staged lists.  Each script is short, so Redis keeps answering everyone else."""
        for stage, target, kind, prefix, counts in self.lists:
            length = self.lengths[stage]
            for first in range(0, length, _SWITCH_STEP):
                async with self.redis.pipeline(transaction=False) as pipe:
                    last = min(first + _SWITCH_STEP, length)
                    for start in range(first, last, _SWITCH_CHUNK):
                        # EVAL, not EVALSHA: a Cluster's pipeline does not load scripts first.
                        end = min(start + _SWITCH_CHUNK, last) - 1
                        pipe.eval(_SWITCH, 3, stage, target, counts, kind, prefix, start, end)
                    try:
                        await pipe.execute()
                    except ResponseError as err:
                        raise RollImportRefused(
                            f"Redis refused part of the import's switch ({err}): some of the "
                            "roll is in, some not; run the same import again to finish it"
                        ) from err
            await self.redis.delete(stage)


async def import_roll(
    redis: Redis, election: Election, supporters: list[Supporter]
) -> ImportSummary:
    """Add or update supporters in place, all or nothing; a supporter id is never duplicated.

    Codes, failure counters and the voted flag of existing supporters are
    kept; a changed phone or Telegram id moves their index entries.  The
    current records are read first, in batches; the changes are then staged
    in batches in lists nobody reads, and switched in by short scripts that
    read the staged lists inside Redis.  So the client holds one batch at a
    time, whatever the roll's size, and Redis is never held for more than a
    few milliseconds.  A Redis that refuses a write while staging (out of
    memory, a read-only replica) leaves the roll as it was: the staged lists
    are deleted.  The switch is refused beforehand if Redis's maxmemory has
    no room for it; a failover in its few seconds leaves part of the roll
    switched in, and running the same import again finishes it (an import
    is idempotent).
    """
    eid = election.id
    wrong = [s.supporter_id for s in supporters if bool(election.sections) != bool(s.section)]
    wrong += [s.supporter_id for s in supporters if s.section and s.section not in election.shares]
    if wrong:
        raise RollImportRefused(
            f"{len(wrong):,} supporter(s), such as {wrong[0]}, are in no section of "
            f"{eid}'s ({', '.join(election.section_names) or 'none'}); nothing was changed"
        )
    added = updated = 0
    olds: list[tuple[str | None, str | None]] = []
    for batch in _chunks(supporters):
        async with redis.pipeline(transaction=False) as pipe:
            for s in batch:
                pipe.hmget(
                    keys.voter(eid, keys.shard_of(s.supporter_id, election.shards), s.supporter_id),
                    ["phone", "telegram_id"],
                )
            olds.extend((o[0], o[1]) for o in await pipe.execute())
    phones = sorted({s.phone for s in supporters} | {o[0] for o in olds if o[0]})
    shared: dict[str, str] = {}
    for i in range(0, len(phones), _BATCH):
        chunk = phones[i : i + _BATCH]
        current = await redis.hmget(keys.phone_index(eid), chunk)
        shared.update({p: str(v) for p, v in zip(chunk, current, strict=True) if v})
    touched = set(shared)
    staging = _Staging(redis, election)
    phone_stage = keys.stage_of(keys.phone_index(eid))
    telegram_stage = keys.stage_of(keys.telegram_index(eid))
    try:
        await staging.discard()  # what a crashed import may have left
        for start in range(0, len(supporters), _BATCH):
            records: dict[str, list[str]] = {telegram_stage: []}
            part = zip(
                supporters[start : start + _BATCH],
                olds[start : start + _BATCH],
                strict=True,
            )
            for s, (old_phone, old_tg) in part:
                if old_phone is None and old_tg is None:
                    added += 1
                else:
                    updated += 1
                if old_phone and old_phone != s.phone:
                    _phone_remove(shared, old_phone, s.supporter_id)
                    touched.add(old_phone)
                _phone_add(shared, s.phone, s.supporter_id)
                touched.add(s.phone)
                if old_tg and old_tg != s.telegram_id:
                    records[telegram_stage].append(f"{old_tg}{_SEP}")
                if s.telegram_id:
                    records[telegram_stage].append(f"{s.telegram_id}{_SEP}{s.supporter_id}")
                stage = keys.roll_stage(eid, keys.shard_of(s.supporter_id, election.shards))
                records.setdefault(stage, []).append(
                    _SEP.join(
                        (s.supporter_id, s.name, s.phone, s.telegram_id, s.language, s.section)
                    )
                )
            await staging.push(records)
        ordered = sorted(touched)
        for start in range(0, len(ordered), _BATCH):
            await staging.push(
                {
                    phone_stage: [
                        f"{phone}{_SEP}{shared.get(phone, '')}"
                        for phone in ordered[start : start + _BATCH]
                    ]
                }
            )
        await staging.room_for_switch()
    except (ResponseError, RollImportRefused) as err:
        await staging.discard()
        if isinstance(err, RollImportRefused):
            raise
        raise RollImportRefused(
            f"Redis refused the import ({err}); nothing was changed, the roll is as it was"
        ) from err
    try:
        await staging.switch()
    finally:
        await staging.discard()
    total = sum([await redis.scard(keys.members(eid, shard)) for shard in range(election.shards)])
    return ImportSummary(added=added, updated=updated, total=total)


def _phone_add(index: dict[str, str], phone: str, sid: str) -> None:
    sids = [x for x in index.get(phone, "").split(",") if x]
    if sid not in sids:
        sids.append(sid)
    index[phone] = ",".join(sids)


def _phone_remove(index: dict[str, str], phone: str, sid: str) -> None:
    index[phone] = ",".join(x for x in index.get(phone, "").split(",") if x and x != sid)


async def supporters_for_phone(redis: Redis, election: Election, phone: str) -> list[str]:
    """Supporter ids on the roll with this phone (more than one for a shared phone)."""
    value = await redis.hget(keys.phone_index(election.id), phone)
    return [x for x in str(value or "").split(",") if x]


async def supporter_for_telegram(redis: Redis, election: Election, user_id: str) -> str | None:
    """The supporter linked to a Telegram user id, if any."""
    value = await redis.hget(keys.telegram_index(election.id), user_id)
    return str(value) if value else None


async def get_supporter(redis: Redis, election: Election, supporter_id: str) -> dict[str, str]:
    """A supporter's stored record (empty when not on the roll)."""
    shard = keys.shard_of(supporter_id, election.shards)
    record = await redis.hgetall(keys.voter(election.id, shard, supporter_id))
    return {str(k): str(v) for k, v in record.items()}


async def roll_size(redis: Redis, election: Election) -> int:
    """How many supporters are on the roll."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(election.shards):
            pipe.scard(keys.members(election.id, shard))
        sizes = await pipe.execute()
    return int(sum(sizes))
