"""``openprimary telegram ...``: registering the bot's webhook with Telegram, or removing it."""

from __future__ import annotations

import argparse
import logging

from telegram.error import TelegramError

from channels.telegram.channel import ALLOWED_UPDATES
from channels.telegram.sending import build_bot, check_webhook_secret
from openprimary.context import Context

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram"


async def set_webhook(args: argparse.Namespace, ctx: Context) -> int:
    """Tell Telegram to POST updates to OPENPRIMARY_PUBLIC_URL/telegram with our secret token."""
    settings = ctx.settings
    settings.require("telegram_bot_token", "public_url")
    secret = check_webhook_secret(settings.telegram_webhook_secret)
    url = f"{settings.public_url}{WEBHOOK_PATH}"
    try:
        async with build_bot(settings) as bot:
            await bot.set_webhook(
                url,
                secret_token=secret,
                allowed_updates=ALLOWED_UPDATES,
                max_connections=args.max_connections,
                drop_pending_updates=args.drop_pending_updates,
            )
            info = await bot.get_webhook_info()
            username = bot.username
    except TelegramError as err:
        ctx.err.write(f"telegram set-webhook: Telegram refused: {err.message}\n")
        return 1
    ctx.out.write(f"webhook: {info.url} for @{username}\n")
    ctx.out.write(f"updates: {', '.join(info.allowed_updates or ALLOWED_UPDATES)}\n")
    ctx.out.write(f"pending: {info.pending_update_count}\n")
    return 0


async def delete_webhook(args: argparse.Namespace, ctx: Context) -> int:
    """Stop Telegram's webhook deliveries (before polling, or when retiring the bot)."""
    ctx.settings.require("telegram_bot_token")
    try:
        async with build_bot(ctx.settings) as bot:
            await bot.delete_webhook(drop_pending_updates=args.drop_pending_updates)
            username = bot.username
    except TelegramError as err:
        ctx.err.write(f"telegram delete-webhook: Telegram refused: {err.message}\n")
        return 1
    ctx.out.write(f"webhook removed for @{username}\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``openprimary telegram set-webhook`` and ``delete-webhook`` to the command line."""
    parser = sub.add_parser(
        "telegram",
        help="set up the Telegram bot's webhook",
        description="Register or remove the Telegram bot's webhook.",
    )
    commands = parser.add_subparsers(dest="telegram_command", metavar="COMMAND", required=True)

    setter = commands.add_parser(
        "set-webhook",
        help="register OPENPRIMARY_PUBLIC_URL/telegram as the bot's webhook",
        description=(
            "Register OPENPRIMARY_PUBLIC_URL + /telegram with Telegram as the bot's webhook, "
            "with TELEGRAM_WEBHOOK_SECRET as its secret token and only the update types the "
            "bot handles (message, callback_query). Needs TELEGRAM_BOT_TOKEN, "
            "TELEGRAM_WEBHOOK_SECRET and an https OPENPRIMARY_PUBLIC_URL."
        ),
    )
    setter.add_argument(
        "--max-connections",
        type=int,
        default=40,
        metavar="N",
        help="most simultaneous deliveries Telegram may make, 1-100 (default: %(default)s)",
    )
    setter.add_argument(
        "--drop-pending-updates",
        action="store_true",
        help="discard updates Telegram is still holding for the bot",
    )
    setter.set_defaults(handler=set_webhook)

    deleter = commands.add_parser(
        "delete-webhook",
        help="stop webhook deliveries (for polling with serve --telegram-polling)",
        description="Remove the bot's webhook. Needs TELEGRAM_BOT_TOKEN.",
    )
    deleter.add_argument(
        "--drop-pending-updates",
        action="store_true",
        help="discard updates Telegram is still holding for the bot",
    )
    deleter.set_defaults(handler=delete_webhook)
