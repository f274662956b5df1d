# tests: tests/core/test_s2s_service.py, tests/integration/test_federation_xmppd.py
"""The Twisted shell of federation and components: one `StreamConnection` per TCP connection
moves bytes between the socket, an optional TLS layer (xmppd/listeners/peertls.py) and a
sans-IO stream (xmppd/s2s/), and hands the stream's events to their owner (the s2s service
for accepted connections, the `OutgoingLink` for ones we open).

- Listeners: type "s2s" (STARTTLS), "s2s_tls" (XEP-0368: TLS from the first byte, ALPN
  "xmpp-server"), "component" (XEP-0114, no TLS: keep it on a trusted network).
- Outgoing connections go to the targets `Resolver` finds: `s2s.routes` first, else DNS SRV
  (`_xmpps-server._tcp` and `_xmpp-server._tcp`, through twisted.names and /etc/resolv.conf),
  else the domain on 5269; each host name is resolved to A/AAAA addresses by the reactor
  (HostnameEndpoint tries them all). SNI names the remote domain.
- One timer per connection, at the stream's `next_deadline()`; a closing connection that
  cannot flush within 10 s is cut.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet import defer, endpoints, protocol
from twisted.internet.interfaces import IDelayedCall
from twisted.names import client as dns_client
from twisted.names import dns, error as dns_error
from twisted.python.failure import Failure

from stanzas.errors import StreamError
from xmppd.config import ListenerConfig
from xmppd.listeners.peertls import PeerTls, PeerTlsContext
from xmppd.listeners.tlslayer import TlsFailed
from xmppd.s2s.component import ComponentStream
from xmppd.s2s.incoming import IncomingStream
from xmppd.s2s.links import OutgoingLink
from xmppd.s2s.srv import SrvRecord, Target, targets
from xmppd.s2s.stream import BaseStream, Closed, StartTLS

if TYPE_CHECKING:
    from xmppd.s2s.service import S2SService

log = logging.getLogger(__name__)
_CLOSE_GRACE = 10.0
_CONNECT_TIMEOUT = 10.0


class StreamConnection(protocol.Protocol):
    def __init__(self, service: S2SService, make_stream: Callable[[float, bool, str | None],
                                                                  BaseStream],
                 on_event: Callable[[Any, object], None], on_lost: Callable[[Any], None], *,
                 tls: PeerTlsContext | None, accepting: bool, direct_tls: bool = False,
                 sni: str | None = None, on_made: Callable[[Any], None] | None = None) -> None:
        self.service = service
        self.make_stream = make_stream
        self.on_event = on_event
        self.on_lost = on_lost
        self.on_made = on_made
        self.tls_context = tls
        self.accepting = accepting
        self.direct_tls = direct_tls
        self.sni = sni
        self.stream: Any = None
        self.peer_error: str | None = None
        self._tls: PeerTls | None = None
        self._tls_announced = False
        self._timer: IDelayedCall | None = None
        self._abort: IDelayedCall | None = None
        self._flushing = False
        self._again = False
        self._closing = False

    # -- Twisted ---------------------------------------------------------------------------
    def connectionMade(self) -> None:
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        try:
            self.transport.setTcpKeepAlive(True)  # type: ignore[union-attr]
        except (AttributeError, OSError):
            pass
        now = self.service.now()
        self.stream = self.make_stream(now, self.direct_tls, getattr(peer, "host", None))
        if self.on_made is not None:
            self.on_made(self)
        if self.direct_tls:
            self._start_tls()
        elif not self.accepting:
            self.stream.connected()
        self.flush()

    def dataReceived(self, data: bytes) -> None:
        tls = self._tls
        if tls is not None:
            try:
                data = tls.receive(data)
                out = tls.pending_output()
            except TlsFailed as e:
                log.info("s2s TLS with %s failed: %s", self._who(), e)
                self._abort_now()
                return
            if out and self.transport is not None:
                self.transport.write(out)
            if tls.handshaken and not self._tls_announced:
                self._tls_announced = True
                self.stream.tls_started(tls.peer_certificate())
                self.flush()
            if not data:
                return
        if self.stream is not None:
            self.stream.receive(data, self.service.now())
            self.flush()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        for timer in (self._timer, self._abort):
            if timer is not None and timer.active():
                timer.cancel()
        if self.stream is not None and self.stream.state != "closed":
            self.stream.state = "closed"
        self.on_lost(self)

    # -- for the service and links ---------------------------------------------------------
    def flush(self) -> None:
        """Write what the stream has to say and hand its events out (re-entrant safe)."""
        if self._flushing:
            self._again = True
            return
        self._flushing = True
        try:
            while True:
                self._again = False
                self._write(self.stream.data_to_send())
                for ev in self.stream.events():
                    self._handle(ev)
                if not self._again and not self.stream._out:
                    break
        finally:
            self._flushing = False
        self._arm_timer()

    def close(self, error: StreamError | None = None) -> None:
        if self.stream is not None:
            self.stream.close(error)
            self.flush()

    # -- internals -------------------------------------------------------------------------
    def _handle(self, ev: object) -> None:
        if isinstance(ev, StartTLS):
            if not self._start_tls():
                self.stream.close(StreamError.internal_server_error("TLS is not available"))
            return
        if isinstance(ev, Closed):
            self.peer_error = ev.peer_error
            if ev.error is not None or ev.peer_error is not None:
                log.info("s2s stream with %s closed: %s", self._who(),
                         ev.error or f"by the peer, <{ev.peer_error}/>")
            self.on_event(self, ev)
            self._close_transport()
            return
        self.on_event(self, ev)

    def _start_tls(self) -> bool:
        if self.tls_context is None or self.transport is None:
            return False
        self._tls = PeerTls(self.tls_context, server_side=self.accepting, sni=self.sni,
                            alpn=self.direct_tls)
        self._tls_announced = False
        if not self.accepting:
            self.transport.write(self._tls.start())
        return True

    def _write(self, data: bytes) -> None:
        if not data or self.transport is None or self._closing:
            return
        if self._tls is not None:
            try:
                data = self._tls.send(data)
            except TlsFailed:
                self._abort_now()
                return
        self.transport.write(data)

    def _close_transport(self) -> None:
        if self.transport is None or self._closing:
            return
        self._closing = True
        if self._tls is not None and self._tls.handshaken:
            self.transport.write(self._tls.close())
        self.transport.loseConnection()
        self._abort = self.service.call_later(_CLOSE_GRACE, self._abort_now)

    def _abort_now(self) -> None:
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _arm_timer(self) -> None:
        deadline = self.stream.next_deadline() if self.stream is not None else None
        if self._timer is not None and self._timer.active():
            if deadline is not None and abs(self._timer.getTime() - deadline) < 0.5:
                return
            self._timer.cancel()
        self._timer = None
        if deadline is not None:
            self._timer = self.service.call_later(deadline - self.service.now(), self._timeout)

    def _timeout(self) -> None:
        self._timer = None
        if self.stream is not None:
            self.stream.on_timeout(self.service.now())
            self.flush()

    def _who(self) -> str:
        s = self.stream
        return f"{getattr(s, 'remote', None) or getattr(s, 'domain', None) or '?'} " \
               f"({getattr(s, 'peer_ip', None) or self.sni or ''})"


class _Factory(protocol.ServerFactory):
    def __init__(self, build: Callable[[], StreamConnection]) -> None:
        self.build = build

    def buildProtocol(self, addr: Any) -> StreamConnection:
        return self.build()


def s2s_factory(service: S2SService, listener: ListenerConfig,
                tls: PeerTlsContext | None) -> protocol.ServerFactory:
    """Accept other servers: STARTTLS ("s2s") or TLS at once ("s2s_tls")."""
    direct = listener.type == "s2s_tls"
    settings = service.inbound_settings(listener.starttls if not direct else "required")

    def make(now: float, secure: bool, peer_ip: str | None) -> BaseStream:
        return IncomingStream(settings, now=now, secure=secure, peer_ip=peer_ip)
    return _Factory(lambda: StreamConnection(
        service, make, service.incoming_event, service.incoming_lost, tls=tls, accepting=True,
        direct_tls=direct, on_made=service.incoming_opened))


def component_factory(service: S2SService) -> protocol.ServerFactory:
    settings = service.component_settings()

    def make(now: float, secure: bool, peer_ip: str | None) -> BaseStream:
        return ComponentStream(settings, now=now)
    return _Factory(lambda: StreamConnection(
        service, make, service.component_event, service.component_lost, tls=None,
        accepting=True, on_made=service.component_opened))


class Connector:
    """Finds and connects to remote servers for `OutgoingLink`s."""

    def __init__(self, reactor: Any, service: S2SService, tls: PeerTlsContext | None,
                 resolver: Any = None) -> None:
        self.reactor = reactor
        self.service = service
        self.tls = tls
        self.routes = service.config.routes
        self.resolver = resolver if resolver is not None else \
            dns_client.createResolver()  # type: ignore[no-untyped-call]

    def targets(self, domain: str) -> defer.Deferred[list[Target]]:
        route = self.routes.get(domain)
        if route is not None:
            return defer.succeed([Target(route[0], route[1])])
        return defer.Deferred.fromCoroutine(self._lookup(domain))

    async def _lookup(self, domain: str) -> list[Target]:
        lookups: list[defer.Deferred[list[SrvRecord] | None]] = [
            defer.Deferred.fromCoroutine(self._srv("_xmpp-server._tcp." + domain, False)),
            defer.Deferred.fromCoroutine(self._srv("_xmpps-server._tcp." + domain, True))]
        plain, direct = await defer.gatherResults(lookups)
        return targets(domain, plain, direct)

    async def _srv(self, name: str, direct_tls: bool) -> list[SrvRecord] | None:
        try:
            answers, _auth, _add = await self.resolver.lookupService(name)
        except (dns_error.DNSNameError, dns_error.DomainError):
            return None
        except Exception as e:      # timeouts, server failures: as if there were no records
            log.info("SRV lookup of %s failed: %s", name, e)
            return None
        out = []
        for rr in answers:
            if rr.type == dns.SRV and str(rr.name).lower() == name.lower():
                p = rr.payload
                out.append(SrvRecord(p.priority, p.weight, p.port, str(p.target), direct_tls))
        return out or None

    def connect(self, target: Target, link: OutgoingLink) -> defer.Deferred[Any]:
        endpoint = endpoints.HostnameEndpoint(self.reactor, target.host, target.port,
                                              timeout=_CONNECT_TIMEOUT)
        return endpoint.connect(protocol.Factory.forProtocol(
            lambda: outgoing_protocol(self.service, self.tls, target, link)))


def outgoing_protocol(service: S2SService, tls: PeerTlsContext | None, target: Target,
                      link: OutgoingLink) -> StreamConnection:
    """The protocol of a connection we open for `link` to `target`."""
    return StreamConnection(service, lambda now, secure, ip: link.new_stream(now),
                            link.on_event, link.lost, tls=tls, accepting=False,
                            direct_tls=target.direct_tls, sni=link.remote, on_made=link.attach)
