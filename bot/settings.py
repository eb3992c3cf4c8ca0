"""Settings, read once from the environment (and an optional .env file)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from ballots.errors import ConfigError

_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_FROM = re.compile(r"^(\+[1-9]\d{6,14}|MG[0-9a-fA-F]{32})$")


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
    #: Delete (or edit) the platforms' copies of vote-bearing messages.
    delete_copies: bool = True
    #: Seconds before the first attempt at removing a copy, per channel (tests: 0).
    copy_delays: Mapping[str, float] = field(default_factory=dict, compare=False)
    env_names: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        dotenv: Path | None = Path(".env"),
        *,
        local_secret: bool = True,
    ) -> Settings:
        """Read the settings; a ``.env`` file fills in what the environment lacks.

        Without OPENPRIMARY_SECRET_KEY, a secret is kept in the data directory
        (made on first use) unless ``local_secret`` is false: for commands that
        touch no code, so that they leave nothing behind.
        """
        env: dict[str, str] = {}
        if dotenv is not None and dotenv.is_file():
            env.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        env.update(os.environ if environ is None else environ)

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

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
        if secret is None:
            secret = _local_secret(data_dir) if local_secret else ""
        elif len(secret) < 16:
            raise ConfigError("OPENPRIMARY_SECRET_KEY: must be at least 16 characters")

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
        if redis_url is not None and urlsplit(redis_url).scheme not in (
            "redis",
            "rediss",
            "unix",
        ):
            raise ConfigError(
                f"OPENPRIMARY_REDIS_URL={redis_url!r}: must start with redis://, rediss:// "
                "or unix://"
            )

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
            delete_copies=delete_raw in ("on", "1", "yes", "true"),
        )

    def require(self, *names: str) -> None:
        """Stop with a message naming each setting a command needs but lacks."""
        env_of = {f.name: f.name.upper() for f in fields(self)}
        env_of.update(
            redis_url="OPENPRIMARY_REDIS_URL",
            public_url="OPENPRIMARY_PUBLIC_URL",
            secret_key="OPENPRIMARY_SECRET_KEY",
        )
        missing = [env_of[n] for n in names if not getattr(self, n)]
        if missing:
            raise ConfigError("missing setting(s): " + ", ".join(missing))


def _local_secret(data_dir: Path) -> str:
    """A per-installation secret kept beside the embedded database.

    Used only when OPENPRIMARY_SECRET_KEY is unset (the demo, one machine):
    it must survive restarts, or every issued code would stop matching.
    """
    import secrets

    path = data_dir / "secret_key"
    if path.is_file():
        return path.read_text().strip()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
