"""A reminder's text: the template, and what one supporter gets.

A template may hold one version per language: the text before any line
that is a language code in brackets (``[cy]``) is the election's first
language's; each such line starts another language's version::

    Hi {name}, {time_left} to vote.
    [cy]
    Helo {name}, {time_left} i bleidleisio.

Each supporter gets the version in their roll entry's language, or the
first version if theirs has none; ``{closes}`` and ``{time_left}`` are written in that
language.

What a channel can carry, and what it costs, is the channel's own business:
each provides :class:`bot.ports.TextRules` (``channels.gsm.SmsRules``,
``channels.telegram.text.TelegramRules``).
"""

from __future__ import annotations

import functools
import math
import re
import string
from dataclasses import dataclass
from datetime import datetime

from ballots.election import Election
from ballots.languages import best
from bot import texts
from bot.i18n import _, isolate, n_, speaking
from bot.ports import TextRules
from bot.reminders.common import FIELDS

#: A line that starts a language's version of a reminder: ``[cy]`` (``[CY]``, ``[cy-GB]``).
_SECTION = re.compile(r"^\[([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{2,8})*\]$")


def versions(template: str, election: Election) -> dict[str, str]:
    """A template's text in each language it is written in (the election's first
    language for the text before any ``[xx]`` line), in the order written."""
    return dict(_versions(template, election.languages[0]))


@functools.lru_cache(maxsize=64)
def _versions(template: str, first: str) -> tuple[tuple[str, str], ...]:
    found: dict[str, list[str]] = {first: []}
    current = first
    for line in template.split("\n"):
        section = _SECTION.match(line.strip())
        if section is not None:
            current = section.group(1).lower()
            found.setdefault(current, [])
        else:
            found[current].append(line)
    return tuple((code, "\n".join(lines).strip()) for code, lines in found.items())


def marked(template: str, election: Election, mark: str) -> str:
    """The template with every language's version starting with ``mark``."""
    parts = versions(template, election)
    first, *others = parts.items()
    return "\n".join(
        [mark + first[1], *(f"[{code}]\n{mark}{text}" for code, text in others if text)]
    )


# --- the text --------------------------------------------------------------------


def template_problems(template: str, election: Election | None = None) -> list[str]:
    """What is wrong with a reminder's text as a template (empty: nothing).

    With ``election``, each language's version is checked, and each ``[xx]``
    must be one of the election's languages.
    """
    if not template.strip():
        return ["the message is empty"]
    if election is None:
        return _format_problems(template)
    problems: list[str] = []
    parts = versions(template, election)
    for code, text in parts.items():
        where = f"[{code}]: " if len(parts) > 1 else ""
        if code not in election.languages:
            problems.append(
                f"[{code}] is not one of the election's languages ({', '.join(election.languages)})"
            )
        elif not text and (code != election.languages[0] or len(parts) == 1):
            problems.append(f"{where}the message is empty")
        else:
            problems.extend(where + p for p in _format_problems(text))
    if not parts[election.languages[0]] and len(parts) > 1:
        problems.append(
            f"the message has no version in {election.languages[0]}, the election's first "
            "language: write it before the first [xx] line"
        )
    return problems


def _format_problems(template: str) -> list[str]:
    problems: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        return [f"the message has a stray brace ({err}); write {{{{ or }}}} for a literal one"]
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in FIELDS:
            problems.append(
                f"unknown placeholder {{{name}}}; use {', '.join('{' + f + '}' for f in FIELDS)}"
            )
        elif spec or conversion:
            problems.append(f"placeholder {{{name}}} takes no format or conversion")
    return problems


def days_left(election: Election, now: datetime) -> int:
    """Whole days (rounded up) until the election closes; 0 once closed."""
    seconds = (election.closes - now).total_seconds()
    return max(0, math.ceil(seconds / 86400))


def time_left(days: int) -> str:
    """``{time_left}``: the days left as words in the language being spoken, in the right
    form for the number ("1 day left", "3 days left"; Welsh "2 ddiwrnod ar ôl")."""
    return n_("{n} day left", "{n} days left", days).format(n=days)


def language_of(template: str, election: Election, wanted: str | None) -> str:
    """The language a supporter whose roll entry says ``wanted`` gets the reminder in."""
    parts = versions(template, election)
    chosen = best(wanted, [code for code, text in parts.items() if text])
    return chosen or election.languages[0]


def render(
    template: str, election: Election, name: str, now: datetime, language: str | None = None
) -> str:
    """The reminder for one supporter, in their language (``language``) if it has a version."""
    code = language_of(template, election, language)
    with speaking(code):
        return versions(template, election)[code].format(
            name=isolate(name.strip()) or _("supporter"),
            days_left=days_left(election, now),
            time_left=time_left(days_left(election, now)),
            closes=isolate(texts.when(election, election.closes)),
        )


@dataclass(frozen=True)
class Rendered:
    """One supporter's reminder as its channel carries it, and what that costs."""

    body: str
    language: str
    faithful: bool
    parts: int
    problem: str | None


def rendered(
    template: str,
    election: Election,
    name: str,
    wanted: str | None,
    now: datetime,
    rules: TextRules,
    max_parts: int,
) -> Rendered:
    """The reminder for a supporter whose roll language is ``wanted``, on the channel whose
    ``rules`` are given: in their language, faithful or folded as it says, with its cost and
    why it cannot go (``problem``), if it cannot."""
    language = language_of(template, election, wanted)
    faithful = election.sms_faithful(language)
    text = render(template, election, name, now, language)
    body = rules.body(text, faithful)
    return Rendered(
        body,
        language,
        faithful,
        rules.parts(body, faithful),
        rules.problem(text, max_parts, faithful),
    )
