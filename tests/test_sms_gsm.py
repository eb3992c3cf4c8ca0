"""GSM-7 text and segment counting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.gsm import MAX_BODY, encoding, fit, is_gsm, segments, septets, to_gsm


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
