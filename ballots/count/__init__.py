"""Counting ballots: instant-runoff, the supplementary vote and Scottish STV, exactly.

Counting is pure, synchronous and deterministic: the same ballots and seed
always give the same result.  Each method's rules are in its module's
docstring; ties are broken as ``ties.py`` describes; ``model.py`` states how
a marked ballot becomes a ranking.
"""

from __future__ import annotations

from ballots.count.irv import count_irv
from ballots.count.model import Ballots, CountError
from ballots.count.result import Result
from ballots.count.stv import count_stv
from ballots.count.sv import count_sv

METHODS = ("irv", "sv", "stv")


def count(
    ballots: Ballots,
    method: str,
    *,
    seats: int = 1,
    seed: int = 0,
    bulk_exclusion: bool = False,
) -> Result:
    """Count ``ballots`` by ``method`` (``irv``, ``sv`` or ``stv``)."""
    if method == "irv":
        if seats != 1:
            raise CountError("instant-runoff elects one candidate: use --method stv for seats")
        return count_irv(ballots, seed=seed, bulk_exclusion=bulk_exclusion)
    if method == "sv":
        if seats != 1:
            raise CountError("the supplementary vote elects one candidate")
        return count_sv(ballots, seed=seed)
    if method == "stv":
        return count_stv(ballots, seats, seed=seed)
    raise CountError(f"unknown method {method!r}; use one of: {', '.join(METHODS)}")


__all__ = ["METHODS", "Ballots", "CountError", "Result", "count"]
