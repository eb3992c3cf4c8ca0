"""The SMS channel plugged into the web app: the Twilio webhook, the REST client, the remover.

``installer()`` plugs it in, as ``channels.telegram.installer()`` does for
Telegram: it sets the app's :data:`~channels.appkeys.SMS_WEBHOOK` (when the
settings allow inbound SMS), runs the remover of the platform's copies of
vote-bearing messages for the app's lifetime, and closes the core's SMS
sender (the Twilio REST client, built with the core) when the app stops.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.copies import Remover
from bot.messages import Channel
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
                sender=core.senders.get(Channel.SMS),
                # Twilio can be asked to delete only with the REST credentials.
                copies=core.copies if sms_outbound(settings) else None,
                account_sid=settings.twilio_account_sid,
                ours=[settings.twilio_from] if settings.twilio_from else [],
            )
        app.cleanup_ctx.append(_run_sms)

    return install


async def _run_sms(app: web.Application) -> AsyncIterator[None]:
    """For the app's lifetime: the remover of Twilio's copies; then close the SMS sender."""
    core = app[CORE]
    sender = core.senders.get(Channel.SMS)
    remover: Remover | None = None
    if isinstance(sender, TwilioSender) and core.copies is not None:
        delete = sender.delete
        remover = Remover(core.copies, Channel.SMS, lambda copy: delete(copy.ref))
        remover.start()
    try:
        yield
    finally:
        # Nothing may still be texting through the sender when it closes.
        await core.stop_background()
        if remover is not None:
            await remover.stop()
        webhook = app.get(SMS_WEBHOOK)
        if webhook is not None:
            await webhook.aclose()
        if isinstance(sender, TwilioSender):
            await sender.aclose()
