"""The buttons of a ranking or a confirmation, and what a tapped one stands for.

A button's payload is ``<election tag>:<turn>:<action>``: the tag ties it to
one election, the turn to the message that showed it, so a button from an
earlier message (or another election's) is refused, never acted on.  Every
button stands for a word the voter could have typed, so the conversation
handles a tap as that text.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import replace

from ballots.election import Candidate, Election
from ballots.languages import SHIPPED
from bot.i18n import _, current
from bot.messages import Button, OutboundMessage
from bot.state import State, Step

#: Button actions and the typed text each stands for.
ACTIONS = {
    "done": "0",
    "undo": "UNDO",
    "again": "START AGAIN",
    "cast": "YES",
    "change": "CHANGE",
    "abstain": "ABSTAIN",
}


class Refused(enum.Enum):
    """Why a tapped button is not taken: from an earlier message, or not one of ours."""

    STALE = "stale"
    FOREIGN = "foreign"


def election_tag(election_id: str) -> str:
    """A short tag that ties a button to one election."""
    return hashlib.blake2b(election_id.encode(), digest_size=3).hexdigest()


class Buttons:
    """Makes and reads one election's buttons."""

    def __init__(self, election: Election) -> None:
        self.election = election
        self.tag = election_tag(election.id)
        self.numbered: list[tuple[int, Candidate]] = list(enumerate(election.candidates, 1))

    def remaining(self, state: State) -> list[tuple[int, Candidate]]:
        """The candidates not ranked yet, with their ballot numbers."""
        return [(n, c) for n, c in self.numbered if c.id not in state.ranking]

    def attach(self, state: State, reply: OutboundMessage) -> OutboundMessage:
        """The prompt that asks for the state, with that state's buttons."""
        if not reply.is_reply or reply.buttons:
            return reply
        if reply.kind == "greeting" and len(self.election.languages) > 1:
            spoken = state.language or current()
            offered = [c for c in self.election.languages if c != spoken]
            row = tuple(Button(SHIPPED[c].name, self._payload(state, f"l{c}")) for c in offered)
            return replace(reply, buttons=(row,))
        if state.step is Step.RANK and reply.kind == "rank":
            rows: list[tuple[Button, ...]] = [
                (Button(c.name, self._payload(state, f"c{n}")),) for n, c in self.remaining(state)
            ]
            rows.append(
                (
                    Button(_("Done"), self._payload(state, "done")),
                    Button(_("Undo"), self._payload(state, "undo")),
                    Button(_("Start again"), self._payload(state, "again")),
                )
            )
            if self.election.abstain and not state.ranking:
                rows.append(
                    (Button(_("Abstain: a blank ballot"), self._payload(state, "abstain")),)
                )
            return replace(reply, buttons=tuple(rows))
        if state.step is Step.CONFIRM and reply.kind == "confirm":
            return replace(
                reply,
                buttons=(
                    (
                        Button(_("Cast my vote"), self._payload(state, "cast")),
                        Button(_("Change"), self._payload(state, "change")),
                    ),
                ),
            )
        return reply

    def read(self, state: State, payload: str) -> str | Refused:
        """The typed text a button stands for, or why it is refused."""
        parts = payload.split(":")
        if len(parts) != 3 or parts[0] != self.tag:
            return Refused.FOREIGN
        turn, action = parts[1], parts[2]
        if action.startswith("l") and action[1:] in self.election.languages:
            # A language can be chosen at any point: the button says its own name.
            return SHIPPED[action[1:]].name.upper()
        if turn != str(state.turn) or state.step not in (Step.RANK, Step.CONFIRM):
            return Refused.STALE
        if action in ACTIONS:
            return ACTIONS[action]
        if action.startswith("c") and action[1:].isdigit():
            n = int(action[1:])
            if 1 <= n <= len(self.election.candidates):
                return str(n)
        return Refused.FOREIGN

    def _payload(self, state: State, action: str) -> str:
        return f"{self.tag}:{state.turn}:{action}"
