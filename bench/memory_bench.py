"""Memory per connection, piece by piece, with glibc's mallinfo2() (bytes in use, not RSS).

Run: make bench-memory   (or: PYTHONPATH=. .venv/bin/python bench/memory_bench.py [N])
- TLS server state after a handshake and a little data, per connection: pyOpenSSL (what
  Twisted's startTLS uses) without and with SSL_MODE_RELEASE_BUFFERS, and the stdlib `ssl`
  memory-BIO layer xmppd uses (xmppd/listeners/tlslayer.py);
- the same after `TlsLayer.compact()` (what an idle connection keeps);
- the XML stream parser after a stream header, before and after `compact()`, and with a
  stanza of the stream kept (it must not keep the parser's state alive).
Linux with glibc only (mallinfo2).
"""
from __future__ import annotations

import ctypes
import gc
import ssl
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from OpenSSL import SSL

from xmppd.listeners.tlslayer import TlsLayer
from xmppd.tls import ensure_certificate, stream_context
from xmppd.xmlstream import XmlStreamParser


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = _MallInfo2


def in_use() -> int:
    info = _libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def per_object(make: Callable[[], Any], n: int) -> float:
    gc.collect()
    before = in_use()
    keep = [make() for _ in range(n)]
    gc.collect()
    kib = (in_use() - before) / n / 1024
    del keep
    return kib


def _client() -> tuple[Any, ssl.MemoryBIO, ssl.MemoryBIO]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    return ctx.wrap_bio(inc, out), inc, out


def stdlib_layer(ctx: ssl.SSLContext) -> TlsLayer:
    server = TlsLayer(ctx)
    client, inc, out = _client()
    for _ in range(10):
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        server.receive(out.read())
        inc.write(server.pending_output())
        if server.handshaken:
            break
    client.write(b"<presence/>" * 10)
    server.receive(out.read())
    return server


def pyopenssl(ctx: SSL.Context) -> SSL.Connection:
    server = SSL.Connection(ctx, None)
    server.set_accept_state()
    client, inc, out = _client()
    for _ in range(10):
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        data = out.read()
        if data:
            server.bio_write(data)
        try:
            server.do_handshake()
        except SSL.WantReadError:
            pass
        try:
            inc.write(server.bio_read(65536))
        except SSL.WantReadError:
            pass
    client.write(b"<presence/>" * 10)
    server.bio_write(out.read())
    server.recv(65536)
    return server


HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")


def parser(compact: bool) -> XmlStreamParser:
    p = XmlStreamParser()
    p.feed(HEADER)
    if compact:
        p.compact()
    return p


def parser_keeping_a_stanza() -> tuple[XmlStreamParser, Any]:
    """A compacted parser whose stream's presence is kept (as a session keeps it)."""
    p = XmlStreamParser()
    p.feed(HEADER)
    [presence] = p.feed(b"<presence><show>away</show><status>out</status></presence>")
    p.compact()
    return p, presence


def compacted_layer(ctx: ssl.SSLContext) -> TlsLayer:
    layer = stdlib_layer(ctx)
    layer.compact()
    return layer


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        ensure_certificate(cert, key, ["localhost"], generate=True)
        plain = SSL.Context(SSL.TLS_METHOD)
        plain.use_certificate_file(str(cert))
        plain.use_privatekey_file(str(key))
        released = SSL.Context(SSL.TLS_METHOD)
        released.use_certificate_file(str(cert))
        released.use_privatekey_file(str(key))
        released.set_mode(SSL.MODE_RELEASE_BUFFERS)
        std = stream_context(cert, key)
        rows = [
            ("pyOpenSSL %s" % SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode(),
             per_object(lambda: pyopenssl(plain), n)),
            ("pyOpenSSL + SSL_MODE_RELEASE_BUFFERS", per_object(lambda: pyopenssl(released), n)),
            ("stdlib ssl memory BIO layer (%s)" % ssl.OPENSSL_VERSION,
             per_object(lambda: stdlib_layer(std), n)),
            ("XmlStreamParser after the header", per_object(lambda: parser(False), n * 5)),
            ("stdlib ssl layer after compact() (idle: BIO buffers freed)",
             per_object(lambda: compacted_layer(std), n)),
            ("XmlStreamParser after compact()", per_object(lambda: parser(True), n * 5)),
            ("XmlStreamParser after compact(), its stream's presence kept",
             per_object(parser_keeping_a_stanza, n * 5)),
        ]
    for name, kib in rows:
        print(f"{name:60s} {kib:6.1f} KiB")


if __name__ == "__main__":
    main()
