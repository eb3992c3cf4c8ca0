"""Reading what people actually type: keywords, yes/no, codes and rankings."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ballots.election import Candidate

_SPACES = re.compile(r"\s+")
_EDGE_PUNCT = "!.?,;:'\"()[]{}*"
_NUMERIC = re.compile(r"^[\d\s,;:>./|\\+\-–—→#&]+$", re.ASCII)
_CHUNK_SEPARATORS = re.compile(r"\s*(?:[,;>/|\n]|->|→|\bthen\b)\s*")

OPT_OUT = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "/STOP"}
)
OPT_IN = frozenset({"START", "UNSTOP", "YES"})
HELP = frozenset({"HELP", "INFO", "/HELP", "?"})
RESTART = frozenset(
    {"START AGAIN", "STARTAGAIN", "RESTART", "AGAIN", "RESET", "BEGIN AGAIN", "/START", "MENU"}
)
YES = frozenset(
    {"YES", "Y", "YEAH", "YEP", "YUP", "OK", "OKAY", "CONFIRM", "CAST", "CAST MY VOTE", "SURE"}
)
CHANGE = frozenset({"NO", "N", "CHANGE", "EDIT", "NOPE"})
DONE = frozenset({"0", "DONE", "FINISH", "FINISHED", "END RANKING", "NONE", "NO MORE"})
UNDO = frozenset({"UNDO", "BACK"})
RECEIPT = frozenset({"RECEIPT", "/RECEIPT", "MY RECEIPT"})
ABSTAIN = frozenset({"ABSTAIN", "/ABSTAIN", "BLANK", "BLANK BALLOT"})


def normalise(text: str) -> str:
    """Fold full-width forms, collapse spaces and trim."""
    folded = unicodedata.normalize("NFKC", text)
    return _SPACES.sub(" ", folded).strip()


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
        return None, f"{t} is not on the list; use 1-{len(candidates)}"
    found = _match_name(t, candidates)
    if len(found) == 1:
        return found[0].id, None
    if not found:
        return None, f"no candidate matches '{t[:20]}'"
    names = " or ".join(c.name for c in found[:3])
    return None, f"'{t[:20]}' could be {names}"


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


def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
