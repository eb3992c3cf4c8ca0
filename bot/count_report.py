"""A count's report for people: the round-by-round table and what happened in each round, in
the language being spoken, with candidates by name.

The sentences are made here from what the count recorded (each round's votes, who was elected
or excluded, the transfers and the tie-breaks), not from the count's own ``notes``: those stay
in the JSON report (``ballots.count.report``), in English and by candidate id, for scripts.
Ballots with no continuing preference are "exhausted" everywhere: the table, the sentences,
the charts and the results page.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from ballots.count.college import percent
from ballots.count.result import Result, Round, TieBreak, Transfer, Votes
from bot.i18n import _, n_

_ROUNDS_PER_TABLE = 6


def _method(result: Result) -> str:
    names = {
        "irv": _("instant-runoff"),
        "sv": _("supplementary vote"),
        "stv": _("single transferable vote"),
    }
    return names.get(result.method, result.method)


def _rules(result: Result) -> str:
    """The rules applied, in one line of the language spoken."""
    rules = {
        "irv": _(
            "more than half of the continuing votes wins; the candidate with the fewest is "
            "excluded; ties by earlier rounds, then lot"
        ),
        "sv": _(
            "1st and 2nd choices only; more than half of the 1st choices wins; else the top two "
            "continue and the 2nd choices for them are added; ties by lot"
        ),
        "stv": _(
            "the Scottish Local Government Elections Order 2007: Droop quota; transfer values "
            "truncated to 5 decimal places; all papers of an elected candidate examined; "
            "largest surplus first; ties by earlier stages, then lot"
        ),
    }
    text = rules.get(result.method, result.rules)
    if result.options.get("bulk_exclusion"):
        text += "; " + _("bulk exclusion")
    if result.weighted:
        text = _("electoral college, each section's ballots weighted to its share") + "; " + text
    return f"{_method(result)}: {text}"


def _votes(result: Result, value: Votes) -> str:
    """Votes as the report shows them: whole ballots, STV's decimals, or a college's share."""
    if isinstance(value, Fraction):
        return percent(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def _names(result: Result, ids: Sequence[str]) -> str:
    return ", ".join(result.name(c) for c in ids)


def render_text(result: Result) -> str:
    """The round-by-round report a party could publish."""
    title = result.title or _("Count")
    if result.method == "stv":
        heading = n_(
            "{title}: {method}, {seats} seat", "{title}: {method}, {seats} seats", result.seats
        ).format(title=title, method=_method(result), seats=result.seats)
    else:
        heading = f"{title}: {_method(result)}"
    lines = [heading, "=" * len(heading), _("Rules: {rules}.").format(rules=_rules(result))]
    facts = [_("Valid ballots: {n}.").format(n=f"{result.ballots:,}")]
    if result.invalid:
        facts.append(
            n_(
                "{n} invalid ballot, not counted.",
                "{n} invalid ballots, not counted.",
                result.invalid,
            ).format(n=f"{result.invalid:,}")
        )
    if result.blank:
        facts.append(_("Blank ballots (abstentions): {n}.").format(n=f"{result.blank:,}"))
    if result.quota is not None:
        facts.append(_("Quota: {quota}.").format(quota=_votes(result, result.quota)))
    facts.append(_("Seed for any lot: {seed}.").format(seed=result.seed))
    lines += ["  ".join(facts), ""]
    if result.weighted:
        shares = "; ".join(
            n_("{name} {share} ({n} ballot)", "{name} {share} ({n} ballots)", sec.ballots).format(
                name=name, share=percent(sec.share), n=f"{sec.ballots:,}"
            )
            for name, sec in result.sections.items()
        )
        lines += [
            _(
                "Electoral college: {sections}. Votes are weighted shares of the whole, as "
                "percentages."
            ).format(sections=shares),
            "",
        ]
    for start in range(0, len(result.rounds), _ROUNDS_PER_TABLE):
        part = result.rounds[start : start + _ROUNDS_PER_TABLE]
        lines += _table(result, part)
        lines.append("")
        if result.weighted:
            lines += _section_tables(result, part)
    lines += [_("E: elected in this round.  X: excluded at the end of this round."), ""]
    heading = _("Round by round")
    lines += [heading, "-" * len(heading)]
    for r in result.rounds:
        lines.append(_("Round {n}: {action}.").format(n=r.number, action=_action(result, r)))
        if r.number == 1 and result.blank:
            lines.append(
                "    "
                + n_(
                    "Blank: {n} ballot ranked nobody (an abstention): counted in turnout, in no "
                    "quota or majority.",
                    "Blank: {n} ballots ranked nobody (abstentions): counted in turnout, in no "
                    "quota or majority.",
                    result.blank,
                ).format(n=f"{result.blank:,}")
            )
        lines += ["    " + _transfer_text(result, t) for t in r.transfers]
        lines += [f"    {sentence}." for sentence in _what_happened(result, r)]
    if result.tie_breaks:
        lines += ["", _("Ties")]
        lines += ["    " + _tie_text(result, t) for t in result.tie_breaks]
    elected = "; ".join(result.name(w) for w in result.winners)
    lines += ["", _("Elected: {names}.").format(names=elected)]
    return "\n".join(lines) + "\n"


def _table(result: Result, rounds: Sequence[Round]) -> list[str]:
    """One block of the round-by-round table: a row per candidate, a column per round."""
    ids = list(result.candidates)
    exhausted, loss, total = _("Exhausted"), _("Loss to fractions"), _("Total")
    labels = [result.name(c) for c in ids] + [exhausted]
    if result.method == "stv":
        labels.append(loss)
    labels.append(total)
    cells: list[list[str]] = []
    for r in rounds:
        column = []
        for c in ids:
            if c not in r.tallies:
                column.append("")
                continue
            mark = " E" if c in r.elected else " X" if c in r.excluded else "  "
            column.append(_votes(result, r.tallies[c]) + mark)
        column.append(_votes(result, r.exhausted) + "  ")
        if result.method == "stv":
            column.append(_votes(result, r.loss) + "  ")
        whole: Any = sum(r.tallies.values(), start=r.exhausted)
        whole += r.loss or 0
        column.append(_votes(result, whole) + "  ")
        cells.append(column)
    headers = [_("Round {n}").format(n=r.number) for r in rounds]
    widths = [
        max(len(h) + 2, *(len(x) for x in col)) for h, col in zip(headers, cells, strict=True)
    ]
    label_width = max(len(label) for label in labels)
    header = " " * label_width + "".join(
        f"  {h:>{w - 2}}  " for h, w in zip(headers, widths, strict=True)
    )
    lines = [header.rstrip()]
    for i, label in enumerate(labels):
        if label == exhausted:
            lines.append("-" * len(header.rstrip()))
        row = f"{label:<{label_width}}" + "".join(
            f"  {col[i]:>{w}}" for col, w in zip(cells, widths, strict=True)
        )
        lines.append(row.rstrip())
    return lines


def _section_tables(result: Result, rounds: Sequence[Round]) -> list[str]:
    """An electoral college: each section's ballot papers with each candidate, round by round."""
    ids = list(result.candidates)
    exhausted = _("Exhausted")
    label_width = max([len(result.name(c)) for c in ids] + [len(exhausted)])
    headers = [_("Round {n}").format(n=r.number) for r in rounds]
    width = max([9, *(len(h) for h in headers)])
    lines: list[str] = []
    for name, sec in result.sections.items():
        lines.append(
            n_(
                "Section {name}: share {share}, {n} valid ballot of weight {weight} (ballot "
                "papers by round)",
                "Section {name}: share {share}, {n} valid ballots of weight {weight} each "
                "(ballot papers by round)",
                sec.ballots,
            ).format(name=name, share=percent(sec.share), n=f"{sec.ballots:,}", weight=sec.weight)
        )
        lines.append(" " * label_width + "".join(f"  {h:>{width}}" for h in headers))
        for c in [*ids, ""]:
            label = result.name(c) if c else exhausted
            row = "".join(
                f"  {r.by_section[name][c]:>{width},}"
                if c in r.by_section[name]
                else " " * (width + 2)
                for r in rounds
            )
            lines.append(f"{label:<{label_width}}{row}".rstrip())
        lines.append("")
    return lines


def _action(result: Result, r: Round) -> str:
    """What made this round's votes."""
    if r.number == 1:
        return _("1st choices") if result.method == "sv" else _("first preferences")
    if result.method == "sv":
        return _("2nd choices for the top two added")
    surplus = [t.source for t in r.transfers if t.reason == "surplus"]
    if surplus:
        return _("surplus of {name} transferred").format(name=_names(result, surplus))
    sources = [t.source for t in r.transfers]
    return n_(
        "ballots of excluded {names} transferred",
        "ballots of excluded {names} transferred",
        len(sources),
    ).format(names=_names(result, sources))


def _transfer_text(result: Result, t: Transfer) -> str:
    """Where one candidate's ballots went."""
    parts = [
        _("{votes} to {name}").format(votes=_votes(result, v), name=result.name(c))
        for c, v in t.to.items()
    ]
    parts.append(_("{votes} exhausted").format(votes=_votes(result, t.exhausted)))
    if t.transfer_value is not None:
        parts.append(_("{votes} lost to fractions").format(votes=_votes(result, t.loss)))
    if t.reason == "surplus":
        what = n_(
            "surplus of {name}, {n} paper at transfer value {value}",
            "surplus of {name}, {n} papers at transfer value {value}",
            t.ballots,
        ).format(name=result.name(t.source), n=f"{t.ballots:,}", value=t.transfer_value)
    else:
        what = n_("{n} ballot of {name}", "{n} ballots of {name}", t.ballots).format(
            n=f"{t.ballots:,}", name=result.name(t.source)
        )
    return f"{what}: " + ", ".join(parts)


def _tie(result: Result, round_number: int, kind: str) -> TieBreak | None:
    for t in result.tie_breaks:
        if t.round == round_number and t.kind == kind:
            return t
    return None


def _how(tie: TieBreak) -> str:
    return _("earlier rounds") if tie.how == "earlier round" else _("lot")


def _what_happened(result: Result, r: Round) -> list[str]:
    """Who was elected or excluded in this round, and why, in sentences."""
    said: list[str] = []
    active: Any = sum(r.tallies.values(), start=type(r.exhausted)(0))
    for c in r.elected:
        votes = _votes(result, r.tallies[c])
        if result.method == "stv":
            if result.quota is not None and r.tallies[c] >= result.quota:
                said.append(
                    _("{name} has {votes}, at least the quota: elected").format(
                        name=result.name(c), votes=votes
                    )
                )
            else:
                said.append(
                    _(
                        "{name} is elected: the continuing candidates are no more than the "
                        "seats left (rule 52)"
                    ).format(name=result.name(c))
                )
        elif len(r.tallies) == 1:
            said.append(
                _("{name} is the only continuing candidate: elected").format(name=result.name(c))
            )
        elif result.method == "sv" and r.number == 2:
            tie = _tie(result, 2, "winner")
            if tie is None:
                said.append(
                    _("{name} has more votes ({votes}): elected").format(
                        name=result.name(c), votes=votes
                    )
                )
            else:
                said.append(
                    _("{names} have {votes} each; by lot, {name} is elected").format(
                        names=_names(result, list(r.tallies)), votes=votes, name=result.name(c)
                    )
                )
        elif result.weighted:
            said.append(
                _(
                    "{name} has {votes} of the college, more than half of the continuing "
                    "weighted votes: elected"
                ).format(name=result.name(c), votes=votes)
            )
        elif result.method == "sv":
            said.append(
                _("{name} has {votes} of {total} 1st choices, more than half: elected").format(
                    name=result.name(c), votes=votes, total=_votes(result, active)
                )
            )
        else:
            said.append(
                _("{name} has {votes} of {total} continuing votes, more than half: elected").format(
                    name=result.name(c), votes=votes, total=_votes(result, active)
                )
            )
    if result.method == "sv" and r.number == 1 and r.excluded:
        going_on = [c for c in r.tallies if c not in r.excluded]
        said.append(
            _(
                "no candidate has more than half of the 1st choices: {names} continue, every "
                "other candidate is excluded"
            ).format(names=_names(result, going_on))
        )
    elif len(r.excluded) > 1:
        together = sum((r.tallies[c] for c in r.excluded), start=type(r.exhausted)(0))
        said.append(
            _(
                "bulk exclusion: {names} have {votes} together, fewer than the candidate above "
                "them, so none of them can catch up: excluded"
            ).format(names=_names(result, r.excluded), votes=_votes(result, together))
        )
    elif r.excluded:
        (c,) = r.excluded
        tie = _tie(result, r.number, "exclusion")
        values = {"name": result.name(c), "votes": _votes(result, r.tallies[c])}
        if tie is None:
            said.append(_("{name} has the fewest votes ({votes}): excluded").format(**values))
        else:
            said.append(
                _("{name} has the fewest votes ({votes}), tie broken by {how}: excluded").format(
                    how=_how(tie), **values
                )
            )
    return said


def _tie_detail(result: Result, t: TieBreak) -> str:
    """How a tie was looked into, by name: the earlier rounds' votes, then any lot."""
    parts = [
        _("round {n}: {votes}").format(
            n=n,
            votes=", ".join(f"{result.name(c)} {shown}" for c, shown in values),
        )
        for n, values in t.looked
    ]
    if t.seed is not None:
        if not t.looked:
            parts.append(_("equal at every earlier round"))
        parts.append(
            _("lot with seed {seed}, the lowest draw chosen: {draws}").format(
                seed=t.seed, draws=", ".join(f"{result.name(c)} {d}" for c, d in t.draws)
            )
        )
    return "; ".join(parts) or t.detail


def _tie_text(result: Result, t: TieBreak) -> str:
    kinds = {
        "exclusion": _("exclusion"),
        "top two": _("top two"),
        "winner": _("winner"),
        "surplus order": _("surplus order"),
    }
    return _("Round {n}, {kind}: {tied} tied; {name} chosen by {how} ({detail}).").format(
        n=t.round,
        kind=kinds.get(t.kind, t.kind),
        tied=_names(result, t.tied),
        name=result.name(t.chosen),
        how=_how(t),
        detail=_tie_detail(result, t),
    )
