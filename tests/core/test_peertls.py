# tests: xmppd/listeners/peertls.py
"""PeerTls: both ends in memory; verification is recorded, never fatal."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.pki import Issued, TestCA, self_signed, server_names
from xmppd.listeners.peertls import PeerTls, PeerTlsContext
from xmppd.listeners.tlslayer import TlsFailed


def context(tmp: Path, name: str, issued: Issued, ca: TestCA | None) -> PeerTlsContext:
    issued.write(tmp / f"{name}.pem", tmp / f"{name}.key")
    ca_file = ""
    if ca is not None:
        (tmp / "ca.pem").write_bytes(ca.pem)
        ca_file = str(tmp / "ca.pem")
    return PeerTlsContext(tmp / f"{name}.pem", tmp / f"{name}.key", ca_file=ca_file)


def handshake(client: PeerTls, server: PeerTls) -> bytes:
    """Run the handshake; returns the plaintext the server read meanwhile."""
    data = client.start()
    plain = b""
    for _ in range(10):
        if client.handshaken and server.handshaken and not data:
            return plain
        plain += server.receive(data)
        back = server.pending_output()
        client.receive(back)
        data = client.pending_output()
    raise AssertionError("no handshake")


def test_a_shared_ca_verifies_both_ways_with_names(tmp_path: Path) -> None:
    ca = TestCA()
    a = context(tmp_path, "a", ca.issue("a.example", server_names(["a.example"], wildcard=True)),
                ca)
    b = context(tmp_path, "b", ca.issue("b.example"), ca)
    client = PeerTls(a, server_side=False, sni="b.example", alpn=True)
    server = PeerTls(b, server_side=True)
    handshake(client, server)
    seen_by_client = client.peer_certificate()
    seen_by_server = server.peer_certificate()
    assert seen_by_client is not None and seen_by_client.proves("b.example")
    assert seen_by_server is not None and seen_by_server.proves("conference.a.example")
    assert not seen_by_server.proves("b.example")
    assert server.alpn == b"xmpp-server" == client.alpn


def test_self_signed_certificates_complete_the_handshake_unverified(tmp_path: Path) -> None:
    a = context(tmp_path, "a", self_signed("a.example"), None)
    b = context(tmp_path, "b", self_signed("b.example"), None)
    client, server = PeerTls(a, server_side=False, sni="b.example"), PeerTls(b, server_side=True)
    assert client.send(b"<stream:stream>") == b""   # before the handshake: held
    assert handshake(client, server) == b"<stream:stream>"
    peer = server.peer_certificate()
    assert peer is not None and not peer.chain_valid and "self-signed" in peer.error
    assert peer.names.matches("a.example")
    assert client.receive(server.send(b"hello")) == b"hello"
    assert server.alpn == b""


def test_an_expired_certificate_is_reported(tmp_path: Path) -> None:
    ca = TestCA()
    a = context(tmp_path, "a", ca.issue("a.example", expired=True), ca)
    b = context(tmp_path, "b", ca.issue("b.example"), ca)
    client, server = PeerTls(a, server_side=False), PeerTls(b, server_side=True)
    handshake(client, server)
    peer = server.peer_certificate()
    assert peer is not None and not peer.chain_valid and "expired" in peer.error


def test_garbage_is_a_tls_failure(tmp_path: Path) -> None:
    b = context(tmp_path, "b", self_signed("b.example"), None)
    with pytest.raises(TlsFailed):
        PeerTls(b, server_side=True).receive(b"<stream:stream xmlns='jabber:server'>" * 3)
