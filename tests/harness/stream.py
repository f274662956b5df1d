# tests: xmppd/listeners/session.py, modules/stream_mgmt.py, modules/csi.py
"""A client on a real `ClientSession` (xmppd/listeners/session.py) over a fake transport, in the
in-memory harness: for what happens per connection — nonzas (XEP-0198, XEP-0352), a dropped
socket, resumption on a new connection. Sends bytes as a client would, reads the output units
back as elements, and compares them like `FakeSession.expect` ({any} wildcards).

    c = StreamClient(h, "alice@example.org/phone")          # logged in, bound, available
    c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
    c.expect("<enabled xmlns='urn:xmpp:sm:3' id='{any}' resume='true' max='300'/>")
    c.drop()                                                 # the socket is gone
"""
from __future__ import annotations

import base64
from typing import Any

from lxml import etree

from tests.harness.server import Harness, matches, parse
from xmppd.listeners.c2s import c2s_settings
from xmppd.listeners.session import ClientSession

HEADER = ("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
          " to='{host}' version='1.0'>")
_WRAP = (b"<w xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>%s</w>")


class FakeTransport:
    def __init__(self) -> None:
        self.units: list[bytes] = []
        self.closed = False

    def send(self, units: list[bytes]) -> None:
        self.units.extend(units)

    def start_tls(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


class StreamClient:
    """One connection. `bind=False` stops after authentication (to send <resume/>)."""

    def __init__(self, h: Harness, jid: str, *, bind: bool = True, available: bool = True,
                 password: str = "pw") -> None:
        self.h = h
        local, rest = jid.split("@", 1)
        host, _, resource = rest.partition("/")
        self.jid = jid
        h.user(f"{local}@{host}", password=password)
        self.transport = FakeTransport()
        self.session = ClientSession(h.server, c2s_settings(h.server, tls="required",
                                                            tls_available=True),
                                     self.transport, peer_ip="127.0.0.1", secure=True)
        self.outbox: list[etree._Element] = []
        self.gone = False
        h.streams.append(self)
        header = HEADER.format(host=host).encode()
        self.session.data_received(header)
        token = base64.b64encode(f"\0{local}\0{password}".encode()).decode()
        self.session.data_received(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                                   f"mechanism='PLAIN'>{token}</auth>".encode())
        self.session.data_received(header)
        # headers, <success/> and the features after authentication
        self.features = [e for e in self.received() if e.tag.endswith("}features")][-1]
        if bind:
            self.session.data_received(
                f"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                f"<resource>{resource}</resource></bind></iq>".encode())
            self.expect("<iq type='result' id='bind'><bind xmlns="
                        "'urn:ietf:params:xml:ns:xmpp-bind'><jid>{any}</jid></bind></iq>")
            if available:
                self.send("<presence/>")
                self.received()

    # -- client side -----------------------------------------------------------------------
    def send(self, xml: str) -> None:
        """Raw stream input (stanzas without xmlns are jabber:client, as on a real stream)."""
        self.session.data_received(xml.encode())

    def drop(self) -> None:
        """The connection is lost without a goodbye (no </stream:stream>)."""
        self.lost()

    def lost(self) -> None:
        if not self.gone:
            self.gone = True
            self.session.connection_lost()

    @property
    def closed(self) -> bool:
        return self.transport.closed

    # -- what the server wrote ---------------------------------------------------------------
    def received(self) -> list[etree._Element]:
        for unit in self.transport.units:
            if unit.startswith(b"<?xml") or unit.startswith(b"<stream:stream") \
                    or unit == b"</stream:stream>":
                continue
            self.outbox.extend(etree.fromstring(_WRAP % unit))
        self.transport.units.clear()
        out, self.outbox = self.outbox, []
        return out

    def expect(self, xml: str) -> etree._Element:
        if not self.outbox:
            self.outbox = self.received()
        assert self.outbox, f"{self.jid} received nothing; expected {xml}"
        got = self.outbox.pop(0)
        why = matches(parse(xml), got)
        assert why is None, f"{self.jid}: {why}\n  got: {etree.tostring(got).decode()}"
        return got

    def expect_nothing(self) -> None:
        got = self.outbox + self.received()
        self.outbox = []
        assert not got, f"{self.jid} got {[etree.tostring(e) for e in got]}"

    def stanzas(self) -> list[etree._Element]:
        """Everything received so far that is a stanza (not an SM or stream element)."""
        return [e for e in self.received()
                if e.tag in ("{jabber:client}message", "{jabber:client}presence",
                             "{jabber:client}iq")]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)
