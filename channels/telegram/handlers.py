"""The bot's PTB handlers: each turns one kind of update into an InboundMessage, or answers it.

Private chats go to the router: typed text, a shared contact (only the
sender's own), a tapped button (only with callback data this bot signed for
this chat).  Groups get a pointer to a private chat and are never routed.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis
from telegram import CallbackQuery, Chat, Message, Update
from telegram.error import TelegramError
from telegram.ext import Application, CallbackContext

from ballots.errors import unavailable
from ballots.languages import best
from ballots.roll import PhoneError, normalise_phone
from bot import texts
from bot.copies import PlatformCopies
from bot.i18n import speaking
from bot.messages import InboundMessage, OutboundMessage
from bot.metrics import ERRORS
from bot.reach import Reach
from bot.router import Router
from channels.telegram.sending import CHANNEL, Bot, send_replies
from channels.telegram.signing import ButtonSigner

log = logging.getLogger(__name__)

Context = CallbackContext[Bot, dict[Any, Any], dict[Any, Any], dict[Any, Any]]


class Handlers:
    """Callbacks for the PTB Application, sharing the router and the button signer."""

    def __init__(
        self,
        router: Router,
        redis: Redis,
        signer: ButtonSigner,
        region: str = "GB",
        copies: PlatformCopies | None = None,
    ) -> None:
        self.router = router
        self.redis = redis
        self.signer = signer
        self.region = region
        self.copies = copies
        #: Deliveries (``u<update id>``) handled again after their process died: a stored
        #: answer is sent again rather than taken as sent.
        self._replaying: set[str] = set()
        #: Updates that could not be handled because Redis was unavailable.
        self._unfinished: set[int] = set()

    async def process(
        self,
        app: Application[Any, Any, Any, Any, Any, Any],
        update: Update,
        *,
        replay: bool = False,
    ) -> bool:
        """Run the handlers for one update; False if Redis was unavailable (try it again)."""
        delivery = f"u{update.update_id}"
        if replay:
            self._replaying.add(delivery)
        try:
            await app.process_update(update)
        finally:
            self._replaying.discard(delivery)
        if update.update_id in self._unfinished:
            self._unfinished.discard(update.update_id)
            return False
        return True

    async def on_text(self, update: Update, context: Context) -> None:
        """A typed message in a private chat: route it as it is, like an SMS."""
        message, user = update.message, update.effective_user
        if message is None or message.text is None or user is None:
            return
        await self._route(
            context.bot,
            InboundMessage(
                CHANNEL,
                str(message.chat.id),
                text=_plain_command(message.text, context.bot.username),
                message_id=f"u{update.update_id}",
                user_id=str(user.id),
                ref=str(message.message_id),
                language=user.language_code,
            ),
        )

    async def on_contact(self, update: Update, context: Context) -> None:
        """A shared phone number: routed only if it is the sender's own."""
        message, user = update.message, update.effective_user
        if message is None or message.contact is None or user is None:
            return
        chat_id = str(message.chat.id)
        if message.contact.user_id != user.id:
            language = self._language(user.language_code)
            with speaking(language):
                text = texts.not_own_contact()
            reply = OutboundMessage(text, ask_contact=True, language=language)
            await send_replies(context.bot, self.redis, self.signer, chat_id, [reply])
            return
        await self._route(
            context.bot,
            InboundMessage(
                CHANNEL,
                chat_id,
                contact=self._e164(message.contact.phone_number),
                message_id=f"u{update.update_id}",
                user_id=str(user.id),
                ref=str(message.message_id),
                language=user.language_code,
            ),
        )

    async def on_other(self, update: Update, context: Context) -> None:
        """A sticker, photo or voice note: routed as an empty message, so the bot re-asks."""
        message, user = update.message, update.effective_user
        if message is None or user is None:
            return
        await self._route(
            context.bot,
            InboundMessage(
                CHANNEL,
                str(message.chat.id),
                message_id=f"u{update.update_id}",
                user_id=str(user.id),
                ref=str(message.message_id),
                language=user.language_code,
            ),
        )

    async def on_button(self, update: Update, context: Context) -> None:
        """A tapped inline button: a signed payload becomes the voter's choice."""
        query = update.callback_query
        if query is None:
            return
        chat = query.message.chat if query.message is not None else None
        with speaking(self._language(query.from_user.language_code)):
            private_only, refused = texts.private_only(), texts.button_refused()
        if chat is not None and chat.type != Chat.PRIVATE:
            await _answer(query, private_only)
            return
        address = str(chat.id if chat is not None else query.from_user.id)
        payload = self.signer.verify(address, query.data or "")
        if payload is None:
            log.warning("refused a telegram button whose callback data this bot did not sign")
            await _answer(query, refused)
            return
        msg = InboundMessage(
            CHANNEL,
            address,
            choice=payload,
            message_id=f"u{update.update_id}",
            user_id=str(query.from_user.id),
            language=query.from_user.language_code,
        )
        tapped = query.message.message_id if isinstance(query.message, Message) else None
        await self._route(context.bot, msg, answer=query, tapped_message_id=tapped)

    async def in_group(self, update: Update, context: Context) -> None:
        """Anything addressed to the bot in a group: voting is private, here is the way in."""
        message = update.message
        if message is None or not _addressed_to_bot(message, context.bot):
            return
        link = f"https://t.me/{context.bot.username}"
        user = message.from_user
        with speaking(self._language(user.language_code if user is not None else None)):
            text = f"{texts.private_only()} {texts.start_privately(link)}"
        try:
            await message.reply_text(text)
        except TelegramError as err:
            log.info("could not answer in a telegram group: %s", err.message)

    def _language(self, hint: str | None) -> str:
        """The language to answer a chat in before the conversation has it: the Telegram
        app's, if the (first) election offers it, else the election's first."""
        offered = self.router.lobby.home.election.languages
        return best(hint, offered) or offered[0]

    async def on_error(self, update: object, context: Context) -> None:
        """Anything a handler let escape: logged and counted (the voter's state is in Redis).

        Redis being unavailable is not a failure of the update: it stays in the
        inbox and is handled again once Redis answers.
        """
        if context.error is not None and unavailable(context.error) and isinstance(update, Update):
            self._unfinished.add(update.update_id)
            log.warning("telegram update waits for Redis: %s", context.error)
            return
        ERRORS.labels("telegram").inc()
        log.error("telegram update failed", exc_info=context.error)

    async def _route(
        self,
        bot: Bot,
        msg: InboundMessage,
        *,
        answer: CallbackQuery | None = None,
        tapped_message_id: int | None = None,
    ) -> None:
        """Hand one message to the router and render its replies."""
        # Whoever writes to the bot has not blocked it (any more).
        await Reach(self.redis).reachable(CHANNEL, msg.address)
        # A repeated update that was done already: its replies went out then, unless its
        # process died before it could say so (replaying).  StoreUnavailable goes up to
        # on_error, and the update is tried again from the inbox.
        replies = await self.router.handle(msg, replay=msg.message_id in self._replaying)
        if answer is not None:
            # A notice about the tap itself (a stale button) is the tap's answer:
            # a toast over the chat rather than one more message in it.
            if len(replies) == 1 and replies[0].kind == "notice":
                await _answer(answer, replies[0].text)
                return
            await _answer(answer)  # every tap is answered, even a repeated one
        await send_replies(
            bot,
            self.redis,
            self.signer,
            msg.address,
            replies,
            tapped_message_id=tapped_message_id,
            copies=self.copies,
            health=self.router.health,
        )

    def _e164(self, phone: str) -> str:
        """Telegram gives contacts' numbers in international form, often without the '+'."""
        digits = "+" + phone.strip().lstrip("+")
        try:
            return normalise_phone(digits, self.region)
        except PhoneError:
            return digits  # the roll will not know it, and the conversation says so


async def _answer(query: CallbackQuery, text: str | None = None) -> None:
    """Stop the button's spinner (with a short notice, if given); a late answer is only logged."""
    try:
        await query.answer(text)
    except TelegramError as err:
        log.info("telegram callback query not answered: %s", err.message)


def _plain_command(text: str, username: str) -> str:
    """'/start@bot' and a deep link's '/start payload' reach the conversation as '/start'."""
    if not text.startswith("/"):
        return text
    command, _, rest = text.partition(" ")
    name, _, addressee = command.partition("@")
    if addressee and addressee.lower() != username.lower():
        return text
    return name if name == "/start" else f"{name} {rest}".strip()


def _addressed_to_bot(message: Message, bot: Bot) -> bool:
    """Whether a group message is meant for the bot (a command, a mention, a reply, or joining)."""
    if any(member.id == bot.id for member in message.new_chat_members):
        return True
    reply_to = message.reply_to_message
    if reply_to is not None and reply_to.from_user is not None and reply_to.from_user.id == bot.id:
        return True
    text = message.text or message.caption or ""
    if f"@{bot.username}".lower() in text.lower():
        return True
    if text.startswith("/"):
        command = text.split()[0]
        return "@" not in command
    return False
