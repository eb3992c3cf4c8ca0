"""The pieces of one running OpenPrimary, built once (``openprimary.app``) and passed in.

A :class:`Deployment` is what one ``serve`` runs: the parts every election shares (Redis,
codes, the ballot box, the router and the lobby that hands each chat to its election, the
channels' senders and text rules) and a :class:`Core` per election served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from redis.asyncio import Redis

from ballots.box import BallotBox
from ballots.clock import Clock
from ballots.codes import Codes
from ballots.election import Election
from bot.alerts import Alerts
from bot.conversation import Conversation
from bot.copies import PlatformCopies
from bot.lobby import Lobby
from bot.organiser import OrganiserCommands
from bot.ports import Sender, TextRules
from bot.ratelimit import RateLimiter
from bot.router import Router
from bot.settings import Settings
from bot.spend import SmsSpend
from bot.state import state_padding


@dataclass
class Core:
    """One election's services, and the deployment's they share."""

    settings: Settings
    redis: Redis
    clock: Clock
    election: Election
    codes: Codes
    box: BallotBox
    conversation: Conversation
    router: Router
    #: Per channel, built before the core and never changed after (``openprimary.app``).
    senders: Mapping[str, Sender] = field(default_factory=dict)
    #: Removes the platforms' copies of vote-bearing messages (None: the setting is off).
    copies: PlatformCopies | None = None
    #: The organisers' commands: the chat's, and the web console's reminders and rules.
    organisers: OrganiserCommands | None = None
    #: Raises the election's alerts to organisers.
    alerts: Alerts | None = None
    #: Called with the election whenever the server follows a change to it (the channels'
    #: parts that keep a copy register here: the console's sign-in).
    followers: list[Callable[[Election], None]] = field(default_factory=list)
    #: The election's SMS spend (None: no counting).
    spend: SmsSpend | None = None
    #: The deployment this election is served in (set when it is added to one).
    deployment: Deployment | None = None

    def follow(self, election: Election) -> None:
        """Serve the election as it now stands (closed, extended, retitled...), from the
        next message on: every part of the core that holds it is given the new one."""
        self.election = election
        self.conversation.follow(election)
        if self.deployment is not None:
            self.deployment.refresh()
        if self.organisers is not None:
            self.organisers.election = election
        if self.alerts is not None:
            self.alerts.election = election
        for follower in self.followers:
            follower(election)

    async def stop_background(self) -> None:
        """Stop the chat's reminder workers and wait for the codes texted after their
        replies: before a sender they use is closed.  Idempotent."""
        await self.conversation.aclose()
        await self.router.aclose()


@dataclass
class Deployment:
    """Every election one ``serve`` serves, on one number and one bot."""

    settings: Settings
    redis: Redis
    clock: Clock
    codes: Codes
    box: BallotBox
    lobby: Lobby
    router: Router
    #: Per channel, built before the deployment and never changed after.
    senders: Mapping[str, Sender]
    rules: Mapping[str, TextRules]
    copies: PlatformCopies | None = None
    #: Each election's services, by election id.
    cores: dict[str, Core] = field(default_factory=dict)
    #: Builds an election's services (``openprimary.app``): used for an election loaded
    #: while the deployment runs.
    make_core: Callable[[Deployment, Election], Awaitable[Core]] | None = None
    #: Restricts which elections are served (None: every one loaded and not long closed).
    only: frozenset[str] | None = None
    #: The process's one rate limiter (its senders' and its reminder workers').
    limiter: RateLimiter | None = None
    #: Every election's SMS segments together, against OPENPRIMARY_SMS_BUDGET_TOTAL.
    whole_spend: SmsSpend | None = None
    #: Elections loaded while running that could not be served (logged once).
    refused: set[str] = field(default_factory=set)

    @property
    def first(self) -> Core:
        """The election the lobby offers first: what a one-election deployment serves."""
        return self.cores[self.lobby.home.election.id]

    def add(self, core: Core) -> None:
        """Serve one more election from the next message on."""
        core.deployment = self
        self.cores[core.election.id] = core
        self.lobby.add(core.conversation)
        self.refresh()

    def refresh(self) -> None:
        """What is derived from the elections served, after one is added or changed: the
        order they are offered in, and the one length every sealed chat state is padded
        to, whatever the election."""
        self.lobby.reorder()
        elections = [c.election for c in self.cores.values()]
        others = [e.id for e in elections] if len(elections) > 1 else []
        self.router.store.padding = max(state_padding(e, others) for e in elections)

    async def stop_background(self) -> None:
        """Every election's background work (see :meth:`Core.stop_background`)."""
        for core in list(self.cores.values()):
            await core.conversation.aclose()
        await self.router.aclose()
