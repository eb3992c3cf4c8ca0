"""Telegram's text rules: any Unicode, at most 4096 UTF-16 code units a message."""

from __future__ import annotations

#: Telegram's limit on the text of one message (in UTF-16 code units).
TELEGRAM_MAX = 4096


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


class TelegramRules:
    """Telegram's text rules (:class:`bot.ports.TextRules`): one message, whatever it holds."""

    channel = "telegram"

    def body(self, text: str, faithful: bool = False) -> str:
        return text

    def dropped(self, text: str, faithful: bool = False) -> list[str]:
        return []

    def parts(self, text: str, faithful: bool = False) -> int:
        return 1

    def problem(self, text: str, max_parts: int, faithful: bool = False) -> str | None:
        if utf16_len(text) > TELEGRAM_MAX:
            n = utf16_len(text)
            return f"the Telegram message would be {n} characters; at most {TELEGRAM_MAX}"
        return None
