"""Languages: the message catalogues, and the language a message is being answered in.

Every text the bot says is an English msgid in ``bot/texts.py``, looked up
with :func:`_` in the catalogue of the language in use (a context variable,
set with :func:`speaking` for one step of a conversation).  Catalogues are
gettext ``.po`` files under ``bot/locale/<code>/LC_MESSAGES/messages.po``,
read and compiled in memory by Babel the first time a language is used, so
nothing compiled is kept in the repository.  English needs no catalogue.

    pybabel extract --no-location --omit-header -k _ -k n_:1,2 -o bot/locale/messages.pot bot
    pybabel update -w 100 --no-fuzzy-matching -i bot/locale/messages.pot -d bot/locale
"""

from __future__ import annotations

import gettext
import io
from contextvars import ContextVar, Token
from functools import cache
from pathlib import Path

from ballots.languages import SHIPPED, right_to_left

LOCALE = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
DEFAULT = "en"

_current: ContextVar[str] = ContextVar("openprimary_language", default=DEFAULT)


@cache
def catalogue(code: str) -> gettext.NullTranslations:
    """The compiled catalogue of a language (English: the msgids themselves)."""
    if code == DEFAULT:
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with (LOCALE / code / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        compiled = io.BytesIO()
        write_mo(compiled, read_po(po, locale=code))
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def current() -> str:
    """The code of the language being spoken."""
    return _current.get()


def _(msgid: str) -> str:
    """``msgid`` in the language being spoken."""
    return catalogue(_current.get()).gettext(msgid)


def n_(singular: str, plural: str, n: int) -> str:
    """The form of a text for a count ``n`` in the language being spoken (English has two,
    Welsh six): "1 try left", "2 tries left"."""
    return catalogue(_current.get()).ngettext(singular, plural, n)


class _Speaking:
    """The language being spoken, set for a ``with`` block (a class rather than a
    ``contextmanager`` generator: every message enters one or more)."""

    __slots__ = ("_code", "_token")

    def __init__(self, code: str) -> None:
        self._code = code
        self._token: Token[str] | None = None

    def __enter__(self) -> None:
        self._token = _current.set(self._code)

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _current.reset(self._token)


def speaking(code: str) -> _Speaking:
    """Answer in ``code`` (a shipped language; anything else falls back to English)."""
    return _Speaking(code if code in SHIPPED else DEFAULT)


#: Welsh ordinals to 20 (1af, 2il, 3ydd...); beyond, the "-fed" form.
_CY_ORDINALS = {
    1: "af", 2: "il", 3: "ydd", 4: "ydd", 5: "ed", 6: "ed", 7: "fed", 8: "fed", 9: "fed",
    10: "fed", 11: "eg", 12: "fed", 13: "eg", 14: "eg", 15: "fed", 16: "eg", 17: "eg",
    18: "fed", 19: "eg", 20: "fed",
}  # fmt: skip


def ordinal(n: int) -> str:
    """``n`` as an ordinal in the language being spoken: 1st, 2nd / 1af, 2il.

    Urdu's texts say "number 1" (نمبر 1) around it, so it is the number alone.
    """
    code = _current.get()
    if code == "cy":
        return f"{n}{_CY_ORDINALS.get(n, 'fed')}"
    if code != DEFAULT:
        return str(n)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


#: Unicode's first-strong isolate and its end: the text between them takes its own
#: direction (a Latin name stays left-to-right) without reordering what is around it.
FSI, PDI = "\u2068", "\u2069"


def isolate(text: str) -> str:
    """``text`` kept in its own direction inside a sentence.

    A name such as "Alex Green" inside Urdu text, or a number with a dash,
    would otherwise be reordered with its neighbours; so would an Urdu or
    Hebrew name inside English, and a line that starts with one ("2 <name>")
    would be laid out right to left (a line takes its direction from its
    first letter, outside isolates).  Left-to-right text in a left-to-right
    language is given as it is: it needs nothing (and SMS in GSM-7 pays
    nothing for it).
    """
    if not text:
        return text
    if SHIPPED[_current.get()].right_to_left or right_to_left(text):
        return f"{FSI}{text}{PDI}"
    return text
