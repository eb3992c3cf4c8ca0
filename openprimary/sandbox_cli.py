"""``openprimary sandbox``: the whole of ``serve`` on this machine, with simulated phones.

One command, one process, nothing to configure, nothing reaching a real phone: a fresh
embedded Redis in a temporary folder (deleted when the sandbox stops), the sample election (or
``--election FILE``) with a generated roll of ``--voters`` supporters, its count key (the
trustees' shares in that folder), and the server, with its webhooks, its console and its
public results page.  In place of Twilio and Telegram, the platform stand-ins
(:mod:`channels.standins`) run in-process on 127.0.0.1, so the real channel code runs: the
twilio library's REST client and python-telegram-bot's Bot API client talk to them, and the
console's phone simulator (:mod:`channels.sandbox`) posts Twilio's signed webhooks and
Telegram's updates to the server as the platforms would.

Why it refuses real credentials: a sandbox hands the channels settings of its own, but a
volunteer who has TWILIO_* or TELEGRAM_* in their shell (or ``.env``) is one mistake away
from texting real people; so it names them and starts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import socket
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TextIO
from urllib.parse import urlencode

from aiohttp import web
from dotenv import dotenv_values
from redis.asyncio import Redis

from ballots import audit
from ballots.clock import Clock, SystemClock
from ballots.connection import open_redis
from ballots.election import Election, read_election_file, save_election
from ballots.errors import ConfigError
from ballots.languages import SHIPPED
from ballots.roll import Supporter, import_roll
from ballots.trustees import make_count_key
from bot.core import Deployment
from bot.settings import Settings
from channels.sandbox import Person, Sandbox
from channels.sandbox import installer as sandbox_installer
from channels.server import check_settings, make_app, run_app
from channels.sms_channel import sms_installers
from channels.standins.telegram_api import TelegramAPI
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, OUR_NUMBER
from channels.telegram import serve_installers
from channels.web.guard import CONSOLE_APP, SIGNINS, make_signin
from openprimary.app import build
from openprimary.context import Context

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: The most supporters: their phones are Ofcom's drama range, 07700 900001 to 900999
#: (900000 is the election's own number).
MOST_VOTERS = 999
DEFAULT_VOTERS = 40
#: The count key the sandbox makes: 3 trustees' shares, any 2 unseal.
SHARES, THRESHOLD = 3, 2
#: The roll's Telegram ids for the supporters it links (every third), and the accounts of
#: the others (which the roll does not know), by supporter number.
LINKED_TELEGRAM, OWN_TELEGRAM = 700_000_000, 800_000_000
#: The organiser a sandbox adds when the election file lists none (someone must sign in).
ORGANISER = "tg:100001"
#: Who the audit trail says set the sandbox up.
ACTOR = "sandbox"
#: Names of settings that would reach a real platform: any variable with one of these
#: prefixes (those the settings read, and the twilio library's own) makes a sandbox refuse.
PLATFORM_PREFIXES = ("TWILIO_", "TELEGRAM_", "OPENPRIMARY_TWILIO_", "OPENPRIMARY_TELEGRAM_")
#: The bot the Telegram stand-in plays.
BOT_ID, BOT_USERNAME = 5_000_000_001, "openprimary_sandbox_bot"

FIRST_NAMES = (
    "Ann", "Bilal", "Carys", "Dev", "Erin", "Femi", "Gwen", "Hamza", "Iona", "Jack",
    "Kemi", "Liam", "Megan", "Nia", "Owen", "Priya", "Rhys", "Sara", "Tomasz", "Uma",
    "Vikram", "Wen", "Yusuf", "Zara", "Aled", "Bethan", "Chidi", "Dafydd", "Eilidh", "Farah",
)  # fmt: skip
SURNAMES = (
    "Hughes", "Khan", "Evans", "Shah", "Walsh", "Adeyemi", "Jones", "Begum", "Campbell",
    "Murphy", "Okoro", "Price", "Davies", "Nowak", "Patel", "Williams", "Ali", "Thomas",
    "Kowalski", "Roberts", "Singh", "Lewis", "Chen", "Morgan", "Ahmed", "Griffiths", "Wright",
    "Edwards", "Ibrahim", "Taylor",
)  # fmt: skip


def real_platform_settings(environ: Mapping[str, str], dotenv: Path | None) -> list[str]:
    """The platform settings given, each named with where it is set: the environment, or
    the ``.env`` file that every command reads."""
    found = [
        name for name, value in environ.items() if name.startswith(PLATFORM_PREFIXES) and value
    ]
    if dotenv is not None and dotenv.is_file():
        found += [
            f"{name} (in {dotenv})"
            for name, value in dotenv_values(dotenv).items()
            if name.startswith(PLATFORM_PREFIXES) and value and name not in environ
        ]
    return sorted(found)


def refuse_real_platforms(environ: Mapping[str, str], dotenv: Path | None) -> None:
    """Stop before anything starts if a setting could reach a real Twilio or Telegram."""
    found = real_platform_settings(environ, dotenv)
    if found:
        raise ConfigError(
            f"{', '.join(found)} {'is' if len(found) == 1 else 'are'} set: a sandbox never "
            "talks to a real Twilio or Telegram, and starts nothing while "
            f"{'it is' if len(found) == 1 else 'they are'} there. Unset "
            f"{'it' if len(found) == 1 else 'them'} for the sandbox (env -u NAME, or a shell "
            "without them), or move the .env file aside"
        )


def sample_roll(count: int, election: Election) -> list[Supporter]:
    """``count`` made-up supporters: phones in Ofcom's drama range, one in three with a
    Telegram account on the roll, languages and sections in turn where the election has
    several."""
    if not 1 <= count <= MOST_VOTERS:
        raise ConfigError(voters_refusal(count))
    languages = election.languages
    sections = election.section_names
    roll = []
    for n in range(1, count + 1):
        i = n - 1
        first = FIRST_NAMES[i % len(FIRST_NAMES)]
        # Every first name meets every surname before a name comes round again.
        last = SURNAMES[(7 * i + i // len(FIRST_NAMES)) % len(SURNAMES)]
        roll.append(
            Supporter(
                supporter_id=f"S{1000 + n}",
                name=f"{first} {last}",
                phone=f"+447700{900000 + n}",
                telegram_id=str(LINKED_TELEGRAM + n) if n % 3 == 2 else "",
                language=languages[i % len(languages)] if len(languages) > 1 else "",
                section=sections[i % len(sections)] if sections else "",
            )
        )
    return roll


def voters_refusal(count: int) -> str:
    return (
        f"--voters {count}: give 1 to {MOST_VOTERS} (the sandbox's phones are Ofcom's drama "
        "range, +447700900001 to +447700900999, which no real phone has)"
    )


def _listen(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:``port`` (0: a free one), so the URL is known first."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"--port {port}: cannot listen on 127.0.0.1:{port} ({err.strerror}); give another "
            "port, or --port 0 for a free one"
        ) from err
    return sock


async def run_sandbox(args: argparse.Namespace, ctx: Context) -> int:
    """Check everything, start the sandbox, serve until Ctrl-C (SIGINT) or SIGTERM, then stop
    it all: the server, the stand-ins and the embedded Redis, and remove its folder."""
    refuse_real_platforms(os.environ, Path(".env"))
    if not 1 <= args.voters <= MOST_VOTERS:
        raise ConfigError(voters_refusal(args.voters))
    election = read_election_file(Path(args.election))  # FILE:LINE problems, nothing started
    sock = _listen(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Ctrl-C, SIGTERM or a closed terminal: stop serving, then everything below stops in turn.
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    folder: Path | None = None
    try:
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        folder = Path(tempfile.mkdtemp(prefix="openprimary-sandbox-"))
        handle = open_redis(None, folder / "redis")
        try:
            await _sandbox(args, ctx, election, folder, handle.client, sock, stop)
        finally:
            await handle.close()  # the embedded redis-server stops with it
    finally:
        sock.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        for sig in signals:
            loop.remove_signal_handler(sig)
    ctx.out.write(f"Sandbox stopped; removed {folder}.\n")
    ctx.out.flush()
    return 0


async def _sandbox(
    args: argparse.Namespace,
    ctx: Context,
    election: Election,
    folder: Path,
    redis: Redis,
    sock: socket.socket,
    stop: asyncio.Event,
) -> None:
    """The sandbox proper, on its Redis and socket: until ``stop`` is set."""
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    auth_token = secrets.token_hex(16)
    async with (
        TwilioApiStandIn(ACCOUNT_SID, auth_token) as twilio,
        TelegramAPI(f"{BOT_ID}:{secrets.token_urlsafe(24)}", BOT_USERNAME) as telegram,
    ):
        settings = _settings(ctx.settings, folder, url, auth_token, twilio, telegram)
        check_settings(settings)
        clock = SystemClock()
        election, roll = await _load(redis, clock, election, args.voters, folder / "trustees")
        deployment = await build(settings, redis, clock, election.id)
        people = await _people(deployment, election, roll)
        assert settings.telegram_webhook_secret is not None
        sandbox = Sandbox(
            twilio,
            telegram,
            url,
            auth_token,
            settings.telegram_webhook_secret,
            folder / "trustees",
            THRESHOLD,
            people,
            election.organisers,
        )
        app = make_app(
            deployment,
            [*sms_installers(settings), *serve_installers(settings), sandbox_installer(sandbox)],
        )
        started = asyncio.Event()
        server = asyncio.create_task(
            run_app(app, "127.0.0.1", port, stop=stop, sock=sock, started=started)
        )
        ready = asyncio.create_task(started.wait())
        try:
            await asyncio.wait([server, ready], return_when=asyncio.FIRST_COMPLETED)
            if not server.done():
                organiser = _organiser(election)
                code = await _first_code(app, deployment, sandbox, organiser)
                _welcome(ctx.out, election, folder, url, organiser, code, roll, people)
            await server  # until SIGINT or SIGTERM (its failure, if it failed, is raised here)
        finally:
            ready.cancel()
            if not server.done():  # the start-up failed after the server began: stop it
                stop.set()
                await asyncio.gather(server, return_exceptions=True)


def _settings(
    given: Settings,
    folder: Path,
    url: str,
    auth_token: str,
    twilio: TwilioApiStandIn,
    telegram: TelegramAPI,
) -> Settings:
    """The environment's settings (rates, budgets...), with everything about where data goes
    and which platform is talked to replaced by the sandbox's own."""
    return replace(
        given,
        redis_url=None,
        data_dir=folder / "redis",
        secret_key=secrets.token_hex(32),
        public_url=url,
        election=None,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=auth_token,
        twilio_from=OUR_NUMBER,
        twilio_api_base=twilio.base_url,
        telegram_bot_token=telegram.token,
        telegram_webhook_secret=secrets.token_urlsafe(32),
        telegram_api_base=telegram.url,
    )


async def _load(
    redis: Redis, clock: Clock, election: Election, voters: int, trustees: Path
) -> tuple[Election, list[Supporter]]:
    """Load the election (open for a week from now), its roll and its count key."""
    now = clock.now()
    election = replace(
        election,
        opens=min(election.opens, now - timedelta(hours=1)),
        closes=max(election.closes, now + timedelta(days=7)),
        organisers=election.organisers or (ORGANISER,),
    )
    election = await save_election(redis, election)
    roll = sample_roll(voters, election)
    await import_roll(redis, election, roll)
    key, _ = await make_count_key(redis, election, trustees, SHARES, THRESHOLD)
    await audit.record(
        redis,
        clock,
        election.id,
        ACTOR,
        "count key made",
        shares=SHARES,
        threshold=THRESHOLD,
        key_id=key.id,
        replaced=None,
    )
    await audit.record(redis, clock, election.id, ACTOR, "sandbox started", supporters=voters)
    return election, roll


async def _people(
    deployment: Deployment, election: Election, roll: Sequence[Supporter]
) -> list[Person]:
    """The roll as the phone simulator offers it, with the voting codes "posted" to each."""
    codes: dict[str, str] = {}
    if "code" in election.identity:
        rows = await deployment.codes.issue_voting_codes(election, [s.supporter_id for s in roll])
        codes = {row[0]: row[3] for row in rows}
    return [
        Person(
            supporter_id=s.supporter_id,
            name=s.name,
            phone=s.phone,
            telegram_id=int(s.telegram_id) if s.telegram_id else OWN_TELEGRAM + n,
            linked=bool(s.telegram_id),
            language=s.language,
            voting_code=codes.get(s.supporter_id, ""),
        )
        for n, s in enumerate(roll, start=1)
    ]


def _organiser(election: Election) -> str:
    """The organiser whose sign-in code the sandbox prints: on Telegram if one is."""
    telegram = [o for o in election.organisers if o.startswith("tg:")]
    return (telegram or list(election.organisers))[0]


async def _first_code(
    app: web.Application, deployment: Deployment, sandbox: Sandbox, organiser: str
) -> str | None:
    """Ask for the organiser's sign-in code as the console's sign-in page does, and read it
    from the simulated phone it went to."""
    signin = make_signin(app[CONSOLE_APP][SIGNINS], deployment.first)
    asked = await signin.request_code(organiser, ACTOR)
    await signin.drain()
    if asked.actor is None:
        return None
    found = sandbox.signin_code(asked.actor)
    return found[0] if found else None


def _welcome(
    out: TextIO,
    election: Election,
    folder: Path,
    url: str,
    organiser: str,
    code: str | None,
    roll: Sequence[Supporter],
    people: Sequence[Person],
) -> None:
    """What the sandbox is, where its data is, and the one URL to open, with the code."""
    address = urlencode({"address": organiser}, safe=":")
    linked = sum(1 for p in people if p.linked)
    languages = ", ".join(SHIPPED[code].english for code in election.languages)
    by = "Telegram" if organiser.startswith("tg:") else "SMS"
    out.write(
        f"OpenPrimary sandbox: {election.title} ({election.id})\n"
        "Sandbox: nothing here reaches a real phone. Twilio and Telegram are stand-ins in "
        "this process.\n"
        f"  data: a fresh Redis in {folder} (deleted when the sandbox stops)\n"
        f"  roll: {len(roll)} supporters, {roll[0].supporter_id} to {roll[-1].supporter_id}, "
        f"phones {roll[0].phone} to {roll[-1].phone}, {linked} with Telegram on the roll; "
        f"languages: {languages}\n"
        f"  count key: {SHARES} trustees' shares in {folder / 'trustees'}, any {THRESHOLD} "
        "unseal (the console's Results page does it, after the close)\n"
        "\n"
        f"Open {url}/organisers/{election.id}/sign-in/code?{address}\n"
    )
    if code is not None:
        out.write(
            f"and sign in as {organiser} with the code {code} (sent to that organiser's "
            f"simulated {by}; the sign-in pages show the latest code).\n"
        )
    else:
        out.write(
            f"The sign-in code for {organiser} did not arrive (see the log with --verbose); "
            "ask for one on the sign-in page, which shows it.\n"
        )
    out.write(
        "Then open the Phone simulator (in the console's menu) to text or chat as any "
        "supporter: a tab per phone.\n"
        "Ctrl-C stops the sandbox and removes its data.\n"
    )
    out.flush()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``openprimary sandbox``."""
    parser = sub.add_parser(
        "sandbox",
        help="try serve and the console locally: simulated phones, no Twilio or Telegram",
        description=(
            "Start serve on 127.0.0.1 with a fresh embedded Redis in a temporary folder, the "
            "sample election (or --election FILE) and a generated roll, its count key, and "
            "stand-ins for Twilio and Telegram in the same process. It prints the URL to "
            "open and an organiser's sign-in code; the console's Phone simulator texts and "
            "chats as any supporter. Nothing reaches a real phone: it refuses to start while "
            "TWILIO_* or TELEGRAM_* settings are set. Ctrl-C stops everything and removes "
            "the folder."
        ),
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="port to listen on, on 127.0.0.1; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--voters",
        type=int,
        default=DEFAULT_VOTERS,
        metavar="N",
        help=f"supporters on the generated roll, 1 to {MOST_VOTERS} (default: %(default)s)",
    )
    parser.add_argument(
        "--election",
        metavar="FILE",
        default=str(EXAMPLES / "election.toml"),
        help="the election file to load (default: the sample, examples/election.toml)",
    )
    # Its own Redis, made once its settings are checked; never a configured one.
    parser.set_defaults(handler=run_sandbox, own_redis=True, embedded_only=True)
