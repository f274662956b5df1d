# tests: xmppd/listeners/websocket.py, xmppd/listeners/bosh.py
"""The WebSocket and BOSH shells on the in-memory server: a real ClientSession behind each, a
StringTransport for the WebSocket, fake HTTP responders for BOSH, and time only by the clock."""
from __future__ import annotations

import base64
import re
from typing import Any

from lxml import etree
from twisted.internet.testing import StringTransport

from tests.core.test_web_framing import Reply, client_frame
from tests.harness.server import Harness
from xmppd.listeners import bosh, bosh_http
from xmppd.listeners.c2s import c2s_settings
from xmppd.listeners.websocket import WsFramer, XmppWebSocket

OPEN = b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>"
HB = "http://jabber.org/protocol/httpbind"


class ServerFrames:
    """Reads the server's (unmasked) frames back out of a StringTransport."""

    def __init__(self, t: StringTransport) -> None:
        self.t = t

    def take(self) -> list[tuple[int, bytes]]:
        data = self.t.value()
        self.t.clear()
        out, pos = [], 0
        while pos < len(data):
            op, ln, hl = data[pos] & 0x0F, data[pos + 1] & 0x7F, 2
            if ln == 126:
                ln, hl = int.from_bytes(data[pos + 2:pos + 4], "big"), 4
            out.append((op, data[pos + hl:pos + hl + ln]))
            pos += hl + ln
        return out


def websocket(h: Harness, ping: float | None = 60.0) -> tuple[XmppWebSocket, ServerFrames]:
    settings = c2s_settings(h.server, tls="off", tls_available=False, framing="websocket")
    ws = XmppWebSocket(h.server, settings, peer_ip="127.0.0.1", secure=True, ping_interval=ping)
    t = StringTransport()
    ws.makeConnection(t)
    return ws, ServerFrames(t)


def ws_login(h: Harness, ws: XmppWebSocket, frames: ServerFrames) -> None:
    h.user("alice@example.org", password="secret")
    ws.dataReceived(client_frame(OPEN))
    got = frames.take()
    assert got[0][1].startswith(b"<open ") and b"<stream:features" in got[1][1]
    token = base64.b64encode(b"\0alice\0secret").decode()
    ws.dataReceived(client_frame(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                                 f"mechanism='PLAIN'>{token}</auth>".encode()))
    assert frames.take()[0][1].startswith(b"<success")
    ws.dataReceived(client_frame(OPEN))                  # RFC 7395 §3.7: restart with <open/>
    assert [f[1][:5] for f in frames.take()] == [b"<open", b"<stre"]
    ws.dataReceived(client_frame(b"<iq xmlns='jabber:client' type='set' id='b'><bind "
                                 b"xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web"
                                 b"</resource></bind></iq>"))
    bound = etree.fromstring(frames.take()[0][1])
    assert bound.tag == "{jabber:client}iq" and bound.findtext(".//{*}jid") == \
        "alice@example.org/web"


def test_websocket_login_and_one_element_per_frame(make_harness: Any) -> None:
    h = make_harness()
    ws, frames = websocket(h)
    ws_login(h, ws, frames)
    ws.dataReceived(client_frame(b"<iq xmlns='jabber:client' type='get' id='p' "
                                 b"to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>"))
    (op, reply), = frames.take()
    assert op == 1 and etree.fromstring(reply).get("type") == "result"
    ws.connectionLost()
    assert h.server.sessions.resources(ws.session.jid.bare if ws.session else
                                       h.user("alice@example.org")) == []


def test_silent_websocket_is_pinged_then_closed(make_harness: Any) -> None:
    h = make_harness()
    ws, frames = websocket(h, ping=60.0)
    ws_login(h, ws, frames)
    h.clock.advance(59)
    assert frames.take() == []
    h.clock.advance(1)
    assert frames.take() == [(9, b"xmppd")]              # a Ping frame
    h.clock.advance(30)
    ws.dataReceived(client_frame(b"xmppd", opcode=10))   # the Pong: alive again
    h.clock.advance(60)
    assert frames.take() == [(9, b"xmppd")]
    h.clock.advance(60)                                  # no answer this time
    got = frames.take()
    assert b"connection-timeout" in got[0][1]
    assert got[1] == (1, b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
    assert got[2][0] == 8 and frames.t.disconnecting
    ws.connectionLost()


def test_binary_message_closes_with_1003_after_a_stream_error(make_harness: Any) -> None:
    h = make_harness()
    ws, frames = websocket(h)
    ws.dataReceived(client_frame(OPEN))
    frames.take()
    ws.dataReceived(client_frame(b"\x00\x01", opcode=2))
    got = frames.take()
    assert b"bad-format" in got[0][1] and got[-1] == (8, (1003).to_bytes(2, "big"))
    assert frames.t.disconnecting
    ws.connectionLost()


def test_client_close_frame_is_answered_and_the_connection_ends(make_harness: Any) -> None:
    h = make_harness()
    ws, frames = websocket(h)
    ws.dataReceived(client_frame((1000).to_bytes(2, "big"), opcode=8))
    assert frames.take() == [(8, (1000).to_bytes(2, "big"))]
    assert frames.t.disconnecting
    ws.connectionLost()


def test_unmasked_frame_is_a_protocol_error(make_harness: Any) -> None:
    h = make_harness()
    ws, frames = websocket(h)
    ws.dataReceived(b"\x81\x02<a")
    assert frames.take()[-1] == (8, (1002).to_bytes(2, "big"))
    assert isinstance(ws.framer, WsFramer) and frames.t.disconnecting
    ws.connectionLost()


# -- BOSH through a real ClientSession --------------------------------------------------------
def post(m: bosh_http.BoshManager, body: str) -> Reply:
    r = Reply()
    m.handle(body.encode(), r, peer_ip="127.0.0.1", secure=True)
    return r


def test_bosh_session_logs_in_restarts_binds_and_chats(make_harness: Any) -> None:
    h = make_harness()
    h.user("alice@example.org", password="secret")
    bob = h.login("bob@example.org/desk")
    settings = c2s_settings(h.server, tls="off", tls_available=False, framing="bosh")
    m = bosh_http.BoshManager(h.server, settings, bosh.BoshSettings(max_wait=30, max_hold=1))
    r = post(m, f"<body xmlns='{HB}' xmlns:xmpp='urn:xmpp:xbosh' rid='10' to='example.org' "
                "wait='30' hold='1' xmpp:version='1.0'/>")
    sid = r.body.get("sid")
    assert r.body[0].tag == "{http://etherx.jabber.org/streams}features"
    token = base64.b64encode(b"\0alice\0secret").decode()
    r = post(m, f"<body xmlns='{HB}' sid='{sid}' rid='11'><auth xmlns='urn:ietf:params:xml:"
                f"ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth></body>")
    assert r.body[0].tag == "{urn:ietf:params:xml:ns:xmpp-sasl}success"
    r = post(m, f"<body xmlns='{HB}' xmlns:xmpp='urn:xmpp:xbosh' sid='{sid}' rid='12' "
                "xmpp:restart='true'/>")
    assert r.body[0][0].tag == "{urn:ietf:params:xml:ns:xmpp-bind}bind"
    r = post(m, f"<body xmlns='{HB}' sid='{sid}' rid='13'><iq xmlns='jabber:client' type='set'"
                " id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq></body>")
    assert r.body[0].get("type") == "result"
    full = r.body[0].findtext(".//{*}jid")
    held = post(m, f"<body xmlns='{HB}' sid='{sid}' rid='14'/>")     # waits for payloads
    assert held.data is None
    bob.send(f"<message to='{full}' type='chat'><body>hi</body></message>")
    assert held.body[0].findtext("{jabber:client}body") == "hi"
    # the session is gone after `inactivity` with no request held
    h.clock.advance(bosh.BoshSettings().inactivity)
    assert sid not in m.sessions
    assert h.server.sessions.resources(h.user("alice@example.org")) == []


def test_bosh_sessions_hold_connection_slots_and_log_in_their_http_connection(
        make_harness: Any) -> None:
    """xmppd/limits.py: a BOSH session counts as a stranger's connection until it logs in;
    an HTTP connection that carries a logged-in session's request then counts as a user's."""
    import io

    from twisted.internet import defer

    from xmppd.limits import ConnectionGuard, ConnectionLimits
    h = make_harness()
    h.user("alice@example.org", password="secret")
    limits = ConnectionLimits(per_ip=10, unauthenticated_per_ip=10, max_unauthenticated=10,
                              max_total=10)
    settings = c2s_settings(h.server, tls="off", tls_available=False, framing="bosh")
    m = bosh_http.BoshManager(h.server, settings, bosh.BoshSettings(max_wait=30, max_hold=1),
                         limits=limits)
    channel_slot = limits.open("127.0.0.1")
    assert channel_slot is not None

    class Request:
        def __init__(self, body: str) -> None:
            self.content = io.BytesIO(body.encode())
            self.channel = type("Ch", (), {"guard": ConnectionGuard(channel_slot)})()
            self.out = b""

        def getClientAddress(self) -> Any:
            return type("A", (), {"host": "127.0.0.1"})()

        def notifyFinish(self) -> defer.Deferred[None]:
            return defer.Deferred()

        def setResponseCode(self, code: int) -> None: ...

        def setHeader(self, name: str, value: str) -> None: ...

        def write(self, data: bytes) -> None:
            self.out += data

        def finish(self) -> None:
            del self.channel            # as Twisted's Request does once answered

    def send(body: str) -> bytes:
        req = Request(body)
        bosh_http.render_post(m, req, secure=True, headers=lambda r: None)
        return req.out
    out = send(f"<body xmlns='{HB}' xmlns:xmpp='urn:xmpp:xbosh' rid='10' to='example.org' "
               "wait='30' hold='1' xmpp:version='1.0'/>")
    sid = re.search(rb"sid='([^']+)'", out).group(1).decode()     # type: ignore[union-attr]
    assert (limits.total, limits.unauthenticated) == (2, 2)
    token = base64.b64encode(b"\0alice\0secret").decode()
    send(f"<body xmlns='{HB}' sid='{sid}' rid='11'><auth xmlns='urn:ietf:params:xml:"
         f"ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth></body>")
    assert limits.unauthenticated == 0      # the session, and the connection that carried it
    send(f"<body xmlns='{HB}' xmlns:xmpp='urn:xmpp:xbosh' sid='{sid}' rid='12' "
         "xmpp:restart='true'/>")
    assert (limits.total, limits.unauthenticated) == (2, 0)
    m.close_all()
    channel_slot.close()
    assert (limits.total, limits.unauthenticated) == (0, 0)
