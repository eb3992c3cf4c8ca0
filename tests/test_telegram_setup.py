"""Setting the bot up: set-webhook, delete-webhook, polling for development, serve's wiring."""

from __future__ import annotations

import argparse
import io

import pytest
from redis.asyncio import Redis

from ballots.errors import ConfigError
from channels.standins.telegram_api import TelegramAPI
from channels.telegram import ALLOWED_UPDATES, serve_installers
from openprimary.context import Context
from openprimary.serve_cli import register as register_serve
from openprimary.telegram_cli import register
from tests.factories import settings
from tests.telegram_support import ANN, WEBHOOK_SECRET, telegram_world


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="openprimary")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    register_serve(sub)
    return parser.parse_args(argv)


async def run(argv: list[str], ctx: Context) -> int:
    args = parse(*argv)
    code: int = await args.handler(args, ctx)
    return code


def context(redis: Redis, api: TelegramAPI, **overrides: object) -> Context:
    given: dict[str, object] = {
        "telegram_bot_token": api.token,
        "telegram_api_base": api.url,
        "telegram_webhook_secret": WEBHOOK_SECRET,
        "public_url": "https://vote.example.org",
    }
    config = settings(**(given | overrides))
    return Context(settings=config, redis=redis, out=io.StringIO(), err=io.StringIO())


async def test_set_webhook_registers_the_url_secret_and_update_types(redis: Redis) -> None:
    async with TelegramAPI() as api:
        ctx = context(redis, api)
        assert await run(["telegram", "set-webhook", "--max-connections", "80"], ctx) == 0
        assert api.webhook is not None
        assert api.webhook["url"] == "https://vote.example.org/telegram"
        assert api.webhook["secret_token"] == WEBHOOK_SECRET
        assert api.webhook["allowed_updates"] == ALLOWED_UPDATES == ["message", "callback_query"]
        assert api.webhook["max_connections"] == 80
        out = ctx.out.getvalue()  # type: ignore[attr-defined]
        assert "webhook: https://vote.example.org/telegram for @openprimary_test_bot" in out

        assert await run(["telegram", "delete-webhook"], ctx) == 0
        assert api.webhook is None


async def test_set_webhook_names_what_is_missing(redis: Redis) -> None:
    async with TelegramAPI() as api:
        with pytest.raises(ConfigError, match="OPENPRIMARY_PUBLIC_URL"):
            await run(["telegram", "set-webhook"], context(redis, api, public_url=None))
        with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET"):
            await run(
                ["telegram", "set-webhook"], context(redis, api, telegram_webhook_secret=None)
            )
        with pytest.raises(ConfigError, match="16 to 256 characters"):
            await run(
                ["telegram", "set-webhook"], context(redis, api, telegram_webhook_secret="a b")
            )
        assert api.webhook is None


async def test_set_webhook_reports_telegrams_refusal(redis: Redis) -> None:
    async with TelegramAPI() as api:
        ctx = context(redis, api, public_url="http://vote.example.org")
        assert await run(["telegram", "set-webhook"], ctx) == 1
        assert "https url must be provided" in ctx.err.getvalue()  # type: ignore[attr-defined]


def test_serve_adds_telegram_only_with_a_bot_token() -> None:
    assert serve_installers(settings()) == []
    assert len(serve_installers(settings(telegram_bot_token="1:x"))) == 1
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
        serve_installers(settings(), polling=True)
    assert parse("serve", "--telegram-polling").telegram_polling is True


async def test_webhook_mode_needs_the_secret(redis: Redis) -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET"):
        async with telegram_world(redis, telegram_webhook_secret=None):
            pass


async def test_polling_for_development(redis: Redis) -> None:
    async with telegram_world(redis, polling=True, telegram_webhook_secret=None) as world:
        assert world.api.calls_to("deleteWebhook")
        world.api.queue_update(world.updates.text(ANN, "hello"))
        await world.api.wait_until(lambda: bool(world.api.messages(ANN.id)))
        assert "voting code" in world.api.last_message(ANN.id)["text"]
        polls = world.api.calls_to("getUpdates")
        assert polls[-1].params["allowed_updates"] == ALLOWED_UPDATES
        # Without a webhook secret, POST /telegram takes nothing.
        assert await world.post(world.updates.text(ANN, "hello")) == 403
