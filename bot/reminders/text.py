"""A reminder's text: the template, and what one supporter gets.

What a channel can carry, and what it costs, is the channel's own business:
each provides :class:`bot.ports.TextRules` (``channels.gsm.SmsRules``,
``channels.telegram.text.TelegramRules``).
"""

from __future__ import annotations

import math
import string
from datetime import datetime

from ballots.election import Election
from bot import texts
from bot.reminders.common import FIELDS

# --- the text --------------------------------------------------------------------


def template_problems(template: str) -> list[str]:
    """What is wrong with a reminder's text as a template (empty: nothing)."""
    if not template.strip():
        return ["the message is empty"]
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


def render(template: str, election: Election, name: str, now: datetime) -> str:
    """The reminder for one supporter."""
    return template.format(
        name=name.strip() or "supporter",
        days_left=days_left(election, now),
        closes=texts.when(election.closes),
    )
