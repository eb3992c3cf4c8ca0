"""The SMS channel plugged into the web app: the Twilio webhook, the REST client, the remover.

``installer()`` plugs it in, as ``channels.telegram.installer()`` does for
Telegram: it sets the app's :data:`~channels.appkeys.SMS_WEBHOOK` (when the
settings allow inbound SMS) and opens, for the app's lifetime, the Twilio
REST client (registered as the core's SMS sender) and the remover of the
platform's copies of vote-bearing messages.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.copies import Remover
from bot.core import Core
from bot.ratelimit import limiter_for
from bot.settings import Settings
from channels.appkeys import CORE, SMS_WEBHOOK, Installer
from channels.sms import SmsWebhook
from channels.sms_sender import TwilioSender

log = logging.getLogger(__name__)


def sms_inbound(settings: Settings) -> bool:
    """Whether the settings ask for SMS at all (any TWILIO_* setting given)."""
    return bool(settings.twilio_auth_token or settings.twilio_account_sid or settings.twilio_from)


def sms_outbound(settings: Settings) -> bool:
    """Whether texts that answer no inbound one (codes, reminders) can be sent."""
    return bool(settings.twilio_account_sid or settings.twilio_from)


def sms_installers(settings: Settings) -> list[Installer]:
    """What the app needs for SMS: nothing unless a TWILIO_* setting is given."""
    return [installer()] if sms_inbound(settings) or sms_outbound(settings) else []


def installer() -> Installer:
    """Plugs SMS into ``channels.server.make_app``: ``make_app(core, [installer()])``."""

    def install(app: web.Application) -> None:
        core = app[CORE]
        settings = core.settings
        if sms_inbound(settings) and settings.twilio_auth_token and settings.public_url:
            app[SMS_WEBHOOK] = SmsWebhook(
                public_url=settings.public_url,
                auth_token=settings.twilio_auth_token,
                route=core.router.handle,
                region=settings.default_region,
                late_sender=lambda: core.senders.get("sms"),
                # Twilio can be asked to delete only with the REST credentials.
                copies=core.copies if sms_outbound(settings) else None,
                account_sid=settings.twilio_account_sid,
                ours=[settings.twilio_from] if settings.twilio_from else [],
            )
        app.cleanup_ctx.append(_run_sms)

    return install


async def stop_background(core: Core) -> None:
    """Stop the chat's reminder workers and wait for the codes texted after their replies:
    before a sender they use is closed.  Idempotent."""
    await core.conversation.aclose()
    await core.router.aclose()


async def _run_sms(app: web.Application) -> AsyncIterator[None]:
    """Open the Twilio REST client for the app's lifetime; register it as the SMS sender."""
    core = app[CORE]
    sender: TwilioSender | None = None
    remover: Remover | None = None
    if sms_outbound(core.settings):
        # A 429 from Twilio pauses SMS in every process, reminders included.
        shared = limiter_for(core.settings, core.redis)
        sender = TwilioSender.from_settings(
            core.settings,
            core.redis,
            pause=shared.backoff_sleep("sms"),
            # Every text takes its turn in the shared SMS rate: codes too, and
            # reminders an organiser starts from a chat.
            turn=shared.wait_turn,
        )
        core.senders["sms"] = sender
        if core.copies is not None:
            delete = sender.delete
            remover = Remover(core.copies, "sms", lambda copy: delete(copy.ref))
            remover.start()
    try:
        yield
    finally:
        # Nothing may still be texting through the sender when it closes.
        await stop_background(core)
        if remover is not None:
            await remover.stop()
        webhook = app.get(SMS_WEBHOOK)
        if webhook is not None:
            await webhook.aclose()
        if sender is not None:
            core.senders.pop("sms", None)
            await sender.aclose()
