# tests: tests/integration/test_live_control.py, tests/integration/test_graceful_shutdown.py
"""The running process around the `Server`: its listening ports, the admin socket, signals,
reload, and a graceful, bounded shutdown (issue 17 §3, §4).

- SIGHUP: `reload()` (xmppd/reload.py: config, certificates, log file reopened for logrotate).
- SIGTERM (and SIGINT, Ctrl-C): `shutdown()` runs as the reactor's "before shutdown" trigger:
  1. every listening port stops accepting (client, HTTP, federation, metrics, admin socket);
     federation's streams end;
  2. `Server.stop`: modules say goodbye while clients are connected (`server_stopping`: rooms
     send 332), every client stream is closed with <system-shutdown/> — stream management
     ends those sessions, and what a client had not acknowledged goes to offline storage —
     then modules stop, flushing their group commits (archive, offline store, room archive);
     what routing still in flight added to a group commit after its module flushed is
     written too (every live group commit is drained until none has work);
  3. the closed streams are given the rest of the time to drain: a client still reading a
     backlog gets everything up to the stream error before its connection ends (the reactor
     would otherwise cut it with the error unread);
  4. the cache closes; the reactor then stops the storage threads (in-flight transactions
     finish) and the database closes.
  The whole is bounded by `server.shutdown_timeout`: past it the reactor stops anyway, and a
  watchdog ends the process 10 s later whatever is still running (a storage call that hangs).
  What a client sent is acknowledged (XEP-0198) only once stored, so nothing acknowledged is
  lost; what was not acknowledged is the client's to send again after the restart.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet import defer, task

from storage import batch
from xmppd import tls
from xmppd.config import Config, ListenerConfig
from xmppd.reload import Outcome, reload

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)
_WATCHDOG_GRACE = 10.0


class Runtime:
    def __init__(self, server: Server, reactor: Any) -> None:
        self.server = server
        self.reactor = reactor
        self.ports: list[tuple[ListenerConfig, Any]] = []
        self.control: Any = None
        self.stopping = False
        self.adapt: Callable[[Config], Config] | None = None   # a worker's view of its config

    def listening(self, lst: ListenerConfig, port: Any) -> None:
        """A listener's port, closed first at shutdown and shown by `xmppctl status`."""
        self.ports.append((lst, port))

    def listeners(self) -> list[dict[str, Any]]:
        return [{"type": lst.type, "bind": lst.bind, "port": port.getHost().port}
                for lst, port in self.ports]

    def start_control(self) -> None:
        """The admin socket, if `server.admin_socket` names one (xmppd/control.py)."""
        path = self.server.config.server.admin_socket
        if path:
            from xmppd import control
            self.control = control.listen(self.reactor, self, path,
                                          self.server.config.server.admin_socket_mode)
            log.info("admin socket at %s", path)

    def install_signals(self) -> None:
        """SIGHUP reloads (Twisted already turns SIGTERM and SIGINT into a shutdown)."""
        def on_hup(signum: int, frame: Any) -> None:
            self.reactor.callFromThread(self.reload)
        signal.signal(signal.SIGHUP, on_hup)

    def reload(self) -> Outcome:
        return reload(self.server, tls_in_use=tls.in_use(), adapt=self.adapt)

    async def shutdown(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        limit = self.server.config.server.shutdown_timeout
        log.info("shutting down (at most %s s)", limit, extra={"event": "shutdown"})
        watchdog = threading.Timer(limit + _WATCHDOG_GRACE, _exit_now, args=(limit,))
        watchdog.daemon = True
        watchdog.start()
        d = defer.Deferred.fromCoroutine(self._stop())
        d.addTimeout(limit, self.reactor)
        try:
            await d
        except defer.TimeoutError:
            log.error("shutdown took longer than %s s; stopping anyway", limit,
                      extra={"event": "shutdown_timeout"})
        except Exception:
            log.exception("shutdown failed")

    async def _stop(self) -> None:
        closing = [defer.maybeDeferred(port.stopListening) for _, port in self.ports]
        if self.control is not None:
            closing.append(defer.maybeDeferred(self.control.stopListening))
        await defer.DeferredList(closing, consumeErrors=True)
        began = self.server.clock.now()
        if self.server.s2s is not None:         # federation: outgoing streams end first
            self.server.s2s.stop()
        await self.server.stop()
        budget = self.server.config.server.shutdown_timeout - 1.0
        while any(len(gc) or gc.in_flight for gc in batch.live()) and \
                self.server.clock.now() - began < budget:
            await task.deferLater(self.reactor, 0.02, lambda: None)
        log.info("clients told, queues flushed", extra={"event": "stopped"})
        while self.server.connections and self.server.clock.now() - began < budget:
            await task.deferLater(self.reactor, 0.05, lambda: None)
        if self.server.connections:
            log.info("%d connection(s) still draining are cut", len(self.server.connections),
                     extra={"event": "connections_cut"})
        self.server.cache.close()


def _exit_now(limit: float) -> None:
    logging.getLogger(__name__).critical("still running %s s after the shutdown began: exiting",
                                         limit + _WATCHDOG_GRACE)
    logging.shutdown()
    os._exit(70)
