# tests: xmppd/listeners/session.py, xmppd/listeners/c2s.py
"""The transport-agnostic ClientSession on the in-memory server, with a fake transport."""
from __future__ import annotations

import base64

from tests.harness.server import Harness
from xmppd.listeners.c2s import c2s_settings
from xmppd.listeners.session import ClientSession

HEADER = (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
          b" to='example.org' version='1.0'>")


class FakeTransport:
    def __init__(self, tls: bool = True) -> None:
        self.units: list[bytes] = []
        self.tls = tls
        self.tls_started = 0
        self.closed = False

    def send(self, units: list[bytes]) -> None:
        self.units.extend(units)

    def start_tls(self) -> bool:
        self.tls_started += 1
        return self.tls

    def close(self) -> None:
        self.closed = True

    def text(self) -> bytes:
        out, self.units = b"".join(self.units), []
        return out


def logged_in(h: Harness, user: str = "alice", resource: str = "r") -> tuple[ClientSession,
                                                                          FakeTransport]:
    h.user(f"{user}@example.org", password="secret")
    t = FakeTransport()
    s = ClientSession(h.server, c2s_settings(h.server, tls="required", tls_available=True), t,
                      peer_ip="127.0.0.1", secure=True)
    s.data_received(HEADER)
    assert b"<mechanisms" in t.text()
    token = base64.b64encode(f"\0{user}\0secret".encode()).decode()
    s.data_received(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                    f"{token}</auth>".encode())
    assert b"<success" in t.text()
    s.data_received(HEADER)
    assert b"<bind" in t.text()
    s.data_received(f"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                    f"<resource>{resource}</resource></bind></iq>".encode())
    assert f"<jid>{user}@example.org/{resource}</jid>".encode() in t.text()
    return s, t


def test_login_binds_and_registers_the_session(harness: Harness) -> None:
    s, _ = logged_in(harness)
    assert s.bound and str(s.jid) == "alice@example.org/r"
    assert harness.server.sessions.get(s.jid) is s


def test_output_units_are_one_element_each(harness: Harness) -> None:
    s, t = logged_in(harness)
    s.data_received(b"<presence/><iq type='get' id='p1' to='example.org'>"
                    b"<ping xmlns='urn:xmpp:ping'/></iq><iq type='get' id='p2' to='example.org'>"
                    b"<ping xmlns='urn:xmpp:ping'/></iq>")
    pongs = [u for u in t.units if u.startswith(b"<iq")]
    assert len(pongs) == 2 and all(u.count(b"<iq") == 1 for u in pongs)


def test_messages_between_sessions(harness: Harness) -> None:
    a, ta = logged_in(harness, "alice", "a")
    b, tb = logged_in(harness, "bob", "b")
    b.data_received(b"<presence/>")
    tb.text()
    a.data_received(b"<message to='bob@example.org' type='chat' id='m'><body>hi</body></message>")
    got = tb.text()
    assert b"from=\"alice@example.org/a\"" in got and b"<body>hi</body>" in got


def test_starttls_is_delegated_to_the_transport(harness: Harness) -> None:
    t = FakeTransport()
    s = ClientSession(harness.server, c2s_settings(harness.server, tls="required",
                                                   tls_available=True), t, peer_ip=None)
    s.data_received(HEADER)
    assert b"<starttls" in t.text()
    s.data_received(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert t.tls_started == 1 and b"<proceed" in t.text()
    assert s.stream is not None and s.stream.secure
    s.connection_lost()


def test_close_and_connection_lost_unbind_and_fire_session_closed(harness: Harness) -> None:
    s, t = logged_in(harness)
    s.close()
    assert t.closed and t.text().endswith(b"</stream:stream>")
    s.connection_lost()
    assert harness.server.sessions.get(s.jid) is None
    assert s not in harness.server.connections


def test_auth_timeout_closes_an_idle_unauthenticated_stream(harness: Harness) -> None:
    t = FakeTransport()
    s = ClientSession(harness.server, c2s_settings(harness.server, tls="required",
                                                   tls_available=True), t, peer_ip=None)
    s.data_received(HEADER)
    harness.clock.advance(harness.config.limits.auth_timeout)
    assert t.closed and b"connection-timeout" in t.text()
    s.connection_lost()
