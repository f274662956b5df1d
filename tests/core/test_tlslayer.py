# tests: xmppd/listeners/tlslayer.py, xmppd/tls.py
"""The memory-BIO TLS layer against a stdlib client, with no sockets."""
from __future__ import annotations

import ssl
import sys
from pathlib import Path

import pytest

from xmppd.listeners.tlslayer import TlsFailed, TlsLayer
from xmppd.tls import ensure_certificate, stream_context


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    d = tmp_path_factory.mktemp("tls")
    ensure_certificate(d / "c.pem", d / "k.pem", ["example.org"], generate=True)
    return stream_context(d / "c.pem", d / "k.pem", alpn=["xmpp-client"])


class Client:
    def __init__(self, alpn: list[str] | None = None) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if alpn:
            ctx.set_alpn_protocols(alpn)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="example.org")


def handshake(server: TlsLayer, client: Client) -> bytes:
    """Run the handshake; returns plaintext the server got meanwhile."""
    got = b""
    for _ in range(10):
        try:
            client.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        got += server.receive(client.out.read())
        client.inc.write(server.pending_output())
        if server.handshaken:
            try:
                client.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
    return got


def test_handshake_then_data_both_ways(context: ssl.SSLContext) -> None:
    server, client = TlsLayer(context), Client(["xmpp-client"])
    handshake(server, client)
    assert server.handshaken and server.alpn == "xmpp-client"
    client.obj.write(b"<stream:stream>")
    assert server.receive(client.out.read()) == b"<stream:stream>"
    client.inc.write(server.send(b"<stream:features/>"))
    assert client.obj.read() == b"<stream:features/>"


def test_output_before_the_handshake_is_held(context: ssl.SSLContext) -> None:
    server, client = TlsLayer(context), Client()
    early = server.send(b"<early/>")
    assert b"<early/>" not in early
    handshake(server, client)
    client.inc.write(server.pending_output())
    assert client.obj.read() == b"<early/>"


def test_garbage_fails(context: ssl.SSLContext) -> None:
    server = TlsLayer(context)
    with pytest.raises(TlsFailed):
        server.receive(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)


def test_tls_below_1_2_is_refused(context: ssl.SSLContext) -> None:
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_close_notify_is_noticed_and_answered(context: ssl.SSLContext) -> None:
    """A client that closes TLS properly waits for our close_notify before it closes TCP
    (asyncio does, for 30 s): the connection and its slot of the limits must not wait too."""
    server, client = TlsLayer(context), Client()
    handshake(server, client)
    client.obj.write(b"</stream:stream>")
    try:
        client.obj.unwrap()
    except ssl.SSLWantReadError:
        pass
    assert server.receive(client.out.read()) == b"</stream:stream>"
    assert server.peer_closed
    client.inc.write(server.close())
    client.obj.unwrap()                 # our close_notify completes the client's shutdown


def test_only_forward_secret_aead_suites_on_tls12(context: ssl.SSLContext) -> None:
    names = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names and all(n.startswith("ECDHE-") and ("GCM" in n or "CHACHA20" in n)
                         for n in names), names
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


# -- channel bindings (RFC 5929, RFC 9266), checked against pyOpenSSL's own values -----------
_OP_NO_EXTENDED_MASTER_SECRET = 0x1    # SSL_OP_NO_EXTENDED_MASTER_SECRET, OpenSSL 3 (unnamed
                                       # in pyOpenSSL)


class OpenSslClient:
    """A pyOpenSSL client on memory BIOs: another OpenSSL build computing the same bindings."""

    def __init__(self, version: int, *, ems: bool = True) -> None:
        from OpenSSL import SSL
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(version)
        ctx.set_max_proto_version(version)
        if not ems:
            ctx.set_options(_OP_NO_EXTENDED_MASTER_SECRET)
        self.conn = SSL.Connection(ctx, None)
        self.conn.set_connect_state()

    def handshake(self, server: TlsLayer) -> None:
        from OpenSSL import SSL
        for _ in range(10):
            try:
                self.conn.do_handshake()
            except SSL.WantReadError:
                pass
            server.receive(self.conn.bio_read(65536))
            back = server.pending_output()
            if back:
                self.conn.bio_write(back)
            if server.handshaken:
                try:
                    self.conn.do_handshake()
                    return
                except SSL.WantReadError:
                    pass
        raise AssertionError("no handshake")


def _expected_end_point(client: OpenSslClient) -> bytes:
    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding
    cert = client.conn.get_peer_certificate(as_cryptography=True)
    assert cert is not None
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()   # RSA-SHA256 self-signed


def test_tls13_offers_exporter_and_end_point(context: ssl.SSLContext) -> None:
    from OpenSSL import SSL
    server, client = TlsLayer(context), OpenSslClient(SSL.TLS1_3_VERSION)
    client.handshake(server)
    found = server.channel_bindings()
    assert found["tls-exporter"] == client.conn.export_keying_material(
        b"EXPORTER-Channel-Binding", 32)
    assert found["tls-server-end-point"] == _expected_end_point(client)
    assert "tls-unique" not in found        # RFC 9266 §3: not on TLS 1.3


def test_tls12_offers_unique_and_exporter_with_extended_master_secret(
        context: ssl.SSLContext) -> None:
    from OpenSSL import SSL
    server, client = TlsLayer(context), OpenSslClient(SSL.TLS1_2_VERSION)
    client.handshake(server)
    found = server.channel_bindings()
    assert found["tls-unique"] == client.conn.get_finished()    # the client's Finished
    assert found["tls-exporter"] == client.conn.export_keying_material(
        b"EXPORTER-Channel-Binding", 32)
    assert found["tls-server-end-point"] == _expected_end_point(client)


def test_tls12_without_extended_master_secret_has_no_exporter(context: ssl.SSLContext) -> None:
    from OpenSSL import SSL
    server, client = TlsLayer(context), OpenSslClient(SSL.TLS1_2_VERSION, ems=False)
    client.handshake(server)
    found = server.channel_bindings()
    assert "tls-exporter" not in found      # RFC 9266 §3 needs RFC 7627
    assert "tls-unique" in found and "tls-server-end-point" in found


def test_no_bindings_before_the_handshake(context: ssl.SSLContext) -> None:
    assert TlsLayer(context).channel_bindings() == {}


def test_compact_frees_the_idle_buffers_and_the_connection_goes_on(
        context: ssl.SSLContext) -> None:
    from xmppd.listeners import tlsbuffers
    if sys.implementation.name != "cpython" or not sys.platform.startswith("linux"):
        pytest.skip("the BIO release is for CPython on Linux")
    assert tlsbuffers.supported()
    server, client = TlsLayer(context), Client()
    handshake(server, client)
    big = b"<iq type='result' id='roster'>" + b"<item jid='x@example.org'/>" * 2500 + b"</iq>"
    client.inc.write(server.send(big))          # a 67 KiB roster, read by the client
    got = b""
    while len(got) < len(big):
        got += client.obj.read(65536)
    client.obj.write(b"y" * 40000)
    assert server.receive(client.out.read()) == b"y" * 40000
    held = (tlsbuffers.capacity(server._out), tlsbuffers.capacity(server._in))
    assert held[0] is not None and held[0] > len(big) and held[1] is not None and held[1] > 40000
    server.compact()
    assert (tlsbuffers.capacity(server._out), tlsbuffers.capacity(server._in)) == (0, 0)
    client.obj.write(b"<presence/>")
    assert server.receive(client.out.read()) == b"<presence/>"
    client.inc.write(server.send(b"<message/>"))
    assert client.obj.read() == b"<message/>"


def test_a_bio_with_data_waiting_is_not_released() -> None:
    from xmppd.listeners import tlsbuffers
    if not tlsbuffers.supported():
        pytest.skip("the BIO release is for CPython on Linux")
    bio = ssl.MemoryBIO()
    bio.write(b"pending")
    assert not tlsbuffers.release(bio) and bio.read() == b"pending"
    assert tlsbuffers.release(bio) and tlsbuffers.capacity(bio) == 0
