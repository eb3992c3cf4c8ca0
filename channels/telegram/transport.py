"""python-telegram-bot's Bot API calls over aiohttp, the HTTP library the server runs on.

PTB lets the bot's HTTP transport be swapped (``telegram.request.BaseRequest``);
its default is httpx.  Measured under load here, httpx's connection pool
(httpcore) took about a third of the server's CPU on the Telegram path: it
scans every connection for every request it places, and asks the operating
system whether each idle one is still open.  aiohttp's pool does neither.
Everything above the transport (the Bot API methods, their parsing, the
throttle, PTB's errors) is PTB's own, unchanged.

A request that never left (no connection could be opened, or none was free
in time) fails with :class:`NeverSent` as its ``__cause__``, so that a
sender can tell it from one that may have reached Telegram.
"""

from __future__ import annotations

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


class NeverSent(Exception):
    """The request did not leave this machine: it certainly had no effect."""


class AiohttpRequest(BaseRequest):
    """A :class:`~telegram.request.BaseRequest` on one ``aiohttp.ClientSession``.

    The timeouts mean what PTB's do: ``connect_timeout`` for opening a
    connection, ``pool_timeout`` for waiting for a free one (the two add up:
    aiohttp counts the wait for the pool in its connect timeout), and
    ``read_timeout`` for each read of the answer.  ``write_timeout`` is not
    kept apart (aiohttp has none): a request's body is small, and a read
    timeout follows it.
    """

    def __init__(
        self,
        *,
        connection_pool_size: int = 32,
        read_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
    ) -> None:
        self._pool = connection_pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.USER_AGENT}
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = (
            self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        )
        pool = self._pool_timeout if isinstance(pool_timeout, DefaultValue) else pool_timeout
        waits = [t for t in (connect, pool) if t is not None]
        timeout = aiohttp.ClientTimeout(
            total=None, connect=sum(waits) if waits else None, sock_read=read
        )
        data: aiohttp.FormData | dict[str, str] | None = None
        if request_data is not None:
            files = request_data.multipart_data
            data = request_data.json_parameters
            if files:
                form = aiohttp.FormData(data)
                for name, (filename, content, mime) in files.items():
                    form.add_field(name, content, filename=filename, content_type=mime)
                data = form
        try:
            async with self._session.request(method, url, data=data, timeout=timeout) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            # No connection was opened, or none came free in time: the request never left.
            never = NeverSent(str(err))
            never.__cause__ = err
            failure = TimedOut if isinstance(err, TimeoutError) else NetworkError
            raise failure(f"aiohttp.{type(err).__name__}: {err}") from never
        except TimeoutError as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{type(err).__name__}: {err}") from err
