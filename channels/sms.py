"""SMS through Twilio, inbound: the signed webhook, and replies as TwiML.

Twilio POSTs each text a supporter sends to ``POST /sms/twilio``.  The
request is authenticated with the twilio library's ``RequestValidator``
against the URL Twilio was given (``OPENPRIMARY_PUBLIC_URL`` plus the path),
not the one it arrived on behind a proxy; then the form becomes one
:class:`InboundMessage`, the router handles it, and the replies go back in
the response as a TwiML ``MessagingResponse``, in plain GSM-7 text.

Twilio keeps every message in its log, filed under the voter's number.  A
reply that shows the voter's choices carries ``action`` (Twilio's status
callback for a TwiML message) pointing at ``POST /sms/twilio/status``; each
callback queues that message for deletion from Twilio, as the router does
for the voter's own messages sent while choosing (``bot.copies``).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlparse

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator, remove_port
from twilio.twiml.messaging_response import MessagingResponse

from ballots.errors import StoreUnavailable
from ballots.roll import PhoneError, normalise_phone
from bot import texts
from bot.copies import Kind, PlatformCopies
from bot.messages import Channel, InboundMessage, OutboundMessage
from bot.metrics import ERRORS
from bot.ports import Sender
from channels.gsm import MAX_BODY, fit, segments, to_sms

log = logging.getLogger(__name__)

CHANNEL = Channel.SMS
PATH = "/sms/twilio"
#: Twilio's status callbacks for replies that showed a voter's choices.
STATUS_PATH = "/sms/twilio/status"
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_TYPE = "application/x-www-form-urlencoded"

#: Twilio gives up on a webhook after 15 seconds; answer well before that.
REPLY_WITHIN = 10.0

#: The parameters Twilio documents for an inbound message webhook; any other is refused.
INBOUND_FIELDS = frozenset(
    {
        "MessageSid", "SmsSid", "SmsMessageSid", "AccountSid", "MessagingServiceSid",
        "From", "To", "Body", "NumMedia", "NumSegments", "ApiVersion", "SmsStatus",
        "FromCity", "FromState", "FromZip", "FromCountry",
        "ToCity", "ToState", "ToZip", "ToCountry",
        "OptOutType", "AddOns", "ReferralNumMedia",
        "ProfileName", "WaId", "Forwarded", "FrequentlyForwarded", "ButtonText", "ButtonPayload",
        "Latitude", "Longitude", "Address", "Label",
    }
)  # fmt: skip
_MEDIA_FIELD = re.compile(r"^Media(ContentType|Url)\d{1,2}$")
_MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}$")


def inbound_problem(
    fields: list[tuple[str, str]], account_sid: str, ours: Iterable[str]
) -> str | None:
    """Why a signed inbound webhook is not one Twilio sent for our account, or None.

    Twilio signs the URL followed by each name and value run together, so a
    signed request can be re-cut at other boundaries and keep its
    signature: only Twilio's own field names, each once, with the formats
    Twilio gives them, our account and our number, make it the request
    Twilio made.
    """
    names = [name for name, _ in fields]
    if len(set(names)) != len(names):
        return "a field given twice"
    unknown = [n for n in names if n not in INBOUND_FIELDS and not _MEDIA_FIELD.match(n)]
    if unknown:
        return f"fields Twilio does not send: {', '.join(sorted(unknown)[:3])}"
    form = dict(fields)
    for required in ("MessageSid", "AccountSid", "From", "To"):
        if required not in form:
            return f"no {required}"
    if not _MESSAGE_SID.match(form["MessageSid"]):
        return "MessageSid is not a message's"
    for alias in ("SmsSid", "SmsMessageSid"):
        if alias in form and form[alias] != form["MessageSid"]:
            return f"{alias} differs from MessageSid"
    if form["AccountSid"] != account_sid or not _ACCOUNT_SID.match(form["AccountSid"]):
        return "another account's message"
    ours = set(ours)
    if form["To"] not in ours and form.get("MessagingServiceSid") not in ours:
        return "a message to another number"
    return None


#: Handles one inbound message and returns the replies to its sender.
Route = Callable[[InboundMessage], Awaitable[list[OutboundMessage]]]


@functools.lru_cache(maxsize=1 << 16)
def to_e164(raw: str, region: str = "GB") -> str | None:
    """A sender's number in E.164 form, or None for a short code, a name or a number that
    cannot be a phone (the roll's one normaliser: phonenumbers' ``is_valid_number``).

    Remembered for the last 65,536 numbers: phonenumbers takes about 0.1 ms a
    number, and a vote by SMS is several messages from one.
    """
    try:
        return normalise_phone(raw, region)
    except PhoneError:
        return None


def sms_text(message: OutboundMessage) -> str:
    """One outbound message as it goes by SMS: GSM-7 (or, for a language sent faithful,
    UCS-2 where it must), within Twilio's limit.

    Buttons are left out: the text always says what to type.  The message's ``spare``
    end is left off when it would cost another segment.
    """
    full = fit(to_sms(message.text, message.faithful))
    if message.spare and message.text.endswith(message.spare):
        short = fit(to_sms(message.text[: -len(message.spare)], message.faithful))
        if segments(short) < segments(full):
            return short
    return full


@dataclass(frozen=True)
class SmsBody:
    """One SMS to send, and whether it shows the voter's choices."""

    text: str
    private: bool = False


def sms_parts(replies: Iterable[OutboundMessage]) -> list[SmsBody]:
    """The SMS for a list of replies.

    Consecutive replies share one SMS when that costs no more segments than
    sending them apart: fewer messages, and they cannot arrive out of order.
    An SMS is private if any reply in it is.
    """
    parts: list[SmsBody] = []
    for reply in replies:
        text = sms_text(reply)
        if not text:
            continue
        if parts:
            last = parts[-1].text
            joined = last + "\n\n" + text
            if len(joined) <= MAX_BODY and segments(joined) <= segments(last) + segments(text):
                parts[-1] = SmsBody(joined, parts[-1].private or reply.private)
                continue
        parts.append(SmsBody(text, reply.private))
    return parts


def sms_bodies(replies: Iterable[OutboundMessage]) -> list[str]:
    """The SMS bodies for a list of replies (see :func:`sms_parts`)."""
    return [part.text for part in sms_parts(replies)]


def twiml(bodies: Iterable[str | SmsBody], status_url: str | None = None) -> str:
    """A TwiML ``MessagingResponse`` sending each body as one SMS.

    With ``status_url``, a private body asks Twilio for status callbacks there,
    which is how its message id reaches us for deleting it.
    """
    response = MessagingResponse()
    for body in bodies:
        if isinstance(body, SmsBody):
            if body.private and status_url:
                response.message(body.text, action=status_url, method="POST")
            else:
                response.message(body.text)
        else:
            response.message(body)
    return str(response)


def twiml_response(
    bodies: Iterable[str | SmsBody] = (), status_url: str | None = None
) -> web.Response:
    return web.Response(text=twiml(bodies, status_url), content_type="application/xml")


async def _done_within(task: asyncio.Future[Any], seconds: float) -> bool:
    """Whether ``task`` is done within ``seconds``; it goes on either way (what
    ``asyncio.wait`` with a timeout does for one task, without its sets: every SMS waits)."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_later(seconds, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()


@functools.lru_cache(maxsize=64)
def _without_port(url: str) -> str:
    """``url`` as the twilio library writes it without its port (the webhook's few URLs
    are remembered: each request would parse the same one again)."""
    return str(remove_port(urlparse(url)))


class SmsWebhook:
    """The ``POST /sms/twilio`` handler: authenticate, normalise, route, reply.

    Any number of processes may run it side by side: it keeps nothing
    between requests but the replies of a message that took longer than
    :data:`REPLY_WITHIN` (those are texted through ``sender`` when it
    finishes or, without one, answered 503 so that Twilio's retry fetches them
    once the router has stored them with the delivery).
    """

    def __init__(
        self,
        *,
        public_url: str,
        auth_token: str,
        route: Route,
        region: str = "GB",
        sender: Sender | None = None,
        reply_within: float = REPLY_WITHIN,
        copies: PlatformCopies | None = None,
        account_sid: str | None = None,
        ours: Iterable[str] = (),
    ) -> None:
        self.public_url = public_url.rstrip("/")
        #: With the account, inbound requests must be exactly what Twilio sends us
        #: (:func:`inbound_problem`); without, only the signature is checked.
        self.account_sid = account_sid
        self.ours = frozenset(ours)
        self.validator = RequestValidator(auth_token)
        self.route = route
        self.region = region
        #: Texts the replies that took too long for the webhook's answer.
        self.sender = sender
        self.reply_within = reply_within
        self.copies = copies
        #: Where Twilio reports on private replies (None: their copies are kept).
        self.status_url = self.public_url + STATUS_PATH if copies is not None else None
        self._late: set[asyncio.Future[None]] = set()

    def signed_url(self, request: web.Request) -> str:
        """The URL Twilio signed: the public base plus the path and query it was given."""
        return self.public_url + request.raw_path

    async def _signed_form(
        self, request: web.Request
    ) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """The request's form (and its fields in order), once Twilio's signature over it is
        checked; else 403 (400 for a body that is not a UTF-8 form)."""
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature or request.content_type != FORM_TYPE:
            raise web.HTTPForbidden(text="Twilio signature required")
        try:
            # Twilio sends UTF-8; anything else (raw, or %-escaped) is not from Twilio.
            fields = parse_qsl(
                (await request.read()).decode(), keep_blank_values=True, errors="strict"
            )
        except (UnicodeDecodeError, ValueError):
            raise web.HTTPBadRequest(text="not a UTF-8 form\n") from None
        # A multidict: a field given twice is signed, and later refused, as Twilio would see it.
        if not self._signature_holds(self.signed_url(request), MultiDict(fields), signature):
            log.warning("rejected a request to %s with a bad Twilio signature", request.path)
            raise web.HTTPForbidden(text="Twilio signature does not match")
        return dict(fields), fields

    def _signature_holds(self, url: str, params: MultiDict[str], signature: str) -> bool:
        """Whether Twilio signed this URL and form: the twilio library's check.

        ``RequestValidator.validate`` computes the signature over the URL both without and
        with its port (Twilio signs either way) and takes either.  The one without comes
        first here, with the library's own ``compute_signature`` (compared in constant time,
        as the library's ``compare`` does, by the standard library's C function): when it
        matches, as nearly every request's does, validate would say yes too, and the second
        is not worked out.  Any other request gets the library's whole check.
        """
        if "bodySHA256" not in url:
            computed = self.validator.compute_signature(_without_port(url), params)
            if hmac.compare_digest(computed.encode(), signature.encode()):
                return True
        return bool(self.validator.validate(url, params, signature))

    async def status(self, request: web.Request) -> web.Response:
        """POST /sms/twilio/status: a private reply's status; queue its deletion from Twilio."""
        form, _ = await self._signed_form(request)
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        address = to_e164(form.get("To", ""), self.region)
        if self.copies is not None and sid.startswith(("SM", "MM")) and address is not None:
            await self.copies.note(CHANNEL, address, sid, Kind.BOT)
        return twiml_response()

    async def handle(self, request: web.Request) -> web.Response:
        """Authenticate one webhook request, route its message, answer with TwiML."""
        form, fields = await self._signed_form(request)
        if self.account_sid is not None:
            problem = inbound_problem(fields, self.account_sid, self.ours)
            if problem is not None:
                log.warning("refused a signed SMS webhook that Twilio did not send us: %s", problem)
                raise web.HTTPForbidden(text="not a Twilio message for this account\n")
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
            ref=message_id,
        )
        replies = await self._replies(msg)
        if replies is None:
            # Not ready, and nothing to text them with later: Twilio's retry (with the
            # "#rc=" connection override) comes back for them once they are stored.
            return web.Response(status=503, text="not handled yet; retry\n")
        return twiml_response(sms_parts(replies), self.status_url)

    async def _replies(self, msg: InboundMessage) -> list[OutboundMessage] | None:
        """The replies to ``msg``; [] if they will be texted later, None to answer 503.

        None when they are not ready and nothing could text them later, or when
        Redis cannot be used: Twilio's retry (or fallback URL) then tries again.
        """
        # The routing goes on if the answer cannot wait for it.
        task: asyncio.Future[list[OutboundMessage]] = asyncio.ensure_future(self.route(msg))
        try:
            if await _done_within(task, self.reply_within):
                return task.result()
            texted = self.sender is not None
            log.warning(
                "an SMS took over %.0fs to handle; its replies will be %s",
                self.reply_within,
                "texted" if texted else "given to Twilio's retry (no SMS sender configured)",
            )
            late = asyncio.ensure_future(self._text_late(msg.address, task))
            self._late.add(late)
            late.add_done_callback(self._late.discard)
            return [] if texted else None
        except StoreUnavailable:
            # Twilio's retry, or its fallback URL, may find Redis back.
            return None
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
        sender = self.sender
        if sender is None:
            return  # kept with the delivery: Twilio's retry gets them
        for part in sms_parts(replies):
            # The part is already as SMS carries it: sent faithful, it goes as it is
            # (folding it again would strip a faithful language's letters).
            result = await sender.send(address, OutboundMessage(part.text, faithful=True))
            if not result.ok:
                log.warning("a late reply was not delivered: %s %s", result.status, result.detail)
            elif part.private and self.copies is not None and result.platform_id:
                await self.copies.note(CHANNEL, address, result.platform_id, Kind.BOT)

    async def aclose(self) -> None:
        """Let replies still being worked out finish (on shutdown)."""
        while self._late:
            await asyncio.gather(*self._late, return_exceptions=True)
