# tests: tests/bot/test_examples.py, tests/bot/test_bot.py, tests/bot/test_runner.py
"""`Bot`: a chat bot's account, handlers and life cycle.

- Handlers are registered with decorators: `command`, `on_message`, `on_group_message`,
  `on_subscription_request`, `every`. A handler may be `def` or `async def`; a `str` it
  returns is sent as the reply; an exception it raises is logged and the bot carries on.
- Incoming one-to-one messages that request a receipt get one at once (XEP-0184 §7, per the
  `receipts` setting); `Message.mark_read()` sends a XEP-0333 displayed marker.
- `run()` connects, stays online (reconnecting with exponential backoff and jitter after a
  drop; XEP-0198 resumption when the server offers it) and stops cleanly on SIGINT/SIGTERM:
  running handlers get a few seconds, rooms are left, the stream is closed.
- What a bot author can fix ends the run with a one-line `BotError` and a non-zero exit: bad
  or missing settings, wrong password, unreachable server, untrusted certificate, unknown room.
  A bot that was online and lost the server is not an error: it reconnects.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import os
import random
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

from xmppd.bot.client import Connection, Incoming
from xmppd.bot.commands import (Command, CommandHandler, MessageHandler, check_handler,
                                help_text, make_command, parse_command)
from xmppd.bot.errors import (BotError, ConfigError, ConnectError, OfflineError, ReplacedError,
                              RequestError, TlsError, UploadError)
from xmppd.bot.message import Contact, Kind, Message
from xmppd.bot.settings import Receipts, Settings, config_path, resolve
from xmppd.bot.timing import Backoff, parse_duration
from xmppd.bot.upload import Service, content_type_of, find_service, put_file, request_slot
from stanzas.jid import JID, JIDError

__all__ = ["Bot", "Scheduled"]

log = logging.getLogger("xmppd.bot")

C = TypeVar("C", bound=CommandHandler)
M = TypeVar("M", bound=MessageHandler)
S = TypeVar("S", bound=Callable[[JID], "bool | Awaitable[bool]"])
P = TypeVar("P", bound=Callable[[], "object"])

SHUTDOWN_GRACE = 5.0          # seconds running handlers get on SIGTERM
_loading = False              # set while `xmppd-bot` imports a bot file: it runs the bot itself


class Scheduled:
    """A call scheduled with `Bot.after`; `cancel()` it if it should not happen."""

    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    def cancel(self) -> None:
        self._task.cancel()

    @property
    def done(self) -> bool:
        return self._task.done()


class Bot:
    """A chat bot. Settings not passed here come from XMPPD_BOT_* variables or a config file.

    Args:
        jid: the bot's account, e.g. "echo@example.org" (resource defaults to "bot").
        password: its password.
        server: "host:port" to connect to (default: DNS SRV for the JID's domain).
        tls_verify: verify the server certificate (default True; False for a self-signed
            development server).
        config: a TOML file whose [bot] table holds any of these settings.
        receipts: XEP-0184 receipts to "everyone" (default), only "contacts" who may see the
            bot's presence (§8 of the XEP), or "off".
    """

    def __init__(self, jid: str | None = None, password: str | None = None, *,
                 server: str | None = None, tls_verify: bool | None = None,
                 config: str | os.PathLike[str] | None = None,
                 receipts: Receipts | None = None) -> None:
        self._explicit: dict[str, object] = {"jid": jid, "password": password, "server": server,
                                             "tls_verify": tls_verify, "receipts": receipts}
        self._config_path = config
        self._settings: Settings | None = None
        self._document: dict[str, Any] = {}
        self._commands: dict[str, Command] = {}
        self._message_handlers: list[MessageHandler] = []
        self._group_handlers: list[MessageHandler] = []
        self._subscription_handler: Callable[[JID], bool | Awaitable[bool]] | None = None
        self._periodic: list[tuple[float, Callable[[], object]]] = []
        self._rooms: dict[JID, str | None] = {}
        self._conn: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Created unbound (Python >= 3.10) and renewed after each run, so that `stop()` and
        # `wait_online()` work even before `serve()` got going, and a bot can run again.
        self._stop = asyncio.Event()
        self._online = asyncio.Event()
        self._keepalive_task: asyncio.Task[None] | None = None
        self._handler_tasks: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._periodic_started = False
        self._fatal: BotError | None = None
        self._upload: Service | None = None
        self.rng = random.Random()
        """Source of the reconnect jitter (seed it in tests)."""

    # -- settings --------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The resolved settings.

        Raises:
            ConfigError: a setting is missing or invalid.
        """
        if self._settings is None:
            path = config_path(self._config_path, os.environ)
            self._settings, self._document = resolve(self._explicit, os.environ, path)
        return self._settings

    @property
    def config(self) -> dict[str, Any]:
        """The whole config file (empty without one): tables besides [bot] are yours."""
        _ = self.settings
        return self._document

    def load_config(self, path: str | os.PathLike[str]) -> None:
        """Read settings from this TOML file (arguments and environment still win)."""
        self._config_path = path
        self._settings = None

    @property
    def jid(self) -> JID:
        """The bot's full JID (as bound by the server once online)."""
        return self._conn.jid if self._conn is not None else self.settings.jid

    @property
    def online(self) -> bool:
        return self._conn is not None and self._conn.online and self._online.is_set()

    # -- registration ----------------------------------------------------------------------
    def command(self, name: str, *, usage: str | None = None) -> Callable[[C], C]:
        """Register `fn(msg, args)` for "!name args" and "/name args".

        The first line of its docstring is its line in `!help`; `!help name` shows all of it.
        `usage` describes the arguments in `!help`, e.g. "<duration> <text>".
        """
        def register(fn: C) -> C:
            cmd = make_command(name, fn, usage)
            if cmd.name in self._commands:
                raise ConfigError(f"command !{cmd.name} is registered twice")
            self._commands[cmd.name] = cmd
            return fn
        return register

    def on_message(self, fn: M) -> M:
        """Register `fn(msg)` for one-to-one messages that are not commands."""
        check_handler(fn, "@bot.on_message", "(msg)")
        self._message_handlers.append(fn)
        return fn

    def on_group_message(self, fn: M) -> M:
        """Register `fn(msg)` for messages in joined group chats (not the bot's own, not the
        history the room replays on join)."""
        check_handler(fn, "@bot.on_group_message", "(msg)")
        self._group_handlers.append(fn)
        return fn

    def on_subscription_request(self, fn: S) -> S:
        """Register `fn(jid) -> bool` for "may I see your presence?" requests (RFC 6121 §3.1):
        True approves, False refuses. Without a handler, requests stay pending."""
        check_handler(fn, "@bot.on_subscription_request", "(jid)")
        if self._subscription_handler is not None:
            raise ConfigError("@bot.on_subscription_request is registered twice")
        self._subscription_handler = fn
        return fn

    def every(self, seconds: float | str) -> Callable[[P], P]:
        """Register `fn()` to run every `seconds` (a number or "30s", "10m", "2h") while the bot
        is online, first one interval after it comes online."""
        try:
            interval = parse_duration(seconds)
        except ValueError as e:
            raise ConfigError(f"@bot.every: {e}") from None
        if interval <= 0:
            raise ConfigError(f"@bot.every: the interval must be more than 0, got {seconds!r}")

        def register(fn: P) -> P:
            check_handler(fn, "@bot.every", "()")
            self._periodic.append((interval, fn))
            return fn
        return register

    def join(self, room: str | JID, nick: str | None = None) -> None:
        """Be in this group chat (XEP-0045) as `nick` (default: the JID's user part) — from the
        start and after every reconnect. Failing to join ends the run with a `RoomError`."""
        jid = _room_jid(room)
        self._rooms[jid] = nick
        if self._conn is not None and self._conn.online and self._loop is not None:
            self._spawn_background(self._join_now(jid))

    def has_handlers(self) -> bool:
        return bool(self._commands or self._message_handlers or self._group_handlers
                    or self._subscription_handler or self._periodic)

    # -- actions ---------------------------------------------------------------------------
    def send(self, to: str | JID, text: str) -> None:
        """Send `text` to a JID, or to a joined room's bare JID (then as groupchat)."""
        conn = self._require_conn()
        target = _jid(to)
        kind: Kind = "groupchat" if target.resource is None and target in conn.rooms else "chat"
        conn.send_text(target, text, kind, None)

    def after(self, delay: float | str, fn: Callable[..., object], *args: object) -> Scheduled:
        """Call `fn(*args)` after `delay` (seconds, or "30s", "10m", "2h"). Pending calls are
        dropped when the bot stops; messages they send while reconnecting go out once online.
        """
        seconds = parse_duration(delay)
        if self._loop is None:
            raise RuntimeError("bot.after() schedules while the bot runs (call it in a handler)")
        return Scheduled(self._spawn_background(self._later(seconds, fn, args)))

    async def kick(self, room: str | JID, nick: str, reason: str = "") -> None:
        """Kick `nick` out of `room` (XEP-0045 §8.2; the bot must be a moderator).

        Raises:
            RequestError: the room refused (e.g. "not-allowed" if the bot is not a moderator).
        """
        await self._require_online().set_role(_room_jid(room), nick, "none", reason)

    async def contacts(self) -> list[Contact]:
        """The bot's roster (RFC 6121 §2.2)."""
        return await self._require_online().fetch_roster()

    async def add_contact(self, jid: str | JID, name: str = "",
                          groups: Iterable[str] = ()) -> None:
        """Add to the roster (RFC 6121 §2.3) and ask to see their presence (§3.1.1)."""
        conn = self._require_online()
        who = _jid(jid).bare
        await conn.set_roster_item(who, name, tuple(groups))
        conn.send_presence(who, "subscribe")

    async def remove_contact(self, jid: str | JID) -> None:
        """Remove from the roster; the server cancels the subscriptions both ways (§2.5.2)."""
        await self._require_online().set_roster_item(_jid(jid).bare, "", (), remove=True)

    async def send_file(self, path: str | os.PathLike[str], to: str | JID) -> str:
        """Upload a file with HTTP File Upload (XEP-0363) and send its link to `to` (a JID or a
        joined room). Returns the download URL.

        Raises:
            UploadError: no upload service, file too large, refused, or the HTTP PUT failed.
        """
        conn = self._require_online()
        file = Path(path)
        try:
            size = file.stat().st_size
        except OSError as e:
            raise UploadError(f"cannot send {file}: {e.strerror}") from None
        if self._upload is None:
            self._upload = await find_service(conn)
        limit = self._upload.max_size
        if limit is not None and size > limit:
            raise UploadError(f"{file.name} is {size} bytes; the upload service "
                              f"{self._upload.jid} accepts at most {limit}")
        ctype = content_type_of(file)
        slot = await request_slot(conn, self._upload, file.name, size, ctype)
        await asyncio.to_thread(put_file, slot, file, size, ctype, self.settings.tls_verify)
        target = _jid(to)
        kind: Kind = "groupchat" if target.resource is None and target in conn.rooms else "chat"
        conn.send_text(target, slot.get_url, kind, None, oob_url=slot.get_url)
        return slot.get_url

    # -- running ---------------------------------------------------------------------------
    def run(self) -> None:
        """Run until SIGINT/SIGTERM. A `BotError` is printed as one line and exits non-zero."""
        if _loading:
            return          # a top-level `bot.run()` in a file `xmppd-bot` is importing
        setup_logging()
        try:
            asyncio.run(self._main())
        except BotError as e:
            sys.stderr.write(f"{_prog()}: error: {e}\n")
            raise SystemExit(e.exit_code) from None

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        try:
            await self.serve()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def stop(self) -> None:
        """Ask the bot to shut down (safe from any thread; before `serve()` it ends at once)."""
        loop = self._loop
        if loop is None or _running_loop() is loop:
            self._stop.set()
        else:
            loop.call_soon_threadsafe(self._stop.set)

    async def wait_online(self, timeout: float | None = None) -> None:
        """Wait until the bot is online (for embedding and tests)."""
        await asyncio.wait_for(self._online.wait(), timeout)

    async def serve(self) -> None:
        """Run in the current event loop until `stop()` (no signal handling: see `run`).

        Raises:
            BotError: see the module docstring.
        """
        settings = self.settings
        if not self.has_handlers():
            log.warning("this bot has no handlers; it will only be online")
        self._loop = asyncio.get_running_loop()
        self._fatal = None
        conn = Connection(settings, self._on_incoming, self._on_subscribe)
        self._conn = conn
        backoff = Backoff(settings.reconnect_min_delay, settings.reconnect_max_delay, self.rng)
        was_online = False
        try:
            while not self._stop.is_set():
                try:
                    resumed = await self._unless_stopped(conn.establish())
                except ConnectError as e:
                    if not was_online or isinstance(e, (TlsError, ReplacedError)):
                        raise       # never online: the address or the certificate is wrong
                    delay = backoff.next()
                    log.warning("%s; retrying in %.1f s", e, delay)
                    await self._pause(delay)
                    continue
                if resumed is None:
                    break           # stopped while connecting
                backoff.reset()
                await self._came_online(conn, resumed)
                was_online = True
                reason = await self._unless_stopped(conn.wait_closed())
                self._online.clear()
                if self._keepalive_task is not None:
                    self._keepalive_task.cancel()
                if reason is None:
                    break
                if conn.replaced():
                    raise ReplacedError(
                        f"another session logged in as {settings.jid} and replaced this bot "
                        "(is it running twice? give each copy its own resource)")
                if self._fatal is not None:
                    break
                delay = backoff.next()
                log.warning("connection lost (%s); reconnecting in %.1f s", reason, delay)
                await self._pause(delay)
        finally:
            await self._shutdown(conn, was_online)
        if self._fatal is not None:
            raise self._fatal

    async def _came_online(self, conn: Connection, resumed: bool) -> None:
        if not resumed:
            try:
                # RFC 6121 §2.2: the roster first, then initial presence (§4.2).
                await conn.fetch_roster()
            except RequestError as e:
                log.debug("no roster: %s", e)
            conn.send_presence()
            # One round trip: once answered, the server has our presence and routes
            # messages for the bare JID here (RFC 6121 §8.5.2.1.1 "available resources").
            await conn.ping_server(self.settings.connect_timeout)
            conn.rooms.clear()      # a new session is in no room until it joins again
            for room in list(self._rooms):
                await self._join(room)
        self._online.set()
        if not self._periodic_started:
            self._periodic_started = True
            for interval, fn in self._periodic:
                self._spawn_background(self._repeat(interval, fn))
        if self.settings.keepalive > 0:
            self._keepalive_task = self._spawn_background(self._keepalive(conn))
        log.info("online as %s%s", conn.jid, " (stream resumed)" if resumed else "")

    async def _join(self, room: JID) -> None:
        conn = self._require_conn()
        nick = self._rooms.get(room) or conn.jid.local or "bot"
        try:
            await conn.join_room(room, nick, self.settings.connect_timeout)
        except BotError as e:
            if not conn.online:         # the link dropped meanwhile: rejoin after reconnecting
                log.warning("connection lost while joining %s", room)
                return
            self._die(e)
            raise
        log.info("joined %s as %s", room, nick)

    async def _join_now(self, room: JID) -> None:
        try:
            await self._join(room)
        except BotError:
            pass                        # `_join` has ended the run with it

    def _die(self, error: BotError) -> None:
        """End the run with `error` (from any task)."""
        if self._fatal is None:
            self._fatal = error
        self.stop()

    async def _unless_stopped(self, aw: Awaitable[Any]) -> Any:
        """The result of `aw`, or None if `stop()` came first (then `aw` is cancelled)."""
        task = asyncio.ensure_future(aw)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task.done():
            return task.result()
        task.cancel()
        return None

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _shutdown(self, conn: Connection, was_online: bool) -> None:
        self._online.clear()
        for task in list(self._background):
            task.cancel()
        if self._handler_tasks:
            _, late = await asyncio.wait(set(self._handler_tasks), timeout=SHUTDOWN_GRACE)
            for task in late:
                task.cancel()
        await asyncio.gather(*self._background, *self._handler_tasks, return_exceptions=True)
        if conn.online:
            for room in list(conn.rooms):
                conn.leave_room(room)
            conn.send_presence(kind="unavailable")
            await conn.close()
        else:
            conn.abort()
        self._periodic_started = False
        self._loop = None
        self._stop, self._online = asyncio.Event(), asyncio.Event()
        if was_online:
            log.info("offline")

    # -- background work -------------------------------------------------------------------
    def _spawn_background(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _later(self, seconds: float, fn: Callable[..., object],
                     args: tuple[object, ...]) -> None:
        await asyncio.sleep(seconds)
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("scheduled call %s failed", _name(fn))

    async def _repeat(self, interval: float, fn: Callable[[], object]) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            if self.online:
                try:
                    result = fn()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("@bot.every(%g) %s failed", interval, _name(fn))
            else:
                log.debug("offline: skipping %s", _name(fn))
            due += interval
            now = loop.time()
            if due <= now:                  # ran long or the loop stalled: skip missed ticks
                due += (int((now - due) // interval) + 1) * interval

    async def _keepalive(self, conn: Connection) -> None:
        interval = self.settings.keepalive
        while True:
            await asyncio.sleep(interval)
            if not conn.online:
                return
            if not await conn.ping_server(min(interval, 30.0)):
                log.warning("the server did not answer a ping; reconnecting")
                conn.abort()
                return

    # -- incoming --------------------------------------------------------------------------
    def _on_incoming(self, inc: Incoming) -> None:
        conn = self._conn
        if conn is None or inc.kind in ("error", "headline"):
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
            self._spawn_handler(self._dispatch(msg, self._group_handlers))
            return
        kind: Kind = "chat" if inc.kind == "chat" else "normal"
        if inc.wants_receipt and inc.id and self._may_ack(conn, inc.sender):
            # XEP-0184 §7: a receipt echoes the id, with the content message's type; sent on
            # arrival, i.e. on delivery to this client (§4), whatever the handlers do.
            conn.send_receipt(inc.sender, inc.id, kind)
        msg = Message(sender=inc.sender, body=inc.body, thread=inc.thread, id=inc.id,
                      markable=inc.markable, kind=kind, outbox=conn)
        self._spawn_handler(self._dispatch(msg, self._message_handlers))

    def _may_ack(self, conn: Connection, sender: JID) -> bool:
        policy = self.settings.receipts
        if policy == "off":
            return False
        # XEP-0184 §8: receipts to those who may not see our presence leak it; "contacts"
        # follows the SHOULD NOT, "everyone" (the default) treats a bot's presence as public.
        return policy == "everyone" or conn.subscribed_to_us(sender)

    def _spawn_handler(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._handler_tasks.add(task)
        task.add_done_callback(self._handler_tasks.discard)

    async def _dispatch(self, msg: Message, handlers: list[MessageHandler]) -> None:
        parsed = parse_command(msg.body) if self._commands else None
        if parsed is not None:
            name, args = parsed
            cmd = self._commands.get(name)
            if cmd is not None:
                await self._call(f"command !{name}", msg, cmd.handler, msg, args)
                return
            if name == "help":
                msg.reply(help_text(self._commands, args))
                return
            if not handlers and not msg.is_group:
                msg.reply(f"Unknown command !{name}. Send !help for the list.")
                return
        for handler in handlers:
            await self._call(_name(handler), msg, handler, msg)

    async def _call(self, what: str, msg: Message, fn: Callable[..., object],
                    *args: object) -> None:
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

    def _on_subscribe(self, who: JID) -> None:
        if self._subscription_handler is None:
            log.info("subscription request from %s left pending (no "
                     "@bot.on_subscription_request handler)", who)
            return
        self._spawn_handler(self._answer_subscription(self._subscription_handler, who))

    async def _answer_subscription(self, fn: Callable[[JID], bool | Awaitable[bool]],
                                   who: JID) -> None:
        try:
            result = fn(who)
            approve = await result if inspect.isawaitable(result) else result
        except Exception:
            log.exception("@bot.on_subscription_request failed for %s; left pending", who)
            return
        conn = self._conn
        if conn is not None:
            # RFC 6121 §3.1.4: approve with "subscribed", refuse with "unsubscribed".
            conn.send_presence(who, "subscribed" if approve else "unsubscribed")
            log.info("%s the subscription request from %s",
                     "approved" if approve else "refused", who)

    # -- helpers ---------------------------------------------------------------------------
    def _require_conn(self) -> Connection:
        if self._conn is None or self._loop is None:
            raise OfflineError("the bot is not running (call this from a handler)")
        return self._conn

    def _require_online(self) -> Connection:
        conn = self._require_conn()
        if not conn.online:
            raise OfflineError("the bot is offline (reconnecting); try again later")
        return conn

    def describe(self) -> str:
        """What `xmppd-bot --check` prints: account, server, handlers, rooms.

        Raises:
            ConfigError: settings invalid, or nothing registered.
        """
        s = self.settings
        if not self.has_handlers():
            raise ConfigError("the bot has no handlers: add @bot.command, @bot.on_message, "
                              "@bot.on_group_message, @bot.on_subscription_request or "
                              "@bot.every")
        lines = [f"bot: {s.jid} (from {s.origins['jid']})",
                 f"server: {s.describe_server()}, TLS certificate "
                 f"{'verified' if s.tls_verify else 'NOT verified'}"]
        if self._commands:
            lines.append("commands: " + ", ".join(f"!{n}" for n in sorted(self._commands))
                         + ("" if "help" in self._commands else ", !help"))
        for label, fns in (("on_message", self._message_handlers),
                           ("on_group_message", self._group_handlers)):
            if fns:
                lines.append(f"{label}: " + ", ".join(_name(f) for f in fns))
        if self._subscription_handler is not None:
            lines.append(f"on_subscription_request: {_name(self._subscription_handler)}")
        for interval, fn in self._periodic:
            lines.append(f"every {interval:g} s: {_name(fn)}")
        for room, nick in self._rooms.items():
            lines.append(f"room: {room} as {nick or s.jid.local}")
        return "\n".join(lines)


def _jid(value: str | JID) -> JID:
    if isinstance(value, JID):
        return value
    try:
        return JID.parse(value.strip())
    except JIDError as e:
        raise ConfigError(f"invalid JID {value!r}: {e}") from None


def _room_jid(value: str | JID) -> JID:
    jid = _jid(value)
    if jid.local is None or jid.resource is not None:
        raise ConfigError(f"invalid room {value!r}: expected room@service, e.g. "
                          "\"lounge@conference.example.org\"")
    return jid


def _name(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or fn)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _prog() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "xmppd-bot"


def setup_logging(verbose: bool = False) -> None:
    """Log lines to standard error, unless the program configured logging itself."""
    root = logging.getLogger()
    if root.handlers:
        return
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("slixmpp").setLevel(logging.WARNING)
    for handler in root.handlers:
        handler.addFilter(_slixmpp_filter)


# slixmpp errors that the bot reports better itself, as its one-line BotError.
_REPLACED = ("No appropriate login method.", "CERT: Invalid certificate trust chain.")


def _slixmpp_filter(record: logging.LogRecord) -> bool:
    """Drop slixmpp errors the bot reports itself; hide SASL payloads in debug stream logs
    (PLAIN carries the password, base64-encoded)."""
    if not record.name.startswith("slixmpp"):
        return True
    if record.msg in _REPLACED:
        return False
    if record.levelno <= logging.DEBUG and "urn:ietf:params:xml:ns:xmpp-sasl" in str(record.args):
        record.msg, record.args = "%s", ("<SASL exchange hidden>",)
    return True
