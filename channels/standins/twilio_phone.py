"""A supporter's phone, as the OpenPrimary webhook sees it: Twilio's signed POSTs.

Each text becomes the form Twilio sends for an inbound SMS, signed with the
twilio library's own ``RequestValidator`` for the public URL, and POSTed over
real HTTP; the TwiML answer is read back into the SMS bodies it would send::

    phone = TwilioPhone(session, server_url, public_url=PUBLIC, auth_token=TOKEN,
                        number="+447911123456")
    replies = await phone.text("hello")      # -> ["123456 is your code ..."]

Given a ``TwilioApiStandIn`` (``TwilioPhone(..., twilio=twilio)``), the phone
also logs what Twilio would hold: each inbound SMS (status "received") and each
``<Message>`` of the answer (an "outbound-reply" with a fresh sid, status
"sent"), so a test can check the app deletes them.  Whether or not it has one,
the phone gives each reply a sid (``reply_sids``) and, for a ``<Message
action="...">``, POSTs the status callbacks Twilio would ("sent", then
"delivered"), signed for the action URL, before ``text()`` returns; their
answers are in ``callbacks``.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urljoin

from aiohttp import ClientSession
from twilio.request_validator import RequestValidator

from channels.standins.twilio_api import TwilioApiStandIn

SIGNATURE_HEADER = "X-Twilio-Signature"
PATH = "/sms/twilio"
ACCOUNT_SID = "AC" + "0" * 31 + "1"
OUR_NUMBER = "+447700900000"


def message_sid() -> str:
    return "SM" + secrets.token_hex(16)


def inbound_form(
    from_: str, body: str, *, to: str = OUR_NUMBER, sid: str | None = None
) -> dict[str, str]:
    """The parameters Twilio POSTs for one inbound SMS."""
    sid = sid or message_sid()
    return {
        "ToCountry": "GB",
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "GB",
        "To": to,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": from_,
        "ApiVersion": "2010-04-01",
    }


def sign(auth_token: str, url: str, form: dict[str, str]) -> str:
    """The X-Twilio-Signature Twilio would send for this URL and form."""
    return str(RequestValidator(auth_token).compute_signature(url, form))


def twiml_bodies(xml: str) -> list[str]:
    """The SMS bodies in a TwiML MessagingResponse."""
    root = ET.fromstring(xml)  # noqa: S314 (our own server's answer, on loopback)
    assert root.tag == "Response", xml
    return [el.text or "" for el in root.iter("Message")]


def twiml_messages(xml: str) -> list[tuple[str, str | None]]:
    """Each ``<Message>`` of a TwiML MessagingResponse: its body and ``action`` (or None).

    Anything that is not a TwiML response has none.
    """
    try:
        root = ET.fromstring(xml)  # noqa: S314 (our own server's answer, on loopback)
    except ET.ParseError:
        return []
    if root.tag != "Response":
        return []
    return [(el.text or "", el.get("action")) for el in root.iter("Message")]


def status_form(
    sid: str, status: str, *, to: str, from_: str, account_sid: str = ACCOUNT_SID
) -> dict[str, str]:
    """The parameters Twilio POSTs to a status callback for an outgoing SMS."""
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": to,
        "From": from_,
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
    }


@dataclass
class Answer:
    """What the webhook answered."""

    status: int
    text: str

    @property
    def bodies(self) -> list[str]:
        return twiml_bodies(self.text)


@dataclass(frozen=True)
class Callback:
    """One status callback the phone POSTed for a reply, and what the app answered."""

    url: str
    """The action URL as the TwiML gave it, made absolute: the URL that was signed."""
    form: dict[str, str]
    status: int
    text: str


@dataclass
class TwilioPhone:
    """One phone number texting the webhook through Twilio."""

    session: ClientSession
    server_url: str
    public_url: str
    auth_token: str
    number: str
    path: str = PATH
    sent: list[str] = field(default_factory=list)
    twilio: TwilioApiStandIn | None = None
    """The Twilio stand-in whose message log gets this phone's texts and their replies."""
    reply_sids: list[str] = field(default_factory=list)
    """The sids Twilio gave the TwiML replies, in order."""
    callbacks: list[Callback] = field(default_factory=list)

    @property
    def signed_url(self) -> str:
        return self.public_url.rstrip("/") + self.path

    def server_url_for(self, public: str) -> str:
        """Where a request for a public URL really goes: the same path and query on the server."""
        base = self.public_url.rstrip("/")
        if (
            public != base
            and not public.startswith(base + "/")
            and not public.startswith(base + "?")
        ):
            raise AssertionError(f"{public!r} is not under the public URL {base!r}")
        return self.server_url.rstrip("/") + public[len(base) :]

    async def post(
        self,
        form: dict[str, str],
        *,
        signature: str | None = None,
        sign_for: str | None = None,
        unsigned: bool = False,
    ) -> Answer:
        """POST a form as Twilio would; ``sign_for`` signs it for another URL.

        With ``twilio``, an inbound SMS is logged there unless it is a forgery
        (``unsigned``, or an explicit ``signature``): Twilio never saw those.
        A 200 answer's ``<Message>`` replies are sent as ``text`` describes.
        """
        genuine = not unsigned and signature is None
        headers = {}
        if not unsigned:
            headers[SIGNATURE_HEADER] = signature or sign(
                self.auth_token, sign_for or self.signed_url, form
            )
        if self.twilio is not None and genuine and form.get("SmsStatus") == "received":
            self.twilio.record_inbound(
                form.get("MessageSid", ""),
                form.get("From", ""),
                form.get("To", ""),
                form.get("Body", ""),
            )
        async with self.session.post(
            self.server_url.rstrip("/") + self.path, data=form, headers=headers
        ) as resp:
            answer = Answer(resp.status, await resp.text())
        if answer.status == 200:
            await self._replied(form, answer)
        return answer

    async def _replied(self, form: dict[str, str], answer: Answer) -> None:
        """Send the TwiML replies as Twilio would: log them, then call back their ``action``."""
        ours, theirs = form.get("To", OUR_NUMBER), form.get("From", self.number)
        for body, action in twiml_messages(answer.text):
            sid = message_sid()
            self.reply_sids.append(sid)
            url = None if action is None else urljoin(self.signed_url, action)
            if self.twilio is not None:
                self.twilio.record_reply(theirs, ours, body, action=url, sid=sid)
            if url is None:
                continue
            for status in ("sent", "delivered"):
                callback = status_form(
                    sid,
                    status,
                    to=theirs,
                    from_=ours,
                    account_sid=form.get("AccountSid", ACCOUNT_SID),
                )
                if self.twilio is not None and self.twilio.holds(sid):
                    self.twilio.settle(sid, status)
                await self._call_back(url, callback)

    async def _call_back(self, url: str, form: dict[str, str]) -> None:
        headers = {SIGNATURE_HEADER: sign(self.auth_token, url, form)}
        async with self.session.post(self.server_url_for(url), data=form, headers=headers) as resp:
            self.callbacks.append(Callback(url, form, resp.status, await resp.text()))

    async def text(self, body: str, *, sid: str | None = None) -> list[str]:
        """Text ``body``; returns the SMS bodies sent back in the TwiML answer."""
        form = inbound_form(self.number, body, sid=sid)
        self.sent.append(form["MessageSid"])
        answer = await self.post(form)
        assert answer.status == 200, (answer.status, answer.text)
        return answer.bodies
