# tests: xmppd/listeners/session.py, modules/stream_mgmt/, modules/csi.py
"""A client on a real `ClientSession` (xmppd/listeners/session.py) over a memory transport, in
the in-memory harness: the same session code a TCP, WebSocket or BOSH connection runs. It logs
in as a client would (stream header, SASL PLAIN, restart, bind, initial presence), sends bytes,
and reads the output units back as elements, compared semantically ({any} wildcards).

    alice = h.login("alice@example.org/phone")             # logged in, bound, available
    alice.send("<message to='bob@example.org'><body>hi</body></message>")
    bob.expect("<message from='alice@example.org/phone' to='bob@example.org'>...</message>")

    c = StreamClient(h, "alice@example.org/phone")          # for per-connection tests:
    c = StreamClient(h, "alice@example.org", login=False)   # the test logs in (SASL2)
    c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")  # nonzas (XEP-0198, XEP-0352),
    c.drop()                                                 # a dropped socket, resumption

`h.login` clients behave like a connection whose socket closes when the server closes the
stream (`closed`, `closed_with`); `StreamClient`s keep the socket until `drop()`.
"""
from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from lxml import etree

from tests.harness.match import matches, parse
from xmppd.listeners.c2s import c2s_settings
from xmppd.listeners.session import ClientSession
from xmppd.module import iq_error_from_reply

if TYPE_CHECKING:
    from tests.harness.server import Harness

HEADER = ("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
          " to='{host}' version='1.0'>")
_WRAP = b"<w xmlns='jabber:client'>%s</w>"
_WRAP_STREAM = (b"<w xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
                b"%s</w>")
_STREAM_ERROR = "{http://etherx.jabber.org/streams}error"


class MemoryTransport:
    """What the session writes, kept as units; `close` may end the connection at once."""

    def __init__(self) -> None:
        self.units: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.session: ClientSession | None = None
        self.lose_on_close = False

    def send(self, units: list[bytes]) -> None:
        self.units.extend(units)

    def start_tls(self) -> bool:
        return True

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.lose_on_close and self.session is not None:
            session, self.session = self.session, None
            session.connection_lost()


class StreamClient(ClientSession):
    """One connection: a real `ClientSession` with the client's side added (it adds methods
    only: the session logic is the server's). `bind=False` stops after authentication (to
    send <resume/>)."""

    def __init__(self, h: Harness, jid: str, *, bind: bool = True, available: bool = True,
                 password: str = "pw", lose_on_close: bool = False,
                 login: bool = True) -> None:
        self.h = h
        local, rest = jid.split("@", 1)
        host, _, resource = rest.partition("/")
        self.label = jid
        h.user(f"{local}@{host}", password=password)
        self.wire = MemoryTransport()
        super().__init__(h.server, c2s_settings(h.server, tls="required", tls_available=True),
                         self.wire, peer_ip="127.0.0.1", secure=True)
        self.wire.session = self
        self._outbox: list[etree._Element] = []
        self.gone = False
        self._closed_with: str | None = None
        h.streams.append(self)
        self.features = etree.Element("none")
        if not login:       # the test speaks for the client from the stream header on
            self.wire.lose_on_close = lose_on_close
            return
        header = HEADER.format(host=host).encode()
        self.data_received(header)
        token = base64.b64encode(f"\0{local}\0{password}".encode()).decode()
        self.data_received(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                           f"mechanism='PLAIN'>{token}</auth>".encode())
        self.data_received(header)
        # headers, <success/> and the features after authentication
        self.features = [e for e in self.received() if e.tag.endswith("}features")][-1]
        if bind:
            self.data_received(
                f"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                f"<resource>{resource}</resource></bind></iq>".encode())
            [answer] = self.received()
            if answer.get("type") == "error":       # the bind was refused (RFC 6120 §7.6.2)
                raise iq_error_from_reply(answer)
            assert matches(parse("<iq type='result' id='bind'><bind xmlns="
                                 "'urn:ietf:params:xml:ns:xmpp-bind'><jid>{any}</jid></bind>"
                                 "</iq>"), answer) is None
            if available:
                self.send("<presence/>")
                self.received()
        self.wire.lose_on_close = lose_on_close

    @property
    def session(self) -> StreamClient:
        """The server side of this connection (the same object)."""
        return self

    # -- client side -----------------------------------------------------------------------
    def send(self, xml: str) -> None:
        """Raw stream input (stanzas without xmlns are jabber:client, as on a real stream)."""
        self.data_received(xml.encode())

    def whitespace(self) -> None:
        """A whitespace keepalive (RFC 6120 §4.6.1): traffic, but no stanza."""
        self.data_received(b" ")

    def drop(self) -> None:
        """The connection is lost without a goodbye (no </stream:stream>)."""
        self.lost()

    def lost(self) -> None:
        if not self.gone:
            self.gone = True
            if self.wire.session is not None:
                self.wire.session = None
                self.connection_lost()

    @property
    def closed(self) -> bool:
        return self.wire.closed

    # -- what the server wrote ---------------------------------------------------------------
    @property
    def outbox(self) -> list[etree._Element]:
        """What the client received and the test has not taken yet (a live list)."""
        self._read()
        return self._outbox

    @property
    def closed_with(self) -> str | None:
        """The condition of the stream error the server closed the stream with, if any."""
        self._read()
        return self._closed_with

    def received(self) -> list[etree._Element]:
        self._read()
        out, self._outbox = self._outbox, []
        return out

    def _read(self) -> None:
        for unit in self.wire.units:
            if unit.startswith(b"<?xml") or unit.startswith(b"<stream:stream") \
                    or unit == b"</stream:stream>":
                continue
            wrap = _WRAP_STREAM if unit.startswith(b"<stream:") else _WRAP
            for el in etree.fromstring(wrap % unit):
                if el.tag == _STREAM_ERROR:
                    cond = next((etree.QName(c).localname for c in el
                                 if etree.QName(c).localname != "text"), None)
                    self._closed_with = cond
                    if self.wire.lose_on_close:
                        continue    # h.login clients: the error is `closed_with`, not a stanza
                self._outbox.append(el)
        self.wire.units.clear()

    def expect(self, xml: str) -> etree._Element:
        self._read()
        assert self._outbox, f"{self.label} received nothing; expected {xml}"
        got = self._outbox.pop(0)
        why = matches(parse(xml), got)
        assert why is None, f"{self.label}: {why}\n  got: {etree.tostring(got).decode()}"
        return got

    def expect_nothing(self) -> None:
        got = self.received()
        assert not got, f"{self.label} got {[etree.tostring(e) for e in got]}"

    def stanzas(self) -> list[etree._Element]:
        """Everything received so far that is a stanza (not an SM or stream element)."""
        return [e for e in self.received()
                if e.tag in ("{jabber:client}message", "{jabber:client}presence",
                             "{jabber:client}iq")]
