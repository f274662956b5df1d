# tests: tests/core/test_web_framing.py, tests/core/test_web_shells.py, tests/integration/test_web_clients.py
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
- Frames (RFC 6455 §5) after the handshake are read and written by `WsFramer`, a small sans-IO
  codec: wsproto's per-frame cost (about 40 µs to read one, docs/PERFORMANCE.md) was most of a
  WebSocket message's price. It refuses what §5 forbids with the matching close code:
  unmasked client frames, reserved bits, fragmented or oversized control frames, continuation
  without a start, unknown opcodes (1002), invalid UTF-8 in a text message (1007), a message
  over the limit (1009, checked from the frame header, before the payload arrives).
- Limits (xmppd/limits.py): the HTTP connection's slot passes to the WebSocket (`guard`), and
  what the client sends is shaped like a TCP stream's.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IProtocol, ITransport
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET
from wsproto import ConnectionType
from wsproto.events import AcceptConnection, Request as WSRequest
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError
from zope.interface import implementer

from stanzas.errors import StreamError
from xmppd import c2s
from xmppd.limits import ConnectionGuard
from xmppd.listeners.session import ClientSession

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)
HttpRequest = Any      # twisted.web.server.Request (untyped)
SUBPROTOCOL = "xmpp"           # RFC 7395 §3.1, IANA WebSocket Subprotocol Name Registry
_PROTOCOL_ERROR, _UNSUPPORTED, _BAD_DATA, _TOO_BIG = 1002, 1003, 1007, 1009
_TEXT, _BINARY, _CLOSE, _PING, _PONG = 1, 2, 8, 9, 10


class FrameError(Exception):
    """The peer broke RFC 6455 §5: close with `code`."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


def frame(payload: bytes, opcode: int = _TEXT) -> bytes:
    """One unmasked server frame (§5.2), FIN set."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big") + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(code.to_bytes(2, "big") + reason.encode()[:123], _CLOSE)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if not n or mask == b"\0\0\0\0":
        return payload
    key = (mask * ((n + 3) // 4))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class WsFramer:
    """RFC 6455 §5 for a server after the handshake, sans-IO. `receive(data)` returns events:
    ("text", bytes) | ("binary", bytes) | ("ping", bytes) | ("pong", bytes) | ("close", code);
    it raises FrameError on a protocol violation."""

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._size = 0
        self._kind: int | None = None

    def receive(self, data: bytes) -> list[tuple[str, Any]]:
        buf = self._buf
        buf += data
        out: list[tuple[str, Any]] = []
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b0 & 0x70:
                raise FrameError(_PROTOCOL_ERROR, "reserved bits set (no extension agreed)")
            if not b1 & 0x80:
                raise FrameError(_PROTOCOL_ERROR, "client frames must be masked (§5.3)")
            op, fin, ln, hl = b0 & 0x0F, b0 & 0x80, b1 & 0x7F, 6
            if ln == 126:
                if n - pos < 4:
                    break
                ln, hl = int.from_bytes(buf[pos + 2:pos + 4], "big"), 8
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, hl = int.from_bytes(buf[pos + 2:pos + 10], "big"), 14
            if op >= 8:
                if not fin or ln > 125:
                    raise FrameError(_PROTOCOL_ERROR, "control frames are short and whole")
            elif self._size + ln > self.max_message:
                raise FrameError(_TOO_BIG, "message too large")
            if n - pos < hl + ln:
                break
            payload = _unmask(bytes(buf[pos + hl:pos + hl + ln]), bytes(buf[pos + hl - 4:pos + hl]))
            pos += hl + ln
            if op == _CLOSE:
                out.append(("close", int.from_bytes(payload[:2], "big") if len(payload) >= 2
                            else 1005))
                break
            if op == _PING:
                out.append(("ping", payload))
                continue
            if op == _PONG:
                out.append(("pong", payload))
                continue
            if op == 0:
                if self._kind is None:
                    raise FrameError(_PROTOCOL_ERROR, "continuation without a message")
            elif op in (_TEXT, _BINARY):
                if self._kind is not None:
                    raise FrameError(_PROTOCOL_ERROR, "a new message inside a fragmented one")
                self._kind = op
            else:
                raise FrameError(_PROTOCOL_ERROR, f"unknown opcode {op}")
            self._parts.append(payload)
            self._size += ln
            if fin:
                message = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
                kind, self._kind, self._parts, self._size = self._kind, None, [], 0
                if kind == _TEXT:
                    try:
                        message.decode("utf-8")
                    except UnicodeDecodeError:
                        raise FrameError(_BAD_DATA, "text messages are UTF-8") from None
                    out.append(("text", message))
                else:
                    out.append(("binary", message))
        del buf[:pos]
        return out


def accept_upgrade(request: HttpRequest, make_protocol: Any) -> bytes | int:
    """Answer a WebSocket upgrade on `request` with the xmpp subprotocol and hand the
    connection to the protocol `make_protocol()` builds; an HTTP error page otherwise."""
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
    channel: Any = request.channel
    transport = channel.transport
    assert transport is not None
    channel.setTimeout(None)        # the HTTP idle timer must not cut a live stream
    transport.write(data)           # the 101 first: the session's <open/> answer follows it
    channel._protocolUpgradeForWebsockets(make_protocol())
    return NOT_DONE_YET


def _refuse(request: HttpRequest, code: int, text: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader("content-type", "text/plain; charset=utf-8")
    return text.encode() + b"\n"


@implementer(IProtocol)
class XmppWebSocket:
    """One client's WebSocket after the upgrade: frames in and out, and the session's
    `Transport` (xmppd/listeners/session.py)."""
    kind = "websocket"                  # for metrics

    def __init__(self, server: Server, settings: c2s.C2SSettings, *,
                 peer_ip: str | None, secure: bool, ping_interval: float | None) -> None:
        self.server = server
        self.settings = settings
        # Characters of XML are at most 4 bytes of UTF-8; the parser applies the real limit.
        self.framer = WsFramer(max_message=settings.max_stanza_size + 1024)
        self.peer_ip = peer_ip
        self.secure = secure
        self.ping_interval = ping_interval
        self.transport: ITransport | None = None
        self.session: ClientSession | None = None
        self._last_frame = server.clock.now()
        self._pinged = False
        self._timer: IDelayedCall | None = None
        self._closed = False
        self._close_code = 1000
        self.guard: ConnectionGuard | None = None       # set by the HTTP channel (http.py)

    # -- IProtocol -----------------------------------------------------------------------
    def makeConnection(self, transport: ITransport) -> None:
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        self.session = ClientSession(self.server, self.settings, self, peer_ip=self.peer_ip,
                                     secure=self.secure)
        if self.guard is not None:
            self.guard.stream(self.server, lambda: self.transport)  # type: ignore[arg-type,return-value]
            self.session.on_stanza = self.guard.stanza
        if self.transport is not None:
            # Flow control as for TCP (xmppd/listeners/c2s.py): a full buffer pauses output.
            # The upgraded HTTP channel registered itself as the producer; we take over.
            if getattr(self.transport, "producer", None) is not None:
                self.transport.unregisterProducer()  # type: ignore[attr-defined]
            self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
        self._arm()

    def pauseProducing(self) -> None:
        if self.session is not None:
            self.session.pause_writing()

    def resumeProducing(self) -> None:
        if self.session is not None:
            self.session.resume_writing()

    def stopProducing(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        if self._closed:
            return
        self._last_frame = self.server.clock.now()
        self._pinged = False
        if self.guard is not None:
            self.guard.data(len(data))
        try:
            events = self.framer.receive(data)
        except FrameError as e:
            error = (StreamError.policy_violation(str(e)) if e.code == _TOO_BIG
                     else StreamError.not_well_formed(str(e)) if e.code == _BAD_DATA
                     else None)
            self._fail(error, e.code)
            return
        for kind, value in events:
            if self._closed:
                return
            if kind == "text":
                if self.session is not None:
                    self.session.data_received(value)
            elif kind == "binary":
                # RFC 7395 §3.2: XMPP is carried in text messages (UTF-8) only.
                self._fail(StreamError.bad_format("binary WebSocket messages are not XMPP"),
                           _UNSUPPORTED)
                return
            elif kind == "ping":
                self._write(frame(value, _PONG))
            elif kind == "close":
                # §5.5.1: answer the Close, then the TCP connection ends.
                self._write(close_frame(1000 if value in (1005, 1006) else value))
                self._drop()
                return

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._closed = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self.guard is not None:
            self.guard.close()
        if self.session is not None:
            session, self.session = self.session, None
            session.connection_lost()

    # -- Transport for the session -------------------------------------------------------
    def send(self, units: list[bytes]) -> None:
        if self._closed or self.transport is None:
            return
        # One element per message (RFC 7395 §3.3.3), written together.
        if len(units) == 1:
            self.transport.write(frame(units[0]))
        else:
            self.transport.writeSequence([frame(u) for u in units])

    def start_tls(self) -> bool:
        return False                    # §3.8: TLS comes from wss://

    def close(self) -> None:
        if self._closed:
            return
        self._write(close_frame(self._close_code))
        self._drop()

    # -- helpers -------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.transport is not None and data:
            self.transport.write(data)

    def _fail(self, error: StreamError | None, code: int) -> None:
        """A stream error and `<close/>` (if `error`), then a Close frame with `code`."""
        self._close_code = code
        if self.session is not None and error is not None:
            self.session.close(error)       # its Closed event calls self.close()
        self.close()

    def abort(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _drop(self) -> None:
        self._closed = True
        if self.transport is not None:
            if getattr(self.transport, "producer", None) is not None:
                self.transport.unregisterProducer()  # type: ignore[attr-defined]
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
        self._write(frame(b"xmppd", _PING))
        self._timer = self.server.clock.call_later(self.ping_interval, self._tick)
