# tests: tests/bot/test_bot.py, tests/bot/test_examples.py, tests/bot/test_runner.py
"""A running bot's connection over time: connect, come online, stay online, reconnect, stop.

- Coming online: the roster, then initial presence (RFC 6121 §2.2, §4.2), one ping round trip
  so the server routes to us, then the rooms (XEP-0045 §7.2); a resumed XEP-0198 stream keeps
  all of that and skips it.
- A drop after the bot was online is not an error: it reconnects with exponential backoff and
  jitter (timing.Backoff). A keepalive ping (XEP-0199) finds dead links. Failing the first
  connection, an untrusted certificate, or another session taking over ends the run.
- `@bot.every` jobs run while online; `bot.after` calls and other background work die with
  the run.
- Stopping: background work is cancelled, running handlers get SHUTDOWN_GRACE seconds, rooms
  are left, unavailable presence sent, the stream closed.
Not here: what arrives (dispatch.py), the XMPP connection itself (client.py).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from xmppd_bot.client import Connection, Incoming
from xmppd_bot.commands import handler_name
from xmppd_bot.dispatch import Dispatcher
from xmppd_bot.errors import BotError, ConnectError, ReplacedError, RequestError, TlsError
from xmppd_bot.jid import JID
from xmppd_bot.settings import Settings
from xmppd_bot.timing import Backoff

__all__ = ["Lifecycle", "SHUTDOWN_GRACE"]

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0          # seconds running handlers get on SIGTERM


class Lifecycle:
    """The run of one bot. `rooms` (room -> nick or None) is the bot's list of rooms to be in;
    the bot adds to it while running and then calls `join_now`."""

    def __init__(self, dispatcher: Dispatcher, rooms: dict[JID, str | None]) -> None:
        self.dispatcher = dispatcher
        self.rooms = rooms
        self.conn: Connection | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # Created unbound (Python >= 3.10) and renewed after each run, so that `stop()` and
        # `wait_online()` work even before `serve()` got going, and a bot can run again.
        self._stop = asyncio.Event()
        self._online = asyncio.Event()
        self._settings: Settings | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._periodic_started = False
        self._fatal: BotError | None = None

    @property
    def online(self) -> bool:
        return self.conn is not None and self.conn.online and self._online.is_set()

    async def wait_online(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._online.wait(), timeout)

    def stop(self) -> None:
        """Ask the run to end (safe from any thread; before `serve()` it ends at once)."""
        loop = self.loop
        if loop is None or _running_loop() is loop:
            self._stop.set()
        else:
            loop.call_soon_threadsafe(self._stop.set)

    async def serve(self, settings: Settings, rng: random.Random) -> None:
        """Run until `stop()`.

        Raises:
            BotError: what the author must fix (see the module docstring).
        """
        self._settings = settings
        self.loop = asyncio.get_running_loop()
        self._fatal = None
        conn = Connection(settings, self._incoming, self._subscription)
        self.conn = conn
        backoff = Backoff(settings.reconnect_min_delay, settings.reconnect_max_delay, rng)
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

    def _incoming(self, inc: Incoming) -> None:
        if self.conn is not None and self._settings is not None:
            self.dispatcher.incoming(self.conn, inc, self._settings.receipts)

    def _subscription(self, who: JID) -> None:
        if self.conn is not None:
            self.dispatcher.subscription(self.conn, who)

    async def _came_online(self, conn: Connection, resumed: bool) -> None:
        settings = self._require_settings()
        if not resumed:
            try:
                # RFC 6121 §2.2: the roster first, then initial presence (§4.2).
                await conn.fetch_roster()
            except RequestError as e:
                log.debug("no roster: %s", e)
            conn.send_presence()
            # One round trip: once answered, the server has our presence and routes
            # messages for the bare JID here (RFC 6121 §8.5.2.1.1 "available resources").
            await conn.ping_server(settings.connect_timeout)
            conn.rooms.clear()      # a new session is in no room until it joins again
            for room in list(self.rooms):
                await self._join(room)
        self._online.set()
        if not self._periodic_started:
            self._periodic_started = True
            for interval, fn in self.dispatcher.periodic:
                self.spawn(self._repeat(interval, fn))
        if settings.keepalive > 0:
            self._keepalive_task = self.spawn(self._keepalive(conn, settings.keepalive))
        log.info("online as %s%s", conn.jid, " (stream resumed)" if resumed else "")

    async def _join(self, room: JID) -> None:
        conn = self.conn
        assert conn is not None
        nick = self.rooms.get(room) or conn.jid.local or "bot"
        try:
            await conn.muc.join(room, nick, self._require_settings().connect_timeout)
        except BotError as e:
            if not conn.online:         # the link dropped meanwhile: rejoin after reconnecting
                log.warning("connection lost while joining %s", room)
                return
            self._die(e)
            raise
        log.info("joined %s as %s", room, nick)

    async def join_now(self, room: JID) -> None:
        """Join a room added while online; failing ends the run like a failed join at start."""
        try:
            await self._join(room)
        except BotError:
            pass                        # `_join` has ended the run with it

    def _die(self, error: BotError) -> None:
        """End the run with `error` (from any task)."""
        if self._fatal is None:
            self._fatal = error
        self.stop()

    def _require_settings(self) -> Settings:
        assert self._settings is not None, "only while serving"
        return self._settings

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
        await self.dispatcher.drain(SHUTDOWN_GRACE)
        await asyncio.gather(*self._background, return_exceptions=True)
        if conn.online:
            for room in list(conn.rooms):
                conn.muc.leave(room)
            conn.send_presence(kind="unavailable")
            await conn.close()
        else:
            conn.abort()
        self._periodic_started = False
        self.loop = None
        self._stop, self._online = asyncio.Event(), asyncio.Event()
        if was_online:
            log.info("offline")

    # -- background work -------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` until it ends or the run does."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def later(self, seconds: float, fn: Callable[..., object],
                    args: tuple[object, ...]) -> None:
        await asyncio.sleep(seconds)
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("scheduled call %s failed", handler_name(fn))

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
                    log.exception("@bot.every(%g) %s failed", interval, handler_name(fn))
            else:
                log.debug("offline: skipping %s", handler_name(fn))
            due += interval
            now = loop.time()
            if due <= now:                  # ran long or the loop stalled: skip missed ticks
                due += (int((now - due) // interval) + 1) * interval

    async def _keepalive(self, conn: Connection, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if not conn.online:
                return
            if not await conn.ping_server(min(interval, 30.0)):
                log.warning("the server did not answer a ping; reconnecting")
                conn.abort()
                return


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
