"""A stand-in for the Twilio Messages REST API, on 127.0.0.1 port 0.

It speaks enough of the real protocol for the twilio library to talk to it
unchanged (point it here with ``TWILIO_API_BASE``):
``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with a form body and
``DELETE /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}.json``, both
with HTTP basic auth, answered with Twilio's JSON for a created message, an
empty 204 for a deleted one, or Twilio's JSON for an error.  It records every
message it accepts, and answers 429, 500, 21610 and the like on demand::

    async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        settings = replace(settings, twilio_api_base=twilio.base_url)
        twilio.fail_next(429)            # the next request gets 429 (code 20429)
        twilio.opt_out("+447911123456")  # every send to it gets 21610
        ...
        await twilio.wait_for(2)         # until two were accepted
        twilio.messages[0].body

It also keeps the message log Twilio keeps for the account (``log``): the
messages created through the API, and, when a ``TwilioPhone`` is given this
stand-in (``TwilioPhone(..., twilio=twilio)``), the texts the phone sends and
the TwiML replies it gets.  A message can be deleted once it is in a final
state (``FINAL_STATUSES``); before that DELETE gets 20009.  Messages created
through the API are "sent" at once unless ``auto_settle=False``, when they stay
"queued" (or "accepted") until ``settle()``::

    twilio = TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN, auto_settle=False)
    ...                                  # DELETE now gets 20009
    twilio.settle()                      # every message in flight is delivered
    twilio.fail_next_delete(429)         # the next DELETE gets 429
    await twilio.wait_deleted(2)         # until two were deleted
    assert not twilio.bodies_held("+447911123456")

Faults whose outcome the client cannot know: ``hold_next()`` takes the
message and never answers (the client times out), ``gateway_error_next(502)``
takes it and answers a bare 502 as a proxy in front of Twilio would, and
``faults(error_rate=0.1, hold_rate=0.02)`` answers a random share of sends
with Twilio's own 500 (20500, nothing taken) and holds another share.
"""

from __future__ import annotations

import asyncio
import base64
import random
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from types import TracebackType
from typing import Any, Literal, NamedTuple

from aiohttp import web

from channels.gsm import segments

API_VERSION = "2010-04-01"
MESSAGES_PATH = "/2010-04-01/Accounts/{sid}/Messages.json"
MESSAGE_PATH = "/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json"

Direction = Literal["inbound", "outbound-api", "outbound-reply"]

#: The states in which Twilio lets a message be deleted; before them DELETE gets 20009.
FINAL_STATUSES = frozenset(
    {"received", "sent", "delivered", "undelivered", "failed", "canceled", "read"}
)
#: The states of an outgoing message on its way.
IN_FLIGHT_STATUSES = frozenset({"accepted", "scheduled", "queued", "sending"})

#: The messages Twilio gives with each error code the stand-in can answer.
ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20009: (409, "Cannot delete this resource before it is complete"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "The 'To' number is not a valid phone number."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (400, "The 'To' phone number is not currently reachable via SMS."),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}
#: The code the stand-in gives with a bare HTTP status.
_CODE_OF_STATUS = {401: 20003, 404: 20404, 409: 20009, 429: 20429, 500: 20500, 503: 20503}


@dataclass(frozen=True)
class SentSms:
    """One message the stand-in accepted, as Twilio would have queued it."""

    sid: str
    to: str
    body: str
    from_: str | None
    messaging_service_sid: str | None
    at: float
    """``time.monotonic()`` when it was accepted: for checking sending rates."""
    form: dict[str, str] = field(repr=False)

    @property
    def segments(self) -> int:
        return segments(self.body)


@dataclass(frozen=True)
class Attempt:
    """One request to the Messages endpoint, accepted or not."""

    to: str
    status: int
    code: int | None
    at: float


@dataclass
class LoggedMessage:
    """One message in the account's message log, as Twilio holds it until it is deleted."""

    sid: str
    direction: Direction
    to: str
    from_: str | None
    """None for a message sent through a Messaging Service (Twilio picks the number)."""
    body: str
    status: str
    action: str | None = None
    """The status-callback URL of a TwiML reply (``<Message action="...">``)."""


class DeleteAttempt(NamedTuple):
    """One DELETE of a message, deleted or not: equal to the tuple ``(sid, status)``."""

    sid: str
    status: int


class TwilioApiStandIn:
    """A Twilio Messages API on loopback; see the module docstring."""

    def __init__(self, account_sid: str, auth_token: str, *, auto_settle: bool = True) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.auto_settle = auto_settle
        self.messages: list[SentSms] = []
        self.attempts: list[Attempt] = []
        self.log: dict[str, LoggedMessage] = {}
        """The messages Twilio holds, by sid, oldest first; a deleted one leaves it."""
        self.deleted: list[str] = []
        self.delete_attempts: list[DeleteAttempt] = []
        self._planned: deque[int] = deque()
        self._planned_deletes: deque[int] = deque()
        self._number_errors: dict[str, int] = {}
        self._changed = asyncio.Condition()
        #: Planned faults that take the message: "hold" or a bare HTTP status.
        self._planned_takes: deque[str | int] = deque()
        self._error_rate = 0.0
        self._hold_rate = 0.0
        self._random = random.Random(0)
        self._released = asyncio.Event()
        #: Messages taken whose answer was held back or lost: the client cannot know.
        self.held: list[SentSms] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.app = web.Application()
        self.app.router.add_post(MESSAGES_PATH.format(sid="{sid}"), self._create)
        self.app.router.add_delete(
            MESSAGE_PATH.format(sid="{sid}", message_sid="{message_sid}"), self._delete
        )

    # --- what the test asks for ---------------------------------------------

    def fail_next(self, status_or_code: int, times: int = 1) -> None:
        """Answer the next ``times`` requests with an HTTP status (429, 500...)
        or a Twilio error code (21610...)."""
        code = _CODE_OF_STATUS.get(status_or_code, status_or_code)
        if code not in ERRORS:
            raise ValueError(f"the stand-in cannot answer {status_or_code}")
        self._planned.extend([code] * times)

    def hold_next(self, times: int = 1) -> None:
        """Take the next ``times`` messages but never answer (until the stand-in closes)."""
        self._planned_takes.extend(["hold"] * times)

    def gateway_error_next(self, status: int = 502, times: int = 1) -> None:
        """Take the next ``times`` messages, then answer a bare ``status`` with no Twilio body."""
        self._planned_takes.extend([status] * times)

    def faults(self, error_rate: float = 0.0, hold_rate: float = 0.0, seed: int = 0) -> None:
        """From now on, answer a random ``error_rate`` of sends with Twilio's 500 (20500,
        nothing taken) and take but hold the answer to a random ``hold_rate`` of them."""
        self._error_rate, self._hold_rate = error_rate, hold_rate
        self._random = random.Random(seed)

    def opt_out(self, number: str) -> None:
        """Every send to ``number`` gets 21610, as after the person texted STOP."""
        self._number_errors[number] = 21610

    def unreachable(self, number: str, code: int = 21614) -> None:
        """Every send to ``number`` gets ``code`` (not a mobile, unroutable...)."""
        self._number_errors[number] = code

    def fail_next_delete(self, status_or_code: int, times: int = 1) -> None:
        """Answer the next ``times`` DELETEs with an HTTP status (429, 500, 409...)
        or a Twilio error code (20009...), whatever message they name."""
        code = _CODE_OF_STATUS.get(status_or_code, status_or_code)
        if code not in ERRORS:
            raise ValueError(f"the stand-in cannot answer {status_or_code}")
        self._planned_deletes.extend([code] * times)

    def settle(self, sid: str | None = None, status: str = "delivered") -> None:
        """Move a message on to ``status``, as the carrier's receipt would.

        With no ``sid``: every outgoing message still on its way, or only
        "sent", moves on.  A message in a final state (``FINAL_STATUSES``) can
        be deleted.
        """
        if status not in FINAL_STATUSES | IN_FLIGHT_STATUSES or status == "received":
            raise ValueError(f"not a status of an outgoing message: {status!r}")
        if sid is not None:
            message = self.log.get(sid)
            if message is None:
                raise KeyError(f"Twilio holds no message {sid}")
            if message.direction == "inbound":
                raise ValueError(f"{sid} is an inbound message: it stays 'received'")
            message.status = status
            return
        for message in self.log.values():
            if message.direction != "inbound" and (
                message.status in IN_FLIGHT_STATUSES or message.status == "sent"
            ):
                message.status = status

    def record_inbound(self, sid: str, from_: str, to: str, body: str) -> LoggedMessage:
        """Log an SMS a phone sent to one of our numbers (``TwilioPhone`` calls this).

        A sid already logged, or already deleted, is left as it is: Twilio
        retrying a webhook does not make a second message.
        """
        return self._log(LoggedMessage(sid, "inbound", to, from_, body, "received"))

    def record_reply(
        self,
        to: str,
        from_: str,
        body: str,
        *,
        action: str | None = None,
        sid: str | None = None,
        status: str = "sent",
    ) -> LoggedMessage:
        """Log an SMS sent as a TwiML ``<Message>`` reply (``TwilioPhone`` calls this)."""
        sid = sid or "SM" + secrets.token_hex(16)
        return self._log(LoggedMessage(sid, "outbound-reply", to, from_, body, status, action))

    def holds(self, sid: str) -> bool:
        """Whether Twilio still holds the message ``sid`` (logged and not deleted)."""
        return sid in self.log

    def bodies_held(self, number: str) -> list[str]:
        """The bodies of the messages Twilio still holds to or from ``number``, oldest first."""
        return [m.body for m in self.log.values() if number in (m.to, m.from_)]

    def sent_to(self, number: str) -> list[SentSms]:
        return [m for m in self.messages if m.to == number]

    async def wait_for(self, count: int) -> list[SentSms]:
        """Wait until at least ``count`` messages were accepted; return them all.

        Wrap it in ``asyncio.timeout`` to bound the wait.
        """
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.messages) >= count)
        return list(self.messages)

    async def wait_deleted(self, count: int) -> list[str]:
        """Wait until at least ``count`` messages were deleted; return their sids in order.

        Wrap it in ``asyncio.timeout`` to bound the wait.
        """
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.deleted) >= count)
        return list(self.deleted)

    # --- running -------------------------------------------------------------

    async def start(self) -> str:
        """Listen on a free port of 127.0.0.1; returns the base URL for TWILIO_API_BASE."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def close(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TwilioApiStandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- the endpoint --------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(f"{user}:{password}", f"{self.account_sid}:{self.auth_token}")

    async def _create(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        to = form.get("To", "")
        body = form.get("Body", "")
        code: int | None = None
        if not self._authorised(request):
            code = 20003
        elif request.match_info["sid"] != self.account_sid:
            code = 20404
        elif self._planned:
            code = self._planned.popleft()
        elif self._error_rate and self._random.random() < self._error_rate:
            code = 20500
        elif not to:
            code = 21604
        elif not body:
            code = 21602
        elif not (form.get("From") or form.get("MessagingServiceSid")):
            code = 21603
        elif len(body) > 1600:
            code = 21617
        elif to in self._number_errors:
            code = self._number_errors[to]
        if code is not None:
            self.attempts.append(Attempt(to, ERRORS[code][0], code, time.monotonic()))
            return self._error(code)

        sms = SentSms(
            sid="SM" + secrets.token_hex(16),
            to=to,
            body=body,
            from_=form.get("From"),
            messaging_service_sid=form.get("MessagingServiceSid"),
            at=time.monotonic(),
            form=form,
        )
        self.attempts.append(Attempt(to, 201, None, sms.at))
        resource = self._resource(sms)
        self._log(
            LoggedMessage(
                sms.sid,
                "outbound-api",
                sms.to,
                sms.from_,
                sms.body,
                "sent" if self.auto_settle else resource["status"],
            )
        )
        async with self._changed:
            self.messages.append(sms)
            self._changed.notify_all()
        take = self._planned_takes.popleft() if self._planned_takes else None
        if take is None and self._hold_rate and self._random.random() < self._hold_rate:
            take = "hold"
        if take == "hold":
            self.held.append(sms)
            await self._released.wait()
            raise web.HTTPServiceUnavailable()  # closing: the client has given up long ago
        if isinstance(take, int):
            self.held.append(sms)
            return web.Response(
                status=take, text="<html>Bad Gateway</html>", content_type="text/html"
            )
        return web.json_response(resource, status=201)

    async def _delete(self, request: web.Request) -> web.Response:
        sid = request.match_info["message_sid"]
        code: int | None = None
        message = self.log.get(sid)
        if not self._authorised(request):
            code = 20003
        elif request.match_info["sid"] != self.account_sid:
            code = 20404
        elif self._planned_deletes:
            code = self._planned_deletes.popleft()
        elif message is None:
            code = 20404
        elif message.status not in FINAL_STATUSES:
            code = 20009
        if code is not None:
            self.delete_attempts.append(DeleteAttempt(sid, ERRORS[code][0]))
            return self._error(code)
        self.delete_attempts.append(DeleteAttempt(sid, 204))
        async with self._changed:
            del self.log[sid]
            self.deleted.append(sid)
            self._changed.notify_all()
        return web.Response(status=204)

    def _log(self, message: LoggedMessage) -> LoggedMessage:
        if message.sid in self.deleted:
            return message
        return self.log.setdefault(message.sid, message)

    def _resource(self, sms: SentSms) -> dict[str, Any]:
        now = format_datetime(datetime.now(UTC), usegmt=False)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sms.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": sms.body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sms.from_,
            "messaging_service_sid": sms.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(sms.segments),
            "price": None,
            "price_unit": "USD",
            "sid": sms.sid,
            "status": "accepted" if sms.messaging_service_sid else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": sms.to,
            "uri": f"{uri}.json",
        }

    @staticmethod
    def _error(code: int) -> web.Response:
        status, message = ERRORS[code]
        return web.json_response(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status=status,
        )
