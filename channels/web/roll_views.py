"""The roll and codes from the console: upload a roll, look a supporter up (by number or by
phone), unlock, reissue one supporter's code, download a new codes file.  Each change is in
the audit trail, with the factor."""

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
    CHOSEN_LANGUAGE,
    PhoneError,
    Supporter,
    get_supporter,
    import_roll,
    normalise_phone,
    parse_roll,
    supporters_for_phone,
    unoffered_languages,
)
from bot import rehearsal
from bot.messages import Channel
from bot.reach import Reach
from channels.web.guard import MULTIPART
from channels.web.render import audited, core_of, page, when
from channels.web.window_views import Field

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
    """POST /organisers/roll/lookup: by supporter number, or by phone (a shared household
    phone: everyone on it): who they are, their language and section, voted (and how, never
    for whom), opted out, locked."""
    core = core_of(request)
    typed = str((await request.post()).get("supporter", "")).strip()
    if not typed:
        return page(
            request,
            "roll.html",
            nav="roll",
            problems=["Type a supporter number or a phone number."],
        )
    election = core.election
    by = "supporter number"
    ids = [typed] if await get_supporter(core.redis, election, typed) else []
    if not ids:
        try:
            phone = normalise_phone(typed, core.settings.default_region)
        except PhoneError:
            phone = ""
        if phone:
            by = "phone"
            ids = await supporters_for_phone(core.redis, election, phone)
    found = [await _found(request, sid) for sid in ids]
    await audited(
        request,
        "supporter looked up",
        who=", ".join(ids) if by == "phone" else typed,
        by=by,
    )
    return page(
        request,
        "roll.html",
        nav="roll",
        looked_up=typed,
        found=[f for f in found if f is not None],
        by=by,
        takes_codes="code" in election.identity,
    )


async def _found(request: web.Request, sid: str) -> dict[str, object] | None:
    """What the console shows of one supporter: never their code, nor their ballot."""
    core = core_of(request)
    election = core.election
    record = await get_supporter(core.redis, election, sid)
    if not record:
        return None
    async with core.redis.pipeline(transaction=False) as pipe:
        Reach.check_many(pipe, Channel.SMS, [record.get("phone", "")])
        Reach.check_many(pipe, Channel.TELEGRAM, [record.get("telegram_id", "")])
        (opted_sms,), _, (opted_tg,), _ = await pipe.execute()
    return {
        "id": sid,
        "name": record.get("name", ""),
        "language": _language(record.get("language", ""), election.languages),
        "chosen": _language(record.get(CHOSEN_LANGUAGE, ""), election.languages),
        "section": record.get("section", ""),
        "telegram": bool(record.get("telegram_id")),
        "voted": record.get("voted") or "",
        "has_code": bool(record.get("code")),
        "opted_out": [ch for ch, yes in (("SMS", opted_sms), ("Telegram", opted_tg)) if yes],
        "locked": int(record.get("fails", 0)) >= core.codes.policy.voter_max_failures,
    }


def _language(code: str, offered: Sequence[str]) -> str:
    """A roll language as organisers read it: "Welsh (cy)"; one the election does not offer
    says what the supporter is answered in instead."""
    if not code:
        return ""
    known = SHIPPED.get(code)
    name = f"{known.english} ({code})" if known else code
    if code not in offered:
        name += f", not offered: answered in {SHIPPED[offered[0]].english}"
    return name


async def _reissue_refusals(request: web.Request, sid: str) -> tuple[list[str], dict[str, str]]:
    """Why one supporter cannot be given a new code now (empty: they can), and their record.

    The rules of ``codes issue --supporter``: the election takes codes, not while it is
    being rehearsed, and never to a supporter who has voted.  Mid-poll is allowed (it is how
    a lost code is replaced); after the close a code would open nothing.
    """
    core = core_of(request)
    election = core.election
    if not sid:
        return ["Type a supporter number."], {}
    record = await get_supporter(core.redis, election, sid)
    if not record:
        return [f"{sid} is not on the roll."], {}
    problems = []
    if "code" not in election.identity:
        problems.append('This election does not take voting codes (identity has no "code").')
    if record.get("voted"):
        problems.append(
            f"{sid} has voted (by {record['voted']}): a supporter who has voted cannot be given "
            "a new code."
        )
    if core.clock.now() >= election.closes:
        problems.append(
            f"Voting closed {when(election, election.closes)}: a new code could not be used "
            "(extend voting first if it must reopen)."
        )
    problems += await _not_rehearsing(request, "reissue codes")
    return problems, record


async def reissue(request: web.Request) -> web.StreamResponse:
    """POST /organisers/roll/reissue: one supporter's new voting code, after a page that
    says what it does; the code is shown once, on the answer, and kept nowhere."""
    core = core_of(request)
    form = await request.post()
    sid = str(form.get("supporter", "")).strip()
    problems, record = await _reissue_refusals(request, sid)
    if problems:
        status = 400 if not record else 409
        return page(request, "roll.html", nav="roll", problems=problems, status=status)
    name = record.get("name", "")
    if form.get("confirm") != "yes":
        return page(
            request,
            "confirm.html",
            nav="roll",
            heading=f"Reissue {sid}'s voting code",
            what=[
                f"{sid} ({name}) gets a new voting code, and the code they had stops working "
                "at once.",
                "The new code is shown to you once, on the next page: give it to them "
                "yourself. It is kept nowhere, so it cannot be shown again (reissuing "
                "again makes another).",
                "The audit trail records that you did it (never the code).",
            ],
            action="/roll/reissue",
            back="/roll",
            fields=[Field("supporter", "Supporter", "hidden", sid)],
            button=f"Issue a new code for {sid}",
        )
    rows = await core.codes.issue_voting_codes(core.election, [sid])
    if not rows:  # they voted since the check: no code was issued
        return page(
            request,
            "roll.html",
            nav="roll",
            problems=[f"{sid} has voted: a supporter who has voted cannot be given a new code."],
            status=409,
        )
    await audited(
        request,
        "codes issued",
        count=len(rows),
        who=sid,
        only=1,
        file="shown once in the console",
    )
    _, shown_name, _, code = rows[0]
    return page(
        request, "roll.html", nav="roll", reissued={"id": sid, "name": shown_name, "code": code}
    )


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
            "To replace one supporter's lost code, look them up above and reissue theirs, or "
            "use the command line "
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
