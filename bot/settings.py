"""Settings, read once from the environment (and an optional .env file)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from dotenv import dotenv_values

from ballots.errors import ConfigError
from ballots.redis_url import parse_redis_url

_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_FROM = re.compile(r"^(\+[1-9]\d{6,14}|MG[0-9a-fA-F]{32})$")
#: An ISO 4217 currency code: three letters.
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class Settings:
    """Every setting OpenPrimary reads, with the environment variable it comes from."""

    redis_url: str | None = None
    data_dir: Path = Path("var")
    secret_key: str = ""
    public_url: str | None = None
    election: str | None = None
    default_region: str = "GB"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_api_base: str | None = None
    telegram_bot_token: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_api_base: str | None = None
    sms_rate: float = 10.0
    telegram_rate: float = 25.0
    telegram_chat_rate: float = 1.0
    #: Code SMS the whole election may send in an hour (a ceiling against SMS pumping).
    code_sms_per_hour: int = 2000
    #: Wrong voting codes the election tolerates in an hour before every chat is slowed.
    code_guesses_per_hour: int = 200
    #: Delete (or edit) the platforms' copies of vote-bearing messages.
    delete_copies: bool = True
    #: Replicas that must hold a ballot before the voter gets its receipt (Redis WAIT).
    durable_replicas: int = 0
    #: The most SMS segments the election may send (0: no ceiling); see ``bot.spend``.
    sms_budget_segments: int = 0
    #: The most SMS segments every election together may send (0: no ceiling).
    sms_budget_total: int = 0
    #: The currency SMS prices are given in, as an ISO 4217 code (the console's costs).
    currency: str = "GBP"
    #: The reverse proxies whose X-Forwarded-For is believed (addresses or networks); none
    #: by default, so a client cannot name its own address.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    #: The bearer token GET /metrics requires (None: /metrics is open to whoever reaches it).
    metrics_token: str | None = None
    #: Seconds before the first attempt at removing a copy, per channel (tests: 0).
    copy_delays: Mapping[str, float] = field(default_factory=dict, compare=False)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        dotenv: Path | None = Path(".env"),
        *,
        local_secret: bool = True,
        embedded: bool = False,
    ) -> Settings:
        """Read the settings; a ``.env`` file fills in what the environment lacks.

        Without OPENPRIMARY_SECRET_KEY, a secret is kept in the data directory
        (made on first use) unless ``local_secret`` is false: for commands that
        touch no code, so that they leave nothing behind.  ``embedded`` ignores
        OPENPRIMARY_REDIS_URL: the command runs on the embedded Redis only (the demo).
        """
        env: dict[str, str] = {}
        real = os.environ if environ is None else environ
        if dotenv is not None and dotenv.is_file():
            from_file = {k: v for k, v in dotenv_values(dotenv).items() if v is not None}
            # An API base receives the credentials: a stray .env must not redirect them.
            redirected = sorted(k for k in from_file if k.endswith("_API_BASE") and from_file[k])
            if redirected and real.get(ALLOW_API_BASE) != "1":
                raise ConfigError(
                    f"{dotenv} sets {', '.join(redirected)}, which would receive the "
                    "credentials; set it in the environment instead (with "
                    "OPENPRIMARY_ALLOW_API_BASE=1, for tests and local stand-ins)"
                )
            env.update(from_file)
        env.update(real)
        if embedded:
            env.pop("OPENPRIMARY_REDIS_URL", None)
        _read_files(env)

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            if PLACEHOLDER in value:
                raise ConfigError(f"{name}: still holds a {PLACEHOLDER} placeholder; set it")
            return value or None

        def count(name: str, default: int, least: int = 1) -> int:
            raw = get(name)
            if raw is None:
                return default
            if not raw.strip().isascii() or not raw.strip().isdigit() or int(raw) < least:
                raise ConfigError(f"{name}={raw!r}: must be a whole number, {least} or more")
            return int(raw)

        def rate(name: str, default: float) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(
                    f"{name}={raw!r}: must be a number of messages per second"
                ) from None
            if not 0 < value <= 10_000:
                raise ConfigError(f"{name}={raw!r}: must be above 0 and at most 10000")
            return value

        delete_raw = (get("OPENPRIMARY_DELETE_COPIES") or "on").lower()
        if delete_raw not in ("on", "off", "1", "0", "yes", "no", "true", "false"):
            raise ConfigError(f"OPENPRIMARY_DELETE_COPIES={delete_raw!r}: must be on or off")

        secret = get("OPENPRIMARY_SECRET_KEY")
        data_dir = Path(get("OPENPRIMARY_DATA_DIR") or "var")
        if secret is not None:
            check_secret(secret, "OPENPRIMARY_SECRET_KEY")
        elif local_secret and get("OPENPRIMARY_REDIS_URL") is None:
            # Only the embedded, one-machine Redis may have a key made for it: with a
            # shared Redis every process must be given the same one.
            secret = _local_secret(data_dir)
        else:
            secret = ""

        public_url = get("OPENPRIMARY_PUBLIC_URL")
        if public_url is not None:
            parts = urlsplit(public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    f"OPENPRIMARY_PUBLIC_URL={public_url!r}: must be a URL such as "
                    "https://vote.example.org"
                )
            public_url = public_url.rstrip("/")

        redis_url = get("OPENPRIMARY_REDIS_URL")
        if redis_url is not None:
            parse_redis_url(redis_url)  # ConfigError saying what is wrong with it

        sid = get("TWILIO_ACCOUNT_SID")
        if sid is not None and not _SID.match(sid):
            raise ConfigError("TWILIO_ACCOUNT_SID: must be 'AC' followed by 32 hex digits")
        sender = get("TWILIO_FROM")
        if sender is not None and not _FROM.match(sender):
            raise ConfigError(
                "TWILIO_FROM: must be a number in E.164 form (+447700900000) or a "
                "Messaging Service SID (MG...)"
            )
        for name in ("TWILIO_API_BASE", "TELEGRAM_API_BASE"):
            base = get(name)
            if base is not None and urlsplit(base).scheme not in ("http", "https"):
                raise ConfigError(f"{name}={base!r}: must be an http(s) URL")

        currency_raw = get("OPENPRIMARY_CURRENCY")
        currency = (currency_raw or "GBP").upper()
        if not _CURRENCY.match(currency):
            raise ConfigError(
                f"OPENPRIMARY_CURRENCY={currency_raw!r}: must be an ISO 4217 currency code such as "
                "GBP, EUR or USD"
            )

        metrics_token = get("OPENPRIMARY_METRICS_TOKEN")
        if metrics_token is not None:
            check_secret(metrics_token, "OPENPRIMARY_METRICS_TOKEN")
            if (
                not metrics_token.isascii()
                or not metrics_token.isprintable()
                or " " in metrics_token
            ):
                raise ConfigError("OPENPRIMARY_METRICS_TOKEN: letters, digits and punctuation only")

        return cls(
            redis_url=redis_url,
            data_dir=data_dir,
            secret_key=secret,
            public_url=public_url,
            election=get("OPENPRIMARY_ELECTION"),
            default_region=(get("OPENPRIMARY_DEFAULT_REGION") or "GB").upper(),
            twilio_account_sid=sid,
            twilio_auth_token=get("TWILIO_AUTH_TOKEN"),
            twilio_from=sender,
            twilio_api_base=(get("TWILIO_API_BASE") or "").rstrip("/") or None,
            telegram_bot_token=get("TELEGRAM_BOT_TOKEN"),
            telegram_webhook_secret=get("TELEGRAM_WEBHOOK_SECRET"),
            telegram_api_base=(get("TELEGRAM_API_BASE") or "").rstrip("/") or None,
            sms_rate=rate("OPENPRIMARY_SMS_RATE", 10.0),
            telegram_rate=rate("OPENPRIMARY_TELEGRAM_RATE", 25.0),
            telegram_chat_rate=rate("OPENPRIMARY_TELEGRAM_CHAT_RATE", 1.0),
            code_sms_per_hour=count("OPENPRIMARY_CODE_SMS_PER_HOUR", 2000),
            code_guesses_per_hour=count("OPENPRIMARY_CODE_GUESSES_PER_HOUR", 200),
            delete_copies=delete_raw in ("on", "1", "yes", "true"),
            durable_replicas=count("OPENPRIMARY_DURABLE_REPLICAS", 0, least=0),
            sms_budget_segments=count("OPENPRIMARY_SMS_BUDGET_SEGMENTS", 0, least=0),
            sms_budget_total=count("OPENPRIMARY_SMS_BUDGET_TOTAL", 0, least=0),
            currency=currency,
            trusted_proxies=_networks(
                "OPENPRIMARY_TRUSTED_PROXIES", get("OPENPRIMARY_TRUSTED_PROXIES")
            ),
            metrics_token=metrics_token,
        )

    def require(self, *names: str) -> None:
        """Stop with a message naming each setting a command needs but lacks.

        ``secret_key`` against a configured Redis says why: every process
        must share one key, so none may make its own.
        """
        if "secret_key" in names and not self.secret_key and self.redis_url:
            raise ConfigError(
                "missing setting: OPENPRIMARY_SECRET_KEY (with OPENPRIMARY_REDIS_URL every "
                "process must be given the same key, at least 32 random characters: "
                "python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        missing = [ENV_NAMES[n] for n in names if not getattr(self, n)]
        if missing:
            raise ConfigError("missing setting(s): " + ", ".join(missing))


#: The environment variable each setting is read from, by field.  The settings reference
#: (docs/settings.md) documents every one, and tests/test_docs.py checks both ways that it
#: does and that :meth:`Settings.from_env` reads each into its field.
ENV_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "redis_url": "OPENPRIMARY_REDIS_URL",
        "data_dir": "OPENPRIMARY_DATA_DIR",
        "secret_key": "OPENPRIMARY_SECRET_KEY",
        "public_url": "OPENPRIMARY_PUBLIC_URL",
        "election": "OPENPRIMARY_ELECTION",
        "default_region": "OPENPRIMARY_DEFAULT_REGION",
        "twilio_account_sid": "TWILIO_ACCOUNT_SID",
        "twilio_auth_token": "TWILIO_AUTH_TOKEN",
        "twilio_from": "TWILIO_FROM",
        "twilio_api_base": "TWILIO_API_BASE",
        "telegram_bot_token": "TELEGRAM_BOT_TOKEN",
        "telegram_webhook_secret": "TELEGRAM_WEBHOOK_SECRET",
        "telegram_api_base": "TELEGRAM_API_BASE",
        "sms_rate": "OPENPRIMARY_SMS_RATE",
        "telegram_rate": "OPENPRIMARY_TELEGRAM_RATE",
        "telegram_chat_rate": "OPENPRIMARY_TELEGRAM_CHAT_RATE",
        "code_sms_per_hour": "OPENPRIMARY_CODE_SMS_PER_HOUR",
        "code_guesses_per_hour": "OPENPRIMARY_CODE_GUESSES_PER_HOUR",
        "delete_copies": "OPENPRIMARY_DELETE_COPIES",
        "durable_replicas": "OPENPRIMARY_DURABLE_REPLICAS",
        "sms_budget_segments": "OPENPRIMARY_SMS_BUDGET_SEGMENTS",
        "sms_budget_total": "OPENPRIMARY_SMS_BUDGET_TOTAL",
        "currency": "OPENPRIMARY_CURRENCY",
        "trusted_proxies": "OPENPRIMARY_TRUSTED_PROXIES",
        "metrics_token": "OPENPRIMARY_METRICS_TOKEN",
    }
)

#: Read besides: a ``.env`` file may point an API base elsewhere only with this set to 1 in the
#: real environment (tests and local stand-ins).
ALLOW_API_BASE = "OPENPRIMARY_ALLOW_API_BASE"

#: What the deployment kit's templates (deploy/) put where a secret goes: never a value.
PLACEHOLDER = "CHANGE-ME"

#: Settings that may be read from a file instead, named by the setting's name and ``_FILE``
#: (``OPENPRIMARY_SECRET_KEY_FILE=/run/secrets/secret-key``): Docker's secrets, systemd's
#: ``LoadCredential=``.  The file's text, less the white space around it; an empty file
#: leaves the setting unset.
FROM_FILES = (
    "OPENPRIMARY_REDIS_URL",
    "OPENPRIMARY_SECRET_KEY",
    "OPENPRIMARY_METRICS_TOKEN",
    "TWILIO_AUTH_TOKEN",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
)


def _read_files(env: dict[str, str]) -> None:
    """Fill in each of :data:`FROM_FILES` whose ``_FILE`` twin is set (not both at once)."""
    for name in FROM_FILES:
        path = env.get(f"{name}_FILE", "").strip()
        if not path:
            continue
        if env.get(name, "").strip():
            raise ConfigError(f"{name} and {name}_FILE are both set: keep one")
        try:
            env[name] = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{name}_FILE={path!r}: cannot be read ({err})") from None


#: The shortest secret key accepted, and the fewest different characters in it.
MIN_SECRET = 32
MIN_DISTINCT = 8


def check_secret(value: str, where: str) -> str:
    """Refuse a secret key too short or too plain to keep codes and chats safe."""
    hint = "for example: python -c 'import secrets; print(secrets.token_hex(32))'"
    if len(value) < MIN_SECRET:
        raise ConfigError(f"{where}: must be at least {MIN_SECRET} characters ({hint})")
    if len(set(value)) < MIN_DISTINCT:
        raise ConfigError(f"{where}: too predictable, use a random key ({hint})")
    return value


def _local_secret(data_dir: Path) -> str:
    """A per-installation secret kept beside the embedded database.

    Used only when OPENPRIMARY_SECRET_KEY is unset (the demo, one machine):
    it must survive restarts, or every issued code would stop matching.
    """
    import secrets

    path = data_dir / "secret_key"
    if path.is_file():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                f"{path}: readable by others (mode {mode:o}); make it private: chmod 600 {path}"
            )
        return check_secret(path.read_text().strip(), str(path))
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def _networks(name: str, raw: str | None) -> tuple[IPv4Network | IPv6Network, ...]:
    """Addresses or CIDR networks, separated by commas or spaces."""
    found = []
    for item in (raw or "").replace(",", " ").split():
        try:
            found.append(ip_network(item, strict=False))
        except ValueError as err:
            raise ConfigError(
                f"{name}: {item!r} is not an address or a network such as 10.0.0.0/8 ({err})"
            ) from None
    return tuple(found)
