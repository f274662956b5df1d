# tests: tests/core/test_websocket.py, tests/integration/test_web_clients.py
"""XMPP over WebSocket (RFC 7395) at the HTTP listener's `websocket_path`.

- The handshake must offer the `xmpp` subprotocol and is answered with it (§3.1; browsers drop a
  connection that asked for one and got none, and Twisted's own WebSocketResource answers
  none, so the upgrade is done here with wsproto's `AcceptConnection(subprotocol="xmpp")`).
  A handshake without it gets HTTP 400.
- Each text message is one element, handed whole to the same `ClientSession` and restricted
  parser as TCP (xmppd/c2s.py and xmppd/xmlstream.py in "websocket" framing: `<open/>`,
  `<close/>`, no STARTTLS, §3.3–§3.8). Binary messages are refused (close code 1003); a message
  larger than `limits.max_stanza_size` closes with 1009 and `<policy-violation/>`.
- Liveness (§3.9 recommends WebSocket pings over whitespace): after `ping_interval` without
  any frame from the client we send a Ping; if nothing (not even the Pong) comes back within
  another interval, the stream closes with `<connection-timeout/>`.
- Closing (§3.6): `<close/>` answers `<close/>`; whoever ends the stream, the server then sends
  a Close frame and drops the TCP connection once written.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IProtocol, ITransport
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping, Pong,
                            Request as WSRequest, TextMessage)
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError
from zope.interface import implementer

from stanzas.errors import StreamError
from xmppd import c2s
from xmppd.listeners.session import ClientSession

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)
HttpRequest = Any      # twisted.web.server.Request (untyped)
SUBPROTOCOL = "xmpp"           # RFC 7395 §3.1, IANA WebSocket Subprotocol Name Registry
_GOING_AWAY, _UNSUPPORTED, _TOO_BIG = 1001, 1003, 1009


def accept_upgrade(request: HttpRequest, make_protocol: Any) -> bytes | int:
    """Answer a WebSocket upgrade on `request` with the xmpp subprotocol and hand the
    connection to `make_protocol(wsproto_connection)`; an HTTP error page otherwise."""
    handshake = H11Handshake(ConnectionType.SERVER)
    raw = request.requestHeaders.getAllRawHeaders()
    headers = [(name, value) for name, values in raw for value in values]
    try:
        handshake.initiate_upgrade_connection(headers, request.uri)
    except RemoteProtocolError as e:
        return _refuse(request, 400, f"not a WebSocket handshake: {e}")
    offered: list[str] = []
    for ev in handshake.events():
        if isinstance(ev, WSRequest):
            offered = list(ev.subprotocols)
    if SUBPROTOCOL not in offered:
        return _refuse(request, 400, "the 'xmpp' WebSocket subprotocol is required (RFC 7395)")
    data = handshake.send(AcceptConnection(subprotocol=SUBPROTOCOL))
    conn = handshake.connection
    channel: Any = request.channel
    transport = channel.transport
    assert conn is not None and transport is not None
    channel.setTimeout(None)        # the HTTP idle timer must not cut a live stream
    channel._protocolUpgradeForWebsockets(make_protocol(conn))
    transport.write(data)
    return NOT_DONE_YET


def _refuse(request: HttpRequest, code: int, text: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader("content-type", "text/plain; charset=utf-8")
    return text.encode() + b"\n"


@implementer(IProtocol)
class XmppWebSocket:
    """One client's WebSocket after the upgrade: frames in and out, and the session's
    `Transport` (xmppd/listeners/session.py)."""

    def __init__(self, server: Server, settings: c2s.C2SSettings, conn: Connection, *,
                 peer_ip: str | None, secure: bool, ping_interval: float | None) -> None:
        self.server = server
        self.settings = settings
        self.conn = conn
        self.peer_ip = peer_ip
        self.secure = secure
        self.ping_interval = ping_interval
        self.transport: ITransport | None = None
        self.session: ClientSession | None = None
        self._text: list[str] = []
        self._size = 0
        self._last_frame = server.clock.now()
        self._pinged = False
        self._timer: IDelayedCall | None = None
        self._closed = False
        self._close_code = 1000

    # -- IProtocol -----------------------------------------------------------------------
    def makeConnection(self, transport: ITransport) -> None:
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        self.session = ClientSession(self.server, self.settings, self, peer_ip=self.peer_ip,
                                     secure=self.secure)
        self._arm()

    def dataReceived(self, data: bytes) -> None:
        try:
            self.conn.receive_data(data)
        except RemoteProtocolError:
            self._drop()
            return
        self._last_frame = self.server.clock.now()
        self._pinged = False
        for ev in self.conn.events():
            if self._closed:
                return
            if isinstance(ev, TextMessage):
                self._size += len(ev.data)
                if self._size > self.settings.max_stanza_size * 4:
                    # Characters, not bytes: at most 4 bytes each in UTF-8.
                    self._fail(StreamError.policy_violation("message too large"), _TOO_BIG)
                    return
                self._text.append(ev.data)
                if ev.message_finished:
                    message = "".join(self._text).encode()
                    self._text, self._size = [], 0
                    if self.session is not None:
                        self.session.data_received(message)
            elif isinstance(ev, BytesMessage):
                # RFC 7395 §3.2: XMPP is carried in text messages (UTF-8) only.
                self._fail(StreamError.bad_format("binary WebSocket messages are not XMPP"),
                           _UNSUPPORTED)
                return
            elif isinstance(ev, Ping):
                self._write(self.conn.send(ev.response()))
            elif isinstance(ev, Pong):
                pass                    # liveness is any frame (see _last_frame)
            elif isinstance(ev, CloseConnection):
                if self.conn.state not in (ConnectionState.CLOSED,):
                    self._write(self.conn.send(ev.response()))
                self._drop()
                return

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._closed = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self.session is not None:
            session, self.session = self.session, None
            session.connection_lost()

    # -- Transport for the session -------------------------------------------------------
    def send(self, units: list[bytes]) -> None:
        if self._closed or self.conn.state != ConnectionState.OPEN:
            return
        # One element per message (RFC 7395 §3.3.3); TCP-level writes batched.
        self._write(b"".join(self.conn.send(TextMessage(u.decode("utf-8"))) for u in units))

    def start_tls(self) -> bool:
        return False                    # §3.8: TLS comes from wss://

    def close(self) -> None:
        if self._closed:
            return
        if self.conn.state == ConnectionState.OPEN:
            self._write(self.conn.send(CloseConnection(code=self._close_code)))
        self._drop()

    # -- helpers -------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.transport is not None and data:
            self.transport.write(data)

    def _fail(self, error: StreamError, code: int) -> None:
        """A stream error and `<close/>`, then a Close frame with `code`."""
        self._close_code = code
        if self.session is not None:
            self.session.close(error)       # its Closed event calls self.close()
        self.close()

    def _drop(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.loseConnection()

    def _arm(self) -> None:
        if self.ping_interval is None or self._closed:
            return
        self._timer = self.server.clock.call_later(self.ping_interval, self._tick)

    def _tick(self) -> None:
        """The liveness check: ping a silent client once, drop it if still silent."""
        if self._closed or self.ping_interval is None:
            return
        silent = self.server.clock.now() - self._last_frame
        if silent < self.ping_interval:
            self._timer = self.server.clock.call_later(self.ping_interval - silent, self._tick)
            return
        if self._pinged:
            if self.session is not None:
                self.session.close(StreamError.connection_timeout("no answer to a WebSocket ping"))
            self.close()
            return
        self._pinged = True
        if self.conn.state == ConnectionState.OPEN:
            self._write(self.conn.send(Ping(b"xmppd")))
        self._timer = self.server.clock.call_later(self.ping_interval, self._tick)
