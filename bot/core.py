"""The pieces of one running OpenPrimary, built once and passed in."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from redis.asyncio import Redis

from ballots.box import BallotBox
from ballots.clock import Clock, SystemClock
from ballots.codes import CodePolicy, Codes
from ballots.election import Election, bind_secret_key, get_election, list_elections
from ballots.errors import ConfigError
from ballots.program import program
from bot.alerts import Alerts, ChannelHealth
from bot.conversation import Conversation
from bot.copies import PlatformCopies
from bot.organiser import OrganiserCommands
from bot.outsiders import Outsiders
from bot.ports import Sender, TextRules
from bot.receipts import HeldReceipts
from bot.router import Router
from bot.settings import Settings
from bot.spend import SmsSpend
from bot.state import StateStore, state_padding


@dataclass
class Core:
    """Settings, Redis, the election and the services built on them."""

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

    def follow(self, election: Election) -> None:
        """Serve the election as it now stands (closed, extended, retitled...), from the
        next message on: every part of the core that holds it is given the new one."""
        self.election = election
        self.conversation.follow(election)
        self.router.store.padding = state_padding(election)
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


async def pick_election(redis: Redis, wanted: str | None) -> Election:
    """The election to serve: the one named, or the only one loaded."""
    if wanted:
        return await get_election(redis, wanted)
    loaded = await list_elections(redis)
    if len(loaded) == 1:
        return await get_election(redis, loaded[0])
    if not loaded:
        raise ConfigError(f"no election is loaded; run '{program()} election load FILE.toml'")
    raise ConfigError(
        f"{len(loaded)} elections are loaded ({', '.join(loaded)}); choose one with "
        "--election or OPENPRIMARY_ELECTION"
    )


async def build_core(
    settings: Settings,
    redis: Redis,
    clock: Clock | None = None,
    election_id: str | None = None,
    policy: CodePolicy | None = None,
    *,
    rules: Mapping[str, TextRules],
    senders: Mapping[str, Sender] | None = None,
) -> Core:
    """Wire the election's services together; ``rules`` are the channels' text rules
    and ``senders`` their senders (the composition root, ``openprimary.app``, passes
    them)."""
    clock = clock or SystemClock()
    election = await pick_election(redis, election_id or settings.election)
    settings.require("secret_key")
    await bind_secret_key(redis, election, settings.secret_key)
    policy = policy or CodePolicy(
        code_sms_per_hour=settings.code_sms_per_hour,
        guess_budget_per_hour=settings.code_guesses_per_hour,
    )
    codes = Codes(redis, settings.secret_key, clock, policy)
    box = BallotBox(redis, codes, clock, durable_replicas=settings.durable_replicas)
    senders = MappingProxyType(dict(senders or {}))
    alerts = Alerts(redis, clock, election, senders)
    health = ChannelHealth(alerts)
    spend = SmsSpend(redis, election.id, settings.sms_budget_segments, alerts)
    organisers = OrganiserCommands(
        redis, election, clock, settings, senders, rules, spend=spend, health=health
    )
    held = HeldReceipts(box, election, senders) if settings.durable_replicas else None
    conversation = Conversation(
        redis,
        election,
        codes,
        box,
        clock,
        extensions=[organisers],
        held=held,
        spend=spend,
        alerts=alerts,
    )
    store = StateStore(redis, settings.secret_key, padding=state_padding(election))
    copies = PlatformCopies(redis, delays=settings.copy_delays) if settings.delete_copies else None
    router = Router(
        redis,
        conversation,
        senders,
        store,
        copies,
        spend=spend,
        rules=rules,
        alerts=alerts,
        health=health,
        outsiders=Outsiders(redis, election.id, clock, settings.sms_budget_segments),
    )
    return Core(
        settings,
        redis,
        clock,
        election,
        codes,
        box,
        conversation,
        router,
        senders,
        copies,
        organisers,
        alerts,
    )
