# tests: tests/core/test_s2s_service.py, tests/integration/test_federation_xmppd.py
"""Federation and components for one server: the object `server.s2s` holds.

- `route_remote` is the router's `remote` seam: every stanza for a domain that is neither a
  virtual host nor a service domain. It goes out over the ready stream for its (sender domain,
  recipient domain) pair, or over a XEP-0288 bidirectional stream the remote server opened to
  us for that pair, or waits in a new `OutgoingLink` (xmppd/s2s/links.py). Refused at once:
  domains `s2s.allow`/`s2s.deny` exclude and every remote domain when federation is off
  (`<remote-server-not-found/>`), a configured component that is not connected
  (`<service-unavailable/>`).
- Stanzas from authenticated remote streams (and components) go to `router.route`: the
  recipient host's `user_inbound` hooks, offline storage, delivery. No client-side hooks.
- Dialback keys another server gives us are checked with the sender domain's authoritative
  server over our link to it (XEP-0220 §2.1.2); the answer goes back on the stream that asked.
- A connected component's domain is a service domain (`router.services`) while it is up:
  it gets every stanza addressed to its domain. `component_domains()` lists the connected ones
  (for disco items of the hosts). On a cluster node, `component_observer`
  (xmppd/cluster/components.py) makes the domain routable from every node.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Literal

from lxml import etree
from twisted.internet.interfaces import IDelayedCall

from stanzas import ns
from stanzas.errors import StanzaError, StreamError, error_reply
from stanzas.jid import JID
from xmppd.hooks import summary
from xmppd.s2s.component import ComponentSettings, HandshakeDone
from xmppd.s2s.dialback import DialbackKeys
from xmppd.s2s.incoming import Authenticated, DialbackVerify, InboundSettings
from xmppd.s2s.links import Conn, Connector, OutgoingLink
from xmppd.s2s.options import federation_allowed
from xmppd.s2s.outgoing import OutboundSettings
from xmppd.s2s.stream import Limits, Stanza

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)
_E = etree._Element


class S2SService:
    def __init__(self, server: Server, *, federation: bool = True,
                 keys: DialbackKeys | None = None, tls_available: bool = True) -> None:
        self.server = server
        # set by the shell (xmppd/listeners/federation.py); tests put a fake here
        self.connector: Connector = _NoConnector()
        self.federation = federation
        self.config = server.config.s2s
        self.keys = keys or DialbackKeys(self.config.dialback_secret.encode() or None)
        self.tls_available = tls_available
        self.connect_timeout = self.config.connect_timeout
        self.max_queue = self.config.max_queue
        self.secrets = {c.domain: c.secret for c in server.config.components}
        lim = server.config.limits
        self.limits = Limits(max_stanza_size=lim.max_stanza_size, max_depth=lim.max_depth,
                             preauth_stanza_size=lim.preauth_stanza_size,
                             preauth_elements=lim.preauth_elements,
                             auth_timeout=lim.auth_timeout,
                             idle_timeout=self.config.idle_timeout)
        self.settings = OutboundSettings(
            limits=self.limits, keys=self.keys, is_local=self.is_local,
            require_valid_certificates=self.config.require_valid_certificates)
        self.tls: Any = None            # the shell's TLS contexts (PeerTlsContext)
        self.links: dict[tuple[str, str], OutgoingLink] = {}
        self.incoming: set[Conn] = set()
        self.components: dict[str, Conn] = {}
        self._component_conns: set[Conn] = set()
        # A cluster node's component registry (xmppd/cluster/components.py): told when
        # components come and go; may take their stanzas (replies awaited on another node).
        self.component_observer: Any = None

    # -- policy ----------------------------------------------------------------------------
    def is_local(self, domain: str) -> bool:
        return (domain in self.server.hosts or domain in self.server.router.services
                or domain in self.secrets)

    def allowed(self, domain: str) -> bool:
        return federation_allowed(self.config, domain)

    def inbound_settings(self, starttls: Literal["required", "optional", "off"] = "required"
                         ) -> InboundSettings:
        return InboundSettings(limits=self.limits, is_local=self.is_local, allowed=self.allowed,
                               keys=self.keys, tls=starttls, tls_available=self.tls_available,
                               require_valid_certificates=self.config.require_valid_certificates,
                               hosts_hint=tuple(self.server.hosts))

    def component_settings(self) -> ComponentSettings:
        return ComponentSettings(limits=self.limits, secret_for=self.secrets.get,
                                 connected=lambda d: d in self.components)

    # -- the router's seam -----------------------------------------------------------------
    def route_remote(self, el: _E, sender: JID, to: JID) -> None:
        """Take a stanza for a remote domain; raises StanzaError to bounce it at once."""
        if to.domain in self.secrets:
            raise StanzaError.service_unavailable(f"the component {to.domain} is not connected")
        if not self.federation:
            raise StanzaError.remote_server_not_found(
                f"this server does not federate with {to.domain}")
        if not self.allowed(to.domain):
            raise StanzaError.remote_server_not_found(
                f"federation with {to.domain} is not allowed here")
        if not self.is_local(sender.domain):
            log.warning("not relaying a stanza from %s to %s: %s", sender.domain, to.domain,
                        summary(el))
            return
        self.send(sender.domain, to.domain, el)

    def send(self, local: str, remote: str, el: _E) -> None:
        link = self.links.get((local, remote))
        if link is not None and link.send(el):
            return
        conn = self._bidi_stream(local, remote)
        if conn is not None:
            conn.stream.send_stanza(el, self.now())
            conn.flush()
            return
        link = self._new_link(local, remote)
        link.send(el)           # queued before the link starts: it may fail at once
        link.start()

    def _new_link(self, local: str, remote: str) -> OutgoingLink:
        link = OutgoingLink(self, local, remote)
        self.links[(local, remote)] = link
        return link

    def _bidi_stream(self, local: str, remote: str) -> Conn | None:
        """An incoming XEP-0288 stream on which `remote` authenticated to `local`."""
        for conn in self.incoming:
            stream = conn.stream
            if stream.bidi and stream.state != "closed" and (remote, local) in stream.pairs:
                return conn
        return None

    # -- for links (LinkOwner) -------------------------------------------------------------
    def now(self) -> float:
        return self.server.clock.now()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> IDelayedCall:
        return self.server.clock.call_later(delay, fn, *args)

    def inbound(self, el: _E) -> None:
        if log.isEnabledFor(logging.DEBUG):     # summary() costs 5 µs a stanza
            log.debug("s2s in: %s", summary(el))
        self.server.router.route(el)

    def bounce(self, el: _E, error: StanzaError) -> None:
        """Answer a stanza we could not deliver (never an error or an IQ result, §8.3.1)."""
        if el.get("type") == "error" or (el.tag == "{%s}iq" % ns.CLIENT
                                         and el.get("type") == "result"):
            return
        self.server.router.route(error_reply(el, error))

    def link_over(self, link: OutgoingLink) -> None:
        pair = (link.local, link.remote)
        if self.links.get(pair) is link:
            del self.links[pair]
        if link.queue:                  # stanzas that came in as the stream was closing
            queued, link.queue = link.queue, []
            for el in queued:
                self.send(link.local, link.remote, el)

    # -- incoming streams ------------------------------------------------------------------
    def incoming_opened(self, conn: Conn) -> None:
        self.incoming.add(conn)

    def incoming_event(self, conn: Conn, ev: object) -> None:
        if isinstance(ev, Stanza):
            self.inbound(ev.stanza)
        elif isinstance(ev, DialbackVerify):
            self._verify(conn, ev)
        elif isinstance(ev, Authenticated):
            log.info("s2s %s -> %s: incoming stream authenticated (%s) from %s", ev.remote,
                     ev.local, ev.how, getattr(conn.stream, "peer_ip", None))

    def incoming_lost(self, conn: Conn) -> None:
        self.incoming.discard(conn)

    def _verify(self, conn: Conn, ev: DialbackVerify) -> None:
        def done(outcome: str) -> None:
            if outcome != "valid":
                log.warning("s2s %s -> %s: dialback %s", ev.remote, ev.local, outcome)
            conn.stream.dialback_result(ev.remote, ev.local, outcome)
            conn.flush()
        link = self.links.get((ev.local, ev.remote))
        if link is not None and link.state != "over":
            link.verify(ev.stream_id, ev.key, done)
            return
        link = self._new_link(ev.local, ev.remote)
        link.verify(ev.stream_id, ev.key, done)
        link.start()

    # -- components ------------------------------------------------------------------------
    def component_opened(self, conn: Conn) -> None:
        self._component_conns.add(conn)

    def component_event(self, conn: Conn, ev: object) -> None:
        if isinstance(ev, HandshakeDone):
            self.components[ev.domain] = conn

            def deliver(el: _E, sender: JID, to: JID) -> None:
                conn.stream.send_stanza(el, self.now())
                conn.flush()
            self.server.router.services[ev.domain] = deliver
            for host in self.server.hosts.values():     # XEP-0114: hosts list components
                host.items.append((ev.domain, ""))
            log.info("component %s connected", ev.domain)
            if self.component_observer is not None:
                self.component_observer.connected(ev.domain)
        elif isinstance(ev, Stanza):
            if self.component_observer is None or not self.component_observer.inbound(
                    ev.stanza):
                self.inbound(ev.stanza)

    def component_lost(self, conn: Conn) -> None:
        self._component_conns.discard(conn)
        for domain, c in list(self.components.items()):
            if c is conn:
                del self.components[domain]
                self.server.router.services.pop(domain, None)
                for host in self.server.hosts.values():
                    if (domain, "") in host.items:
                        host.items.remove((domain, ""))
                log.info("component %s disconnected", domain)
                if self.component_observer is not None:
                    self.component_observer.lost(domain)

    def component_domains(self) -> list[str]:
        """The domains of the components connected now (for the hosts' disco items)."""
        return sorted(self.components)

    def streams(self) -> list[Any]:
        """Every open server-to-server and component stream, incoming and outgoing (main.py's
        housekeeping frees the parser state of idle ones, as for client streams)."""
        conns: list[Conn] = [*self.incoming, *self._component_conns]
        conns += [link.conn for link in self.links.values() if link.conn is not None]
        return [c.stream for c in conns
                if getattr(c, "stream", None) is not None and c.stream.state != "closed"]

    # -- shutdown --------------------------------------------------------------------------
    def stop(self) -> None:
        for conn in [*self.incoming, *self._component_conns]:
            conn.close(StreamError.system_shutdown())
        for link in list(self.links.values()):
            link.close(StreamError.system_shutdown())


class _NoConnector:
    """Federation off: nothing is ever connected (route_remote refuses first)."""

    def targets(self, domain: str) -> Any:
        from twisted.internet import defer
        return defer.succeed([])

    def connect(self, target: Any, link: OutgoingLink) -> Any:
        from twisted.internet import defer
        return defer.fail(ConnectionRefusedError("federation is off"))
