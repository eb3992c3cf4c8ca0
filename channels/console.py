"""The console channel: a chat in the terminal, for the demo and for trying things out."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import TextIO

from bot.messages import InboundMessage, OutboundMessage
from channels.base import SendResult

Handle = Callable[[InboundMessage], Awaitable[list[OutboundMessage]]]


def render(message: OutboundMessage) -> str:
    """Plain lines: the text always says what to type, so buttons are left out."""
    return message.text


class ConsoleOutbox:
    """A Sender that prints messages for other addresses as outbox lines."""

    def __init__(self, channel: str, out: TextIO) -> None:
        self.channel = channel
        self.out = out

    async def send(self, address: str, message: OutboundMessage) -> SendResult:
        self.out.write(f"[outbox {self.channel.upper()} to {address}] {message.text}\n")
        self.out.flush()
        return SendResult("sent")


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
    loop = asyncio.get_running_loop()
    interactive = inp.isatty()
    while True:
        if interactive:
            out.write(prompt)
            out.flush()
        line = await loop.run_in_executor(None, inp.readline)
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
        for reply in await handle(msg):
            out.write("bot> " + render(reply).replace("\n", "\n     ") + "\n")
        out.flush()
    return 0
