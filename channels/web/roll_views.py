"""The roll and codes from the console: upload a roll, look a supporter up, unlock,
download a new codes file.  Each change is in the audit trail, with the factor."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence

from aiohttp import BodyPartReader, web

from ballots.codes_file import write_codes_csv
from ballots.errors import FileProblems, Problem
from ballots.languages import SHIPPED
from ballots.program import program
from ballots.roll import (
    Supporter,
    get_supporter,
    import_roll,
    parse_roll,
    unoffered_languages,
)
from bot import rehearsal
from bot.messages import Channel
from bot.reach import Reach
from channels.web.guard import MULTIPART
from channels.web.render import audited, core_of, page

#: The largest roll file the console takes: about 600,000 rows (a 550,000-strong national
#: roll is ~18 MB).  A larger file is refused as it arrives; import it with the command line.
MAX_ROLL_BYTES = 20 * 1024 * 1024


async def roll_page(request: web.Request) -> web.StreamResponse:
    """GET /organisers/roll."""
    return page(request, "roll.html", nav="roll")


async def _not_rehearsing(request: web.Request, what: str) -> list[str]:
    core = core_of(request)
    if await rehearsal.state(core.redis, core.election.id) is None:
        return []
    return [
        f"The election is being rehearsed: {what} after the rehearsal is finalised "
        "(finalising puts the testers' records back, which would undo it)."
    ]


async def upload(request: web.Request) -> web.StreamResponse:
    """POST /organisers/roll/upload: check every row, then import all or nothing."""
    core = core_of(request)
    reader = request.get(MULTIPART)
    part = await reader.next() if reader is not None else None
    if not isinstance(part, BodyPartReader) or part.name != "roll" or not part.filename:
        return page(
            request, "roll.html", nav="roll", problems=["Choose a roll CSV file."], status=400
        )
    name = part.filename
    raw = bytearray()
    while chunk := await part.read_chunk():
        raw += chunk
        if len(raw) > MAX_ROLL_BYTES:
            problems = [
                f"{name}: over {MAX_ROLL_BYTES // 2**20} MB; import it with the command line"
            ]
            return page(request, "roll.html", nav="roll", problems=problems, status=400)
    try:
        # Checking every row of a large roll takes seconds of CPU: in a thread, so this
        # server goes on answering voters' webhooks meanwhile.
        supporters = await asyncio.to_thread(
            _read, bytes(raw), name, core.settings.default_region, core.election.section_names
        )
    except FileProblems as err:
        problems = [str(p) for p in err.problems]
        return page(request, "roll.html", nav="roll", problems=problems, status=400)
    finally:
        del raw
    refused = await _not_rehearsing(request, "import the roll")
    if refused:
        return page(request, "roll.html", nav="roll", problems=refused, status=409)
    summary = await import_roll(core.redis, core.election, supporters)
    await audited(
        request,
        "roll imported",
        file=name,
        added=summary.added,
        updated=summary.updated,
        total=summary.total,
    )
    election = core.election
    unoffered = unoffered_languages(supporters, election.languages)
    note = "; ".join(
        f"{n} supporter(s) with language {language!r}, which this election does not offer: "
        f"they are answered in {SHIPPED[election.languages[0]].english}"
        for language, n in sorted(unoffered.items())
    )
    return page(request, "roll.html", nav="roll", imported=summary, file=name, note=note)


def _read(raw: bytes, name: str, region: str, sections: Sequence[str]) -> list[Supporter]:
    """The supporters of an uploaded roll, or FileProblems naming each bad row."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise FileProblems(
            [Problem(name, line, "not UTF-8 text; save the file as CSV UTF-8")]
        ) from err
    return parse_roll(text, name, region, sections)


async def lookup(request: web.Request) -> web.StreamResponse:
    """POST /organisers/roll/lookup: on the roll, voted (and how), opted out, locked."""
    core = core_of(request)
    sid = str((await request.post()).get("supporter", "")).strip()
    if not sid:
        return page(request, "roll.html", nav="roll", problems=["Type a supporter number."])
    record = await get_supporter(core.redis, core.election, sid)
    found = None
    if record:
        async with core.redis.pipeline(transaction=False) as pipe:
            Reach.check_many(pipe, Channel.SMS, [record.get("phone", "")])
            Reach.check_many(pipe, Channel.TELEGRAM, [record.get("telegram_id", "")])
            (opted_sms,), _, (opted_tg,), _ = await pipe.execute()
        found = {
            "voted": record.get("voted") or "",
            "opted_out": [ch for ch, yes in (("SMS", opted_sms), ("Telegram", opted_tg)) if yes],
            "locked": int(record.get("fails", 0)) >= core.codes.policy.voter_max_failures,
        }
    await audited(
        request,
        "supporter looked up",
        who=sid,
    )
    return page(request, "roll.html", nav="roll", looked_up=sid, found=found)


async def unlock(request: web.Request) -> web.StreamResponse:
    """POST /organisers/roll/unlock: clear a supporter's failed codes."""
    core = core_of(request)
    sid = str((await request.post()).get("supporter", "")).strip()
    cleared = await core.codes.unlock_supporter(core.election, sid) if sid else False
    await audited(
        request,
        "unlocked",
        who=sid,
        had_failures=cleared,
    )
    note = f"{sid}: unlocked." if cleared else f"{sid}: was not locked."
    return page(request, "roll.html", nav="roll", note=note)


async def codes_file(request: web.Request) -> web.StreamResponse:
    """POST /organisers/codes: issue new voting codes to everyone; the mail-merge CSV."""
    core = core_of(request)
    form = await request.post()
    problems = []
    if "code" not in core.election.identity:
        problems.append('This election does not take voting codes (identity has no "code").')
    if form.get("confirm") != "yes":
        problems.append("Tick the box to confirm: every earlier code stops working.")
    if core.clock.now() >= core.election.opens:
        # Once voting has opened, new codes for everyone would stop every posted code and
        # put a working code for every supporter yet to vote in one browser's download.
        problems.append(
            "Voting has opened: codes can no longer be issued for everyone from the console. "
            "To replace one supporter's lost code, use the command line "
            f"({program()} codes issue --election {core.election.id} --supporter ID --out FILE)."
        )
    problems += await _not_rehearsing(request, "issue codes")
    if problems:
        return page(request, "roll.html", nav="roll", problems=problems, status=400)
    rows = await core.codes.issue_voting_codes(core.election, None)
    out = io.StringIO()
    n = write_codes_csv(rows, out)
    await audited(
        request,
        "codes issued",
        count=n,
        file="console download",
    )
    filename = f"{core.election.id}-codes.csv"
    return web.Response(
        body=out.getvalue().encode(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
