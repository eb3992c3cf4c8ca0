"""Settings that keep codes safe: the secret key, and where the credentials may go."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from ballots.clock import ManualClock
from ballots.errors import ConfigError
from bot.settings import Settings
from channels.server import check_settings
from openprimary.app import build_core
from tests.factories import NOW, SECRET, sample_election, settings

GOOD = "3f9a1c0b7e5d42a8b6c1f0e9d8a7b6c5"


def from_env(tmp_path: Path, dotenv: str | None = None, **env: str) -> Settings:
    path = tmp_path / ".env"
    if dotenv is not None:
        path.write_text(dotenv)
    return Settings.from_env({"OPENPRIMARY_DATA_DIR": str(tmp_path / "var"), **env}, path)


def test_a_shared_redis_needs_a_key_and_none_is_made(tmp_path: Path) -> None:
    config = from_env(tmp_path, OPENPRIMARY_REDIS_URL="redis://127.0.0.1:6379/0")
    assert config.secret_key == ""
    assert not (tmp_path / "var" / "secret_key").exists()
    with pytest.raises(ConfigError, match=r"OPENPRIMARY_SECRET_KEY.*same key"):
        config.require("secret_key")


def test_the_embedded_redis_makes_a_private_strong_key_once(tmp_path: Path) -> None:
    first = from_env(tmp_path).secret_key
    path = tmp_path / "var" / "secret_key"
    assert len(first) >= 32 and path.stat().st_mode & 0o777 == 0o600
    assert from_env(tmp_path).secret_key == first


@pytest.mark.parametrize(
    ("key", "why"), [("short-key-0123456789", "at least 32"), ("ab" * 20, "predictable")]
)
def test_a_short_or_plain_key_is_refused(tmp_path: Path, key: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        from_env(tmp_path, OPENPRIMARY_SECRET_KEY=key)
    (tmp_path / "var").mkdir(mode=0o700)
    (tmp_path / "var" / "secret_key").write_text(key)
    (tmp_path / "var" / "secret_key").chmod(0o600)
    with pytest.raises(ConfigError, match=why):
        from_env(tmp_path)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    from_env(tmp_path)
    (tmp_path / "var" / "secret_key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        from_env(tmp_path)


def test_a_dotenv_may_not_redirect_the_credentials(tmp_path: Path) -> None:
    dotenv = "TWILIO_API_BASE=http://attacker.example\n"
    with pytest.raises(ConfigError, match="TWILIO_API_BASE"):
        from_env(tmp_path, dotenv, OPENPRIMARY_SECRET_KEY=GOOD)
    allowed = from_env(
        tmp_path, dotenv, OPENPRIMARY_SECRET_KEY=GOOD, OPENPRIMARY_ALLOW_API_BASE="1"
    )
    assert allowed.twilio_api_base == "http://attacker.example"
    # The real environment may point at a stand-in (tests do).
    (tmp_path / ".env").unlink()
    direct = from_env(tmp_path, OPENPRIMARY_SECRET_KEY=GOOD, TELEGRAM_API_BASE="http://127.0.0.1:1")
    assert direct.telegram_api_base == "http://127.0.0.1:1"


def test_serve_names_the_missing_key_with_a_shared_redis() -> None:
    config = settings(secret_key="", redis_url="redis://127.0.0.1:6379/0", telegram_bot_token="1:x")
    check_settings(config)  # the platform settings are there
    with pytest.raises(ConfigError, match="OPENPRIMARY_SECRET_KEY"):
        config.require("secret_key")


async def test_a_process_with_another_key_refuses_to_serve_the_election(redis: Redis) -> None:
    election = await sample_election(redis)
    await build_core(settings(), redis, ManualClock(NOW), election.id)
    other = settings(secret_key=GOOD)
    assert other.secret_key != SECRET
    with pytest.raises(ConfigError, match="another OPENPRIMARY_SECRET_KEY"):
        await build_core(other, redis, ManualClock(NOW), election.id)
    # The first key still works.
    await build_core(settings(), redis, ManualClock(NOW), election.id)
