"""GET /metrics for monitoring (``channels.monitoring``): behind OPENPRIMARY_METRICS_TOKEN,
responses counted by route and status, gauges read from Redis at each scrape (an open
election, the SMS budgets, the latest reminder job, whether Redis takes writes), and
``serve --workers`` reporting every worker's counters whichever worker answers.  Also the
settings' ``_FILE`` forms (Docker secrets, systemd credentials) and the CHANGE-ME guard."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, TCPConnector
from redis.asyncio import Redis

from ballots.connection import is_cluster
from ballots.errors import ConfigError
from bot.reminders import Reminders, plan
from bot.settings import Settings
from channels.monitoring import authorised, route_of
from channels.rules import TEXT_RULES
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, TwilioPhone, inbound_form, sign
from tests.factories import sample_election
from tests.sms_support import (
    ANN,
    AUTH_TOKEN,
    PUBLIC_URL,
    SmsStack,
    serve_env,
    serve_workers,
    sms_stack,
)

TOKEN = "9f8e7d6c5b4a39281706f5e4d3c2b1a0-metrics"


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample's value in Prometheus text, or None."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = "^" + re.escape(name + (f"{{{wanted}}}" if labels else "")) + r" (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else None


async def scrape(stack: SmsStack, token: str | None = TOKEN) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with stack.session.get(stack.url + "/metrics", headers=headers) as resp:
        return resp.status, await resp.text()


# --- the token --------------------------------------------------------------------------


async def test_metrics_need_the_token_when_one_is_set(redis: Redis) -> None:
    async with sms_stack(redis, config_changes={"metrics_token": TOKEN}) as stack:
        for token in (None, "wrong-token", TOKEN[:-1], TOKEN + "x"):
            status, text = await scrape(stack, token)
            assert status == 401 and "openprimary_" not in text
        async with stack.session.get(
            stack.url + "/metrics", headers={"Authorization": f"Basic {TOKEN}"}
        ) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        status, text = await scrape(stack)
        assert status == 200 and "# TYPE openprimary_messages_in_total counter" in text
        # The rest of the app needs no token.
        async with stack.session.get(stack.url + "/healthz") as resp:
            assert resp.status == 200


async def test_without_a_token_metrics_stay_open(stack_open: SmsStack) -> None:
    status, _ = await scrape(stack_open, None)
    assert status == 200


@pytest.fixture
async def stack_open(redis: Redis) -> Any:
    async with sms_stack(redis) as stack:
        yield stack


def test_the_token_is_compared_whole() -> None:
    class Request:
        def __init__(self, header: str) -> None:
            self.headers = {"Authorization": header}

    assert authorised(Request(f"Bearer {TOKEN}"), TOKEN)  # type: ignore[arg-type]
    assert authorised(Request(f"bearer  {TOKEN} "), TOKEN)  # type: ignore[arg-type]
    for header in ("", "Bearer", f"Bearer {TOKEN[:10]}", f"Token {TOKEN}", TOKEN):
        assert not authorised(Request(header), TOKEN)  # type: ignore[arg-type]


# --- settings: the token, _FILE, CHANGE-ME ------------------------------------------------


def from_env(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"OPENPRIMARY_DATA_DIR": str(tmp_path / "var"), **env}, None)


def test_the_metrics_token_setting(tmp_path: Path) -> None:
    assert from_env(tmp_path).metrics_token is None
    assert from_env(tmp_path, OPENPRIMARY_METRICS_TOKEN=TOKEN).metrics_token == TOKEN
    with pytest.raises(ConfigError, match="at least 32"):
        from_env(tmp_path, OPENPRIMARY_METRICS_TOKEN="short")
    with pytest.raises(ConfigError, match="letters, digits"):
        from_env(tmp_path, OPENPRIMARY_METRICS_TOKEN=TOKEN + " more")


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    key, url, token = tmp_path / "key", tmp_path / "url", tmp_path / "token"
    key.write_text("0123456789abcdef0123456789abcdef-key\n")
    url.write_text("redis://openprimary-serve:pw@127.0.0.1:6379/0\n")
    token.write_text("")  # empty: the setting stays unset (Telegram not used)
    config = from_env(
        tmp_path,
        OPENPRIMARY_SECRET_KEY_FILE=str(key),
        OPENPRIMARY_REDIS_URL_FILE=str(url),
        TELEGRAM_BOT_TOKEN_FILE=str(token),
    )
    assert config.secret_key == "0123456789abcdef0123456789abcdef-key"
    assert config.redis_url == "redis://openprimary-serve:pw@127.0.0.1:6379/0"
    assert config.telegram_bot_token is None
    with pytest.raises(ConfigError, match="both set"):
        from_env(tmp_path, OPENPRIMARY_SECRET_KEY="x" * 40, OPENPRIMARY_SECRET_KEY_FILE=str(key))
    with pytest.raises(ConfigError, match=r"OPENPRIMARY_SECRET_KEY_FILE.*cannot be read"):
        from_env(tmp_path, OPENPRIMARY_SECRET_KEY_FILE=str(tmp_path / "missing"))


def test_a_placeholder_left_in_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TWILIO_FROM: still holds a CHANGE-ME"):
        from_env(tmp_path, TWILIO_FROM="CHANGE-ME-twilio-number")
    with pytest.raises(ConfigError, match="OPENPRIMARY_PUBLIC_URL: still holds"):
        from_env(tmp_path, OPENPRIMARY_PUBLIC_URL="https://CHANGE-ME.example.org")


# --- responses counted by route ----------------------------------------------------------


def test_routes_are_a_handful_of_labels() -> None:
    assert route_of("/sms/twilio") == "sms"
    assert route_of("/sms/twilio/status") == "sms_status"
    assert route_of("/telegram") == "telegram"
    assert route_of("/organisers/riverside-2027/sign-in") == "console"
    assert route_of("/wp-admin/../etc/passwd") == "other"


async def test_responses_are_counted_by_route_and_status(stack_open: SmsStack) -> None:
    _, before = await scrape(stack_open, None)

    def count(text: str, code: str) -> float:
        return sample(text, "openprimary_http_responses_total", route="sms", code=code) or 0.0

    await stack_open.phone(ANN).text("Hi")
    form = inbound_form(ANN, "Hi")
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, "https://elsewhere.example/x", form)}
    async with stack_open.session.post(stack_open.url + "/sms/twilio", data=form, headers=headers):
        pass
    async with stack_open.session.get(stack_open.url + "/no-such-page"):
        pass
    _, after = await scrape(stack_open, None)
    assert count(after, "200") == count(before, "200") + 1
    assert count(after, "403") == count(before, "403") + 1
    assert (sample(after, "openprimary_http_responses_total", route="other", code="404") or 0) >= 1


# --- gauges read from Redis ---------------------------------------------------------------


async def test_the_gauges_read_at_scrape_time(redis: Redis) -> None:
    async with sms_stack(
        redis, config_changes={"sms_budget_segments": 1000, "sms_budget_total": 0}
    ) as stack:
        eid = stack.core.election.id
        await stack.phone(ANN).text("Hi")  # an OTP by SMS: segments spent
        _, text = await scrape(stack, None)
        assert sample(text, "openprimary_redis_writable") == 1.0
        assert sample(text, "openprimary_election_open", election=eid) == 1.0
        assert sample(text, "openprimary_sms_budget_ceiling_segments", election=eid) == 1000
        assert (sample(text, "openprimary_sms_budget_spent_segments", election=eid) or 0) >= 1
        assert sample(text, "openprimary_sms_budget_ceiling_segments", election="*") == 0
        assert sample(text, "openprimary_reminder_sending", election=eid) is None  # no job yet

        reminders = Reminders(redis, stack.clock)
        ready = await plan(redis, stack.core.election, "Hi {name}", rules=TEXT_RULES)
        job = await reminders.create(stack.core.election, ready, "test")
        _, text = await scrape(stack, None)
        assert sample(text, "openprimary_reminder_sending", election=eid) == 1.0
        assert sample(text, "openprimary_reminder_remaining", election=eid) == ready.total
        assert sample(text, "openprimary_reminder_done", election=eid) == 0
        await reminders.pause(job, "test")
        _, text = await scrape(stack, None)
        assert sample(text, "openprimary_reminder_sending", election=eid) == 0.0

        stack.clock.set(stack.core.election.closes)
        _, text = await scrape(stack, None)
        assert sample(text, "openprimary_election_open", election=eid) == 0.0


async def test_redis_refusing_writes_shows_in_the_metrics(
    stack_open: SmsStack, redis: Redis
) -> None:
    before: dict[str, str] = await redis.config_get("maxmemory*")  # type: ignore[assignment]
    every: dict[str, Any] = {"target_nodes": "all"} if is_cluster(redis) else {}
    try:
        await redis.config_set("maxmemory-policy", "noeviction", **every)
        await redis.config_set("maxmemory", "1", **every)
        status, text = await scrape(stack_open, None)
        assert status == 200  # the counters are still there to read
        assert sample(text, "openprimary_redis_writable") == 0.0
    finally:
        await redis.config_set("maxmemory", before["maxmemory"], **every)
        await redis.config_set("maxmemory-policy", before["maxmemory-policy"], **every)
    _, text = await scrape(stack_open, None)
    assert sample(text, "openprimary_redis_writable") == 1.0


# --- serve --workers: one answer for every worker ------------------------------------------


async def test_every_worker_s_counters_whichever_worker_answers(
    redis: Redis, redis_url: str
) -> None:
    """Each text on a new connection (the kernel spreads them over the two workers); each
    scrape, whichever worker answers it, counts them all."""
    election = await sample_election(redis)
    async with (
        TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        serve_workers(serve_env(redis_url, twilio.base_url), "--election", election.id) as (
            url,
            _,
        ),
    ):
        texts = 8
        for i in range(texts):
            async with ClientSession(connector=TCPConnector(force_close=True)) as session:
                phone = TwilioPhone(
                    session, url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, number=ANN
                )
                await phone.text(f"hello {i}")
        seen = set()
        for _ in range(6):
            async with (
                ClientSession(connector=TCPConnector(force_close=True)) as session,
                session.get(url + "/metrics") as resp,
            ):
                text = await resp.text()
            seen.add(sample(text, "openprimary_messages_in_total", channel="sms"))
            await asyncio.sleep(0)
        assert seen == {float(texts)}
