"""SMS through Twilio, outbound: messages that answer no inbound one.

Codes asked for from Telegram and reminders go through the Messages REST API
with the twilio library's async client.  ``TWILIO_API_BASE`` points that
client at another server (a stand-in in tests).

A message is sent at most once.  Only an answer that says Twilio did not
take it is retried:

- 429 pauses SMS in every process (``pause``), then the message is tried again;
- a 5xx carrying a Twilio error code (20500, 20503: Twilio's own refusal) is
  retried for this message alone, with backoff, and pauses nobody;
- a connection that could not be opened is retried the same way.

Any answer that leaves the outcome unknown (a timeout, a connection cut
after the request went out, a 5xx without Twilio's error body, from a proxy
in between) is *in doubt*: never retried, so never sent twice.  Error 21610
(the recipient texted STOP) marks the address as opted out; numbers that can
never get an SMS are marked unreachable.  A send returns a
:class:`SendResult` and never raises, so it cannot lose a ballot or a
conversation state.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientConnectorError, ClientError
from redis.asyncio import Redis
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from bot.copies import Outcome
from bot.messages import OutboundMessage
from bot.metrics import SEND_FAILURES
from bot.ports import SendResult
from bot.reach import Reach
from bot.settings import Settings
from channels.sms import CHANNEL, sms_text

log = logging.getLogger(__name__)

#: Twilio error: the recipient has replied STOP to this sender.
OPTED_OUT = 21610
#: Twilio error: a message cannot be deleted before its status is final.
CANNOT_DELETE_YET = 20009
#: Twilio errors that mean this number will never take an SMS from us.
UNREACHABLE = frozenset(
    {
        21211,  # invalid 'To' number
        21612,  # cannot route to this number
        21614,  # 'To' is not a mobile number
    }
)


def masked(number: str) -> str:
    """A number fit for a log line: enough to tell two apart, not enough to dial."""
    return number[:4] + "*" * max(len(number) - 7, 0) + number[-3:]


class TwilioSender:
    """Sends SMS through the Twilio Messages API; implements :class:`bot.ports.Sender`."""

    channel: str = CHANNEL

    def __init__(
        self,
        client: Client,
        sender: str,
        redis: Redis,
        *,
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        timeout: float = 15.0,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        turn: Callable[[str, str | None], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.sender = sender
        self.redis = redis
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        #: Waits out a 429: ``RateLimiter.backoff_sleep`` pauses the channel everywhere.
        self._pause = pause
        #: Waits before this message alone is tried again.
        self._sleep = sleep
        #: Waits for this message's turn in the shared rate (``RateLimiter.wait_turn``).
        self._turn = turn

    @property
    def paces_itself(self) -> bool:
        """Whether every message already takes its turn in the shared rate here."""
        return self._turn is not None

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis, **options: Any) -> TwilioSender:
        """A sender with its own async HTTP client; call :meth:`aclose` when done.

        Needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM.  Must be
        called with the event loop running (the HTTP client opens a session).
        """
        settings.require("twilio_account_sid", "twilio_auth_token", "twilio_from")
        assert settings.twilio_account_sid and settings.twilio_auth_token
        assert settings.twilio_from
        client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            http_client=AsyncTwilioHttpClient(),
            # Settings are read in one place: keep the library off os.environ.
            environment={"TWILIO_ACCOUNT_SID": settings.twilio_account_sid},
        )
        if settings.twilio_api_base:
            # Every Messages call goes through the Api domain's base URL.
            client.api.base_url = settings.twilio_api_base
        return cls(client, settings.twilio_from, redis, **options)

    async def aclose(self) -> None:
        """Close the HTTP session behind the client."""
        await self.client.http_client.close()

    async def send(self, address: str, message: OutboundMessage) -> SendResult:
        """Text ``message`` to ``address`` (E.164), retrying what Twilio says to retry."""
        body = sms_text(message)
        if not body:
            return self._failed("empty", "no text left once made plain GSM-7")
        route: dict[str, str] = (
            {"messaging_service_sid": self.sender}
            if self.sender.startswith("MG")
            else {"from_": self.sender}
        )
        if self._turn is not None:
            await self._turn(CHANNEL, address)
        for attempt in range(1, self.attempts + 1):
            try:
                async with asyncio.timeout(self.timeout):
                    sent = await self.client.messages.create_async(to=address, body=body, **route)
            except (TwilioRestException, TwilioServiceException) as err:
                status, code = int(err.status), int(err.code or 0)
                if code == OPTED_OUT:
                    await Reach(self.redis).opt_out(CHANNEL, address)
                    log.info("%s has opted out of SMS (Twilio 21610)", masked(address))
                    return self._result("opted_out", "21610 recipient opted out")
                if code in UNREACHABLE:
                    await Reach(self.redis).unreachable(CHANNEL, address)
                    log.warning("%s cannot take an SMS: Twilio %s", masked(address), code)
                    return self._result("unreachable", f"{code} {_message(err)}")
                detail = f"Twilio {status}/{code}: {_message(err)}"
                if status >= 500 and not _twilio_code(code, status):
                    # Not Twilio's own answer: whatever was in between may have passed it on.
                    return self._in_doubt(address, detail)
                if not (status == 429 or status >= 500):
                    return self._failed("rejected", detail)
                if attempt == self.attempts:
                    return self._failed("retries", detail)
                reason = f"HTTP {status}"
                wait = self._pause if status == 429 else self._sleep
            except ClientConnectorError as err:
                # The connection was never opened, so nothing was sent.
                if attempt == self.attempts:
                    return self._failed("network", f"{type(err).__name__}: {err}")
                reason = type(err).__name__
                wait = self._sleep
            except (ClientError, TimeoutError) as err:
                # The request may have reached Twilio and the answer been lost.
                return self._in_doubt(address, f"{type(err).__name__}: {err}")
            else:
                return SendResult("sent", platform_id=str(sent.sid))
            delay = self._delay(attempt)
            log.info("SMS to %s: %s, retry %d in %.1fs", masked(address), reason, attempt, delay)
            await wait(delay)
        raise AssertionError("unreachable: the last attempt always returns")

    async def delete(self, sid: str) -> Outcome:
        """Delete one message from Twilio's log; Twilio refuses until its status is final."""
        try:
            async with asyncio.timeout(self.timeout):
                await self.client.messages(sid).delete_async()
        except TwilioRestException as err:
            if err.status == 404:
                return Outcome.GONE
            if err.code == CANNOT_DELETE_YET or err.status == 429 or err.status >= 500:
                return Outcome.RETRY
            log.warning(
                "Twilio refused to delete a message: %s/%s %s", err.status, err.code, err.msg
            )
            return Outcome.FAILED
        except (ClientError, TimeoutError) as err:
            log.info("deleting a message from Twilio: %s, will retry", type(err).__name__)
            return Outcome.RETRY
        return Outcome.REMOVED

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter, so many senders do not retry in step."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _result(self, status: str, detail: str) -> SendResult:
        SEND_FAILURES.labels(CHANNEL, status).inc()
        return SendResult(status, detail)

    def _in_doubt(self, address: str, detail: str) -> SendResult:
        """A send that may or may not have reached Twilio: reported, never retried."""
        log.warning("SMS to %s in doubt, not retried: %s", masked(address), detail)
        SEND_FAILURES.labels(CHANNEL, "in_doubt").inc()
        return SendResult("in_doubt", detail)

    def _failed(self, reason: str, detail: str) -> SendResult:
        """Give up on a message; ``reason`` is one of a few metric labels, ``detail`` says why."""
        log.warning("SMS not sent (%s): %s", reason, detail)
        SEND_FAILURES.labels(CHANNEL, reason).inc()
        return SendResult("failed", detail)


def _twilio_code(code: int, status: int) -> bool:
    """Whether an error answer carried Twilio's own error code (the library falls back to the
    HTTP status when the body had none)."""
    return code >= 10_000 and code != status


def _message(err: TwilioRestException | TwilioServiceException) -> str:
    if isinstance(err, TwilioRestException):
        return str(err.msg)
    return str(err.detail or err.title)
