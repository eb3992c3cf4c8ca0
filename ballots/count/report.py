"""A count's report: the round-by-round table for people and the JSON for scripts.

The JSON keys ``method``, ``seats``, ``quota``, ``candidates``, ``rounds``
(each with ``tallies``, ``exhausted``, ``elected``, ``excluded`` and
``transfers``), ``winners`` and ``tie_breaks`` are a contract (README.md,
"Counting").  Whole votes are JSON numbers; STV's fractional votes are
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

_METHOD_NAMES = {
    "irv": "instant-runoff",
    "sv": "supplementary vote",
    "stv": "single transferable vote",
}
_ROUNDS_PER_TABLE = 6


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


def _fmt(value: Votes) -> str:
    if isinstance(value, Fraction):
        return percent(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def _section_tables(result: Result, rounds: tuple[Round, ...]) -> list[str]:
    """An electoral college: each section's whole papers with each candidate, round by round."""
    ids = list(result.candidates)
    label_width = max([len(result.name(c)) for c in ids] + [len("Non-transferable")])
    lines: list[str] = []
    for name, sec in result.sections.items():
        lines.append(
            f"Section {name}: share {percent(sec.share)}, {sec.ballots:,} valid ballots "
            f"of weight {sec.weight} each (ballot papers by round)"
        )
        header = " " * label_width + "".join(f"  {f'Round {r.number}':>9}" for r in rounds)
        lines.append(header)
        for c in [*ids, ""]:
            label = result.name(c) if c else "Non-transferable"
            cells = "".join(
                f"  {r.by_section[name][c]:>9,}" if c in r.by_section[name] else " " * 11
                for r in rounds
            )
            lines.append(f"{label:<{label_width}}{cells}".rstrip())
        lines.append("")
    return lines


def _table(result: Result, rounds: tuple[Round, ...]) -> list[str]:
    """One block of the round-by-round table: a row per candidate, a column per round."""
    ids = list(result.candidates)
    label_width = max([len(result.name(c)) for c in ids] + [len("Non-transferable")])
    cells: list[list[str]] = []
    for r in rounds:
        column = []
        for c in ids:
            if c not in r.tallies:
                column.append("")
                continue
            mark = " E" if c in r.elected else " X" if c in r.excluded else "  "
            column.append(_fmt(r.tallies[c]) + mark)
        column.append(_fmt(r.exhausted) + "  ")
        if result.method == "stv":
            column.append(_fmt(r.loss) + "  ")
        total: Any = sum(r.tallies.values(), start=r.exhausted)
        total += r.loss or 0
        column.append(_fmt(total) + "  ")
        cells.append(column)
    widths = [
        max(len(f"Round {r.number}") + 2, *(len(x) for x in col))
        for r, col in zip(rounds, cells, strict=True)
    ]
    labels = [result.name(c) for c in ids] + ["Non-transferable"]
    if result.method == "stv":
        labels.append("Loss to fractions")
    labels.append("Total")
    header = " " * label_width + "".join(
        f"  {f'Round {r.number}':>{w - 2}}  " for r, w in zip(rounds, widths, strict=True)
    )
    lines = [header.rstrip()]
    for i, label in enumerate(labels):
        if label == "Non-transferable":
            lines.append("-" * len(header.rstrip()))
        row = f"{label:<{label_width}}" + "".join(
            f"  {col[i]:>{w}}" for col, w in zip(cells, widths, strict=True)
        )
        lines.append(row.rstrip())
    return lines


def _transfer_text(result: Result, t: Transfer) -> str:
    parts = [f"{_fmt(v)} to {result.name(c)}" for c, v in t.to.items()]
    parts.append(f"{_fmt(t.exhausted)} non-transferable")
    if t.transfer_value is not None:
        parts.append(f"{_fmt(t.loss)} lost to fractions")
    what = (
        f"surplus of {result.name(t.source)}, {t.ballots:,} papers at transfer value "
        f"{t.transfer_value}"
        if t.reason == "surplus"
        else f"{t.ballots:,} ballots of {result.name(t.source)}"
    )
    return f"    {what}: " + ", ".join(parts)


def render_text(result: Result) -> str:
    """The round-by-round report a party could publish."""
    method = _METHOD_NAMES.get(result.method, result.method)
    title = result.title or "Count"
    seats = f", {result.seats} seats" if result.method == "stv" else ""
    lines = [f"{title}: {method}{seats}", "=" * len(f"{title}: {method}{seats}")]
    lines.append(f"Rules: {result.rules}.")
    facts = f"Valid ballots: {result.ballots:,}"
    if result.invalid:
        facts += f" (and {result.invalid:,} invalid, not counted)"
    if result.blank:
        facts += f".  Blank ballots (abstentions): {result.blank:,}"
    if result.quota is not None:
        facts += f".  Quota: {_fmt(result.quota)}"
    facts += f".  Seed for any lot: {result.seed}."
    lines += [facts, ""]
    if result.weighted:
        lines.append(
            "Electoral college: "
            + "; ".join(
                f"{name} {percent(sec.share)} ({sec.ballots:,} ballots)"
                for name, sec in result.sections.items()
            )
            + ".  Votes are weighted shares of the whole, as percentages."
        )
        lines.append("")
    for start in range(0, len(result.rounds), _ROUNDS_PER_TABLE):
        lines += _table(result, result.rounds[start : start + _ROUNDS_PER_TABLE])
        lines.append("")
        if result.weighted:
            lines += _section_tables(result, result.rounds[start : start + _ROUNDS_PER_TABLE])
    lines.append("E: elected in this round.  X: excluded at the end of this round.")
    lines.append("")
    lines.append("Round by round")
    lines.append("--------------")
    for r in result.rounds:
        lines.append(f"Round {r.number}: {r.action}.")
        if r.number == 1 and result.blank:
            lines.append(
                f"    Blank: {result.blank:,} ballots ranked nobody (abstentions): "
                "counted in turnout, in no quota or majority."
            )
        lines += [_transfer_text(result, t) for t in r.transfers]
        lines += [f"    {note}." for note in r.notes]
    if result.tie_breaks:
        lines += ["", "Ties"]
        for t in result.tie_breaks:
            lines.append(
                f"    Round {t.round}, {t.kind}: {', '.join(t.tied)} tied; "
                f"{t.chosen} chosen by {t.how} ({t.detail})."
            )
    lines += ["", "Elected: " + "; ".join(result.name(w) for w in result.winners) + "."]
    return "\n".join(lines) + "\n"
