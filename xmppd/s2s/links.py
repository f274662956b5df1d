# tests: tests/core/test_s2s_service.py
"""One outgoing link per (local domain, remote domain): finding the remote server, connecting,
holding stanzas until the stream is ready, and bouncing them when it never gets there.

- Targets come from the connector (static `s2s.routes`, else DNS SRV, xmppd/s2s/srv.py) and
  are tried in order: a refused or dropped connection, or a TLS or stream failure before
  authentication, moves on to the next; a refusal to authenticate us ends the attempt.
- Stanzas wait in a queue of at most `s2s.max_queue` (beyond: `<resource-constraint/>`) for at
  most `s2s.connect_timeout`; then they bounce with `<remote-server-timeout/>`. No server found
  or none reachable bounces them with `<remote-server-not-found/>`; a dialback key found invalid
  with `<internal-server-error/>` (XEP-0220 §2.1.1). The sender sees the error at once.
- Dialback verification requests (we as the receiving server) ride on the link to the sender
  domain (XEP-0220 §2.1.2); a link that fails answers them with the matching dialback error.
- A link is over once its stream closes (idle timeout, peer close, failure); the next stanza
  for the pair starts a new one.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Protocol

from lxml import etree
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from stanzas.errors import StanzaError, StreamError
from xmppd.hooks import summary
from xmppd.s2s.outgoing import Failed, OutboundSettings, OutgoingStream, Ready, VerifyResult
from xmppd.s2s.srv import Target
from xmppd.s2s.stream import Stanza

log = logging.getLogger(__name__)
_E = etree._Element


class Conn(Protocol):
    """What a link needs of its connection (xmppd/listeners/s2s.py)."""
    stream: Any

    def flush(self) -> None: ...
    def close(self, error: StreamError | None = None) -> None: ...


class Connector(Protocol):
    def targets(self, domain: str) -> defer.Deferred[list[Target]]:
        """Where `domain`'s server is, in the order to try (empty: it has none)."""

    def connect(self, target: Target, link: OutgoingLink) -> defer.Deferred[Any]:
        """Open a connection for `link` (its protocol calls `link.attach`); errback on
        failure to connect."""


class LinkOwner(Protocol):
    """The s2s service, as a link sees it."""
    connector: Connector
    settings: OutboundSettings
    connect_timeout: float
    max_queue: int

    def now(self) -> float: ...
    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> IDelayedCall: ...
    def inbound(self, el: _E) -> None: ...
    def bounce(self, el: _E, error: StanzaError) -> None: ...
    def link_over(self, link: OutgoingLink) -> None: ...


_BY_REASON = {  # Failed.reason -> how the queued stanzas bounce
    "dialback-invalid": "internal-server-error",
    "dialback-error": "remote-server-timeout",
}


class OutgoingLink:
    def __init__(self, owner: LinkOwner, local: str, remote: str) -> None:
        self.owner = owner
        self.local = local
        self.remote = remote
        self.state = "new"          # new, connecting, ready, over
        self.conn: Conn | None = None
        self.queue: list[_E] = []
        self._targets: list[Target] = []
        self._target: Target | None = None
        self._failed: Failed | None = None
        self._last_error = "no connection attempt"
        self._deadline: IDelayedCall | None = None
        # dialback verifications: stream id -> (key, done); asked again on a new connection
        self._verify_waiters: dict[str, tuple[str, Callable[[str], None]]] = {}
        self.ready_how = ""

    def __repr__(self) -> str:
        return f"<link {self.local} -> {self.remote} {self.state}>"

    # -- from the service ------------------------------------------------------------------
    def start(self) -> None:
        self.state = "connecting"
        self._deadline = self.owner.call_later(self.owner.connect_timeout, self._expired)
        log.info("s2s %s -> %s: looking up the remote server", self.local, self.remote)
        d = self.owner.connector.targets(self.remote)
        d.addCallbacks(self._got_targets, self._lookup_failed)

    def send(self, el: _E) -> bool:
        """Send or queue `el`; False if this link is over (the caller starts a new one).
        Raises StanzaError when the queue is full."""
        if self.state == "ready":
            conn = self.conn
            if conn is not None and conn.stream.state == "ready":
                conn.stream.send_stanza(el, self.owner.now())
                conn.flush()
                return True
            return False
        if self.state == "over":
            return False
        if len(self.queue) >= self.owner.max_queue:
            raise StanzaError.resource_constraint(
                f"too many stanzas waiting for the connection to {self.remote}")
        self.queue.append(el)
        return True

    def verify(self, stream_id: str, key: str, done: Callable[[str], None]) -> None:
        """Ask `remote`'s authoritative server about a dialback key; `done(outcome)`."""
        if self.state == "over":
            done("remote-server-timeout")
            return
        self._verify_waiters[stream_id] = (key, done)
        if self.conn is not None and self.conn.stream.state != "closed":
            self.conn.stream.request_verify(stream_id, key)
            self.conn.flush()

    def close(self, error: StreamError | None = None) -> None:
        if self.conn is not None:
            self.conn.close(error)
        self._over("remote-server-timeout", "the server is shutting down")

    # -- from the connection ---------------------------------------------------------------
    def new_stream(self, now: float) -> OutgoingStream:
        return OutgoingStream(self.owner.settings, self.local, self.remote, now=now)

    def attach(self, conn: Conn) -> None:
        """The connection to the current target is up and carries a new stream."""
        if self.state == "over":
            conn.close()
            return
        self.conn = conn
        self._failed = None
        for stream_id, (key, _done) in self._verify_waiters.items():
            conn.stream.request_verify(stream_id, key)

    def on_event(self, conn: Conn, ev: object) -> None:
        if isinstance(ev, Ready):
            self._ready(conn, ev.how)
        elif isinstance(ev, Failed):
            self._failed = ev
            self._last_error = f"{ev.reason}: {ev.detail}" if ev.detail else ev.reason
            log.warning("s2s %s -> %s: %s (%s)", self.local, self.remote, self._last_error,
                        self._target)
        elif isinstance(ev, VerifyResult):
            waiter = self._verify_waiters.pop(ev.stream_id, None)
            if waiter is not None:
                waiter[1](ev.outcome)
        elif isinstance(ev, Stanza):
            self.owner.inbound(ev.stanza)      # XEP-0288 bidi: the peer's stanzas to us

    def lost(self, conn: Conn) -> None:
        if conn is not self.conn:
            return
        self.conn = None
        peer_error = getattr(conn, "peer_error", None)
        if peer_error:
            self._last_error = f"the remote server closed the stream: <{peer_error}/>"
        if self.state == "ready":
            log.info("s2s %s -> %s: stream closed", self.local, self.remote)
            self._over("remote-server-timeout", "the stream closed")
        elif self._failed is not None:
            self._over(_BY_REASON.get(self._failed.reason, "remote-server-not-found"),
                       self._last_error)
        else:
            self._next_target()

    # -- internals -------------------------------------------------------------------------
    def _got_targets(self, targets: list[Target]) -> None:
        if self.state == "over":
            return
        if not targets:
            self._over("remote-server-not-found",
                       f"{self.remote} has no XMPP server (DNS SRV target '.')")
            return
        self._targets = list(targets)
        self._next_target()

    def _lookup_failed(self, failure: Failure) -> None:
        self._over("remote-server-not-found", f"lookup failed: {failure.getErrorMessage()}")

    def _next_target(self) -> None:
        if self.state == "over":
            return
        if not self._targets:
            self._over("remote-server-not-found", self._last_error)
            return
        self._target = target = self._targets.pop(0)
        log.info("s2s %s -> %s: connecting to %s", self.local, self.remote, target)
        d = self.owner.connector.connect(target, self)
        d.addErrback(self._connect_failed, target)

    def _connect_failed(self, failure: Failure, target: Target) -> None:
        self._last_error = f"cannot connect to {target}: {failure.getErrorMessage()}"
        log.info("s2s %s -> %s: %s", self.local, self.remote, self._last_error)
        self._next_target()

    def _ready(self, conn: Conn, how: str) -> None:
        if self.state == "over" or conn is not self.conn:
            return
        self.state = "ready"
        self.ready_how = how
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        log.info("s2s %s -> %s: ready (%s, %s), %d stanza(s) queued", self.local, self.remote,
                 how, self._target, len(self.queue))
        queued, self.queue = self.queue, []
        now = self.owner.now()
        for el in queued:
            conn.stream.send_stanza(el, now)
        conn.flush()

    def _expired(self) -> None:
        if self.state in ("new", "connecting"):
            self._last_error = (f"no stream to {self.remote} within "
                                f"{self.owner.connect_timeout:g} s ({self._last_error})")
            if self.conn is not None:
                self.conn.close(StreamError.connection_timeout())
            self._over("remote-server-timeout", self._last_error)

    def _over(self, condition: str, why: str) -> None:
        if self.state == "over":
            return
        was_ready = self.state == "ready"
        self.state = "over"
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        queued, self.queue = self.queue, []
        if not was_ready:
            log.warning("s2s %s -> %s: unreachable (%s); %d stanza(s) bounced with <%s/>",
                        self.local, self.remote, why, len(queued), condition)
        for el in queued:
            log.debug("bounced %s", summary(el))
            self.owner.bounce(el, StanzaError(condition, f"{self.remote}: {why}"))
        waiters, self._verify_waiters = self._verify_waiters, {}
        dialback_error = "remote-server-timeout" if condition == "remote-server-timeout" \
            else "remote-server-not-found"
        for _key, done in waiters.values():
            done(dialback_error)
        if self.conn is not None and not was_ready:
            self.conn.close()
        self.owner.link_over(self)
