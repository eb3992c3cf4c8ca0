"""Each channel's text rules, by channel name: what the core checks reminders against."""

from __future__ import annotations

from collections.abc import Mapping

from bot.ports import TextRules
from channels.gsm import SmsRules
from channels.telegram.text import TelegramRules

TEXT_RULES: Mapping[str, TextRules] = {"sms": SmsRules(), "telegram": TelegramRules()}
