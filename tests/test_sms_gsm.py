"""GSM-7 text and segment counting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.gsm import MAX_BODY, encoding, fit, is_gsm, segments, septets, to_gsm, to_sms


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        ("\u201cYes\u201d, it\u2019s fine", '"Yes", it\'s fine'),
        ("1\u20132 \u2014 wait\u2026", "1-2 - wait..."),
        ("Thanks \U0001f44d see you \U0001f5f3\ufe0f", "Thanks see you"),
        ("Dafydd ap Gwilym, Dŵr, Ŷ", "Dafydd ap Gwilym, Dwr, Y"),
        ("Łódź, Ærø, Ñoño, café, naïve", "Lodz, Ærø, Ñoño, café, naive"),
        ("a\u00a0b\tc", "a b c"),
        ("line one\r\nline two  ", "line one\nline two"),
        ("€5 [note]", "€5 [note]"),
        ("\U0001f600" * 10, ""),
    ],
)
def test_to_gsm_replaces_typography_and_drops_the_rest(raw: str, plain: str) -> None:
    assert to_gsm(raw) == plain
    assert is_gsm(to_gsm(raw))


@given(st.text(max_size=400))
def test_to_gsm_always_gives_gsm_text(raw: str) -> None:
    assert is_gsm(to_gsm(raw))


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 0),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # each extension character takes two septets
        ("€" * 81, 2),
        ("a" * 152 + "€" + "a" * 152, 3),  # 306 septets, but an escape pair never splits
        ("ê" * 70, 1),  # one non-GSM character makes it UCS-2
        ("ê" * 71, 2),
        ("ê" * 134, 2),
        ("ê" * 135, 3),
        ("\U0001f600" * 35, 1),  # outside the BMP: two UTF-16 units each
        ("\U0001f600" * 36, 2),
    ],
)
def test_segments(text: str, count: int) -> None:
    assert segments(text) == count


def test_encoding_and_septets() -> None:
    assert encoding("Hello") == "GSM-7"
    assert encoding("Hello \u2019") == "UCS-2"
    assert septets("a{b}") == 6


def test_fit_cuts_to_twilios_limit() -> None:
    assert fit("short") == "short"
    cut = fit("word " * 500)
    assert len(cut) <= MAX_BODY and cut.endswith("...")


# --- a language sent faithful keeps its letters, and pays for UCS-2 only when it must --


@pytest.mark.parametrize(
    ("text", "kept", "how", "count"),
    [
        # Welsh with a circumflex: as written, UCS-2 (70 a segment)...
        ("Rhannu rhif fy ffôn", "Rhannu rhif fy ffôn", "UCS-2", 1),
        ("Mae'r ffôn " + "a" * 59, "Mae'r ffôn " + "a" * 59, "UCS-2", 1),  # 70 characters
        ("Mae'r ffôn " + "a" * 60, "Mae'r ffôn " + "a" * 60, "UCS-2", 2),  # 71: 67 a part
        ("ŵ" * 134, "ŵ" * 134, "UCS-2", 2),
        ("ŵ" * 135, "ŵ" * 135, "UCS-2", 3),
        # ... but a message whose only outsiders are typography still goes GSM-7.
        ("Ni chewch \u201cragor\u201d \u2013 diolch", 'Ni chewch "ragor" - diolch', "GSM-7", 1),
        # Urdu cannot be anything but UCS-2; its joiners and isolates are kept.
        ("\u0645\u06cc\u200c\u0631\u0627 \u2068Alex Green\u2069", None, "UCS-2", 1),
    ],
)
def test_faithful_text_keeps_the_language_s_letters(
    text: str, kept: str | None, how: str, count: int
) -> None:
    body = to_sms(text, keep_letters=True)
    assert body == (kept if kept is not None else text)
    assert (encoding(body), segments(body)) == (how, count)


def test_folded_welsh_is_gsm7_and_cheaper_than_faithful() -> None:
    welsh = "Nid yw'r cod yna'n gywir. 4 cynnig ar ôl. Gwiriwch ef a rhowch gynnig arall arni."
    folded, faithful = to_sms(welsh), to_sms(welsh, keep_letters=True)
    assert folded == welsh.replace("ô", "o")
    assert (encoding(folded), segments(folded)) == ("GSM-7", 1)
    assert (encoding(faithful), segments(faithful)) == ("UCS-2", 2)
    # Urdu folds to nothing: which is why it can only be sent faithful.
    assert to_sms("\u0634\u06a9\u0631\u06cc\u06c1") == ""
