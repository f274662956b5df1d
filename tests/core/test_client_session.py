# tests: xmppd/listeners/session.py, xmppd/listeners/c2s.py
"""The transport-agnostic ClientSession on the in-memory server, with a fake transport."""
from __future__ import annotations

import base64
from typing import Any

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


# -- flow control and the delivery promise (DESIGN.md; issue 13 points 1 and 3) -------------

class SlowTransport(FakeTransport):
    """A transport whose client stopped reading: `abort` records the cut."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


def offline_harness(make_harness: Any, **limits: Any) -> Harness:
    return make_harness(modules={"roster": {}, "presence": {}, "offline": {}},
                        limits=limits or {})


def chat(n: int, size: int = 10) -> bytes:
    return (f"<message to='bob@example.org' type='chat' id='m{n}'><body>{'x' * size}</body>"
            "</message>").encode()


def test_output_waits_while_the_transport_is_full_and_keeps_its_order(
        make_harness: Any) -> None:
    h = offline_harness(make_harness)
    a, _ = logged_in(h, "alice", "a")
    b, tb = logged_in(h, "bob", "b")
    b.data_received(b"<presence/>")
    tb.text()
    b.pause_writing()
    for n in range(3):
        a.data_received(chat(n))
    assert tb.units == []
    b.resume_writing()
    assert [u.count(b"id=\"m%d\"" % n) for n, u in enumerate(tb.units)] == [1, 1, 1]


def test_a_client_that_reads_nothing_is_cut_and_its_messages_go_offline(
        make_harness: Any) -> None:
    h = offline_harness(make_harness, max_output_buffer="64 KiB")
    a, ta = logged_in(h, "alice", "a")
    h.user("bob@example.org", password="secret")
    t = SlowTransport()
    b = ClientSession(h.server, c2s_settings(h.server, tls="required", tls_available=True), t,
                      peer_ip="127.0.0.1", secure=True)
    b.data_received(HEADER)
    token = base64.b64encode(b"\0bob\0secret").decode()
    b.data_received(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                    f"{token}</auth>".encode())
    b.data_received(HEADER)
    b.data_received(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                    b"<resource>b</resource></bind></iq><presence/>")
    b.pause_writing()                     # bob's socket is full from here on
    for n in range(8):
        a.data_received(chat(n, size=10_000))
    assert t.aborted and not b.bound      # over 64 KiB waiting: a dead link, cut at once
    assert h.server.sessions.get(b.jid) is None
    a.data_received(chat(99))             # bob has no session now: offline storage
    b.connection_lost()                   # the transport reports the cut later
    again, t2 = logged_in(h, "bob", "phone")
    again.data_received(b"<presence/>")
    got = t2.text()
    ids = [n for n in (*range(8), 99) if b"id=\"m%d\"" % n in got]
    assert ids == [*range(8), 99]         # everything, once, in order, none lost
    assert got.count(b"<delay") == 9


def test_a_closing_stream_is_no_recipient(make_harness: Any) -> None:
    h = offline_harness(make_harness)
    a, _ = logged_in(h, "alice", "a")
    b, tb = logged_in(h, "bob", "b")
    b.data_received(b"<presence/>")
    b.data_received(b"</stream:stream>")  # bob says goodbye; his socket drains for a while
    assert tb.closed and h.server.sessions.get(b.jid) is None
    a.data_received(chat(1))              # not written into the closing stream: stored
    assert b"m1" not in tb.text()
    b.connection_lost()
    again, t2 = logged_in(h, "bob", "phone")
    again.data_received(b"<presence/>")
    assert b"id=\"m1\"" in t2.text()


def test_the_parser_of_a_quiet_stream_is_freed_and_rebuilt_on_the_next_read(
        harness: Harness) -> None:
    from xmppd.listeners.idle_parsers import IDLE_AFTER, SWEEP_EVERY, idle_parsers
    a, ta = logged_in(harness, "alice", "a")
    b, tb = logged_in(harness, "bob", "b")
    sweep = idle_parsers(harness.server)
    assert {a, b} <= sweep.live
    harness.clock.advance(IDLE_AFTER + SWEEP_EVERY)     # both quiet: both parsers freed
    assert a.stream.parser.compacted and b.stream.parser.compacted and not sweep.live
    b.data_received(b"<presence/>")                  # bob talks again, alice stays quiet
    assert SWEEP_EVERY < IDLE_AFTER
    harness.clock.advance(SWEEP_EVERY)
    assert a.stream.parser.compacted and a not in sweep.live
    assert not b.stream.parser.compacted and b in sweep.live
    tb.text()
    a.data_received(b"<message to='bob@example.org' type='chat' id='m'><body>hi</body>"
                    b"</message>")
    assert not a.stream.parser.compacted and a in sweep.live
    assert b"<body>hi</body>" in tb.text()


def test_a_stanza_cut_by_the_read_keeps_its_parser(harness: Harness) -> None:
    from xmppd.listeners.idle_parsers import IDLE_AFTER, SWEEP_EVERY, idle_parsers
    a, ta = logged_in(harness, "alice", "a")
    a.data_received(b"<iq type='get' id='p1' to='example.org'><pi")
    harness.clock.advance(IDLE_AFTER + SWEEP_EVERY + 1)
    assert not a.stream.parser.compacted and a in idle_parsers(harness.server).live
    a.data_received(b"ng xmlns='urn:xmpp:ping'/></iq>")
    assert b'type="result"' in ta.text()
    a.connection_lost()
    assert a not in idle_parsers(harness.server).live
