"""Breaking ties: look back at earlier rounds, then draw lots from a recorded seed.

The rule, for every method:

1. **Earlier rounds.**  Among the tied candidates, look at the votes at the
   end of the most recent earlier round at which they did not all have the
   same number.  Keep those with the fewest votes there (for an exclusion) or
   the most (for the order of surpluses).  If more than one is still tied,
   look further back among those.  This is rules 49(2) and 51(2) of the
   Scottish Local Government Elections Order 2007, and it is used for IRV
   exclusions too.
2. **Lot.**  If they were equal at every earlier round, each tied candidate
   draws the SHA-256 digest of ``"<seed>:<round>:<kind>:<candidate id>"``
   and the lowest digest is chosen.  The seed is recorded in the report, so
   a recount with the same seed draws the same lot, and anyone can check the
   draw with a single line of code.  The seed should be chosen before the
   count (say, announced at the count), since anyone who knows it can tell
   how a lot would fall.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar

from ballots.count.result import TieBreak

#: Votes in one unit: whole ballots, STV's Decimals, or an electoral college's Fractions.
V = TypeVar("V", int, Decimal, Fraction)


def lot_draw(seed: int, round_number: int, kind: str, candidate: str) -> str:
    """One candidate's draw in a lot: a hex digest that anyone can recompute."""
    text = f"{seed}:{round_number}:{kind}:{candidate}"
    return hashlib.sha256(text.encode()).hexdigest()


def by_lot(seed: int, round_number: int, kind: str, tied: Sequence[str]) -> str:
    """The candidate the lot chooses: the lowest draw."""
    return min(tied, key=lambda c: lot_draw(seed, round_number, kind, c))


def break_tie(
    tied: Sequence[str],
    history: Sequence[Mapping[str, V]],
    *,
    lowest: bool,
    seed: int,
    round_number: int,
    kind: str,
    show: Callable[[V], str] = str,
) -> tuple[str, TieBreak | None]:
    """Choose one of ``tied`` by the stated rule, and say how.

    ``history`` holds the votes at the end of each earlier round, oldest
    first (values comparable in one unit); ``lowest`` picks the fewest votes
    (exclusions), otherwise the most (surplus order).  Returns the choice and
    a record of the tie-break, or ``None`` when there was no tie.
    """
    if len(tied) == 1:
        return tied[0], None
    remaining = sorted(tied)
    looked: list[str] = []
    seen: list[tuple[int, tuple[tuple[str, str], ...]]] = []
    for back in range(len(history) - 1, -1, -1):
        votes = history[back]
        values: dict[str, Any] = {c: votes.get(c, 0) for c in remaining}
        if len(set(values.values())) == 1:
            continue
        pick = min(values.values()) if lowest else max(values.values())
        looked.append(
            f"round {back + 1}: " + ", ".join(f"{c} {show(values[c])}" for c in remaining)
        )
        seen.append((back + 1, tuple((c, show(values[c])) for c in remaining)))
        remaining = [c for c in remaining if values[c] == pick]
        if len(remaining) == 1:
            return remaining[0], TieBreak(
                round=round_number,
                kind=kind,
                tied=tuple(sorted(tied)),
                chosen=remaining[0],
                how="earlier round",
                detail="; ".join(looked),
                looked=tuple(seen),
            )
    chosen = by_lot(seed, round_number, kind, remaining)
    draws = ", ".join(f"{c} {lot_draw(seed, round_number, kind, c)[:12]}" for c in remaining)
    prefix = "; ".join(looked) + "; " if looked else "equal at every earlier round; "
    return chosen, TieBreak(
        round=round_number,
        kind=kind,
        tied=tuple(sorted(tied)),
        chosen=chosen,
        how="lot",
        detail=f"{prefix}lot with seed {seed}, lowest draw chosen: {draws}",
        looked=tuple(seen),
        seed=seed,
        draws=tuple((c, lot_draw(seed, round_number, kind, c)[:12]) for c in remaining),
    )


def choose(
    votes: Mapping[str, V],
    history: Sequence[Mapping[str, V]],
    ties: list[TieBreak],
    *,
    lowest: bool,
    seed: int,
    round_number: int,
    kind: str,
    show: Callable[[V], str] = str,
) -> tuple[str, V, TieBreak | None]:
    """The candidate with the fewest (``lowest``) or most votes, a tie broken by the rule.

    Returns the choice, its votes and the tie-break (also appended to ``ties``).
    """
    extreme = min(votes.values()) if lowest else max(votes.values())
    tied = [c for c, v in votes.items() if v == extreme]
    chosen, tie = break_tie(
        tied, history, lowest=lowest, seed=seed, round_number=round_number, kind=kind, show=show
    )
    if tie is not None:
        ties.append(tie)
    return chosen, extreme, tie
