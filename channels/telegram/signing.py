"""Signed callback data: a button's payload plus a short HMAC bound to the chat.

Telegram hands back whatever ``callback_data`` a client sends, and a
modified client can send anything.  The conversation checks that a payload
is current; this module makes sure it is one the bot wrote, for this chat,
so a tampered or transplanted value is refused before it reaches the router.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

#: Telegram's limit on callback_data, in bytes.
CALLBACK_DATA_LIMIT = 64
#: Base64url characters of MAC kept: 16 characters are 96 bits.
MAC_CHARS = 16
SEPARATOR = "|"
MAX_PAYLOAD = CALLBACK_DATA_LIMIT - len(SEPARATOR) - MAC_CHARS


class ButtonSigner:
    """Signs button payloads for one chat and checks them when they come back."""

    def __init__(self, secret_key: str) -> None:
        # A key of its own, so the secret that hashes codes is never used directly here.
        self._key = hmac.new(
            secret_key.encode(), b"openprimary/telegram/callback_data", hashlib.sha256
        ).digest()

    def _mac(self, chat_id: str, payload: str) -> str:
        digest = hmac.new(self._key, f"{chat_id}\n{payload}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:MAC_CHARS]

    def sign(self, chat_id: str, payload: str) -> str:
        """The callback_data for a button with ``payload`` sent to ``chat_id``."""
        if len(payload.encode()) > MAX_PAYLOAD:
            raise ValueError(
                f"button payload {payload!r} is over {MAX_PAYLOAD} bytes; callback_data "
                f"must fit in {CALLBACK_DATA_LIMIT}"
            )
        return f"{payload}{SEPARATOR}{self._mac(chat_id, payload)}"

    def verify(self, chat_id: str, data: str) -> str | None:
        """The payload, if ``data`` was signed by this bot for ``chat_id``; otherwise None."""
        payload, sep, mac = data.rpartition(SEPARATOR)
        if not sep or len(mac) != MAC_CHARS:
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(chat_id, payload).encode()):
            return None
        return payload
