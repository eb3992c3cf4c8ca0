"""The console channel: a chat in the terminal, for the demo and for trying things out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import TextIO

from ballots.errors import StoreUnavailable
from bot import texts
from bot.messages import InboundMessage, OutboundMessage
from bot.ports import SendResult

log = logging.getLogger(__name__)

Handle = Callable[[InboundMessage], Awaitable[list[OutboundMessage]]]


def render(message: OutboundMessage) -> str:
    """Plain lines: the text always says what to type, so buttons are left out."""
    return message.text


class ConsoleOutbox:
    """A Sender that prints messages for other addresses as outbox lines."""

    #: Printing needs no turn in any rate.
    paces_itself = True

    def __init__(self, channel: str, out: TextIO) -> None:
        self.channel = channel
        self.out = out

    async def send(self, address: str, message: OutboundMessage) -> SendResult:
        self.out.write(f"[outbox {self.channel.upper()} to {address}] {message.text}\n")
        self.out.flush()
        return SendResult("sent")


def _read_lines(inp: TextIO) -> asyncio.Queue[str]:
    """Lines from ``inp`` as they come, read by a daemon thread; "" at the end of input.

    Not the loop's executor: a thread blocked reading a terminal would keep the
    command from ending on Ctrl-C or SIGTERM (and its embedded Redis from stopping).
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        for line in iter(inp.readline, ""):
            try:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            except RuntimeError:  # the loop has closed: the command is ending
                return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(lines.put_nowait, "")

    threading.Thread(target=pump, name="console input", daemon=True).start()
    return lines


async def chat(
    handle: Handle,
    *,
    channel: str,
    address: str,
    inp: TextIO | None = None,
    out: TextIO | None = None,
    prompt: str = "you> ",
) -> int:
    """Read lines from ``inp`` (standard input), route each, print the replies."""
    inp = inp or sys.stdin
    out = out or sys.stdout
    lines = _read_lines(inp)
    interactive = inp.isatty()
    this = asyncio.current_task()
    while True:
        if this is not None and this.cancelling():
            # Ctrl-C came while a Redis command ran, and redis-py let the cancellation
            # go (it does, now and then): honour it here rather than wait for input.
            raise asyncio.CancelledError
        if interactive:
            out.write(prompt)
            out.flush()
        line = await lines.get()
        if not line:
            break
        text = line.rstrip("\n")
        if not text.strip():
            continue
        if not interactive:
            out.write(f"{prompt}{text}\n")
        if text.strip().lower() in ("/quit", "/exit"):
            break
        msg = InboundMessage(
            channel=channel, address=address, text=text, message_id=f"console-{uuid.uuid4().hex}"
        )
        try:
            replies = await handle(msg)
        except StoreUnavailable as err:
            log.warning("console: Redis is not available: %s", err)
            replies = [OutboundMessage(texts.failure())]
        for reply in replies:
            out.write("bot> " + render(reply).replace("\n", "\n     ") + "\n")
        out.flush()
    return 0
