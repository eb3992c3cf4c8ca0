"""Languages: complete catalogues with the msgids' placeholders, the election's `languages`,
the roll's language after identification, and switching by the language's own name."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po
from redis.asyncio import Redis

from ballots.election import parse_election
from ballots.errors import FileProblems
from ballots.languages import SHIPPED
from bot import texts
from bot.i18n import LOCALE, speaking
from tests.factories import EXAMPLES, stored_ballots
from tests.sms_support import ANN, CARYS, sms_stack
from tests.telegram_support import BILAL, telegram_world

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "bot" / name for name in ("texts.py", "buttons.py", "parse.py")]


def msgids_in_code() -> set[str]:
    found = set()
    for source in SOURCES:
        for _line, message, _comments, _context in extract_from_file(
            "python", str(source), keywords={"_": None}
        ):
            found.add(str(message))
    return found


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_template_holds_every_text_the_code_says() -> None:
    with (LOCALE / "messages.pot").open("rb") as pot:
        template = {str(m.id) for m in read_po(pot) if m.id}
    assert template == msgids_in_code(), (
        "bot/locale/messages.pot is out of date: run "
        "pybabel extract --no-location --omit-header -k _ -o bot/locale/messages.pot "
        "bot/texts.py bot/buttons.py bot/parse.py"
    )


@pytest.mark.parametrize("code", [c for c in SHIPPED if c != "en"])
def test_every_shipped_catalogue_translates_every_text_with_its_placeholders(code: str) -> None:
    with (LOCALE / code / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalogue = read_po(po, locale=code)
    translated = {str(m.id): str(m.string) for m in catalogue if m.id}
    wanted = msgids_in_code()
    missing = sorted(m for m in wanted if not translated.get(m))
    assert not missing, f"{code}: no translation for {missing}"
    wrong = [(m, translated[m]) for m in wanted if placeholders(m) != placeholders(translated[m])]
    assert not wrong, f"{code}: placeholders differ from the msgid: {wrong}"
    assert "MACHINE-DRAFTED" in (catalogue.header_comment or "")


SAMPLE = (EXAMPLES / "election.toml").read_text()


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
        assert "I bleidleisio, atebwch gyda" in switched["text"]
        prompt = await world.say(BILAL, await world.voting_code("S1002"))
        assert prompt["text"].startswith("Eich dewis 1af?")
        await world.tap(BILAL, "Jo Okafor")
        confirm = await world.tap(BILAL, "Gorffen")
        assert confirm["text"].startswith("Eich pleidlais:")
        await world.tap(BILAL, "Bwrw fy mhleidlais")
        assert world.api.last_message(BILAL.id)["text"].startswith("Pleidlais wedi'i bwrw")
        assert await world.ballots() == {"okafor": 1}
