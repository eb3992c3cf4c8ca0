"""What the web app shares between the server and the channels plugged into it.

Its own module, so that the server and each channel import it rather than
each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.core import Core, Deployment
from channels.sms import SmsWebhook

#: An aiohttp request handler.
WebHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Adds a channel to the app before it starts (sets its AppKey, its cleanup_ctx).
Installer = Callable[[web.Application], None]

#: The elections served, and what they share.
DEPLOYMENT = web.AppKey("deployment", Deployment)
#: The first election's services: what the channels use of the shared parts (the router,
#: Redis, the settings, the senders); an election's own are ``DEPLOYMENT``'s ``cores``.
CORE = web.AppKey("core", Core)
#: Set when TWILIO_AUTH_TOKEN and OPENPRIMARY_PUBLIC_URL are set.
SMS_WEBHOOK = web.AppKey("sms_webhook", SmsWebhook)
#: Set by the Telegram channel: the handler for ``POST /telegram``.
TELEGRAM_WEBHOOK: web.AppKey[WebHandler] = web.AppKey("telegram_webhook")
