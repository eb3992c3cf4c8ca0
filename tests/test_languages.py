"""Languages: complete catalogues with the msgids' placeholders, the election's `languages`,
the roll's language after identification, and switching by the language's own name."""

from __future__ import annotations

import io
import json
import math
import string
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from redis.asyncio import Redis

from ballots import keys
from ballots.election import parse_election
from ballots.errors import FileProblems
from ballots.languages import SHIPPED
from ballots.roll import Supporter
from bot import texts
from bot.i18n import FSI, LOCALE, PDI, speaking
from bot.reminders import Reminders, Worker, plan, render, template_problems
from bot.reminders.text import time_left, versions
from channels.gsm import encoding, segments
from channels.rules import TEXT_RULES
from channels.standins.telegram_api import TelegramUser, button_labels
from openprimary.cli import build_parser
from openprimary.context import Context
from openprimary.cost_cli import vote_texts
from openprimary.remind_cli import remind
from tests.demo_support import start_demo
from tests.factories import (
    EXAMPLES,
    Outbox,
    harness,
    sample_election,
    settings,
    stored_ballots,
)
from tests.reminders_support import clock as reminder_clock
from tests.reminders_support import fast_limiter
from tests.sms_support import ANN, CARYS, sms_stack
from tests.telegram_support import BILAL, telegram_world

ROOT = Path(__file__).resolve().parent.parent
EXTRACT = (
    "pybabel extract --no-location --omit-header -k _ -k n_:1,2 -o bot/locale/messages.pot bot"
)


def msgids_in_code() -> set[str]:
    """Every msgid the bot's code looks up with _(), as `pybabel extract ... bot` finds them."""
    found = extract_from_dir(
        str(ROOT / "bot"), method_map=[("**.py", "python")], keywords={"_": None, "n_": (1, 2)}
    )
    return {str(message) for _file, _line, message, _comments, _context in found}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_template_holds_every_text_the_code_says() -> None:
    with (LOCALE / "messages.pot").open("rb") as pot:
        template = {str(m.id) for m in read_po(pot) if m.id}
    assert template == msgids_in_code(), f"bot/locale/messages.pot is out of date: run {EXTRACT}"


@pytest.mark.parametrize("code", [c for c in SHIPPED if c != "en"])
def test_every_shipped_catalogue_translates_every_text_with_its_placeholders(code: str) -> None:
    with (LOCALE / code / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalogue = read_po(po, locale=code)
    # A text with plural forms (n_) has one translation a form, each with its placeholders.
    translated = {
        str(m.id): (m.string if isinstance(m.string, tuple) else (m.string,))
        for m in catalogue
        if m.id
    }
    firsts = {str(m.id): str(m.id[0] if isinstance(m.id, tuple) else m.id) for m in catalogue}
    wanted = msgids_in_code()
    missing = sorted(m for m in wanted if not all(translated.get(m, ("",))))
    assert not missing, f"{code}: no translation for {missing}"
    wrong = [
        (m, form)
        for m in wanted
        for form in translated[m]
        if placeholders(firsts[m]) != placeholders(str(form))
    ]
    assert not wrong, f"{code}: placeholders differ from the msgid: {wrong}"
    assert "MACHINE-DRAFTED" in (catalogue.header_comment or "")


SAMPLE = (EXAMPLES / "election.toml").read_text()
ONE_HOUR = timedelta(hours=1)


def test_the_election_file_names_languages_and_says_what_is_wrong() -> None:
    with_cy = SAMPLE.replace("[[candidates]]", 'languages = ["en", "cy"]\n\n[[candidates]]', 1)
    assert parse_election(with_cy, "e.toml").languages == ("en", "cy")
    assert parse_election(SAMPLE, "e.toml").languages == ("en",)
    bad = SAMPLE.replace("[[candidates]]", 'languages = ["en", "fr"]\n\n[[candidates]]', 1)
    line = bad.splitlines().index('languages = ["en", "fr"]') + 1
    with pytest.raises(FileProblems) as caught:
        parse_election(bad, "e.toml")
    assert [str(p) for p in caught.value.problems] == [
        f"e.toml:{line}: no messages in 'fr'; OpenPrimary speaks "
        "en (English), cy (Welsh), ur (Urdu)"
    ]


def test_welsh_replies_are_the_catalogue_s_and_english_is_the_msgid() -> None:
    with speaking("cy"):
        assert texts.code_wrong(3).startswith("Nid yw'r cod yna'n gywir. 3 cynnig ar ôl.")
    assert texts.code_wrong(3) == "That code is not right. 3 tries left. Check it and try again."
    with speaking("xx"):  # not shipped: English
        assert texts.opted_in() == "Reminders are back on."


async def test_by_sms_the_roll_s_language_then_a_switch_each_way(redis: Redis) -> None:
    async with sms_stack(redis, languages=("en", "cy")) as stack:
        # Carys's roll entry says Welsh: once her phone's code proves who she is, Welsh.
        carys = stack.phone(CARYS)
        code = (await carys.text("hi"))[0].split()[0]
        prompt = "\n".join(await carys.text(code))
        assert prompt.startswith("Eich dewis 1af? Atebwch gyda rhif:")
        # She switches to English mid-ranking, and back: the same question each time.
        english = "\n".join(await carys.text("ENGLISH"))
        assert english.startswith("From now on: English.") and "Your 1st choice?" in english
        welsh = "\n".join(await carys.text("cymraeg"))
        assert welsh.startswith("O hyn ymlaen: Cymraeg.") and "Eich dewis 1af?" in welsh
        assert (await carys.text("2 4"))[0].startswith("Eich pleidlais:")
        cast = await carys.text("YES")
        assert cast[0].startswith("Pleidlais wedi'i bwrw, diolch!")
        # Ann's is English; the greeting offers Welsh in Welsh.
        ann = stack.phone(ANN)
        assert "is your code" in (await ann.text("hi"))[0]
        assert await stored_ballots(redis, stack.core.election) == {"patel,byrne": 1}


async def test_on_telegram_the_buttons_speak_welsh_too(redis: Redis) -> None:
    async with telegram_world(redis, election_changes={"languages": ("en", "cy")}) as world:
        greeting = await world.say(BILAL, "/start")
        assert "Cymraeg: CYMRAEG." in greeting["text"]
        switched = await world.say(BILAL, "CYMRAEG")
        assert "I bleidleisio, anfonwch" in switched["text"]
        prompt = await world.say(BILAL, await world.voting_code("S1002"))
        assert prompt["text"].startswith("Eich dewis 1af?")
        await world.tap(BILAL, "Jo Okafor")
        confirm = await world.tap(BILAL, "Gorffen")
        assert confirm["text"].startswith("Eich pleidlais:")
        await world.tap(BILAL, "Bwrw fy mhleidlais")
        assert world.api.last_message(BILAL.id)["text"].startswith("Pleidlais wedi'i bwrw")
        assert await world.ballots() == {"okafor": 1}


# --- Urdu: another script, right to left, always UCS-2 by SMS --------------------------


def isolated(name: str) -> str:
    return f"{FSI}{name}{PDI}"


async def test_urdu_by_sms_end_to_end_with_its_own_words_and_digits(redis: Redis) -> None:
    async with sms_stack(redis, languages=("en", "ur")) as stack:
        ann = stack.phone(ANN)
        code = (await ann.text("hi"))[0].split()[0]
        # She switches to Urdu by its own name before giving the code: asked again, in Urdu.
        switched = await ann.text("اردو")
        assert switched[0].startswith("اب سے: اردو۔")
        assert "6 ہندسوں کا کوڈ" in switched[0]
        # The code in Urdu's digits; the prompt asks for "preference number 1", names isolated.
        urdu_digits = code.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
        prompt = (await ann.text(urdu_digits))[0]
        assert prompt.startswith("آپ کی ترجیح نمبر 1؟")
        assert f"2 {isolated('Sam Patel')}" in prompt
        # Mid-ranking she goes to English (by its name) and back (by Urdu's English name).
        english = (await ann.text("ENGLISH"))[0]
        assert english.startswith("From now on: English.") and "Your 1st choice?" in english
        back = (await ann.text("urdu"))[0]
        assert back.startswith("اب سے: اردو۔") and "آپ کی ترجیح نمبر 1؟" in back
        # An order in Urdu digits with Urdu's comma; confirmed with Urdu's yes.
        confirm = (await ann.text("۲، ۴"))[0]
        assert confirm.startswith("آپ کا ووٹ:")
        assert f"1 {isolated('Sam Patel')}\n2 {isolated('Chris Byrne')}" in confirm
        cast = await ann.text("ہاں")
        assert cast[0].startswith("ووٹ ڈال دیا گیا، شکریہ!")
        # Every Urdu SMS went as written: UCS-2, priced as such.
        for body in [*switched, prompt, back, confirm, *cast]:
            assert encoding(body) == "UCS-2"
        # 70 characters a segment, 67 a part once longer: the prompt takes several.
        assert len(cast[0]) <= 70 and segments(cast[0]) == 1
        assert len(prompt) > 70 and segments(prompt) == math.ceil(len(prompt) / 67)
        assert await stored_ballots(redis, stack.core.election) == {"patel,byrne": 1}


async def test_welsh_by_sms_is_folded_to_gsm7_unless_the_election_keeps_its_letters(
    redis: Redis,
) -> None:
    async def wrong_code_reply(sms_text: dict[str, str]) -> tuple[str, int]:
        async with sms_stack(redis, languages=("en", "cy"), sms_text=sms_text) as stack:
            carys = stack.phone(CARYS)
            await carys.text("hi")
            await carys.text("CYMRAEG")
            reply = (await carys.text("000000"))[0]
            spent = int(await redis.get(keys.sms_segments(stack.core.election.id)) or 0)
        await redis.flushdb()
        return reply, spent

    folded, folded_spend = await wrong_code_reply({})
    faithful, faithful_spend = await wrong_code_reply({"cy": "faithful"})
    assert (
        folded
        == "Nid yw'r cod yna'n gywir. 4 cynnig ar ol. Gwiriwch ef a rhowch gynnig arall arni."
    )
    assert "ôl" in faithful and faithful.replace("ô", "o") == folded
    assert (encoding(folded), segments(folded)) == ("GSM-7", 1)
    assert (encoding(faithful), segments(faithful)) == ("UCS-2", 2)
    # The election's SMS spend counts what each form costs: the faithful one dearer.
    assert faithful_spend > folded_spend


def test_the_election_file_chooses_faithful_or_folded_and_says_what_is_wrong() -> None:
    def with_lines(*lines: str) -> str:
        return SAMPLE.replace("[[candidates]]", "\n".join(lines) + "\n\n[[candidates]]", 1)

    chosen = parse_election(
        with_lines('languages = ["en", "cy", "ur"]', 'sms_text = { cy = "faithful" }'), "e.toml"
    )
    assert [chosen.sms_faithful(c) for c in ("en", "cy", "ur")] == [False, True, True]
    default = parse_election(with_lines('languages = ["en", "cy", "ur"]'), "e.toml")
    assert [default.sms_faithful(c) for c in ("en", "cy", "ur")] == [False, False, True]
    bad = with_lines('languages = ["en", "ur"]', 'sms_text = { ur = "folded", cy = "faithful" }')
    line = bad.splitlines().index('sms_text = { ur = "folded", cy = "faithful" }') + 1
    with pytest.raises(FileProblems) as caught:
        parse_election(bad, "e.toml")
    assert sorted(str(p) for p in caught.value.problems) == [
        f"e.toml:{line}: 'sms_text' names 'cy', which is not in 'languages'",
        f"e.toml:{line}: Urdu cannot be folded to GSM-7 (its script has no GSM-7 letters): "
        "it goes faithful, as UCS-2",
    ]


async def test_on_telegram_the_app_s_language_greets_and_the_keyboard_offers_the_others(
    redis: Redis,
) -> None:
    amina = TelegramUser(330001, "Amina", language_code="ur")
    async with telegram_world(redis, election_changes={"languages": ("en", "ur")}) as world:
        # An unknown chat from an Urdu Telegram app is greeted in Urdu; the keyboard shares
        # the phone (its label in Urdu) or switches to English by its name.
        greeting = await world.say(amina, "/start")
        assert "ووٹ دینے کے لیے" in greeting["text"]
        assert greeting["_keyboard"]["keyboard"] == [
            [{"text": "میرا فون نمبر شیئر کریں", "request_contact": True}],
            [{"text": "English"}],
        ]
        english = await world.say(amina, "English")
        assert world.texts(amina)[-2] == "From now on: English."
        assert english["text"].endswith("HELP for help. اردو.")
        # Bilal's app is English; he picks Urdu and votes with its buttons.
        await world.say(BILAL, "/start")
        await world.say(BILAL, "اردو")
        assert world.texts(BILAL)[-2] == "اب سے: اردو۔"
        prompt = await world.say(BILAL, await world.voting_code("S1002"))
        assert prompt["text"].startswith("آپ کی ترجیح نمبر 1؟")
        assert f"3 {isolated('Jo Okafor')}" in prompt["text"]
        await world.tap(BILAL, "Jo Okafor")
        confirm = await world.tap(BILAL, "ختم")
        assert confirm["text"].startswith("آپ کا ووٹ:")
        await world.tap(BILAL, "میرا ووٹ ڈالیں")
        assert world.api.last_message(BILAL.id)["text"].startswith("ووٹ ڈال دیا گیا")
        assert await world.ballots() == {"okafor": 1}


async def test_on_telegram_a_greeting_without_a_phone_request_has_language_buttons(
    redis: Redis,
) -> None:
    changes = {"languages": ("en", "cy"), "identity": ("code",)}
    async with telegram_world(redis, election_changes=changes) as world:
        greeting = await world.say(BILAL, "/start")
        assert "Cymraeg: CYMRAEG." in greeting["text"]
        switched = await world.tap(BILAL, "Cymraeg")
        assert switched["text"] == "O hyn ymlaen: Cymraeg."
        welsh = world.api.last_message(BILAL.id)
        assert "I bleidleisio, anfonwch eich cod pleidleisio." in welsh["text"]
        # The Welsh greeting offers English back, with its own button.
        back = await world.tap(BILAL, "English", welsh)
        assert back["text"] == "From now on: English."


# --- reminders and the cost estimate, per language ------------------------------------

MULTILINGUAL = (
    "Hi {name}, vote by {closes}.\n"
    "[cy]\n"
    "Helo {name}, pleidleisiwch erbyn {closes}. Diolch o galon — ŵyr\n"
    "[ur]\n"
    "{name}، {closes} تک ووٹ دیں۔"
)


def speakers() -> list[Supporter]:
    """Two supporters by SMS in each language (Carys's Welsh is cy-GB), one on Telegram."""
    return [
        Supporter("E1", "Ann", "+447700900201", "", "en"),
        Supporter("E2", "Ben", "+447700900202", "", ""),
        Supporter("C1", "Carys", "+447700900203", "", "cy-GB"),
        Supporter("C2", "Dafydd", "+447700900204", "", "cy"),
        Supporter("U1", "Usman", "+447700900205", "", "ur"),
        Supporter("U2", "Zara", "+447700900206", "400206", "ur"),
    ]


async def test_reminders_go_in_each_supporter_s_language_priced_per_language(
    redis: Redis,
) -> None:
    election = await sample_election(
        redis, roll=speakers(), languages=("en", "cy", "ur"), sms_text={"cy": "faithful"}
    )
    ready = await plan(redis, election, MULTILINGUAL, rules=TEXT_RULES, clock=reminder_clock())
    assert ready.problems == []
    welsh = render(MULTILINGUAL, election, "Carys", reminder_clock().now(), "cy")
    assert welsh.startswith("Helo Carys, pleidleisiwch erbyn 1 Rhag 2027 17:00 GMT.")
    urdu = render(MULTILINGUAL, election, "Usman", reminder_clock().now(), "ur")
    assert ready.languages == {
        "en": {"sms": 2, "telegram": 0, "sms_segments": 2},
        "cy": {"sms": 2, "telegram": 0, "sms_segments": 2 * segments(welsh)},
        "ur": {"sms": 1, "telegram": 1, "sms_segments": segments(urdu)},
    }
    assert encoding(welsh) == "UCS-2" and segments(welsh) == 2  # faithful: ŵ, 71+ characters
    sms, tg = Outbox("sms"), Outbox("telegram")
    job = await Reminders(redis, reminder_clock()).create(election, ready, "cli:test")
    await Worker(redis, {"sms": sms, "telegram": tg}, fast_limiter(redis), TEXT_RULES).run(job)
    sent = {address: m.text for address, m in sms.sent}
    assert sent["+447700900201"].startswith("Hi Ann, vote by 1 Dec 2027")
    assert sent["+447700900202"].startswith("Hi Ben, ")  # no language on the roll: the first
    assert sent["+447700900203"].startswith("Helo Carys, ") and "ŵyr" in sent["+447700900203"]
    # In Urdu the name and the date keep their own direction (isolates).
    assert (
        sent["+447700900205"]
        == f"{isolated('Usman')}، {isolated('1 دسمبر 2027 17:00 GMT')} تک ووٹ دیں۔"
    )
    assert tg.sent[0][1].text.startswith(f"{isolated('Zara')}، ")
    faithful = {address: m.faithful for address, m in sms.sent}
    assert [faithful[f"+44770090020{i}"] for i in (1, 2, 3, 4, 5)] == [0, 0, 1, 1, 1]
    # Folded instead (the default for Welsh): GSM-7, one segment each.
    await redis.flushdb()
    folded = await sample_election(redis, roll=speakers(), languages=("en", "cy", "ur"))
    again = await plan(redis, folded, MULTILINGUAL, rules=TEXT_RULES, clock=reminder_clock())
    assert again.languages["cy"]["sms_segments"] == 2
    body = TEXT_RULES["sms"].body(welsh)
    assert body.endswith("Diolch o galon - wyr") and encoding(body) == "GSM-7"


def test_a_reminder_s_versions_are_checked_against_the_election_s_languages() -> None:
    election = parse_election(
        SAMPLE.replace("[[candidates]]", 'languages = ["en", "cy"]\n\n[[candidates]]', 1), "e"
    )
    assert template_problems("Hi {name}\n[cy]\nHelo {name}", election) == []
    assert template_problems("Hi\n[fr]\nSalut", election) == [
        "[fr] is not one of the election's languages (en, cy)"
    ]
    assert template_problems("Hi\n[cy]\nHelo {enw}", election) == [
        "[cy]: unknown placeholder {enw}; use {name}, {days_left}, {time_left}, {closes}"
    ]
    assert template_problems("[cy]\nHelo", election) == [
        "the message has no version in en, the election's first language: write it before "
        "the first [xx] line"
    ]


async def test_the_cost_estimate_counts_each_language_at_its_own_price(redis: Redis) -> None:
    election = await sample_election(
        redis, roll=speakers(), languages=("en", "cy", "ur"), sms_text={"cy": "faithful"}
    )
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(settings=settings(), redis=redis, out=out, err=err)
    argv = ["cost", "--election", election.id, "--json", "--message", MULTILINGUAL]
    args = build_parser(argv).parse_args(argv)
    assert await args.handler(args, ctx) == 0, err.getvalue()
    shown = json.loads(out.getvalue())
    by = {c["language"]: c for c in shown["languages"]}
    assert [by[c]["sms_voters"] for c in ("en", "cy", "ur")] == [2, 2, 1]
    assert by["en"]["encoding"] == "GSM-7" and by["ur"]["encoding"] == "UCS-2"
    # Urdu is UCS-2 throughout: a vote costs more segments than in English.
    assert by["ur"]["per_vote_step_by_step"] > by["en"]["per_vote_step_by_step"]
    assert shown["conversations_high"] == sum(
        by[c]["sms_voters"] * by[c]["per_vote_step_by_step"] for c in by
    )
    with speaking("ur"):
        answers = vote_texts(election, step_by_step=True)
    assert sum(segments(a) for a in answers) == by["ur"]["per_vote_step_by_step"]
    # A reminder with no Urdu version goes to Urdu speakers in English, priced as English.
    out.seek(0), out.truncate()
    english_only = "Hi {name}, polls close {closes}. Dw i'n siŵr: vote!"
    argv = ["cost", "--election", election.id, "--json", "--message", english_only]
    args = build_parser(argv).parse_args(argv)
    assert await args.handler(args, ctx) == 0
    by = {c["language"]: c for c in json.loads(out.getvalue())["languages"]}
    assert by["ur"]["reminder"] == by["en"]["reminder"] == 1


def test_the_demo_chats_in_welsh(tmp_path: Path) -> None:
    proc = start_demo(tmp_path, "--language", "cy", "--reset")
    assert proc.stdin is not None and proc.stdout is not None
    intro: list[str] = []
    while "send a language's name to switch" not in (line := proc.stdout.readline()):
        assert line, "the demo ended before its chat began: " + "".join(intro)
        intro.append(line)
    code = next(x for x in intro if "voting code:" in x).split(":")[-1].strip()
    assert "(Cymraeg, English, اردو)" in line
    out, _ = proc.communicate(f"helo\n{code}\n2 4 0\nIE\n/quit\n", timeout=60)
    assert proc.returncode == 0
    assert "I bleidleisio, anfonwch" in out
    assert "Eich dewis 1af? Atebwch gyda rhif:" in out
    assert "Atebwch IE i'w bwrw (terfynol) neu NEWID" in out
    assert "Pleidlais wedi'i bwrw, diolch!" in out


async def test_the_remind_dry_run_shows_each_language_s_recipients_and_segments(
    redis: Redis,
) -> None:
    election = await sample_election(
        redis, roll=speakers(), languages=("en", "cy", "ur"), sms_text={"cy": "faithful"}
    )
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(settings=settings(), redis=redis, clock=reminder_clock(), out=out, err=err)
    argv = ["remind", "--election", election.id, "--message", MULTILINGUAL, "--dry-run"]
    assert await remind(build_parser(argv).parse_args(argv), ctx) == 0, err.getvalue()
    shown = out.getvalue()
    assert "  in English  2 by SMS (2 segments, folded), 0 by Telegram\n" in shown
    assert "  in Welsh    2 by SMS (4 segments, faithful), 0 by Telegram\n" in shown
    assert "  in Urdu     1 by SMS (1 segments, faithful), 1 by Telegram\n" in shown


async def test_telegram_s_own_answers_follow_the_app_s_language(redis: Redis) -> None:
    """What the channel answers before any conversation (someone else's contact, a group)
    is in the Telegram app's language when the election offers it."""
    carys = TelegramUser(330003, "Carys", language_code="cy")
    hans = TelegramUser(330004, "Hans", language_code="de")
    async with telegram_world(redis, election_changes={"languages": ("en", "cy")}) as world:
        await world.deliver(world.updates.contact(carys, "+447700900103", owner=hans))
        answer = world.api.last_message(carys.id)
        assert answer["text"].startswith("Rhannwch eich rhif ffôn eich hun")
        assert answer["_keyboard"]["keyboard"][0][0]["text"] == "Rhannu rhif fy ffôn"
        await world.deliver(world.updates.group_text(carys, -100777, "/start"))
        assert world.api.last_message(-100777)["text"].startswith(
            "Mae pleidleisio'n breifat, felly"
        )
        assert "Dechreuwch un yma: https://t.me/" in world.api.last_message(-100777)["text"]
        # German is not offered: English, the election's first.
        await world.deliver(world.updates.group_text(hans, -100777, "/start"))
        assert world.api.last_message(-100777)["text"].startswith("Voting is private")


async def test_a_switch_mid_ranking_changes_the_buttons_too(redis: Redis) -> None:
    async with telegram_world(redis, election_changes={"languages": ("en", "cy")}) as world:
        await world.say(BILAL, "/start")
        prompt = await world.say(BILAL, await world.voting_code("S1002"))
        assert button_labels(prompt)[-3:] == ["Done", "Undo", "Start again"]
        welsh = await world.say(BILAL, "CYMRAEG")
        assert welsh["text"].startswith("Eich dewis 1af?")
        assert button_labels(welsh)[-3:] == ["Gorffen", "Dadwneud", "Dechrau eto"]


async def test_a_candidate_named_like_a_language_is_a_candidate(redis: Redis) -> None:
    """ "WELSH" switches to Welsh, unless a candidate is called Welsh: then it ranks them
    (CYMRAEG, Welsh's own name, still switches)."""
    election = await sample_election(redis, languages=("en", "cy"))
    candidates = (replace(election.candidates[0], name="Carol Welsh"), *election.candidates[1:])
    async with sms_stack(redis, languages=("en", "cy"), candidates=candidates) as stack:
        ann = stack.phone(ANN)
        code = (await ann.text("hi"))[0].split()[0]
        await ann.text(code)
        ranked = (await ann.text("welsh"))[0]
        assert ranked.startswith("So far: Carol Welsh.")
        assert (await ann.text("cymraeg"))[0].startswith("O hyn ymlaen: Cymraeg.")


def test_a_reminder_s_language_lines_may_be_written_in_capitals_or_with_a_region() -> None:
    election = parse_election(
        SAMPLE.replace("[[candidates]]", 'languages = ["en", "cy"]\n\n[[candidates]]', 1), "e"
    )
    assert versions("Hi\n[CY]\nHelo", election) == {"en": "Hi", "cy": "Helo"}
    assert versions("Hi\n[cy-GB]\nHelo", election) == {"en": "Hi", "cy": "Helo"}
    # A bracketed word that is not a language line stays text.
    assert versions("Hi [cy] there\n[see below]", election) == {"en": "Hi [cy] there\n[see below]"}


async def test_a_welsh_supporter_texting_from_their_own_phone_gets_their_code_in_welsh(
    redis: Redis,
) -> None:
    """Carys is Welsh on the roll: the first reply to her own phone is already in Welsh (it
    goes only to that phone), before she has proved who she is."""
    async with sms_stack(redis, languages=("en", "cy")) as stack:
        first = "\n".join(await stack.phone(CARYS).text("hi"))
        assert "yw eich cod i bleidleisio" in first, first
        # Ann, English on the roll, is answered in English.
        assert "is your code to vote" in "\n".join(await stack.phone(ANN).text("hi"))


async def test_a_language_chosen_in_the_chat_is_the_voter_s_for_reminders(redis: Redis) -> None:
    h = await harness(redis, languages=("en", "cy"))
    code = (await h.core.codes.issue_voting_codes(h.core.election, ["S1001"]))[0][3]
    await h.said(code)
    assert (await h.state()).language == "en"  # Ann, English on the roll
    await h.said("CYMRAEG")
    template = "Hi {name}, vote now.\n[cy]\nHelo {name}, pleidleisiwch nawr."
    ready = await plan(redis, h.core.election, template, rules=TEXT_RULES, clock=reminder_clock())
    # Ann now gets the Welsh version; the roll's own language is left as the party wrote it.
    assert ready.languages["cy"]["sms"] == 2  # Carys (roll) and Ann (chosen)
    record = await redis.hgetall(keys.voter(h.core.election.id, 0, "S1001"))
    assert record["language"] == "en" and record["chosen_language"] == "cy"


def test_counts_take_each_language_s_plural_forms() -> None:
    """Not "1 days left" or "1 tries left": the catalogues' plural forms (Welsh has six)."""
    assert [time_left(n) for n in (1, 3)] == ["1 day left", "3 days left"]
    assert texts.code_wrong(1).startswith("That code is not right. 1 try left.")
    assert texts.code_wrong(4).startswith("That code is not right. 4 tries left.")
    with speaking("cy"):
        assert [time_left(n) for n in (1, 2, 5)] == [
            "1 diwrnod ar ôl",
            "2 ddiwrnod ar ôl",
            "5 diwrnod ar ôl",
        ]
    with speaking("ur"):
        assert "1 کوشش باقی ہے" in texts.code_wrong(1)
        assert "3 کوششیں باقی ہیں" in texts.code_wrong(3)
    election = parse_election(SAMPLE, "e.toml")
    one_day = render("Hi {name}, {time_left} to vote.", election, "Ann", election.closes - ONE_HOUR)
    assert one_day == "Hi Ann, 1 day left to vote."
