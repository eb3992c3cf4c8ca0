"""A stand-in for the Telegram Bot API: a real aiohttp app on 127.0.0.1, port 0.

It serves ``/bot<token>/<method>`` for the methods OpenPrimary calls, answers
with the JSON shapes Telegram documents, keeps the messages the bot sent (so
edits can be checked the way Telegram checks them), records every call with
a timestamp, and answers 429 or 403 on demand.  ``UpdateFactory`` builds the
updates Telegram would POST to a webhook, numbered like Telegram numbers them.

    async with TelegramAPI() as api:
        settings = replace(settings, telegram_api_base=api.url, telegram_bot_token=api.token)
        api.fail("sendMessage", 429, retry_after=1)
        api.block(200002)

Deleting.  ``deleteMessage`` and ``deleteMessages`` delete the bot's own
messages and the users' messages the stand-in knows of, with the Bot API's
errors ("Bad Request: message to delete not found"...).  A deleted message is
gone: ``messages()``, ``user_messages()`` and ``message()`` no longer have it
(``message()`` raises KeyError); ``deleted(chat_id)`` lists the ids deleted, in
order.  Edits are kept: ``message()`` gives a message as it stands now.

Users' messages.  Telegram holds what users send, so the bot can delete it;
the stand-in learns of a user's message in one of these ways:

* ``queue_update(update)`` (polling) notes the message in the update;
* an ``UpdateFactory`` given the stand-in (``UpdateFactory(api=api)``, or
  ``factory.attach(api)`` later) notes each message it builds, as the user
  sends it, whether or not it is ever delivered, and numbers it in the chat's
  own sequence of message ids, shared with the bot's messages, as Telegram
  numbers a private chat.  Updates POSTed straight to the webhook bypass the
  stand-in, so a test driving a ``TelegramWorld`` calls
  ``world.updates.attach(world.api)`` first;
* ``note_update(update)`` or ``note_user_message(chat_id, message_id, text)``,
  by hand.

    api.note_user_message(310001, 1000, "/vote 1 2 3")
    await bot.delete_message(310001, 1000)
    assert api.deleted(310001) == [1000]
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

#: Parameters PTB sends JSON-encoded in a form body; everything else is a string.
_JSON_PARAMS = frozenset(
    {
        "chat_id",
        "message_id",
        "reply_markup",
        "allowed_updates",
        "show_alert",
        "drop_pending_updates",
        "max_connections",
        "offset",
        "limit",
        "timeout",
        "cache_time",
        "disable_notification",
        "protect_content",
        "entities",
        "link_preview_options",
        "reply_parameters",
        "message_ids",
    }
)

#: Calls that change what a chat shows.
_SHOWN = frozenset({"sendMessage", "editMessageText", "editMessageReplyMarkup"})

#: The bot token the stand-in answers to by default (a made-up one: it opens nothing).
TOKEN = "123456789:TEST-openprimary-stand-in-token"

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)


@dataclass(frozen=True)
class Call:
    """One request the bot made, and the HTTP status it got."""

    method: str
    params: dict[str, Any]
    at: float
    status: int


@dataclass
class _Failure:
    method: str
    status: int
    description: str
    retry_after: int | None
    chat_id: int | None
    remaining: int


#: How many messages one deleteMessages call may name.
MAX_DELETE = 100


@dataclass
class _Chat:
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    """The bot's messages, as they stand after edits."""
    user_messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: list[int] = field(default_factory=list)
    next_id: int = 1


class TelegramAPI:
    """The stand-in server; use as an async context manager."""

    def __init__(
        self,
        token: str = TOKEN,
        username: str = "openprimary_test_bot",
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.username = username
        self.calls: list[Call] = []
        self.webhook: dict[str, Any] | None = None
        self.blocked: set[int] = set()
        self._chats: dict[int, _Chat] = {}
        self._failures: list[_Failure] = []
        self._answered: set[str] = set()
        self._pending: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._activity = asyncio.Event()
        self._delivered: Counter[int] = Counter()
        self._chat_activity: dict[int, asyncio.Event] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- running -------------------------------------------------------------

    async def __aenter__(self) -> TelegramAPI:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._arrived.set()  # release any long poll
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- what tests arrange --------------------------------------------------

    def fail(
        self,
        method: str,
        status: int,
        *,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
        description: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (to ``chat_id`` if given) with an error."""
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after or 1}",
                403: "Forbidden: bot was blocked by the user",
                400: "Bad Request: chat not found",
                500: "Internal Server Error",
            }.get(status, "Error")
        if status == 429 and retry_after is None:
            retry_after = 1
        self._failures.append(_Failure(method, status, description, retry_after, chat_id, times))

    def block(self, chat_id: int) -> None:
        """The user behind ``chat_id`` blocks the bot: every send to them gets 403."""
        self.blocked.add(chat_id)

    def queue_update(self, update: dict[str, Any]) -> None:
        """Make an update available to getUpdates (polling); note the user's message in it."""
        self.note_update(update)
        self._pending.append(update)
        self._arrived.set()

    def note_update(self, update: dict[str, Any]) -> None:
        """Note the user's message an update carries (if any), so the bot can delete it."""
        message = update.get("message")
        if isinstance(message, dict):
            self._note(message)

    def note_user_message(self, chat_id: int, message_id: int, text: str | None = None) -> None:
        """Note a message a user sent in a chat, so the bot can delete it."""
        message: dict[str, Any] = {
            "message_id": message_id,
            "chat": _chat_json(chat_id),
            "date": int(time.time()),
        }
        if chat_id > 0:
            message["from"] = {"id": chat_id, "is_bot": False, "first_name": f"User {chat_id}"}
        if text is not None:
            message["text"] = text
        self._note(message)

    def next_message_id(self, chat_id: int) -> int:
        """Take the chat's next message id, as Telegram numbers a user's message in it."""
        chat = self._chats.setdefault(chat_id, _Chat())
        chat.next_id += 1
        return chat.next_id - 1

    def _note(self, message: dict[str, Any]) -> None:
        chat_id, message_id = message["chat"]["id"], message["message_id"]
        chat = self._chats.setdefault(chat_id, _Chat())
        if message_id in chat.deleted:
            return  # Telegram does not bring a deleted message back
        if message_id in chat.messages:
            raise AssertionError(
                f"message {message_id} in chat {chat_id} is the bot's: "
                "number users' messages with UpdateFactory(api=...)"
            )
        chat.user_messages[message_id] = message

    # --- what tests inspect --------------------------------------------------

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, checking after each call the bot makes.

        Give up after ten seconds: a test that waits longer has found a bug.
        """
        async with asyncio.timeout(10):
            while not condition():
                self._activity.clear()
                await self._activity.wait()

    def delivered(self, chat_id: int) -> int:
        """How many messages the bot has sent or edited in a chat so far."""
        return self._delivered[chat_id]

    async def wait_delivered(self, chat_id: int, count: int) -> None:
        """Wait until the bot has sent or edited ``count`` messages in a chat (10 s at most)."""
        event = self._chat_activity.setdefault(chat_id, asyncio.Event())
        async with asyncio.timeout(10):
            while self._delivered[chat_id] < count:
                event.clear()
                await event.wait()

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in a chat, oldest first, as they stand after any edits.

        A deleted message is not among them.
        """
        chat = self._chats.get(chat_id)
        return [] if chat is None else list(chat.messages.values())

    def user_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The users' messages the stand-in knows of in a chat and not deleted, oldest first."""
        chat = self._chats.get(chat_id)
        return [] if chat is None else list(chat.user_messages.values())

    def deleted(self, chat_id: int) -> list[int]:
        """The ids of the messages (the bot's or users') deleted in a chat, in order."""
        chat = self._chats.get(chat_id)
        return [] if chat is None else list(chat.deleted)

    def last_message(self, chat_id: int) -> dict[str, Any]:
        found = self.messages(chat_id)
        if not found:
            raise AssertionError(f"the bot sent nothing to chat {chat_id}")
        return found[-1]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """A message in a chat (the bot's, as edited, or a user's); KeyError once deleted."""
        chat = self._chats.get(chat_id)
        if chat is None:
            raise KeyError(f"no chat {chat_id}")
        if message_id in chat.messages:
            return chat.messages[message_id]
        if message_id in chat.user_messages:
            return chat.user_messages[message_id]
        if message_id in chat.deleted:
            raise KeyError(f"message {message_id} in chat {chat_id} was deleted")
        raise KeyError(f"no message {message_id} in chat {chat_id}")

    # --- the API -------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        if request.match_info["token"] != self.token:
            return self._record(method, params, _error(401, "Unauthorized"))
        failure = self._take_failure(method, params.get("chat_id"))
        if failure is not None:
            return self._record(method, params, failure)
        handler = getattr(self, "_m_" + method, None)
        if handler is None:
            return self._record(method, params, _error(404, "Not Found: method not found"))
        if method == "getUpdates":
            # Record before the long poll, so the call shows up while it waits.
            self.calls.append(Call(method, params, time.monotonic(), 200))
            self._activity.set()
            response: web.Response = await handler(params)
            return response
        return self._record(method, params, await handler(params))

    def _record(self, method: str, params: dict[str, Any], response: web.Response) -> web.Response:
        self.calls.append(Call(method, params, time.monotonic(), response.status))
        if response.status == 200 and method in _SHOWN and isinstance(params.get("chat_id"), int):
            self._delivered[params["chat_id"]] += 1
            event = self._chat_activity.get(params["chat_id"])
            if event is not None:
                event.set()
        self._activity.set()
        return response

    def _take_failure(self, method: str, chat_id: Any) -> web.Response | None:
        for failure in self._failures:
            if failure.method == method and failure.chat_id in (None, chat_id):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                parameters = (
                    {"retry_after": failure.retry_after}
                    if failure.retry_after is not None
                    else None
                )
                return _error(failure.status, failure.description, parameters)
        return None

    async def _m_getMe(self, params: dict[str, Any]) -> web.Response:
        return _ok(
            self._bot_user()
            | {
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
                "can_connect_to_business": False,
                "has_main_web_app": False,
            }
        )

    async def _m_setWebhook(self, params: dict[str, Any]) -> web.Response:
        url = params.get("url", "")
        if not isinstance(url, str) or not url.startswith("https://"):
            return _error(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        self.webhook = params
        return _ok(True, description="Webhook was set")

    async def _m_deleteWebhook(self, params: dict[str, Any]) -> web.Response:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return _ok(True, description="Webhook was deleted")

    async def _m_getWebhookInfo(self, params: dict[str, Any]) -> web.Response:
        info: dict[str, Any] = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self.webhook is not None:
            info["url"] = self.webhook["url"]
            info["max_connections"] = self.webhook.get("max_connections", 40)
            if "allowed_updates" in self.webhook:
                info["allowed_updates"] = self.webhook["allowed_updates"]
        return _ok(info)

    async def _m_getUpdates(self, params: dict[str, Any]) -> web.Response:
        if self.webhook is not None:
            return _error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        self._pending = [u for u in self._pending if u["update_id"] >= offset]
        if not self._pending:
            self._arrived.clear()
            timeout = float(params.get("timeout") or 0)
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), timeout)
        limit = int(params.get("limit") or 100)
        return _ok(self._pending[:limit])

    async def _m_sendMessage(self, params: dict[str, Any]) -> web.Response:
        chat_id = params.get("chat_id")
        text = params.get("text")
        if not isinstance(chat_id, int):
            return _error(400, "Bad Request: chat not found")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return _error(400, "Bad Request: message is too long")
        if chat_id in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        chat = self._chats.setdefault(chat_id, _Chat())
        message: dict[str, Any] = {
            "message_id": chat.next_id,
            "from": self._bot_user(),
            "chat": _chat_json(chat_id),
            "date": int(time.time()),
            "text": text,
        }
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        chat.next_id += 1
        stored = dict(message)
        if isinstance(markup, dict) and "inline_keyboard" not in markup:
            # Not in Telegram's answer: the reply keyboard the user's client now shows.
            stored["_keyboard"] = markup
        chat.messages[message["message_id"]] = stored
        return _ok(message)

    async def _m_editMessageText(self, params: dict[str, Any]) -> web.Response:
        return self._edit(params, text=params.get("text"))

    async def _m_editMessageReplyMarkup(self, params: dict[str, Any]) -> web.Response:
        return self._edit(params, text=None)

    def _edit(self, params: dict[str, Any], text: Any) -> web.Response:
        chat_id, message_id = params.get("chat_id"), params.get("message_id")
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        if isinstance(message_id, int) and message_id in chat.user_messages:
            return _error(400, "Bad Request: message can't be edited")
        if not isinstance(message_id, int) or message_id not in chat.messages:
            return _error(400, "Bad Request: message to edit not found")
        markup = params.get("reply_markup")
        if markup is not None and not (isinstance(markup, dict) and "inline_keyboard" in markup):
            return _error(400, "Bad Request: inline keyboard expected")
        if text is not None and (not isinstance(text, str) or not text.strip()):
            return _error(400, "Bad Request: message text is empty")
        message = chat.messages[message_id]
        new = dict(message)
        if text is not None:
            new["text"] = text
        new.pop("reply_markup", None)
        if markup is not None and markup.get("inline_keyboard"):
            new["reply_markup"] = markup
        if new == message:
            return _error(400, NOT_MODIFIED)
        new["edit_date"] = int(time.time())
        chat.messages[message_id] = new
        return _ok({k: v for k, v in new.items() if not k.startswith("_")})

    async def _m_deleteMessage(self, params: dict[str, Any]) -> web.Response:
        chat_id, message_id = params.get("chat_id"), params.get("message_id")
        if not isinstance(message_id, int) or message_id <= 0:
            return _error(400, "Bad Request: message identifier is not specified")
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        if not self._delete(chat, message_id):
            return _error(400, "Bad Request: message to delete not found")
        return _ok(True)

    async def _m_deleteMessages(self, params: dict[str, Any]) -> web.Response:
        chat_id, message_ids = params.get("chat_id"), params.get("message_ids")
        if message_ids is None or message_ids in ("", []):
            return _error(400, "Bad Request: message identifiers are not specified")
        if not isinstance(message_ids, list):
            return _error(400, "Bad Request: expected an Array of message identifiers")
        if len(message_ids) > MAX_DELETE:
            return _error(400, "Bad Request: too many message identifiers specified")
        ids: list[int] = []
        for value in message_ids:
            if isinstance(value, bool) or not isinstance(value, int | str):
                return _error(400, "Bad Request: message identifier must be a Number")
            try:
                number = int(value)
            except ValueError:
                return _error(400, "Bad Request: can't parse message identifier as a Number")
            if number <= 0:
                return _error(400, "Bad Request: invalid message identifier specified")
            ids.append(number)
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        for message_id in ids:
            self._delete(chat, message_id)  # the ones not found are skipped
        return _ok(True)

    @staticmethod
    def _delete(chat: _Chat, message_id: int) -> bool:
        if chat.messages.pop(message_id, None) is None and (
            chat.user_messages.pop(message_id, None) is None
        ):
            return False
        chat.deleted.append(message_id)
        return True

    async def _m_answerCallbackQuery(self, params: dict[str, Any]) -> web.Response:
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or query_id in self._answered:
            return _error(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        text = params.get("text")
        if isinstance(text, str) and len(text) > 200:
            return _error(400, "Bad Request: MESSAGE_TOO_LONG")
        self._answered.add(query_id)
        return _ok(True)

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "OpenPrimary",
            "username": self.username,
        }


def _chat_json(chat_id: int) -> dict[str, Any]:
    if chat_id > 0:
        return {"id": chat_id, "first_name": f"User {chat_id}", "type": "private"}
    return {"id": chat_id, "title": f"Group {chat_id}", "type": "supergroup"}


def _ok(result: Any, description: str | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return web.json_response(body)


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


async def _read_params(request: web.Request) -> dict[str, Any]:
    """A method's parameters, sent as JSON, a form or a query string (Telegram takes all three)."""
    if request.content_type == "application/json":
        data = await request.json()
        return dict(data) if isinstance(data, dict) else {}
    raw: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        raw.update(await request.post())
    params: dict[str, Any] = {}
    for name, value in raw.items():
        if not isinstance(value, str):
            continue  # an uploaded file: nothing OpenPrimary sends
        if name in _JSON_PARAMS:
            try:
                params[name] = json.loads(value)
                continue
            except ValueError:
                pass
        params[name] = value
    return params


# --- updates, as Telegram POSTs them --------------------------------------


@dataclass(frozen=True)
class TelegramUser:
    """A person on Telegram; in a private chat their chat id is their user id."""

    id: int
    first_name: str = "Test"
    username: str | None = None
    #: The language of the user's Telegram app (an IETF tag), as Telegram reports it.
    language_code: str = "en"

    def json(self) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": self.id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": self.language_code,
        }
        if self.username:
            user["username"] = self.username
        return user


class UpdateFactory:
    """Builds updates with increasing ``update_id``s, as Telegram sends them.

    Given the stand-in (``api``, or ``attach``), each user's message it builds
    is noted there, numbered in its chat's sequence, so the bot can delete it;
    without, messages are numbered from 1000 up across all chats.
    """

    def __init__(self, first_update_id: int = 700_000_000, api: TelegramAPI | None = None) -> None:
        self._ids = itertools.count(first_update_id)
        self._message_ids = itertools.count(1000)
        self._query_ids = itertools.count(1)
        self.api = api

    def attach(self, api: TelegramAPI) -> None:
        """Note every message built from now on in ``api``, as ``UpdateFactory(api=api)`` does."""
        self.api = api

    def _message(self, user: TelegramUser, chat: dict[str, Any], **content: Any) -> dict[str, Any]:
        message_id = (
            next(self._message_ids) if self.api is None else self.api.next_message_id(chat["id"])
        )
        update = {
            "update_id": next(self._ids),
            "message": {
                "message_id": message_id,
                "from": user.json(),
                "chat": chat,
                "date": int(time.time()),
                **content,
            },
        }
        if self.api is not None:
            self.api.note_update(update)
        return update

    def text(self, user: TelegramUser, text: str) -> dict[str, Any]:
        """A typed message in the user's private chat with the bot."""
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._message(user, _private(user), **content)

    def contact(
        self, user: TelegramUser, phone: str, *, owner: TelegramUser | None = None
    ) -> dict[str, Any]:
        """A shared contact: the user's own (as the request_contact button sends) or another's."""
        owner = owner or user
        contact: dict[str, Any] = {
            "phone_number": phone,
            "first_name": owner.first_name,
            "user_id": owner.id,
        }
        return self._message(user, _private(user), contact=contact)

    def sticker(self, user: TelegramUser) -> dict[str, Any]:
        """Something that is neither text nor a contact."""
        sticker = {
            "file_id": "CAACAgIAAxk",
            "file_unique_id": "AgAD",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
        return self._message(user, _private(user), sticker=sticker)

    def group_text(self, user: TelegramUser, group_id: int, text: str) -> dict[str, Any]:
        """A message in a group the bot is in (``group_id`` is negative)."""
        chat = {"id": group_id, "title": "Riverside members", "type": "supergroup"}
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._message(user, chat, **content)

    def tap(self, user: TelegramUser, message: dict[str, Any], data: str) -> dict[str, Any]:
        """A tap on an inline button of ``message`` (a message the bot sent) with ``data``."""
        public = {k: v for k, v in message.items() if not k.startswith("_")}
        return {
            "update_id": next(self._ids),
            "callback_query": {
                "id": f"{user.id}{next(self._query_ids):08d}",
                "from": user.json(),
                "message": public,
                "chat_instance": f"-{user.id}77",
                "data": data,
            },
        }


def _private(user: TelegramUser) -> dict[str, Any]:
    return {"id": user.id, "first_name": user.first_name, "type": "private"}


def button_data(message: dict[str, Any], label: str) -> str:
    """The callback_data of the inline button labelled ``label`` in a bot message."""
    for row in message.get("reply_markup", {}).get("inline_keyboard", []):
        for button in row:
            if button["text"] == label:
                return str(button["callback_data"])
    raise AssertionError(f"no button {label!r} in {message.get('text')!r}")


def button_labels(message: dict[str, Any]) -> list[str]:
    """Every inline button's label, row by row."""
    return [
        b["text"] for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row
    ]
