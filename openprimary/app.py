"""The composition root: settings, Redis and the channels' parts, wired into the core once.

Every command and test that needs the core gets it from here (``serve``, ``remind``,
``demo``): :func:`build` makes the deployment (the parts every election shares, and each
election's services), :func:`reminder_worker` the reminder worker, each from the one rate
limiter of the process.  The core (``bot``) never reaches for a channel: what it needs from
them (the text rules each channel imposes, its senders) is built first and handed in, and
never changed after.  The channels' web parts (``channels.server.make_app`` with their
installers) then open and close the senders with the app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from redis.asyncio import Redis

from ballots.box import BallotBox
from ballots.clock import Clock, SystemClock
from ballots.codes import CodePolicy, Codes
from ballots.election import Election, bind_secret_key, get_election, list_elections
from ballots.errors import ConfigError
from ballots.program import program
from bot.alerts import Alerts, ChannelHealth
from bot.conversation import DONE_KEPT, Conversation
from bot.copies import PlatformCopies
from bot.core import Core, Deployment
from bot.lobby import Lobby
from bot.messages import Channel
from bot.organiser import OrganiserCommands
from bot.outsiders import Outsiders
from bot.ports import Sender
from bot.ratelimit import RateLimiter, limiter_for
from bot.receipts import HeldReceipts
from bot.reminders.common import HEARTBEAT, MAX_SMS_SEGMENTS
from bot.reminders.worker import Worker, default_concurrency
from bot.router import Router
from bot.settings import Settings
from bot.spend import SmsSpend
from bot.state import StateStore
from channels.rules import TEXT_RULES
from channels.senders import build_senders

__all__ = ["TEXT_RULES", "build", "build_core", "reminder_worker", "served_elections"]


def wanted_elections(named: str | Iterable[str] | None) -> frozenset[str] | None:
    """The elections ``--election`` (or OPENPRIMARY_ELECTION) names: one id, or several
    separated by commas; None when none is named."""
    if named is None:
        return None
    given = [named] if isinstance(named, str) else list(named)
    ids = frozenset(part.strip() for item in given for part in item.split(",") if part.strip())
    return ids or None


async def served_elections(
    redis: Redis, clock: Clock, only: frozenset[str] | None = None
) -> list[Election]:
    """The elections a deployment serves: the ones named, or every one loaded that has not
    closed more than a day ago (its voters may still ask for their receipt); the only one
    loaded, whatever its dates."""
    if only is not None:
        return [await get_election(redis, eid) for eid in sorted(only)]
    loaded = await list_elections(redis)
    if not loaded:
        raise ConfigError(f"no election is loaded; run '{program()} election load FILE.toml'")
    elections = [await get_election(redis, eid) for eid in loaded]
    if len(elections) == 1:
        return elections
    now = clock.now()
    current = [e for e in elections if e.closes + DONE_KEPT > now]
    if not current:
        raise ConfigError(
            f"{len(loaded)} elections are loaded ({', '.join(loaded)}) and every one closed "
            "more than a day ago; name the ones to serve with --election ID[,ID...]"
        )
    return current


async def build(
    settings: Settings,
    redis: Redis,
    clock: Clock | None = None,
    elections: str | Iterable[str] | None = None,
    policy: CodePolicy | None = None,
    *,
    senders: Mapping[str, Sender] | None = None,
    limiter: RateLimiter | None = None,
) -> Deployment:
    """The deployment: every election served (``elections``, else OPENPRIMARY_ELECTION, else
    :func:`served_elections`), on the channels the settings call for.

    The senders are the ones the settings call for (Twilio with TWILIO_*, the Bot API with
    TELEGRAM_BOT_TOKEN); ``senders`` puts others in their place, channel by channel (the
    demo's console, tests' recorders).  ``limiter``: the process's one rate limiter (made
    here if not given).
    """
    clock = clock or SystemClock()
    settings.require("secret_key")
    only = wanted_elections(elections) or wanted_elections(settings.election)
    chosen = await served_elections(redis, clock, only)
    limiter = limiter or limiter_for(settings, redis)
    given = dict(senders or {})
    wanted = [ch for ch in Channel if ch not in given]
    built = build_senders(settings, redis, limiter, wanted=wanted)
    built.update(given)
    shared = MappingProxyType(built)
    policy = policy or CodePolicy(
        code_sms_per_hour=settings.code_sms_per_hour,
        guess_budget_per_hour=settings.code_guesses_per_hour,
    )
    codes = Codes(redis, settings.secret_key, clock, policy)
    box = BallotBox(redis, codes, clock, durable_replicas=settings.durable_replicas)
    lobby = Lobby(redis, box)
    store = StateStore(redis, settings.secret_key)
    copies = PlatformCopies(redis, delays=settings.copy_delays) if settings.delete_copies else None
    router = Router(redis, lobby, shared, store, copies, spends={}, rules=TEXT_RULES)
    deployment = Deployment(
        settings,
        redis,
        clock,
        codes,
        box,
        lobby,
        router,
        shared,
        TEXT_RULES,
        copies,
        make_core=_election_core,
        only=only,
        limiter=limiter,
    )
    for election in chosen:
        deployment.add(await _election_core(deployment, election))
    if settings.sms_budget_total:
        # Alerts about it go to the first election's organisers.
        deployment.whole_spend = SmsSpend.deployment(
            redis, settings.sms_budget_total, deployment.first.alerts
        )
        for core in deployment.cores.values():
            if core.spend is not None:
                core.spend.whole = deployment.whole_spend
    # What is no one election's (a sender the rolls do not know, Redis refusing writes, a
    # channel failing) is told to, and counted against, the first election's organisers.
    first = deployment.first
    router.alerts = first.alerts
    router.health = ChannelHealth(first.alerts) if first.alerts is not None else None
    router.outsiders = Outsiders(redis, first.election.id, clock, settings.sms_budget_segments)
    return deployment


async def _election_core(deployment: Deployment, election: Election) -> Core:
    """One election's services, on the deployment's shared parts."""
    settings, redis, clock = deployment.settings, deployment.redis, deployment.clock
    await bind_secret_key(redis, election, settings.secret_key)
    senders = deployment.senders
    alerts = Alerts(redis, clock, election, senders)
    health = ChannelHealth(alerts)
    spend = SmsSpend(
        redis, election.id, settings.sms_budget_segments, alerts, whole=deployment.whole_spend
    )
    limiter = deployment.limiter
    assert limiter is not None, "made by build()"

    def worker() -> Worker:
        return reminder_worker(settings, redis, clock, senders, limiter, spend=spend, health=health)

    organisers = OrganiserCommands(
        redis,
        election,
        clock,
        settings,
        senders,
        deployment.rules,
        spend=spend,
        health=health,
        worker=worker,
    )
    # Where voters find their receipts once results are published: the public results page.
    check_url = f"{settings.public_url}/results/{election.id}" if settings.public_url else None
    held = (
        HeldReceipts(deployment.box, election, senders, check_url=check_url)
        if settings.durable_replicas
        else None
    )
    conversation = Conversation(
        redis,
        election,
        deployment.codes,
        deployment.box,
        clock,
        extensions=[organisers],
        held=held,
        spend=spend,
        alerts=alerts,
    )
    conversation.check_url = check_url
    deployment.router.spends[election.id] = spend
    return Core(
        settings,
        redis,
        clock,
        election,
        deployment.codes,
        deployment.box,
        conversation,
        deployment.router,
        senders,
        deployment.copies,
        organisers,
        alerts,
        spend=spend,
    )


def sms_spend(
    settings: Settings, redis: Redis, election: Election, alerts: Alerts | None
) -> SmsSpend:
    """An election's SMS spend, within the deployment's budget if there is one (for a
    command that works on one election: ``remind``)."""
    whole = (
        SmsSpend.deployment(redis, settings.sms_budget_total, alerts)
        if settings.sms_budget_total
        else None
    )
    return SmsSpend(redis, election.id, settings.sms_budget_segments, alerts, whole=whole)


def reminder_worker(
    settings: Settings,
    redis: Redis,
    clock: Clock,
    senders: Mapping[str, Sender],
    limiter: RateLimiter,
    *,
    spend: SmsSpend | None,
    health: ChannelHealth | None,
    concurrency: int | None = None,
    heartbeat: float = HEARTBEAT,
    max_segments: int = MAX_SMS_SEGMENTS,
) -> Worker:
    """The reminder worker, for ``serve`` (a job started from a chat or the console) and
    ``remind`` alike: the process's limiter and senders, the election's spend and health."""
    rates = {Channel.SMS: settings.sms_rate, Channel.TELEGRAM: settings.telegram_rate}
    return Worker(
        redis,
        senders,
        limiter,
        TEXT_RULES,
        clock=clock,
        concurrency={ch: concurrency or default_concurrency(rate) for ch, rate in rates.items()},
        durable_replicas=settings.durable_replicas,
        spend=spend,
        health=health,
        heartbeat=heartbeat,
        max_segments=max_segments,
    )


async def build_core(
    settings: Settings,
    redis: Redis,
    clock: Clock | None = None,
    election_id: str | None = None,
    policy: CodePolicy | None = None,
    *,
    senders: Mapping[str, Sender] | None = None,
) -> Core:
    """One election's services, in a deployment of its own: the one named, or the only
    one loaded (for the commands and tests that work on one election)."""
    wanted = election_id or settings.election
    if not wanted:
        loaded = await list_elections(redis)
        if len(loaded) > 1:
            raise ConfigError(
                f"{len(loaded)} elections are loaded ({', '.join(loaded)}); choose one with "
                "--election or OPENPRIMARY_ELECTION"
            )
    deployment = await build(settings, redis, clock, wanted, policy, senders=senders)
    return deployment.first
