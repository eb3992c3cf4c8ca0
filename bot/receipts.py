"""Receipts held back for durability, sent once the replicas hold the ballot.

With ``OPENPRIMARY_DURABLE_REPLICAS=N`` a voter gets a receipt only once N
replicas hold their ballot.  When they do not within the cast's wait, the
voter is told the ballot is being recorded, and :class:`HeldReceipts` keeps
asking the replicas (a write and a WAIT) and sends the receipt the moment
they hold it.  This process may stop first: the ballot stays marked
unconfirmed, and the receipt is given on the voter's next message or
``RECEIPT`` once it is confirmed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from ballots.box import BallotBox
from ballots.election import Election
from bot import texts
from bot.i18n import current
from bot.messages import OutboundMessage
from bot.ports import Sender

log = logging.getLogger(__name__)

#: Seconds between the checks of a held receipt, and how long to keep trying.
CHECK_EVERY = 5.0
GIVE_UP_AFTER = 3600.0


class HeldReceipts:
    """Background follow-ups: each sends one voter's receipt once the replicas hold it."""

    def __init__(
        self,
        box: BallotBox,
        election: Election,
        senders: Mapping[str, Sender],
        *,
        every: float = CHECK_EVERY,
        give_up_after: float = GIVE_UP_AFTER,
        check_url: str | None = None,
    ) -> None:
        #: Where the voter finds the receipt once results are published.
        self.check_url = check_url
        self.box = box
        self.election = election
        self.senders = senders
        self.every = every
        self.give_up_after = give_up_after
        self._tasks: set[asyncio.Task[None]] = set()

    def follow(self, channel: str, address: str, supporter_id: str, receipt: str) -> None:
        """Send ``receipt`` to the chat once the replicas hold the supporter's ballot."""
        task = asyncio.create_task(self._follow(channel, address, supporter_id, receipt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, channel: str, address: str, supporter_id: str, receipt: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.give_up_after
        while loop.time() < deadline:
            await asyncio.sleep(self.every)
            try:
                if not await self.box.confirm(self.election, supporter_id):
                    continue
            except Exception as err:  # Redis down or failing over: ask again later
                log.info("a held receipt cannot be confirmed yet: %s", err)
                continue
            sender = self.senders.get(channel)
            if sender is None:
                log.info(
                    "a receipt is confirmed; no %s sender to send it (RECEIPT gives it)", channel
                )
                return
            # The task runs in the context it was started in: the chat's language.
            language = current()
            faithful = self.election.sms_faithful(language)
            message = OutboundMessage(
                texts.cast(receipt, self.check_url),
                kind="receipt",
                spare=texts.check_receipt(self.check_url),
                faithful=faithful,
                language=language,
            )
            result = await sender.send(address, message)
            if not result.ok:
                log.warning("a confirmed receipt was not delivered: %s", result.status)
            return
        log.warning("a held receipt was never confirmed within %.0f s", self.give_up_after)

    async def aclose(self) -> None:
        """Stop following (on shutdown): the voters get their receipts by RECEIPT."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
