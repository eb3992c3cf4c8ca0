"""Reading what people actually type: keywords, yes/no, codes and rankings."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cache

from ballots.election import Candidate
from bot.i18n import _, current, isolate

_SPACES = re.compile(r"\s+")
# Latin punctuation, and Urdu's question mark, full stop and comma.
_EDGE_PUNCT = "!.?,;:'\"()[]{}*\u061f\u06d4\u060c"
_NUMERIC = re.compile(r"^[\d\s,;:>./|\\+\-–—→#&\u060c]+$", re.ASCII)
_CHUNK_SEPARATORS = re.compile(r"\s*(?:[,;>/|\n\u060c]|->|→|\bthen\b)\s*")


@dataclass(frozen=True)
class Words:
    """The words a voter may send for each thing, in one language (and English)."""

    opt_out: frozenset[str]
    opt_in: frozenset[str]
    help: frozenset[str]
    restart: frozenset[str]
    yes: frozenset[str]
    change: frozenset[str]
    done: frozenset[str]
    undo: frozenset[str]
    receipt: frozenset[str]
    abstain: frozenset[str]

    def __or__(self, other: Words) -> Words:
        return Words(*(getattr(self, f.name) | getattr(other, f.name) for f in fields(self)))


def _words(**each: str) -> Words:
    """A language's words, each meaning's given as one string separated by '|'."""
    return Words(
        **{meaning: frozenset(w for w in ws.split("|") if w) for meaning, ws in each.items()}
    )


ENGLISH = _words(
    opt_out="STOP|STOPALL|UNSUBSCRIBE|CANCEL|END|QUIT|REVOKE|OPTOUT|/STOP",
    opt_in="START|UNSTOP|YES",
    help="HELP|INFO|/HELP|?",
    restart="START AGAIN|STARTAGAIN|RESTART|AGAIN|RESET|BEGIN AGAIN|/START|MENU",
    yes="YES|Y|YEAH|YEP|YUP|OK|OKAY|CONFIRM|CAST|CAST MY VOTE|SURE",
    change="NO|N|CHANGE|EDIT|NOPE",
    done="0|DONE|FINISH|FINISHED|END RANKING|NONE|NO MORE",
    undo="UNDO|BACK",
    receipt="RECEIPT|/RECEIPT|MY RECEIPT",
    abstain="ABSTAIN|/ABSTAIN|BLANK|BLANK BALLOT",
)

#: Each language's own words (English is always understood as well).  A word here
#: must not be a candidate's name or mean something else in the same language.
_OWN = {
    "cy": _words(
        opt_out="STOPIO|STOP POB UN|DAD-DANYSGRIFIO",
        opt_in="DECHRAU",
        help="CYMORTH",
        restart="ETO|AILDDECHRAU|DECHRAU ETO",
        yes="IE|YDW|OES|DO|IAWN|CADARNHAU|BWRW",
        change="NA|NAGE|NAC YDW|NEWID",
        done="GORFFEN|DIM MWY|DIM",
        undo="DADWNEUD|YN OL|YN ÔL|NOL|NÔL",
        receipt="DERBYNNEB|FY NERBYNNEB",
        abstain="YMATAL|GWAG|PAPUR GWAG",
    ),
    "ur": _words(
        opt_out="بند|روکیں|روکو",
        opt_in="شروع",
        help="مدد",
        restart="دوبارہ|دوبارہ شروع",
        yes="ہاں|جی|جی ہاں|ٹھیک|ٹھیک ہے",
        change="نہیں|تبدیل|بدلیں",
        done="ختم|بس",
        undo="واپس",
        receipt="رسید|میری رسید",
        abstain="خالی|خالی ووٹ",
    ),
}


@cache
def words_in(code: str) -> Words:
    """The words understood in language ``code``: its own, and English's."""
    own = _OWN.get(code)
    return ENGLISH | own if own is not None else ENGLISH


def words() -> Words:
    """The words understood in the language being spoken."""
    return words_in(current())


def normalise(text: str) -> str:
    """Fold full-width forms and other scripts' digits (۱۲, ১২ -> 12), collapse spaces
    and trim."""
    folded = unicodedata.normalize("NFKC", text)
    if not folded.isascii():
        folded = "".join(_ascii_digit(ch) for ch in folded)
    return _SPACES.sub(" ", folded).strip()


def _ascii_digit(ch: str) -> str:
    value = unicodedata.decimal(ch, None)
    return str(value) if value is not None else ch


def keyword(text: str) -> str:
    """The message as an upper-case keyword, without edge punctuation: 'YES!' -> 'YES'."""
    return normalise(text).strip(_EDGE_PUNCT + " ").upper()


@dataclass(frozen=True)
class RankingParse:
    """Candidate ids in the order typed, whether the voter said to finish, or an error."""

    ids: tuple[str, ...] = ()
    finish: bool = False
    error: str | None = None


def _match_name(token: str, candidates: Sequence[Candidate]) -> list[Candidate]:
    t = token.casefold().strip(_EDGE_PUNCT + " ")
    if not t:
        return []
    exact = [c for c in candidates if c.name.casefold() == t or c.id == t]
    if exact:
        return exact
    return [
        c
        for c in candidates
        if c.name.casefold().startswith(t)
        or any(word.startswith(t) for word in c.name.casefold().split())
    ]


def _resolve(token: str, candidates: Sequence[Candidate]) -> tuple[str | None, str | None]:
    """(candidate id, None) or (None, error) for one number or name."""
    t = token.strip(_EDGE_PUNCT + " ")
    if t.isascii() and t.isdigit():
        n = int(t)
        if 1 <= n <= len(candidates):
            return candidates[n - 1].id, None
        return None, _("{number} is not on the list; use 1-{last}").format(
            number=t, last=len(candidates)
        )
    found = _match_name(t, candidates)
    if len(found) == 1:
        return found[0].id, None
    if not found:
        return None, _("no candidate matches '{typed}'").format(typed=isolate(t[:20]))
    names = _(" or ").join(isolate(c.name) for c in found[:3])
    return None, _("'{typed}' could be {names}").format(typed=isolate(t[:20]), names=names)


def parse_ranking(text: str, candidates: Sequence[Candidate]) -> RankingParse:
    """Read one or more preferences: '2', '2 4 1', '2,4,1.', '2 > 4 > 1', 'Sam, Chris', '0'.

    Numbers are positions in the election's candidate list.  A 0 at the end
    (or alone) means "no more preferences".
    """
    t = normalise(text)
    t = t.strip(_EDGE_PUNCT.replace(",", "") + " ")
    if not t:
        return RankingParse(error="empty")
    if _NUMERIC.match(t):
        numbers = re.findall(r"[0-9]+", t)
        finish = False
        if numbers and int(numbers[-1]) == 0:
            finish = True
            numbers = numbers[:-1]
        ids: list[str] = []
        for n in numbers:
            cid, err = _resolve(n, candidates)
            if err:
                return RankingParse(error=err)
            assert cid is not None
            ids.append(cid)
        return RankingParse(tuple(ids), finish)

    chunks = [c for c in _CHUNK_SEPARATORS.split(t) if c.strip(_EDGE_PUNCT + " ")]
    if len(chunks) == 1:
        cid, err = _resolve(chunks[0], candidates)
        if cid is not None:
            return RankingParse((cid,))
        words = chunks[0].split()
        if len(words) == 1:
            return RankingParse(error=err)
        chunks = words
    ids = []
    for chunk in chunks:
        cid, err = _resolve(chunk, candidates)
        if err:
            return RankingParse(error=err)
        assert cid is not None
        if len(chunks) > 1 and ids and ids[-1] == cid and not chunk.isdigit():
            continue  # "alex green": two words of one name
        ids.append(cid)
    return RankingParse(tuple(ids))
