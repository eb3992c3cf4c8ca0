"""The languages OpenPrimary speaks: a code, each one's own name, and how it travels by SMS.

The election file's ``languages`` list is checked against these; the
messages themselves are ``bot/locale``'s catalogues (``bot/i18n.py``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

#: How SMS carries a language's letters: as written (UCS-2 when a letter is outside
#: GSM-7), or with the accents taken off so that it stays GSM-7.
FAITHFUL, FOLDED = "faithful", "folded"


@dataclass(frozen=True)
class Language:
    """A language the bot can speak.

    ``name`` is its own name, which a voter sends to switch to it; ``english``
    its name in English (accepted too).  ``foldable``: its letters have
    GSM-7 twins once the accents are off (a Latin script), so SMS may send it
    ``folded``; a language that is not can only go ``faithful``.
    ``sms`` is what an election gets unless its file says otherwise.
    """

    code: str
    name: str
    english: str
    foldable: bool = True
    right_to_left: bool = False
    sms: str = FOLDED


#: The languages shipped, by code (BCP 47 primary subtags).
SHIPPED: dict[str, Language] = {
    "en": Language("en", "English", "English"),
    "cy": Language("cy", "Cymraeg", "Welsh"),
    "ur": Language("ur", "اردو", "Urdu", foldable=False, right_to_left=True, sms=FAITHFUL),
}


def best(tag: str | None, offered: Iterable[str]) -> str | None:
    """The offered language a BCP 47 tag asks for (``cy-GB`` -> ``cy``), if any."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    return primary if primary in tuple(offered) else None


#: The bidirectional classes of a right-to-left script's letters (Hebrew R; Arabic, Urdu AL).
_RIGHT_TO_LEFT = frozenset({"R", "AL"})


def right_to_left(text: str) -> bool:
    """Whether ``text`` holds a letter of a right-to-left script (Hebrew, Arabic, Urdu...)."""
    if text.isascii():
        return False  # (most names and replies: no letter to look up)
    return any(unicodedata.bidirectional(ch) in _RIGHT_TO_LEFT for ch in text)
