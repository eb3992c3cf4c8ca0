"""Telegram: the bot, its webhook, its inline keyboards, and sending with Telegram's limits."""

from channels.telegram.channel import (
    ALLOWED_UPDATES,
    SECRET_HEADER,
    TELEGRAM_CHANNEL,
    TelegramChannel,
    installer,
    serve_installers,
)
from channels.telegram.sending import TelegramSender, build_bot
from channels.telegram.signing import ButtonSigner

__all__ = [
    "ALLOWED_UPDATES",
    "SECRET_HEADER",
    "TELEGRAM_CHANNEL",
    "ButtonSigner",
    "TelegramChannel",
    "TelegramSender",
    "build_bot",
    "installer",
    "serve_installers",
]
