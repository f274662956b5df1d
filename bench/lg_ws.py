"""XMPP over WebSocket (RFC 7395 on RFC 6455) for the load generator's --transport websocket."""
from __future__ import annotations

import asyncio
import base64
import os

from lg_wire import Conn, _discard, XMPPError

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One masked client frame (RFC 6455 §5.2) with the all-zero masking key."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class WsConn(Conn):
    """RFC 7395 over RFC 6455: frames in, the byte scanners of Conn on their payloads."""

    def __init__(self):
        super().__init__()
        self.raw = bytearray()
        self.handshake = asyncio.get_event_loop().create_future()

    def data_received(self, data):
        raw = self.raw
        raw += data
        if not self.handshake.done():
            i = raw.find(b"\r\n\r\n")
            if i < 0:
                return
            self.handshake.set_result(bytes(raw[:i]))
            del raw[:i + 4]
        out = []
        pos, n = 0, len(raw)
        while n - pos >= 2:
            ln, hl = raw[pos + 1] & 0x7F, 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln, hl = int.from_bytes(raw[pos + 2:pos + 4], "big"), 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, hl = int.from_bytes(raw[pos + 2:pos + 10], "big"), 10
            if n - pos < hl + ln:
                break
            op = raw[pos] & 0x0F
            if op in (0, 1):
                out.append(bytes(raw[pos + hl:pos + hl + ln]))
            elif op == 9:                               # ping -> pong
                self.transport.write(ws_frame(bytes(raw[pos + hl:pos + hl + ln]), 0xA))
            pos += hl + ln
        del raw[:pos]
        if out:
            super().data_received(b"".join(out))

    def write(self, data: bytes):
        self.transport.write(ws_frame(data))

    def write_units(self, units):
        self.transport.write(b"".join([ws_frame(u) for u in units]))

    async def close(self, timeout: float = 2.0):
        if self.lost:
            return
        self.on_data = _discard
        try:
            self.transport.write(ws_frame(f"<close xmlns='{FRAMING}'/>".encode()))
            await asyncio.wait_for(self.closed_evt.wait(), timeout)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001
            pass
        if not self.lost:
            self.transport.abort()


async def ws_connect(cfg):
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(loop.create_connection(WsConn, cfg.host, cfg.port),
                                     cfg.timeout)
    key = base64.b64encode(os.urandom(16))
    conn.transport.write(b"GET " + cfg.ws_path.encode() + b" HTTP/1.1\r\nHost: "
                         + cfg.server.encode() + b"\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                         b"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n")
    head = await asyncio.wait_for(conn.handshake, cfg.timeout)
    if not head.startswith(b"HTTP/1.1 101"):
        conn.transport.abort()
        raise XMPPError(f"WebSocket upgrade refused: {head[:200]!r}")
    return conn


_background: set = set()

