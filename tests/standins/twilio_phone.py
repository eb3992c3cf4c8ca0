"""A supporter's phone, as the OpenPrimary webhook sees it: Twilio's signed POSTs.

Each text becomes the form Twilio sends for an inbound SMS, signed with the
twilio library's own ``RequestValidator`` for the public URL, and POSTed over
real HTTP; the TwiML answer is read back into the SMS bodies it would send::

    phone = TwilioPhone(session, server_url, public_url=PUBLIC, auth_token=TOKEN,
                        number="+447911123456")
    replies = await phone.text("hello")      # -> ["123456 is your code ..."]
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from aiohttp import ClientSession
from twilio.request_validator import RequestValidator

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
    root = ET.fromstring(xml)
    assert root.tag == "Response", xml
    return [el.text or "" for el in root.iter("Message")]


@dataclass
class Answer:
    """What the webhook answered."""

    status: int
    text: str

    @property
    def bodies(self) -> list[str]:
        return twiml_bodies(self.text)


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

    @property
    def signed_url(self) -> str:
        return self.public_url.rstrip("/") + self.path

    async def post(
        self,
        form: dict[str, str],
        *,
        signature: str | None = None,
        sign_for: str | None = None,
        unsigned: bool = False,
    ) -> Answer:
        """POST a form as Twilio would; ``sign_for`` signs it for another URL."""
        headers = {}
        if not unsigned:
            headers[SIGNATURE_HEADER] = signature or sign(
                self.auth_token, sign_for or self.signed_url, form
            )
        async with self.session.post(
            self.server_url.rstrip("/") + self.path, data=form, headers=headers
        ) as resp:
            return Answer(resp.status, await resp.text())

    async def text(self, body: str, *, sid: str | None = None) -> list[str]:
        """Text ``body``; returns the SMS bodies sent back in the TwiML answer."""
        form = inbound_form(self.number, body, sid=sid)
        self.sent.append(form["MessageSid"])
        answer = await self.post(form)
        assert answer.status == 200, (answer.status, answer.text)
        return answer.bodies
