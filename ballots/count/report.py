"""A count's report for scripts: the JSON (the table for people is ``bot/count_report.py``,
in the language being spoken).

The JSON keys ``method``, ``seats``, ``quota``, ``candidates``, ``rounds``
(each with ``tallies``, ``exhausted``, ``elected``, ``excluded`` and
``transfers``), ``winners`` and ``tie_breaks`` are a contract (docs/counting.md,
"The JSON report").  Whole votes are JSON numbers; STV's fractional votes are
decimal strings with five places, so no reader turns them into floats.  An
electoral college's weighted votes are exact fractions of the whole (``"41/80"``),
with ``percent`` beside them and each section's papers in ``by_section``.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

from ballots.count.college import percent
from ballots.count.result import Result, Round, Transfer, Votes


def _num(value: Votes) -> int | str:
    """Whole votes as numbers; STV's as decimal strings; a college's exact share as "p/q"."""
    return value if isinstance(value, int) else str(value)


def _transfer_json(t: Transfer) -> dict[str, Any]:
    out: dict[str, Any] = {
        "from": t.source,
        "reason": t.reason,
        "ballots": t.ballots,
        "to": {c: _num(v) for c, v in t.to.items()},
        "exhausted": _num(t.exhausted),
    }
    if t.transfer_value is not None:
        out["transfer_value"] = str(t.transfer_value)
        out["loss_to_fractions"] = _num(t.loss)
    return out


def _round_json(r: Round, method: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "round": r.number,
        "action": r.action,
        "tallies": {c: _num(v) for c, v in r.tallies.items()},
        "exhausted": _num(r.exhausted),
        "elected": list(r.elected),
        "excluded": list(r.excluded),
        "transfers": [_transfer_json(t) for t in r.transfers],
        "notes": list(r.notes),
    }
    if method == "stv":
        out["loss_to_fractions"] = _num(r.loss)
    if r.by_section:
        # An electoral college: each tally is an exact share of the whole; as percentages too,
        # and each section's whole papers (exhausted under "").
        out["percent"] = {c: _percent(v) for c, v in r.tallies.items()}
        out["exhausted_percent"] = _percent(r.exhausted)
        out["by_section"] = {name: dict(papers) for name, papers in r.by_section.items()}
    return out


def _percent(value: Votes) -> str:
    """An exact share as a percentage with two places (display only; the share is exact)."""
    return percent(Fraction(value)).rstrip("%")


def to_json(result: Result) -> dict[str, Any]:
    """The JSON report as a plain dict (see the module docstring)."""
    return {
        "method": result.method,
        "seats": result.seats,
        "quota": None if result.quota is None else _num(result.quota),
        "title": result.title,
        "rules": result.rules,
        "ballots": result.ballots,
        "invalid_ballots": result.invalid,
        "blank_ballots": result.blank,
        "seed": result.seed,
        "options": dict(result.options),
        "candidates": dict(result.candidates),
        **(
            {
                "sections": {
                    name: {
                        "share": str(sec.share),
                        "ballots": sec.ballots,
                        "blank_ballots": sec.blank,
                        "weight_per_ballot": str(sec.weight),
                    }
                    for name, sec in result.sections.items()
                }
            }
            if result.weighted
            else {}
        ),
        "rounds": [_round_json(r, result.method) for r in result.rounds],
        "winners": list(result.winners),
        "tie_breaks": [
            {
                "round": t.round,
                "kind": t.kind,
                "tied": list(t.tied),
                "chosen": t.chosen,
                "how": t.how,
                "detail": t.detail,
            }
            for t in result.tie_breaks
        ],
    }


def render_json(result: Result) -> str:
    """The JSON report as text."""
    return json.dumps(to_json(result), indent=2, ensure_ascii=False) + "\n"
