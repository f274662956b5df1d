# tests: tests/bot/test_dispatch.py, tests/bot/test_examples.py, tests/bot/test_bot.py
"""The handlers a bot registered, and which incoming message or request reaches which of them.

- One-to-one messages (chat, normal): a XEP-0184 receipt at once when asked for (§7), as the
  `receipts` setting allows (§8); then the command they name ("!name args" or "/name args"),
  `!help`, or else the `on_message` handlers. An unknown command gets a hint only when nothing
  else would answer.
- Group-chat messages (XEP-0045) reach the `on_group_message` handlers and commands, from rooms
  the bot is in only: never the room's own notices, the history replayed on join (§7.2.15,
  <delay/>) or the bot's own messages reflected back (§7.4).
- Never answered: errors, headlines, and other resources of the bot's own account (bot loops).
- A handler may be `def` or `async def`; the `str` it returns is sent as the reply, the
  exception it raises is logged and the bot carries on.
- Subscription requests (RFC 6121 §3.1) go to the one `on_subscription_request` handler, whose
  answer is "subscribed" or "unsubscribed" (§3.1.4); without one they stay pending.
Not here: checking handlers as they are registered (commands.py), connecting and staying online
(lifecycle.py).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from xmppd_bot.client import Connection, Incoming
from xmppd_bot.commands import (Command, MessageHandler, handler_name, help_text,
                                parse_command)
from xmppd_bot.errors import BotError, ConfigError
from xmppd_bot.jid import JID
from xmppd_bot.message import Kind, Message
from xmppd_bot.settings import Receipts

__all__ = ["Dispatcher", "SubscriptionHandler"]

log = logging.getLogger(__name__)

SubscriptionHandler = Callable[[JID], "bool | Awaitable[bool]"]


class Dispatcher:
    """Registries of handlers (filled by the `Bot` decorators) and the routing of what arrives.

    `tasks` holds the handler calls still running; `drain` ends them at shutdown.
    """

    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}
        self.message_handlers: list[MessageHandler] = []
        self.group_handlers: list[MessageHandler] = []
        self.subscription_handler: SubscriptionHandler | None = None
        self.periodic: list[tuple[float, Callable[[], object]]] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def add_command(self, cmd: Command) -> None:
        if cmd.name in self.commands:
            raise ConfigError(f"command !{cmd.name} is registered twice")
        self.commands[cmd.name] = cmd

    def has_handlers(self) -> bool:
        return bool(self.commands or self.message_handlers or self.group_handlers
                    or self.subscription_handler or self.periodic)

    # -- messages --------------------------------------------------------------------------
    def incoming(self, conn: Connection, inc: Incoming, receipts: Receipts) -> None:
        """Route one message with a body; handlers run as tasks (see `tasks`)."""
        if inc.kind in ("error", "headline"):
            return      # headlines are notifications; answering them invites bot loops
        if inc.sender.bare == conn.jid.bare:
            return      # our own account (another resource): never talk to ourselves
        if inc.kind == "groupchat":
            room = inc.sender.bare
            ours = conn.rooms.get(room)
            if ours is None or inc.sender.resource is None:
                return  # not a room we are in, or the room's own notice
            # XEP-0045 §7.2.15/§7.2.16: history replayed on join carries <delay/>; §7.4: the
            # room reflects our own messages back to us.
            if inc.delayed or inc.sender.resource == ours:
                return
            msg = Message(sender=inc.sender, body=inc.body, thread=inc.thread, id=inc.id,
                          is_group=True, room=room, nick=inc.sender.resource,
                          markable=inc.markable, kind="groupchat",
                          room_stanza_id=next((sid for by, sid in inc.stanza_ids
                                               if by == str(room)), None),
                          outbox=conn)
            self._spawn(self._dispatch(msg, self.group_handlers))
            return
        kind: Kind = "chat" if inc.kind == "chat" else "normal"
        if inc.wants_receipt and inc.id and _may_ack(conn, inc.sender, receipts):
            # XEP-0184 §7: a receipt echoes the id, with the content message's type; sent on
            # arrival, i.e. on delivery to this client (§4), whatever the handlers do.
            conn.send_receipt(inc.sender, inc.id, kind)
        msg = Message(sender=inc.sender, body=inc.body, thread=inc.thread, id=inc.id,
                      markable=inc.markable, kind=kind, outbox=conn)
        self._spawn(self._dispatch(msg, self.message_handlers))

    async def _dispatch(self, msg: Message, handlers: list[MessageHandler]) -> None:
        parsed = parse_command(msg.body) if self.commands else None
        if parsed is not None:
            name, args = parsed
            cmd = self.commands.get(name)
            if cmd is not None:
                await _call(f"command !{name}", msg, cmd.handler, msg, args)
                return
            if name == "help":
                msg.reply(help_text(self.commands, args))
                return
            if not handlers and not msg.is_group:
                msg.reply(f"Unknown command !{name}. Send !help for the list.")
                return
        for handler in handlers:
            await _call(handler_name(handler), msg, handler, msg)

    # -- subscription requests -------------------------------------------------------------
    def subscription(self, conn: Connection, who: JID) -> None:
        """`who` asks to see the bot's presence."""
        fn = self.subscription_handler
        if fn is None:
            log.info("subscription request from %s left pending (no "
                     "@bot.on_subscription_request handler)", who)
            return
        self._spawn(self._answer_subscription(conn, fn, who))

    async def _answer_subscription(self, conn: Connection, fn: SubscriptionHandler,
                                   who: JID) -> None:
        try:
            result = fn(who)
            approve = await result if inspect.isawaitable(result) else result
        except Exception:
            log.exception("@bot.on_subscription_request failed for %s; left pending", who)
            return
        # RFC 6121 §3.1.4: approve with "subscribed", refuse with "unsubscribed".
        conn.send_presence(who, "subscribed" if approve else "unsubscribed")
        log.info("%s the subscription request from %s", "approved" if approve else "refused",
                 who)

    # -- tasks -----------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, grace: float) -> None:
        """Give running handlers `grace` seconds to finish, then cancel the rest."""
        if not self.tasks:
            return
        running = set(self.tasks)
        _, late = await asyncio.wait(running, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def describe(self) -> list[str]:
        """The handler lines of `xmppd-bot --check`."""
        lines = []
        if self.commands:
            lines.append("commands: " + ", ".join(f"!{n}" for n in sorted(self.commands))
                         + ("" if "help" in self.commands else ", !help"))
        for label, fns in (("on_message", self.message_handlers),
                           ("on_group_message", self.group_handlers)):
            if fns:
                lines.append(f"{label}: " + ", ".join(handler_name(f) for f in fns))
        if self.subscription_handler is not None:
            lines.append(f"on_subscription_request: {handler_name(self.subscription_handler)}")
        for interval, fn in self.periodic:
            lines.append(f"every {interval:g} s: {handler_name(fn)}")
        return lines


def _may_ack(conn: Connection, sender: JID, policy: Receipts) -> bool:
    if policy == "off":
        return False
    # XEP-0184 §8: receipts to those who may not see our presence leak it; "contacts"
    # follows the SHOULD NOT, "everyone" (the default) treats a bot's presence as public.
    return policy == "everyone" or conn.subscribed_to_us(sender)


async def _call(what: str, msg: Message, fn: Callable[..., object], *args: object) -> None:
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
    except BotError as e:
        log.warning("%s, on a message from %s: %s", what, msg.sender, e)
        return
    except Exception:
        log.exception("%s failed on a message from %s", what, msg.sender)
        return
    if isinstance(result, str) and result:
        msg.reply(result)
