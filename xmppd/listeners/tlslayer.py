# tests: tests/core/test_tlslayer.py, tests/integration/test_core_slixmpp.py
"""TLS as a sans-IO layer over the stdlib `ssl` module's memory BIOs, for STARTTLS.

Twisted's own startTLS runs pyOpenSSL, whose bundled OpenSSL kept about 34 KiB per idle
connection here against about 17 KiB for the stdlib's (mallinfo2, `docs/PERFORMANCE.md`);
idle connections are most of an XMPP server's connections, so the client listener uses this.
- `receive(ciphertext)` returns the plaintext that became readable (handshake first);
  `send(plaintext)` returns the ciphertext to write; `pending_output()` drains handshake bytes.
- Plaintext sent before the handshake completes is held and flushed right after it.
- A TLS failure raises `TlsFailed`; the caller drops the connection (no stream error can be
  sent on a broken TLS layer).
- A close_notify from the peer sets `peer_closed`: the caller answers with `close()` and
  closes the connection (RFC 8446 §6.1), rather than hold it until a timer notices.
- `compact()` frees the buffers an idle connection does not need (called by
  xmppd/listeners/idle_parsers.py once the stream is quiet).
- `channel_bindings()`: the RFC 5929 / RFC 9266 channel-binding data of the finished handshake
  by type, for SCRAM-*-PLUS and FAST (xmppd/listeners/channel_binding.py).
"""
from __future__ import annotations

import ssl

from xmppd.listeners import channel_binding, tlsbuffers


class TlsFailed(Exception):
    pass


class TlsLayer:
    def __init__(self, context: ssl.SSLContext) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_side=True)
        self._context = context
        self.handshaken = False
        self.peer_closed = False
        self._held: list[bytes] = []

    def receive(self, data: bytes) -> bytes:
        self._in.write(data)
        try:
            if not self.handshaken:
                try:
                    self._obj.do_handshake()
                except ssl.SSLWantReadError:
                    return b""
                self.handshaken = True
            chunks = []
            while True:
                try:
                    chunk = self._obj.read(65536)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    self.peer_closed = True     # close_notify
                    break
                if not chunk:               # what an SSLObject reads after close_notify
                    self.peer_closed = True
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        except ssl.SSLError as e:
            raise TlsFailed(str(e)) from None

    def send(self, data: bytes) -> bytes:
        """Encrypt `data`; returns the bytes to write (held until the handshake is done)."""
        if not self.handshaken:
            self._held.append(data)
            return self.pending_output()
        if self._held:
            data, self._held = b"".join(self._held) + data, []
        try:
            self._obj.write(data)
        except ssl.SSLError as e:
            raise TlsFailed(str(e)) from None
        return self._out.read()

    def pending_output(self) -> bytes:
        """Handshake and alert bytes to write, plus held plaintext once the handshake is done."""
        if self.handshaken and self._held:
            return self.send(b"")
        return self._out.read()

    def compact(self) -> None:
        """The connection is idle: free the memory BIOs' buffers (xmppd/listeners/tlsbuffers.py),
        which otherwise keep the largest read and write they ever held."""
        tlsbuffers.release(self._in)
        tlsbuffers.release(self._out)

    def close(self) -> bytes:
        """A close_notify to write before closing the socket (best effort)."""
        try:
            self._obj.unwrap()
        except (ssl.SSLError, ValueError):
            pass
        return self._out.read()

    @property
    def alpn(self) -> str | None:
        return self._obj.selected_alpn_protocol()

    def channel_bindings(self) -> dict[str, bytes]:
        """Channel-binding data by type (XEP-0440 names), strongest first: `tls-exporter`
        (RFC 9266), `tls-unique` (TLS 1.2 only), `tls-server-end-point` (RFC 5929 §4)."""
        if not self.handshaken:
            return {}
        found: dict[str, bytes] = {}
        exported = channel_binding.exporter(self._obj)
        if exported is not None:
            found["tls-exporter"] = exported
        unique = channel_binding.tls_unique(self._obj)
        if unique is not None:
            found["tls-unique"] = unique
        end_point = getattr(self._context, "end_point", b"")
        if end_point:
            found["tls-server-end-point"] = end_point
        return found
