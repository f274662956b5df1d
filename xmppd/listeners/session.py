# tests: tests/core/test_client_session.py, tests/integration/test_core_slixmpp.py
"""A client's session, whatever carries it: runs a `C2SStream`, performs its events
(credentials, binding, routing), and is the bound `Session` the router writes to.

- Transport-agnostic: TCP (xmppd/listeners/c2s.py), WebSocket and BOSH adapters feed it bytes
  with `data_received` and write what it hands to `Transport.send` — a list of stream-level
  units (one element each, or the stream header/footer), so framed transports (RFC 7395: one
  element per WebSocket message) need no re-parsing.
- A stanza for this client from another session is handed over straight away (the stream's
  own pending output first, so order is kept); one stanza is serialised once per fan-out.
- Timers: the authentication deadline until bound, then a lazy idle timer (re-armed for the
  remainder rather than reset on every read) that fires `c2s_idle` for the heartbeat.
- Two slots for modules: `sm` (XEP-0198, modules/stream_mgmt.py) sees every stanza in and out
  and may keep the session bound when the connection drops (`hold`), until it is resumed on a
  new connection (`take_over`) or ended (`end`); `hold_filter` (XEP-0352, modules/csi.py) may
  keep a stanza back, to `deliver` it later.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Protocol

from lxml import etree
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from stanzas.errors import StanzaError, StreamError, error_reply
from xmppd import c2s, hooks, throttle
from xmppd.hooks import IdleEvent, SessionEvent, StanzaEvent
from stanzas.jid import JID
from xmppd.module import IqRequest
from xmppd.xmlstream import serialize

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)
_E = etree._Element
_STANZA_STARTS = (b"<message", b"<presence", b"<iq")     # units of serialised stanzas


class Transport(Protocol):
    """What a ClientSession needs of its connection (TCP, WebSocket, BOSH)."""

    def send(self, units: list[bytes]) -> None:
        """Write stream-level units in order (one element or stream header/footer each)."""

    def start_tls(self) -> bool:
        """Start TLS now (after the pending units are written); False if impossible."""

    def close(self) -> None:
        """Close the connection once the pending units are written."""


class StreamManager(Protocol):
    """Per-session XEP-0198 state, set as `ClientSession.sm` by modules/stream_mgmt.py."""

    def outgoing(self, data: bytes) -> None:
        """Count a stanza for the client, keep it until acknowledged, and write it (with an
        ack request when due) through `ClientSession.write`."""

    def counted(self, data: bytes) -> None:
        """A stanza the stream wrote itself (e.g. its RFC 3921 session answer): count it."""

    def incoming(self, handled: defer.Deferred[None] | None) -> None:
        """A stanza from the client was routed; `handled` as `Router.from_client` returns it."""

    def hold(self, clean: bool) -> bool:
        """The connection is gone (`clean`: the stream was closed on purpose); True keeps the
        session bound for resumption."""

    def ended(self) -> None:
        """The session is over: unbound, `session_closed` fired; no resumption."""


class ClientSession:
    """One client's stream and, once bound, its `Session` for the router. Transport-agnostic:
    TCP (xmppd/listeners/c2s.py), WebSocket and BOSH adapters feed it bytes and write its
    output units."""

    def __init__(self, server: Server, settings: c2s.C2SSettings, transport: Transport, *,
                 peer_ip: str | None, secure: bool = False) -> None:
        self.server = server
        self.settings = settings
        self.transport: Transport | None = transport
        self.stream: c2s.C2SStream | None = None
        self.jid: JID = JID.of(None, "unbound.invalid")
        self.priority = 0
        self.available = False
        self.presence: _E | None = None
        self.bound = False
        self.peer_ip = peer_ip
        self._timer: IDelayedCall | None = None
        self._idle_timer: IDelayedCall | None = None
        self._closing = False
        self._clean_end = False               # the stream was closed on purpose, not lost
        self.extra: dict[str, Any] = {}       # per-session state owned by modules
        self.sm: StreamManager | None = None  # XEP-0198 state (modules/stream_mgmt.py)
        # XEP-0352 (modules/csi.py): True = the stanza was kept back, to `deliver` later
        self.hold_filter: Callable[[bytes], bool] | None = None
        self.on_stanza: Callable[[], None] | None = None   # stanza-rate shaping (xmppd/limits.py)

        now = server.clock.now()
        self.stream = c2s.C2SStream(settings, now=now, secure=secure, peer_ip=peer_ip)
        self.server.connections.add(self)
        self._arm_timer()

    # -- from the transport ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        stream = self.stream
        if stream is None:
            return
        stream.receive(data, self.server.clock.now())
        self._pump()

    def items_received(self, items: list[Any]) -> None:
        """Input the transport parsed itself (BOSH bodies, xmppd/listeners/bosh.py)."""
        stream = self.stream
        if stream is None:
            return
        stream.receive_items(items, self.server.clock.now())
        self._pump()

    def connection_lost(self) -> None:
        self.transport = None
        for timer in (self._timer, self._idle_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self.server.connections.discard(self)
        if self.stream is not None:
            self.stream.state = "closed"
        if self.bound:
            sm = self.sm
            if sm is not None and sm.hold(self._clean_end):
                return          # XEP-0198: kept bound; stream management resumes or ends it
            self.end()

    def end(self) -> None:
        """The bound session is over: unbind it and fire `session_closed` (also how stream
        management ends a session it held after its connection was lost)."""
        if not self.bound:
            return
        self.bound = False
        was_available = self.available
        self.available = False
        host = self.server.hosts.get(self.jid.domain)
        if self.server.sessions.unbind(self) and host is not None:
            ev = SessionEvent(self)
            self.extra["was_available"] = was_available
            host.hooks.run(hooks.session_closed, ev)
        sm, self.sm = self.sm, None
        if sm is not None:
            sm.ended()

    def take_over(self, old: ClientSession) -> None:
        """XEP-0198 §5 resumption: this new connection carries `old`'s session from now on —
        its full JID, presence, priority and module state (`extra`) — without a new bind.
        `old` is retired; if its connection is still open it is closed with <conflict/>."""
        stream = self.stream
        assert stream is not None and not self.bound
        old.bound = False           # its connection's end, if still to come, unbinds nothing
        old.sm = None
        for timer in (old._timer, old._idle_timer, self._timer):
            if timer is not None and timer.active():
                timer.cancel()
        self.jid, self.priority, self.available = old.jid, old.priority, old.available
        self.presence, self.extra = old.presence, old.extra
        self.bound = True
        self.server.sessions.bind(self.jid.bare, self.jid.resource, self)
        stream.resumed(self.jid)
        host = self.server.hosts[self.jid.domain]
        if host.idle_interval is not None:
            self._idle_timer = self.server.clock.call_later(host.idle_interval, self._idle_check)

    # -- Session (what the router uses) ------------------------------------------------------
    def send_bytes(self, data: bytes) -> None:
        if self.hold_filter is not None and self.hold_filter(data):
            return                  # kept back (XEP-0352); the filter's owner delivers it
        self.deliver(data)

    def deliver(self, data: bytes) -> None:
        """Write one stanza now, past `hold_filter`; stream management counts it."""
        sm = self.sm
        if sm is None:
            self.write([data])
            return
        if self.stream is not None and self.stream._out:
            self.write([])          # the stream's own output first: counted in wire order
        sm.outgoing(data)           # counts, keeps and writes it

    def write(self, units: list[bytes]) -> None:
        """Write units after the stream's pending output, uncounted (XEP-0198 nonzas and the
        stanzas resent on resumption, which were counted when first sent)."""
        transport = self.transport
        if transport is None or self._closing:
            return
        stream = self.stream
        if stream is not None and stream._out:
            units = self._take_output() + units
        if units:
            transport.send(units)

    def send_element(self, el: _E) -> None:
        self.send_bytes(serialize(el))

    def close(self, error: StreamError | None = None) -> None:
        if self.transport is None and self.bound:
            # Held for resumption (XEP-0198): replaced, deleted, shut down... ends it; a late
            # verdict that the (already lost) link is dead does not.
            if error is None or error.condition != "connection-timeout":
                self.end()
            return
        if self.stream is not None:
            self.stream.close(error)
            self._pump()

    # -- the event pump ----------------------------------------------------------------------
    def _pump(self) -> None:
        stream = self.stream
        if stream is None or self.transport is None:
            return
        while True:
            if stream._out:
                self.transport.send(self._take_output())
            events = stream.events()
            if not events:
                return
            for ev in events:
                self._handle(ev)

    def _handle(self, ev: c2s.Event) -> None:
        stream = self.stream
        assert stream is not None
        if isinstance(ev, c2s.Stanza):
            if self.on_stanza is not None:
                self.on_stanza()
            handled = None if ev.answered else self.server.router.from_client(self, ev.stanza)
            if self.sm is not None:
                self.sm.incoming(handled)
        elif isinstance(ev, c2s.StartTLS):
            if self.transport is not None and self.transport.start_tls():
                stream.tls_started()
            else:
                stream.close(StreamError.internal_server_error("TLS is not available"))
        elif isinstance(ev, c2s.NeedCredentials):
            d = throttle.credentials(self.server, self.peer_ip, ev.username, ev.host)
            d.addCallbacks(self._credentials, self._storage_failed)
        elif isinstance(ev, c2s.AuthFailed):
            throttle.login_failed(self.server, self.peer_ip, ev.username, ev.host)
        elif isinstance(ev, c2s.Authenticated):
            log.info("authenticated %s from %s", ev.jid, self.peer_ip)
            throttle.login_succeeded(self.server, self, ev.jid.local or "", ev.jid.domain)
        elif isinstance(ev, c2s.BindRequest):
            self._bind(ev)
        elif isinstance(ev, c2s.PreAuthIq):
            self._preauth_iq(ev)
        elif isinstance(ev, c2s.Nonza):
            self._nonza(ev.element)
        elif isinstance(ev, c2s.Closed):
            self._closing = True
            # On purpose, unless the server gave up on a silent link (XEP-0198 §6: an
            # unfinished stream stays resumable).
            self._clean_end = ev.error is None or ev.error.condition != "connection-timeout"
            if ev.error is not None:
                log.info("stream to %s closed: %s", self.peer_ip, ev.error)
            if self.transport is not None:
                if stream._out:
                    self.transport.send(stream.take_output())
                self.transport.close()

    def _credentials(self, account: Any) -> None:
        if self.stream is None:
            return
        self.stream.credentials_found(account.credentials if account is not None else None)
        self._pump()

    def _storage_failed(self, failure: Failure) -> None:
        if isinstance(failure.value, throttle.Throttled):
            log.info("login refused from %s: %s", self.peer_ip, failure.value)
        else:
            log.warning("credential look-up failed: %s", failure.value)
        if self.stream is not None:
            from xmppd.sasl import SaslFailure
            self.stream._sasl_fail(SaslFailure("temporary-auth-failure"))
            self.stream._drain_queue()
            self._pump()

    def _bind(self, ev: c2s.BindRequest) -> None:
        stream = self.stream
        assert stream is not None
        try:
            full = self.server.sessions.bind(ev.user, ev.resource, self)
        except StanzaError as e:
            stream.bind_failed(ev.stanza, e)
            return
        self.jid = full
        self.bound = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        stream.bind_succeeded(full, ev.stanza.get("id") or "")
        host = self.server.hosts[full.domain]
        if host.idle_interval is not None:
            self._idle_timer = self.server.clock.call_later(host.idle_interval, self._idle_check)
        host.hooks.run(hooks.session_bound, SessionEvent(self))

    def _idle_check(self) -> None:
        """Lazy idle timer: re-armed for the remainder instead of reset on every read."""
        host = self.server.hosts.get(self.jid.domain)
        if self.stream is None or not self.bound or host is None or host.idle_interval is None:
            return
        interval = host.idle_interval
        idle = self.server.clock.now() - self.stream.last_activity
        if idle >= interval:
            host.hooks.run(hooks.c2s_idle, IdleEvent(self, idle))
            delay = interval
        else:
            delay = interval - idle
        if self.bound:
            self._idle_timer = self.server.clock.call_later(delay, self._idle_check)

    def _preauth_iq(self, ev: c2s.PreAuthIq) -> None:
        host = self.server.hosts[ev.host]
        el = ev.stanza
        payload = next((c for c in el if isinstance(c.tag, str)), None)
        kind = el.get("type")
        handler = host.iq_handlers.get((kind or "", "preauth", payload.tag)) \
            if payload is not None else None

        def reply(answer: _E) -> None:
            for attr in ("to", "from"):
                if attr in answer.attrib:
                    del answer.attrib[attr]
            if self.stream is not None:
                self.stream.send_element(answer)
                self._pump()
        if kind not in ("get", "set"):
            return
        if handler is None or payload is None:
            reply(error_reply(el, StanzaError.service_unavailable()))
            return
        req = IqRequest(el, JID.of(None, ev.host), JID.of(None, ev.host), payload, self)
        self.server.router.call_iq_handler(handler, req, reply)

    def _nonza(self, el: _E) -> None:
        stream = self.stream
        bound = self.bound
        who = self.jid if bound else (stream.jid if stream is not None else None)
        host = self.server.hosts.get(who.domain) if who is not None else None
        if who is not None and host is not None and host.hooks.has(hooks.nonza_in):
            handled = host.hooks.run(hooks.nonza_in, StanzaEvent(el, who, who, self))
            if handled is not True and handled is not False:
                if not bound:       # async handler: it owns the outcome; input waits for it
                    handled.addBoth(self._prebind_nonza_done)
                return
            if handled:
                if not bound:
                    self._prebind_nonza_done(None)
                return
        self.close(StreamError.unsupported_stanza_type(f"unknown element {el.tag}"))

    def _prebind_nonza_done(self, result: object) -> object:
        """A nonza before binding (XEP-0198 <resume/>) was answered: go on reading."""
        if self.stream is not None:
            self.stream.nonza_handled()
            self._pump()
        return None

    def _take_output(self) -> list[bytes]:
        """The stream's pending units; stanzas among them (its own answers, e.g. the RFC 3921
        session IQ) are counted by stream management."""
        assert self.stream is not None
        units = self.stream.take_output()
        sm = self.sm
        if sm is not None:
            for unit in units:
                if unit.startswith(_STANZA_STARTS):
                    sm.counted(unit)
        return units

    def _arm_timer(self) -> None:
        stream = self.stream
        if stream is None:
            return
        deadline = stream.next_deadline()
        if deadline is None:
            return
        self._timer = self.server.clock.call_later(deadline - self.server.clock.now(),
                                                   self._timeout)

    def _timeout(self) -> None:
        if self.stream is not None:
            self.stream.on_timeout(self.server.clock.now())
            self._pump()
