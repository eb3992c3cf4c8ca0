"""Plain GSM-7 text for SMS, and what it costs in segments.

An SMS is billed per segment.  Text in the GSM 03.38 alphabet packs 160
characters into one segment, or 153 per part once it needs several parts
(the rest carries the join header); a single character outside the alphabet
(a curly quote, an emoji) turns the whole message into UCS-2: 70 characters,
or 67 per part.  Characters from the extension table (``€ [ ] { } ^ ~ | \\``)
take two septets each.  So every SMS OpenPrimary sends goes through
:func:`to_sms` first: folded (:func:`to_gsm`, accents off, always GSM-7) or,
for a language sent ``faithful``, as written (UCS-2 when a letter needs it).
"""

from __future__ import annotations

import re
import unicodedata

#: The GSM 03.38 default alphabet (the escape character left out).
BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: each of these is sent as escape + character.
EXTENSION = frozenset("\f^{}\\[~]|€")

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

#: Twilio refuses a body longer than this many characters.
MAX_BODY = 1600

# Typography that phones and word processors put in, and its plain twin.
_REPLACE: dict[str, str] = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2039\u203a`\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    **dict.fromkeys("\t\u00a0\u2002\u2003\u2007\u2009\u200a\u202f", " "),
    **dict.fromkeys("\u00ad\u200b\u200c\u200d\u2060\ufeff", ""),
    **dict.fromkeys("\u2022\u2023\u00b7", "*"),
    **dict.fromkeys("\u2028\u2029", "\n"),
    "\u2026": "...",
    "\u00d7": "x",
    "\u00a9": "(c)",
    "\u00ae": "(R)",
    "\u2122": "TM",
    "\u2264": "<=",
    "\u2265": ">=",
    "\u2192": "->",
    "\u2190": "<-",
    # Letters with no accent to strip, so NFKD alone would lose them.
    "\u0142": "l",
    "\u0141": "L",
    "\u0111": "d",
    "\u0110": "D",
    "\u00f0": "d",
    "\u00fe": "th",
    "\u00de": "Th",
    "\u0153": "oe",
    "\u0152": "OE",
}


#: A character outside GSM-7 (the basic alphabet and the extension table), and one of the
#: extension table: found by the regular expression engine, not a loop in Python, since
#: every reply is measured (most are plain GSM-7 through and through).
_NOT_GSM = re.compile("[^" + re.escape("".join(sorted(BASIC | EXTENSION))) + "]")
_EXTENDED = re.compile("[" + re.escape("".join(sorted(EXTENSION))) + "]")


def is_gsm(text: str) -> bool:
    """Whether ``text`` can go as GSM-7 (basic alphabet and extension table)."""
    return _NOT_GSM.search(text) is None


def _nfc(text: str) -> str:
    """``text`` with Windows line ends made plain, in Unicode's composed form (NFC)."""
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def to_gsm(text: str) -> str:
    """``text`` in plain GSM-7: typography replaced, accents dropped where the
    alphabet lacks them (Welsh ŵ becomes w), anything else (emoji) left out."""
    text = _nfc(text)
    if is_gsm(text):
        return _trimmed(text)
    out: list[str] = []
    dropped = False
    for ch in text:
        if ch in BASIC or ch in EXTENSION:
            out.append(ch)
        elif ch in _REPLACE:
            out.append(_REPLACE[ch])
        else:
            # The base letter of an accented one the alphabet lacks (â -> a);
            # an emoji or a CJK character has none and is left out.
            kept = [
                part
                for part in unicodedata.normalize("NFKD", ch)
                if part in BASIC and not unicodedata.combining(part)
            ]
            dropped = dropped or not kept
            out.extend(kept)
    plain = "".join(out)
    if dropped:
        # "Thanks 👍 see you" must not become "Thanks  see you".
        plain = re.sub(r" {2,}", " ", plain)
    return _trimmed(plain)


def _trimmed(text: str) -> str:
    """``text`` without spaces at the ends of its lines or blank lines at its ends."""
    if " \n" in text or text.endswith(" "):
        text = "\n".join(line.rstrip(" ") for line in text.split("\n"))
    return text.strip("\n")


def faithful(text: str) -> str:
    """``text`` with its own letters kept: GSM-7 if replacing typography (curly quotes,
    dashes) is all it takes, otherwise as written, to go as UCS-2 (Welsh ŵ, Urdu)."""
    text = _nfc(text)
    plain = text if is_gsm(text) else "".join(_REPLACE.get(ch, ch) for ch in text)
    return _trimmed(plain if is_gsm(plain) else text)


def to_sms(text: str, keep_letters: bool = False) -> str:
    """``text`` as it goes by SMS: folded to GSM-7, or with its letters kept
    (``keep_letters``: the language is sent faithful)."""
    return faithful(text) if keep_letters else to_gsm(text)


def septets(text: str) -> int:
    """How many 7-bit units ``text`` takes in GSM-7 (extension characters take two)."""
    return sum(2 if ch in EXTENSION else 1 for ch in text)


def segments(text: str) -> int:
    """How many SMS segments ``text`` is billed as (0 for no text)."""
    if not text:
        return 0
    if is_gsm(text):
        extended = len(_EXTENDED.findall(text))
        if len(text) + extended <= GSM_SINGLE:
            return 1
        units = [2 if ch in EXTENSION else 1 for ch in text] if extended else [1] * len(text)
        single, part = GSM_SINGLE, GSM_PART
    else:
        # UCS-2 counts UTF-16 code units; an emoji outside the BMP takes two.
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, part = UCS2_SINGLE, UCS2_PART
    if sum(units) <= single:
        return 1
    # Phones never split an escape pair or a surrogate pair across parts.
    parts, used = 1, 0
    for width in units:
        if used + width > part:
            parts, used = parts + 1, 0
        used += width
    return parts


def encoding(text: str) -> str:
    """``GSM-7`` or ``UCS-2``: how a phone network would carry ``text``."""
    return "GSM-7" if is_gsm(text) else "UCS-2"


def fit(text: str, limit: int = MAX_BODY) -> str:
    """``text`` cut to at most ``limit`` characters, marked with ``...`` if cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 3].rstrip() + "..."


def dropped(text: str) -> list[str]:
    """Characters SMS cannot carry even approximately (emoji...): they would vanish."""
    return sorted(
        {
            ch
            for ch in text
            if not is_gsm(ch)
            and not ch.isspace()
            and unicodedata.category(ch)[0] not in "CM"
            and to_gsm(f"<{ch}>") == "<>"
        }
    )


class SmsRules:
    """SMS's text rules (:class:`bot.ports.TextRules`): GSM-7 (or, for a language sent
    faithful, UCS-2 where it must), billed by segment."""

    channel = "sms"

    def body(self, text: str, faithful: bool = False) -> str:
        return to_sms(text, faithful)

    def dropped(self, text: str, faithful: bool = False) -> list[str]:
        return [] if faithful else dropped(text)

    def parts(self, text: str, faithful: bool = False) -> int:
        return segments(to_sms(text, faithful))

    def problem(self, text: str, max_parts: int, faithful: bool = False) -> str | None:
        body = to_sms(text, faithful)
        if not body:
            return "the SMS would be empty"
        n = segments(body)
        if len(body) > MAX_BODY or n > max_parts:
            return f"the SMS would be {n} segments ({len(body)} characters); at most {max_parts}"
        return None
