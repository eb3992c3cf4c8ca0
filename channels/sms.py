"""SMS through Twilio, inbound: the signed webhook, and replies as TwiML.

Twilio POSTs each text a supporter sends to ``POST /sms/twilio``.  The
request is authenticated with the twilio library's ``RequestValidator``
against the URL Twilio was given (``OPENPRIMARY_PUBLIC_URL`` plus the path),
not the one it arrived on behind a proxy; then the form becomes one
:class:`InboundMessage`, the router handles it, and the replies go back in
the response as a TwiML ``MessagingResponse``, in plain GSM-7 text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

import phonenumbers
from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bot import texts
from bot.messages import InboundMessage, OutboundMessage
from bot.metrics import ERRORS
from channels.base import Sender
from channels.gsm import MAX_BODY, fit, segments, to_gsm

log = logging.getLogger(__name__)

CHANNEL = "sms"
PATH = "/sms/twilio"
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_TYPE = "application/x-www-form-urlencoded"

#: Twilio gives up on a webhook after 15 seconds; answer well before that.
REPLY_WITHIN = 10.0

#: Handles one inbound message and returns the replies to its sender.
Route = Callable[[InboundMessage], Awaitable[list[OutboundMessage]]]


def to_e164(raw: str, region: str = "GB") -> str | None:
    """A sender's number in E.164 form, or None for a short code or a name."""
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def sms_text(message: OutboundMessage) -> str:
    """One outbound message as it goes by SMS: plain GSM-7, within Twilio's limit.

    Buttons are left out: the text always says what to type.
    """
    return fit(to_gsm(message.text))


def sms_bodies(replies: Iterable[OutboundMessage]) -> list[str]:
    """The SMS bodies for a list of replies.

    Consecutive replies share one SMS when that costs no more segments than
    sending them apart: fewer messages, and they cannot arrive out of order.
    """
    bodies: list[str] = []
    for reply in replies:
        text = sms_text(reply)
        if not text:
            continue
        if bodies:
            joined = bodies[-1] + "\n\n" + text
            if len(joined) <= MAX_BODY and segments(joined) <= segments(bodies[-1]) + segments(
                text
            ):
                bodies[-1] = joined
                continue
        bodies.append(text)
    return bodies


def twiml(bodies: Iterable[str]) -> str:
    """A TwiML ``MessagingResponse`` sending each body as one SMS."""
    response = MessagingResponse()
    for body in bodies:
        response.message(body)
    return str(response)


def twiml_response(bodies: Iterable[str] = ()) -> web.Response:
    return web.Response(text=twiml(bodies), content_type="application/xml")


class SmsWebhook:
    """The ``POST /sms/twilio`` handler: authenticate, normalise, route, reply.

    Any number of processes may run it side by side: it keeps nothing
    between requests but the replies of a message that took longer than
    :data:`REPLY_WITHIN` (those are texted through ``late_sender`` when it
    finishes, rather than lost).
    """

    def __init__(
        self,
        *,
        public_url: str,
        auth_token: str,
        route: Route,
        region: str = "GB",
        late_sender: Callable[[], Sender | None] = lambda: None,
        reply_within: float = REPLY_WITHIN,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.route = route
        self.region = region
        self.late_sender = late_sender
        self.reply_within = reply_within
        self._late: set[asyncio.Future[None]] = set()

    def signed_url(self, request: web.Request) -> str:
        """The URL Twilio signed: the public base plus the path and query it was given."""
        return self.public_url + request.raw_path

    async def handle(self, request: web.Request) -> web.Response:
        """Authenticate one webhook request, route its message, answer with TwiML."""
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature or request.content_type != FORM_TYPE:
            raise web.HTTPForbidden(text="Twilio signature required")
        form = await request.post()
        if not self.validator.validate(self.signed_url(request), form, signature):
            log.warning("rejected an SMS webhook with a bad signature")
            raise web.HTTPForbidden(text="Twilio signature does not match")

        sender = str(form.get("From", ""))
        address = to_e164(sender, self.region)
        message_id = str(form.get("MessageSid") or form.get("SmsSid") or "") or None
        if address is None or message_id is None:
            # Nothing to answer: a short code or a name cannot vote.
            log.warning("ignored an SMS without a phone number or a MessageSid")
            return twiml_response()
        msg = InboundMessage(
            channel=CHANNEL,
            address=address,
            text=str(form.get("Body", ""))[:MAX_BODY],
            message_id=message_id,
        )
        return twiml_response(sms_bodies(await self._replies(msg)))

    async def _replies(self, msg: InboundMessage) -> list[OutboundMessage]:
        """The replies to ``msg``, or none if they are not ready in time."""
        task = asyncio.ensure_future(self.route(msg))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.reply_within)
        except TimeoutError:
            log.warning(
                "an SMS took over %.0fs to handle; its replies will be texted", self.reply_within
            )
            late = asyncio.ensure_future(self._text_late(msg.address, task))
            self._late.add(late)
            late.add_done_callback(self._late.discard)
            return []
        except Exception:
            # The router answers a voter's bad input itself; this is our fault.
            ERRORS.labels("sms_webhook").inc()
            log.exception("failed to route an SMS")
            return [OutboundMessage(texts.failure())]

    async def _text_late(self, address: str, task: asyncio.Future[list[OutboundMessage]]) -> None:
        """Text the replies of a slow message once they are ready."""
        try:
            replies = await task
        except Exception:
            ERRORS.labels("sms_webhook").inc()
            log.exception("failed to route a slow SMS")
            return
        sender = self.late_sender()
        if sender is None:
            log.error("no SMS sender is configured; %d late replies dropped", len(replies))
            return
        for body in sms_bodies(replies):
            result = await sender.send(address, OutboundMessage(body))
            if not result.ok:
                log.warning("a late reply was not delivered: %s %s", result.status, result.detail)

    async def aclose(self) -> None:
        """Let replies still being worked out finish (on shutdown)."""
        while self._late:
            await asyncio.gather(*self._late, return_exceptions=True)
