# tests: tests/integration/test_core_slixmpp.py, tests/integration/test_bad_input.py
"""The TCP listeners for clients: STARTTLS on a plain port (RFC 6120 §3, type "c2s"), or TLS
from the first byte (XEP-0368, type "c2s_tls": no STARTTLS offered, ALPN "xmpp-client").

- One `C2SConnection` (a Twisted protocol) per TCP connection, carrying one `ClientSession`
  (xmppd/listeners/session.py), which does everything but moving bytes.
- TCP keepalive is on (dead links are also found by XEP-0199 pings, modules/ping.py), and
  Nagle's algorithm off (TCP_NODELAY, as ejabberd's listeners): an answer written in two parts
  (the features, then a SASL2 <success/> after a look-up) would otherwise wait for the
  client's delayed ACK, 40 ms on Linux (docs/PERFORMANCE.md, reconnects).
- Every connection holds a slot of the process's connection limits, or is closed as soon as it
  is accepted; what it sends is shaped (xmppd/limits.py).
- Flow control: the connection is a streaming producer on its TCP transport, so a full write
  buffer pauses the session's output (which then waits, bounded, in the session) until the
  client reads again.
"""
from __future__ import annotations

import logging
import ssl as stdlib_ssl
from typing import TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import protocol, ssl
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from xmppd import c2s, hooks
from xmppd.config import ListenerConfig
from xmppd.limits import ConnectionGuard, limits_of
from xmppd.listeners.session import ClientSession
from xmppd.listeners.tlslayer import TlsFailed, TlsLayer
from xmppd.logs import session_fields

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)
_CLOSE_GRACE = 10.0          # seconds a closing stream may take to flush before it is cut


class C2SConnection(protocol.Protocol):
    """Bytes in and out for one TCP client; the session is `self.session`.

    STARTTLS with a stdlib `ssl.SSLContext` runs our own memory-BIO TLS layer (half the memory
    per connection of Twisted's pyOpenSSL one: xmppd/listeners/tlslayer.py); a Twisted
    `CertificateOptions` context uses Twisted's `startTLS`."""

    def __init__(self, factory: C2SFactory, guard: ConnectionGuard) -> None:
        self.factory = factory
        self.kind = "c2s_tls" if factory.direct_tls else "c2s"    # for metrics
        self.session: ClientSession | None = None
        self._tls: TlsLayer | None = None
        self._abort: IDelayedCall | None = None
        self.guard: ConnectionGuard | None = guard

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        try:
            self.transport.setTcpKeepAlive(True)  # type: ignore[union-attr]
            self.transport.setTcpNoDelay(True)  # type: ignore[union-attr]
        except (AttributeError, OSError):
            pass
        if self.factory.direct_tls:
            # XEP-0368: TLS from the first byte; the stream is secure and offers no STARTTLS.
            assert isinstance(self.factory.tls_context, stdlib_ssl.SSLContext)
            self._tls = TlsLayer(self.factory.tls_context)
        self.session = ClientSession(self.factory.server, self.factory.settings, self,
                                     peer_ip=getattr(peer, "host", None),
                                     secure=self.factory.direct_tls)
        if self.guard is not None:
            self.guard.stream(self.factory.server, lambda: self.transport)  # type: ignore[arg-type,return-value]
            self.session.on_stanza = self.guard.stanza
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]

    # IPushProducer: Twisted calls these as the transport's write buffer fills and drains.
    def pauseProducing(self) -> None:
        if self.session is not None:
            self.session.pause_writing()

    def resumeProducing(self) -> None:
        if self.session is not None:
            self.session.resume_writing()

    def stopProducing(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        if self._abort is not None:
            return          # we closed: what still comes is read and dropped (see close)
        if self.guard is not None:
            self.guard.data(len(data))      # what was read is processed; later reads may wait
        tls = self._tls
        if tls is not None:
            try:
                data = tls.receive(data)
                out = tls.pending_output()
            except TlsFailed as e:
                log.info("TLS failed: %s", e, extra=session_fields(self.session, "tls_failed"))
                self.transport.abortConnection()  # type: ignore[union-attr]
                return
            if out and self.transport is not None:
                self.transport.write(out)
            if tls.peer_closed:         # close_notify: what came before it, then our close
                if data and self.session is not None:
                    self.session.data_received(data)
                if self.transport is not None:
                    self.transport.write(tls.close())
                    self.transport.loseConnection()
                return
            if not data:
                return
        if self.session is not None:
            self.session.data_received(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
        if self.guard is not None:
            self.guard.close()
        if self.session is not None:
            self.session.connection_lost()

    # -- Transport for the session ---------------------------------------------------------
    def send(self, units: list[bytes]) -> None:
        if self.transport is None:
            return
        if self._tls is not None:
            try:
                self.transport.write(self._tls.send(b"".join(units)))
            except TlsFailed:
                self.transport.abortConnection()  # type: ignore[attr-defined]
            return
        self.transport.writeSequence(units)

    def start_tls(self) -> bool:
        ctx = self.factory.tls_context
        if ctx is None or self.transport is None:
            return False
        if isinstance(ctx, stdlib_ssl.SSLContext):
            self._tls = TlsLayer(ctx)
        else:
            self.transport.startTLS(ctx)  # type: ignore[attr-defined]
        return True

    def close(self) -> None:
        if self.transport is None:
            return
        # A registered producer keeps Twisted from finishing loseConnection once the buffer
        # drains (it asks the producer for more instead).
        if getattr(self.transport, "producer", None) is not None:
            self.transport.unregisterProducer()  # type: ignore[attr-defined]
        if self._tls is not None and self._tls.handshaken:
            self.transport.write(self._tls.close())
        # RFC 6120 §4.4: after our closing tag, wait for the client's. Only the write side
        # closes (once the buffer is flushed); the client's FIN ends the connection. Closing
        # both at once would reset a connection the client is still writing to (a busy
        # sender at shutdown), and a reset drops the stream error we wrote from its buffer.
        half = getattr(self.transport, "loseWriteConnection", None)
        if half is not None:
            half()
        else:
            self.transport.loseConnection()
        # Either waits for the write buffer to drain; a dead peer whose window is full
        # would hold the session (and its presence) for TCP's whole retry time.
        if self._abort is None:
            self._abort = self.factory.server.clock.call_later(_CLOSE_GRACE, self._force_close)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def compact(self) -> None:
        """The stream went quiet: free the TLS layer's idle buffers."""
        if self._tls is not None:
            self._tls.compact()

    def channel_bindings(self) -> dict[str, bytes]:
        """RFC 5929 / RFC 9266 data of our own TLS layer (none on Twisted's pyOpenSSL one)."""
        return self._tls.channel_bindings() if self._tls is not None else {}

    def _force_close(self) -> None:
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]


class C2SFactory(protocol.ServerFactory):
    def __init__(self, server: Server, listener: ListenerConfig,
                 tls_context: stdlib_ssl.SSLContext | ssl.CertificateOptions | None) -> None:
        self.server = server
        self.listener = listener
        self.tls_context = tls_context
        self.direct_tls = listener.type == "c2s_tls"     # tls_context must have ALPN set
        self.settings = c2s_settings(server, tls=listener.starttls,
                                     tls_available=tls_context is not None)

    def buildProtocol(self, addr: Any) -> C2SConnection | None:
        if self.server.stopping:
            return None         # shutting down (a cluster node draining): connect elsewhere
        slot = limits_of(self.server).open(getattr(addr, "host", None))
        if slot is None:
            return None             # Twisted closes the socket at once
        return C2SConnection(self, ConnectionGuard(slot))


def c2s_settings(server: Server, *, tls: str, tls_available: bool,
                 framing: str = "tcp") -> c2s.C2SSettings:
    """Stream settings from the config, shared by every client transport."""
    cfg = server.config
    hosts = server.hosts
    return c2s.C2SSettings(
        hosts=frozenset(hosts),
        tls=tls,  # type: ignore[arg-type]
        tls_available=tls_available,
        mechanisms=cfg.auth.mechanisms,
        max_stanza_size=cfg.limits.max_stanza_size,
        max_depth=cfg.limits.max_depth,
        preauth_stanza_size=cfg.limits.preauth_stanza_size,
        preauth_elements=cfg.limits.preauth_elements,
        auth_timeout=cfg.limits.auth_timeout,
        scram_iterations=cfg.auth.scram_iterations,
        preauth_features=lambda stream: hosts[stream.host or ""].stream_features_for(
            "preauth", stream),
        session_features=lambda stream: hosts[stream.host or ""].stream_features_for(
            "session", stream),
        preauth_iq_allowed=lambda stream, tag: hosts[stream.host or ""].preauth_allowed(
            stream.peer_ip, tag),
        framing=framing,  # type: ignore[arg-type]
        # XEP-0206 restarts the stream after SASL; SASL2 has no restart: not over BOSH
        sasl2=cfg.auth.sasl2 and framing != "bosh",
        fast=cfg.auth.fast,
        sasl2_inline=lambda stream: _inline(hosts, stream, hooks.sasl2_inline),
        bind2_inline=lambda stream: [
            etree.Element("{urn:xmpp:bind:0}feature", {"var": var},
                          nsmap={None: "urn:xmpp:bind:0"})  # type: ignore[dict-item]
            for var in _inline(hosts, stream, hooks.bind2_inline)],
    )


def _inline(hosts: dict[str, Any], stream: c2s.C2SStream, hook: Any) -> list[Any]:
    """What the host's modules offer inline in SASL2 or Bind 2 (synchronous folds)."""
    host = hosts[stream.host or ""]
    found = host.hooks.fold(hook, hooks.InlineQuery(stream, host.name), [])
    return found if isinstance(found, list) else []
