# tests: tests/core/test_client_session.py, tests/integration/test_core_slixmpp.py
"""A client's session, whatever carries it: runs a `C2SStream`, performs its events
(credentials, binding, routing), and is the bound `Session` the router and modules use.

- Transport-agnostic: TCP (xmppd/listeners/c2s.py), WebSocket and BOSH adapters feed it bytes
  with `data_received` and write what it hands to `Transport.send` — a list of stream-level
  units (one element each, or the stream header/footer), so framed transports (RFC 7395: one
  element per WebSocket message) need no re-parsing. The in-memory test harness runs this same
  class on a memory transport.
- Output (filters, the stream's own output, flow control) is `SessionOutput`
  (xmppd/listeners/session_output.py). A session whose stream closed (either side) leaves
  routing at once, not when the socket finally goes. What it was never given is handed back
  to the router (`Router.undelivered`: messages to offline storage) unless a `session_ended`
  handler that accounts for it (XEP-0198) took it with `discard_output`.
- Negotiation (credentials, FAST tokens, SASL2 completion, pre-auth IQs, nonzas before
  binding) is `SessionLogin` (xmppd/listeners/session_login.py).
- Input: every stanza from the client goes to the router; the host's input observers
  (`ModuleContext.input_observer`, XEP-0198) then learn when it is handled.
- Per-session module state lives in typed `SessionKey` slots (`get`/`set`/`pop`).
- A lost connection ends the session unless a `connection_lost` handler keeps it bound
  (XEP-0198 waits for resumption: `take_over` moves it onto a new connection, `end` ends it).
- The parser of a stream silent for a few seconds is freed (xmppd/listeners/idle_parsers.py).
- Timers: the authentication deadline until bound, then a lazy idle timer (re-armed for the
  remainder rather than reset on every read) that fires `c2s_idle` for the heartbeat.
"""
from __future__ import annotations

import logging
import secrets
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Protocol

from lxml import etree
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall

from stanzas.errors import StanzaError, StreamError
from stanzas.jid import JID
from xmppd import c2s, hooks, throttle
from xmppd.listeners import sasl2_shell
from xmppd.hooks import ConnectionLost, IdleEvent, SessionEvent
from xmppd.limits import hold_reading
from xmppd.logs import session_fields
from xmppd.metrics import transport_kind
from xmppd.listeners.idle_parsers import idle_parsers
from xmppd.listeners.session_login import SessionLogin
from xmppd.listeners.session_output import OutputFilter as OutputFilter, SessionOutput
from xmppd.sessions import SessionKey, SessionState

if TYPE_CHECKING:
    from xmppd.server import Host, Server

log = logging.getLogger(__name__)
_E = etree._Element
InputObserver = Callable[["ClientSession", "defer.Deferred[None] | None"], None]
"""`observer(session, handled)` after each stanza from the client was routed; `handled` as
`Router.from_client` returns it (None: handled at once)."""


class Transport(Protocol):
    """What a ClientSession needs of its connection (TCP, WebSocket, BOSH)."""

    def send(self, units: list[bytes]) -> None:
        """Write stream-level units in order (one element or stream header/footer each)."""

    def start_tls(self) -> bool:
        """Start TLS now (after the pending units are written); False if impossible."""

    def close(self) -> None:
        """Close the connection once the pending units are written."""

    def abort(self) -> None:
        """Cut the connection now, dropping what is not written (the client stopped reading).
        The transport then reports `connection_lost` as usual."""


class ClientSession(SessionOutput, SessionLogin, SessionState):
    """One client's stream and, once bound, its `Session` for the router and modules."""

    def __init__(self, server: Server, settings: c2s.C2SSettings, transport: Transport, *,
                 peer_ip: str | None, secure: bool = False) -> None:
        self.server = server
        self.settings = settings
        self.transport: Transport | None = transport
        self.jid: JID = JID.of(None, "unbound.invalid")
        self.priority = 0
        self.available = False
        self.presence: _E | None = None
        self.bound = False
        self.peer_ip = peer_ip
        self.id = secrets.token_hex(6)        # names this connection in logs and xmppctl
        self.opened_at = server.clock.now()
        self._state: dict[SessionKey[Any], Any] = {}
        self._host: Host | None = None
        self._filters: list[tuple[int, int, OutputFilter]] = []
        self._observers: list[InputObserver] = []
        self._timer: IDelayedCall | None = None
        self._idle_timer: IDelayedCall | None = None
        self._closing = False
        self._clean_end = False               # the stream was closed on purpose, not lost
        self._paused = False                  # the transport asked us to stop writing
        self._backlog: deque[bytes] | None = None     # units waiting for the transport (made
        # when the transport is first full: an empty deque is 760 bytes, per connection)
        self._backlog_bytes = 0
        self._max_backlog = server.config.limits.max_output_buffer
        self._unhandled = 0         # stanzas routed whose handling (a storage write) is pending
        self.on_stanza: Callable[[], None] | None = None   # stanza-rate shaping (xmppd/limits.py)
        self.stream = c2s.C2SStream(settings, now=server.clock.now(), secure=secure,
                                    peer_ip=peer_ip)
        self._count = server.metrics.core
        self._idle_parsers = idle_parsers(server)
        # TLS channel bindings for SCRAM-*-PLUS and FAST (xmppd/listeners/c2s.py)
        self.stream.channel_bindings = getattr(transport, "channel_bindings", dict)
        self.server.connections.add(self)
        self._count.connection_opened(transport_kind(transport))
        self._arm_timer()

    # -- what modules read -----------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """A connection carries this session (False while XEP-0198 waits for resumption)."""
        return self.transport is not None

    @property
    def closing(self) -> bool:
        """The stream ended (its transport may still be flushing)."""
        return self._closing or self.stream.closed

    @property
    def last_activity(self) -> float:
        """When the client last sent anything (a stanza, a nonza or whitespace)."""
        return self.stream.last_activity

    # -- from the transport ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.stream.receive(data, self.server.clock.now())
        self._idle_parsers.touch(self)      # freed once the stream goes quiet
        self._pump()

    def items_received(self, items: list[Any]) -> None:
        """Input the transport parsed itself (BOSH bodies, xmppd/listeners/bosh.py)."""
        self.stream.receive_items(items, self.server.clock.now())
        self._pump()

    def connection_lost(self) -> None:
        self.transport = None
        for timer in (self._timer, self._idle_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self.server.connections.discard(self)
        self._idle_parsers.forget(self)
        self.stream.connection_lost()
        self._leave(self._clean_end)
        self._paused = False

    def _leave(self, clean: bool) -> None:
        """The client is gone or going: leave routing now, unless a `connection_lost`
        handler keeps the session bound (XEP-0198); what it was not given goes back."""
        if not self.bound:
            self.discard_output()           # ended before, or taken over by a resumption
            return
        host = self._host
        if host is not None and host.hooks.has(hooks.connection_lost):
            keep = host.hooks.fold(hooks.connection_lost, ConnectionLost(self, clean), False)
            if keep is True:
                self.discard_output()       # the keeper resends on resumption
                return
        self.end()
        left = self.discard_output()
        if left:
            self.server.router.undelivered(left, self.jid)

    def end(self) -> None:
        """The bound session is over: unbind it, fire `session_closed` (unless it was replaced)
        and `session_ended` (also how stream management ends a session it kept bound)."""
        if not self.bound:
            return
        self.bound = False
        self.available = False
        host = self._host
        unbound = self.server.sessions.unbind(self)
        if host is not None:
            ev = SessionEvent(self)
            if unbound:
                host.hooks.run(hooks.session_closed, ev)
            host.hooks.run(hooks.session_ended, ev)
            if host.iq_targets:
                host.recipient_gone(str(self.jid))

    def take_over(self, old: ClientSession) -> None:
        """XEP-0198 §5 resumption: this new connection carries `old`'s session from now on —
        its full JID, presence, priority and resumable state — without a new bind. `old` is
        retired; if its connection is still open it is closed with <conflict/>."""
        assert not self.bound
        old.bound = False           # its connection's end, if still to come, unbinds nothing
        for timer in (old._timer, old._idle_timer, self._timer):
            if timer is not None and timer.active():
                timer.cancel()
        self.jid, self.priority, self.available = old.jid, old.priority, old.available
        self.presence = old.presence
        self.move_state(old)
        self._attach(self.server.hosts[self.jid.domain])
        self.server.sessions.bind(self.jid.bare, self.jid.resource, self)
        self.stream.resumed(self.jid)

    def adopt(self, jid: JID, priority: int, available: bool, presence: _E | None,
              slots: dict[SessionKey[Any], Any]) -> None:
        """XEP-0198 §5 resumption of a session another cluster node held (it handed it over,
        `hand_over`): this connection carries it from now on, without a new bind."""
        assert not self.bound
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.jid, self.priority, self.available, self.presence = jid, priority, available, \
            presence
        self._state.update(slots)
        self._attach(self.server.hosts[jid.domain])
        self.server.sessions.bind(jid.bare, jid.resource, self)
        self.stream.resumed(jid)

    def hand_over(self) -> None:
        """The session moved to another cluster node (resumed there): it leaves routing here
        without `session_closed`/`session_ended` — it lives on; a connection still open is
        closed with <conflict/> (XEP-0198 §5)."""
        if not self.bound:
            return
        self.bound = False
        self.server.sessions.unbind(self)
        for timer in (self._timer, self._idle_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self.discard_output()
        if self.transport is not None:
            self.close(StreamError.conflict("the session was resumed elsewhere"))

    def close(self, error: StreamError | None = None) -> None:
        if self.transport is None and self.bound:
            # Kept bound for resumption (XEP-0198): replaced, deleted, shut down... ends it;
            # a late verdict that the (already lost) link is dead does not.
            if error is None or error.condition != "connection-timeout":
                self.end()
            return
        self.stream.close(error)
        self._pump()

    # -- the event pump ----------------------------------------------------------------------
    def _pump(self) -> None:
        stream = self.stream
        while self.transport is not None and not self._closing:
            if stream.has_output():
                self._flush_stream()
            events = stream.events()
            if not events:
                return
            for ev in events:
                self._handle(ev)

    def _handle(self, ev: c2s.Event) -> None:
        stream = self.stream
        if isinstance(ev, c2s.Stanza):
            if self.on_stanza is not None:
                self.on_stanza()
            handled = None if ev.answered else self.server.router.from_client(self, ev.stanza)
            if handled is not None:
                self._in_hand(handled)
            for observe in self._observers:
                observe(self, handled)
        elif isinstance(ev, c2s.StartTLS):
            if self.transport is not None and self.transport.start_tls():
                stream.tls_started()
            else:
                stream.close(StreamError.internal_server_error("TLS is not available"))
        elif isinstance(ev, c2s.NeedCredentials) and ev.kind == "token":
            sasl2_shell.tokens(self, ev).addCallbacks(self._tokens, self._storage_failed)
        elif isinstance(ev, c2s.NeedCredentials):
            d = throttle.credentials(self.server, self.peer_ip, ev.username, ev.host)
            d.addCallbacks(self._credentials, self._storage_failed)
        elif isinstance(ev, c2s.Sasl2Success):
            sasl2_shell.complete(self, ev).addCallbacks(self._sasl2_done, self._sasl2_failed)
        elif isinstance(ev, c2s.AuthFailed):
            self._count.login_failures += 1
            throttle.login_failed(self.server, self.peer_ip, ev.username, ev.host)
        elif isinstance(ev, c2s.Authenticated):
            self._count.logins += 1
            log.info("authenticated %s", ev.jid, extra=session_fields(self, "authenticated"))
            throttle.login_succeeded(self.server, self, ev.jid.local or "", ev.jid.domain)
        elif isinstance(ev, c2s.BindRequest):
            self._bind(ev)
        elif isinstance(ev, c2s.PreAuthIq):
            self._preauth_iq(ev)
        elif isinstance(ev, c2s.Nonza):
            self._nonza(ev.element)
        elif isinstance(ev, c2s.Closed):
            # On purpose, unless the server gave up on a silent link (XEP-0198 §6: an
            # unfinished stream stays resumable).
            self._clean_end = ev.error is None or ev.error.condition != "connection-timeout"
            if self._clean_end and ev.error is not None and self.server.cluster is not None:
                # A cluster node shutting down: the client resumes on another node.
                self._clean_end = ev.error.condition != "system-shutdown"
            if ev.error is not None:
                log.info("stream closed: %s", ev.error,
                         extra=session_fields(self, "stream_error"))
            units = stream.take_output()        # the stream error and the closing tag
            transport = self.transport
            self._closing = True
            self._idle_parsers.forget(self)
            # A closing stream is no recipient (DESIGN.md): stanzas for this client go to its
            # other resources or offline storage from now on, not into a socket being shut.
            self._leave(self._clean_end)
            if transport is not None:
                if units:
                    transport.send(units)       # past any backlog: nothing more follows
                transport.close()

    def _in_hand(self, handled: defer.Deferred[None]) -> None:
        """Back-pressure (xmppd/limits.py ReadGate): with `max_unhandled` stanzas of this
        session waiting for storage, its connection is not read until half are handled."""
        self._unhandled += 1
        if self._unhandled == self.server.config.limits.max_unhandled:
            hold_reading(self.transport, True)
        handled.addBoth(self._handled)

    def _handled(self, result: object) -> object:
        self._unhandled -= 1
        if self._unhandled == self.server.config.limits.max_unhandled // 2:
            hold_reading(self.transport, False)
        return result

    def _attach(self, host: Host) -> None:
        """Bound to a JID of `host`: its filters, observers and idle interval apply."""
        self._host = host
        self._filters = host.output_filters
        self._observers = host.input_observers
        self.bound = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None          # a cancelled call kept is ~450 bytes per session
        if host.idle_interval is not None:
            self._idle_timer = self.server.clock.call_later(host.idle_interval, self._idle_check)

    def _bind(self, ev: c2s.BindRequest) -> None:
        cluster = self.server.cluster
        if cluster is not None and not cluster.ready.called:
            cluster.ready.addCallback(self._bind_later, ev)     # the node is joining
            return
        try:
            full = self.bind_resource(ev.user, ev.resource)
        except StanzaError as e:
            self.stream.bind_failed(ev.stanza, e)
            return
        self.stream.bind_succeeded(full, ev.stanza.get("id") or "")
        self.server.hosts[full.domain].hooks.run(hooks.session_bound, SessionEvent(self))

    def bind_resource(self, user: JID, resource: str | None) -> JID:
        """Bind this session as `resource` of `user` (RFC 6120 §7, XEP-0386 Bind 2); raises
        StanzaError."""
        full = self.server.sessions.bind(user, resource, self)
        self.jid = full
        self._attach(self.server.hosts[full.domain])
        return full

    def _bind_later(self, _: object, ev: c2s.BindRequest) -> None:
        if self.transport is not None and not self.stream.closed:
            self._bind(ev)
            self._pump()

    def _idle_check(self) -> None:
        """Lazy idle timer: re-armed for the remainder instead of reset on every read."""
        host = self._host
        if not self.bound or host is None or host.idle_interval is None:
            return
        interval = host.idle_interval
        idle = self.server.clock.now() - self.stream.last_activity
        if idle >= interval and self._unhandled < self.server.config.limits.max_unhandled // 2:
            # (not while its reading is held for storage: the silence would be ours)
            host.hooks.run(hooks.c2s_idle, IdleEvent(self, idle))
            delay = interval
        else:
            delay = interval - idle
        if self.bound:
            self._idle_timer = self.server.clock.call_later(delay, self._idle_check)

    def _arm_timer(self) -> None:
        deadline = self.stream.next_deadline()
        if deadline is None:
            return
        self._timer = self.server.clock.call_later(deadline - self.server.clock.now(),
                                                   self._timeout)

    def _timeout(self) -> None:
        self.stream.on_timeout(self.server.clock.now())
        self._pump()
