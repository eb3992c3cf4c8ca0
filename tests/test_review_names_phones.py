"""Security review rows 12 and 13: candidate names every voter can read in order, and a
roll with no number that is not a supporter's own phone."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from ballots.election import Candidate, Election, parse_election, read_election_file
from ballots.errors import FileProblems
from ballots.roll import PhoneError, normalise_phone, parse_roll
from bot import texts
from bot.i18n import FSI, PDI, speaking
from channels.gsm import encoding, to_sms
from channels.standins.telegram_api import button_labels
from tests.factories import EXAMPLES
from tests.telegram_support import ANN, telegram_world

GOOD = (EXAMPLES / "election.toml").read_text()
#: Sam Patel's name as the sample file gives it; the tests put other names in its place.
PATEL = 'name = "Sam Patel"'
URDU_NAME = "عمران خان"


def with_name(name: str, *settings: str) -> str:
    """The sample election with Sam Patel renamed (and ``settings`` lines added)."""
    text = GOOD.replace(PATEL, f'name = "{name}"')
    return text.replace("[[candidates]]", "\n".join([*settings, "", "[[candidates]]"]), 1)


def refusal(text: str) -> str:
    """The one problem an election file has."""
    with pytest.raises(FileProblems) as caught:
        parse_election(text, "e.toml")
    (only,) = caught.value.problems
    return str(only)


def patel_line(text: str) -> int:
    """The line of Sam Patel's [[candidates]] table, where a problem with the name is reported."""
    lines = text.splitlines()
    name_at = next(i for i, line in enumerate(lines) if line.startswith('id = "patel"'))
    return max(i for i in range(name_at) if lines[i] == "[[candidates]]") + 1


def isolated(name: str) -> str:
    return f"{FSI}{name}{PDI}"


# --- row 12: candidate names ----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["\u3164", "\u115f\u1160", "\uffa0", "\u2800", "\u3164 \u3164", "\u0301"],
    ids=["hangul-filler", "choseong-jungseong", "halfwidth", "braille-blank", "spaced", "mark"],
)
def test_a_name_that_shows_nothing_is_refused_at_its_line(name: str) -> None:
    text = with_name(name)
    assert refusal(text) == (
        f"e.toml:{patel_line(text)}: candidate 'patel': the name shows nothing: without its "
        "invisible characters it is blank"
    )


def test_a_name_with_a_filler_for_a_space_is_refused() -> None:
    text = with_name("Sam\u3164Patel")
    assert refusal(text) == (
        f"e.toml:{patel_line(text)}: candidate 'patel': the name holds an invisible character "
        "(U+3164 HANGUL FILLER) that shows as a blank; use ordinary spaces"
    )


@pytest.mark.parametrize("name", ["שלום 2 Abc", f"Sam {URDU_NAME}"])
def test_a_name_mixing_directions_is_refused_even_where_sms_keeps_its_letters(name: str) -> None:
    mixed = (
        "candidate 'patel': the name mixes right-to-left and left-to-right writing, which SMS "
        "cannot show in order; give it in one script"
    )
    folded = with_name(name)
    assert refusal(folded) == f"e.toml:{patel_line(folded)}: {mixed}"
    faithful = with_name(name, 'languages = ["ur"]')
    assert refusal(faithful) == f"e.toml:{patel_line(faithful)}: {mixed}"


def test_a_right_to_left_name_needs_every_sms_language_faithful() -> None:
    english = with_name(URDU_NAME, 'languages = ["en", "ur"]')
    assert refusal(english) == (
        f"e.toml:{patel_line(english)}: candidate 'patel': the name is written right-to-left, "
        "which SMS in English cannot carry (folded to GSM-7, it would lose every letter); give "
        'the name in Latin letters, or send English faithful: sms_text = { en = "faithful" }'
    )
    both = with_name("שלום 2", 'languages = ["en", "cy"]')
    assert refusal(both).endswith(
        'send English and Welsh faithful: sms_text = { en = "faithful", cy = "faithful" }'
    )


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        (URDU_NAME, ['languages = ["ur"]']),
        (URDU_NAME, ['languages = ["en", "ur"]', 'sms_text = { en = "faithful" }']),
        ("שלום 2", ['languages = ["cy", "ur"]', 'sms_text = { cy = "faithful" }']),
        ("Zoë Ó Briain-Łukasz", []),
    ],
)
def test_a_name_every_sms_language_can_carry_loads(name: str, settings: list[str]) -> None:
    election = parse_election(with_name(name, *settings), "e.toml")
    assert election.candidate("patel").name == name


def with_urdu_candidate(election: Election) -> dict[str, object]:
    """Election changes: Sam Patel's name in Urdu, as a file sending English faithful allows."""
    names = [Candidate(c.id, URDU_NAME if c.id == "patel" else c.name) for c in election.candidates]
    return {"candidates": tuple(names), "sms_text": {"en": "faithful"}}


def test_a_right_to_left_name_is_isolated_in_english_and_a_latin_one_is_not() -> None:
    election = parse_election(
        with_name(URDU_NAME, 'languages = ["en"]', 'sms_text = { en = "faithful" }'), "e.toml"
    )
    numbered = list(enumerate(election.candidates, 1))
    with speaking("en"):
        prompt = texts.rank_prompt(election, ["patel"], numbered[2:])
        confirm = texts.confirm(election, ["patel", "green"])
    assert prompt.startswith(f"So far: {isolated(URDU_NAME)}.\n")
    assert "\n3 Jo Okafor\n" in prompt
    assert confirm.startswith(f"Your ballot:\n1 {isolated(URDU_NAME)}\n2 Alex Green\n")


def test_english_sms_with_latin_names_stays_gsm7_without_isolates() -> None:
    election = parse_election(GOOD, "e.toml")
    with speaking("en"):
        prompt = texts.rank_prompt(election, ["patel"], list(enumerate(election.candidates, 1)))
    body = to_sms(prompt, election.sms_faithful("en"))
    assert encoding(body) == "GSM-7"
    assert FSI not in body and PDI not in body
    assert "So far: Sam Patel.\n" in body


async def test_on_telegram_a_right_to_left_name_keeps_its_place_in_english(redis: Redis) -> None:
    changes = with_urdu_candidate(read_election_file(EXAMPLES / "election.toml"))
    async with telegram_world(redis, election_changes=changes) as world:
        await world.say(ANN, "/start")
        prompt = await world.say(ANN, await world.voting_code())
        # The line starts with the number, not the name: the name is isolated.
        assert f"\n2 {isolated(URDU_NAME)}\n" in prompt["text"]
        assert "\n1 Alex Green\n" in prompt["text"]
        # A button is a line of its own: its label is the name as it is.
        assert button_labels(prompt)[:2] == ["Alex Green", URDU_NAME]
        after = await world.tap(ANN, URDU_NAME)
        assert after["text"].startswith(f"So far: {isolated(URDU_NAME)}.\n")
        confirm = await world.tap(ANN, "Done")
        assert f"Your ballot:\n1 {isolated(URDU_NAME)}\n" in confirm["text"]
        await world.tap(ANN, "Cast my vote")
        assert await world.ballots() == {"patel": 1}


# --- row 13: phone numbers on the roll --------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("+44 909 879 0000", "is a premium-rate number"),
        ("0909 879 0000", "is a premium-rate number"),
        ("0800 123 4567", "is a freephone number"),
        ("+1 800 555 0100", "is a freephone number"),
        ("0300 123 4567", "is an organisation's non-geographic number"),
        ("070 1234 5678", "is a personal (forwarding) number"),
        ("076 4012 3456", "is a pager number"),
        ("+882 34 21234", "belongs to an international network (+882), not to a country"),
        ("+883 510 012 345", "belongs to an international network (+883), not to a country"),
        ("+881 6 123 45678", "belongs to an international network (+881), not to a country"),
        ("+870 301 234 567", "belongs to an international network (+870), not to a country"),
        ("+979 1 2345 6789", "belongs to an international network (+979), not to a country"),
        ("+808 1234 5678", "belongs to an international network (+808), not to a country"),
    ],
)
def test_a_number_that_is_no_supporter_s_phone_is_refused(raw: str, kind: str) -> None:
    with pytest.raises(PhoneError) as caught:
        normalise_phone(raw)
    assert str(caught.value) == (
        f"phone {raw!r} {kind}; a supporter's phone must be a mobile or a landline"
    )


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("07700 900123", "+447700900123"),  # Ofcom's drama range: the tests' numbers
        ("07700 900999", "+447700900999"),
        ("+44 7911 123456", "+447911123456"),
        ("020 7946 0000", "+442079460000"),
        ("+1 415 867 5309", "+14158675309"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("056 1234 5678", "+445612345678"),  # a VoIP number can be someone's own phone
    ],
)
def test_mobiles_and_landlines_are_taken(raw: str, e164: str) -> None:
    assert normalise_phone(raw) == e164


def test_the_roll_reports_each_such_number_at_its_line() -> None:
    text = (
        "supporter_id,name,phone\n"
        "A1,Ann,07700 900101\n"
        "A2,Bo,+44 909 879 0000\n"
        "A3,Cy,+882 34 21234\n"
    )
    with pytest.raises(FileProblems) as caught:
        parse_roll(text, "r.csv")
    assert [str(p) for p in caught.value.problems] == [
        "r.csv:3: phone '+44 909 879 0000' is a premium-rate number; a supporter's phone must "
        "be a mobile or a landline",
        "r.csv:4: phone '+882 34 21234' belongs to an international network (+882), not to a "
        "country; a supporter's phone must be a mobile or a landline",
    ]
