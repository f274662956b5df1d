# tests: tests/bot/test_examples.py, tests/bot/test_bot.py, tests/bot/test_runner.py, tests/bot/test_commands.py
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
Not here: routing what arrives to the handlers (dispatch.py), the run's connect / reconnect /
stop loop (lifecycle.py), the XMPP connection (client.py).
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from xmppd_bot.client import Connection
from xmppd_bot.commands import CommandHandler, MessageHandler, check_handler, make_command
from xmppd_bot.dispatch import Dispatcher
from xmppd_bot.errors import BotError, ConfigError, OfflineError, UploadError
from xmppd_bot.jid import JID, JIDError
from xmppd_bot.lifecycle import Lifecycle
from xmppd_bot.logs import setup_logging
from xmppd_bot.message import Contact, Kind
from xmppd_bot.settings import Receipts, Settings, config_path, resolve
from xmppd_bot.timing import parse_duration
from xmppd_bot.upload import Service, content_type_of, find_service, put_file, request_slot

__all__ = ["Bot", "Scheduled"]

log = logging.getLogger(__name__)

C = TypeVar("C", bound=CommandHandler)
M = TypeVar("M", bound=MessageHandler)
S = TypeVar("S", bound=Callable[[JID], "bool | Awaitable[bool]"])
P = TypeVar("P", bound=Callable[[], "object"])

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
        self._dispatcher = Dispatcher()
        self._rooms: dict[JID, str | None] = {}
        self._life = Lifecycle(self._dispatcher, self._rooms)
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
        conn = self._life.conn
        return conn.jid if conn is not None else self.settings.jid

    @property
    def online(self) -> bool:
        return self._life.online

    # -- registration ----------------------------------------------------------------------
    def command(self, name: str, *, usage: str | None = None) -> Callable[[C], C]:
        """Register `fn(msg, args)` for "!name args" and "/name args".

        The first line of its docstring is its line in `!help`; `!help name` shows all of it.
        `usage` describes the arguments in `!help`, e.g. "<duration> <text>".
        """
        def register(fn: C) -> C:
            self._dispatcher.add_command(make_command(name, fn, usage))
            return fn
        return register

    def on_message(self, fn: M) -> M:
        """Register `fn(msg)` for one-to-one messages that are not commands."""
        check_handler(fn, "@bot.on_message", "(msg)")
        self._dispatcher.message_handlers.append(fn)
        return fn

    def on_group_message(self, fn: M) -> M:
        """Register `fn(msg)` for messages in joined group chats (not the bot's own, not the
        history the room replays on join)."""
        check_handler(fn, "@bot.on_group_message", "(msg)")
        self._dispatcher.group_handlers.append(fn)
        return fn

    def on_subscription_request(self, fn: S) -> S:
        """Register `fn(jid) -> bool` for "may I see your presence?" requests (RFC 6121 §3.1):
        True approves, False refuses. Without a handler, requests stay pending."""
        check_handler(fn, "@bot.on_subscription_request", "(jid)")
        if self._dispatcher.subscription_handler is not None:
            raise ConfigError("@bot.on_subscription_request is registered twice")
        self._dispatcher.subscription_handler = fn
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
            self._dispatcher.periodic.append((interval, fn))
            return fn
        return register

    def join(self, room: str | JID, nick: str | None = None) -> None:
        """Be in this group chat (XEP-0045) as `nick` (default: the JID's user part) — from the
        start and after every reconnect. Failing to join ends the run with a `RoomError`."""
        jid = _room_jid(room)
        self._rooms[jid] = nick
        conn = self._life.conn
        if conn is not None and conn.online and self._life.loop is not None:
            self._life.spawn(self._life.join_now(jid))

    def has_handlers(self) -> bool:
        return self._dispatcher.has_handlers()

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
        if self._life.loop is None:
            raise RuntimeError("bot.after() schedules while the bot runs (call it in a handler)")
        return Scheduled(self._life.spawn(self._life.later(seconds, fn, args)))

    async def kick(self, room: str | JID, nick: str, reason: str = "") -> None:
        """Kick `nick` out of `room` (XEP-0045 §8.2; the bot must be a moderator).

        Raises:
            RequestError: the room refused (e.g. "not-allowed" if the bot is not a moderator).
        """
        await self._require_online().muc.set_role(_room_jid(room), nick, "none", reason)

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
        self._life.stop()

    async def wait_online(self, timeout: float | None = None) -> None:
        """Wait until the bot is online (for embedding and tests)."""
        await self._life.wait_online(timeout)

    async def serve(self) -> None:
        """Run in the current event loop until `stop()` (no signal handling: see `run`).

        Raises:
            BotError: see the module docstring.
        """
        settings = self.settings
        if not self.has_handlers():
            log.warning("this bot has no handlers; it will only be online")
        await self._life.serve(settings, self.rng)

    # -- helpers ---------------------------------------------------------------------------
    def _require_conn(self) -> Connection:
        conn = self._life.conn
        if conn is None or self._life.loop is None:
            raise OfflineError("the bot is not running (call this from a handler)")
        return conn

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
        lines.extend(self._dispatcher.describe())
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


def _prog() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "xmppd-bot"
