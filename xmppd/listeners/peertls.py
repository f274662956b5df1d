# tests: tests/core/test_peertls.py, tests/core/test_s2s_service.py
"""TLS between servers, as a sans-IO layer over pyOpenSSL memory BIOs (like tlslayer.py).

Unlike a client connection, a server-to-server one must go on when the peer's certificate does
not verify (Server Dialback, XEP-0220, may still authenticate it), so verification is recorded,
not enforced: the verify callback notes every error and lets the handshake finish. The stdlib
`ssl` module cannot do that (an unverified chain fails the handshake, and Python 3.11 cannot
hand out the peer's chain to verify later).
- Both roles present our certificate; as the accepting side we ask for the peer's (RFC 6120
  §13.7.1.2: SASL EXTERNAL rests on it), without requiring one.
- Trust: the system CA store plus `s2s.ca_file`. A certificate used for a purpose its
  extended key usage does not name (a serverAuth-only certificate presented by the connecting
  server, as many CAs now issue) still counts: XMPP servers use one certificate both ways.
- TLS 1.2+, no compression or renegotiation; SNI (the remote domain) and, for XEP-0368 direct
  TLS, ALPN "xmpp-server" on connections we open.
- `receive(ciphertext)` returns plaintext; `send(plaintext)` the ciphertext (plaintext sent
  before the handshake is held); `pending_output()` handshake bytes. `TlsFailed` on errors.
"""
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from OpenSSL import SSL, crypto

from xmppd.listeners.tlslayer import TlsFailed
from xmppd.s2s.certs import CertNames, PeerCertificate, names_of

_ALPN = b"xmpp-server"
_INVALID_PURPOSE = 26           # X509_V_ERR_INVALID_PURPOSE
_CHUNK = 65536


class PeerTlsContext:
    """The two pyOpenSSL contexts of this server's s2s connections."""

    def __init__(self, cert: Path, key: Path, *, ca_file: str = "") -> None:
        from xmppd.tls import TLSConfigError
        try:
            self.server = self._context(cert, key, ca_file, server_side=True)
            self.client = self._context(cert, key, ca_file, server_side=False)
        except SSL.Error as e:
            raise TLSConfigError(f"cannot set up TLS for federation (certificate {cert}, "
                                 f"key {key}, s2s.ca_file {ca_file!r}): {_error_text(e)}"
                                 ) from None

    @staticmethod
    def _context(cert: Path, key: Path, ca_file: str, *, server_side: bool) -> SSL.Context:
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD if server_side else SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        ctx.use_certificate_chain_file(str(cert))
        ctx.use_privatekey_file(str(key))
        ctx.check_privatekey()
        paths = ssl.get_default_verify_paths()
        if paths.cafile or paths.capath:
            ctx.load_verify_locations(paths.cafile, paths.capath)
        if ca_file:
            ctx.load_verify_locations(ca_file)
        ctx.set_verify(SSL.VERIFY_PEER, _record)
        if server_side:
            ctx.set_session_id(b"xmppd-s2s")
            ctx.set_alpn_select_callback(_select_alpn)
        return ctx


def _record(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
    layer = conn.get_app_data()
    if not ok and errno != _INVALID_PURPOSE and isinstance(layer, PeerTls):
        text = _VERIFY_ERRORS.get(errno, f"verify error {errno}")
        layer.verify_errors.append(f"{text} (depth {depth})")
    return True                 # never fail the handshake here: dialback may follow


_VERIFY_ERRORS = {      # X509_V_ERR_* codes an operator meets most (openssl verify(1))
    2: "unable to get issuer certificate", 9: "certificate is not yet valid",
    10: "certificate has expired", 18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate", 23: "certificate revoked",
    24: "invalid CA certificate", 7: "certificate signature failure",
}


def _select_alpn(conn: SSL.Connection, offered: list[bytes]) -> Any:
    return _ALPN if _ALPN in offered else SSL.NO_OVERLAPPING_PROTOCOLS


class PeerTls:
    def __init__(self, context: PeerTlsContext, *, server_side: bool, sni: str | None = None,
                 alpn: bool = False) -> None:
        self.server_side = server_side
        self.verify_errors: list[str] = []
        self.handshaken = False
        self._held: list[bytes] = []
        conn = SSL.Connection(context.server if server_side else context.client, None)
        conn.set_app_data(self)
        if server_side:
            conn.set_accept_state()
        else:
            if sni:
                conn.set_tlsext_host_name(sni.encode("idna"))
            if alpn:
                conn.set_alpn_protos([_ALPN])
            conn.set_connect_state()
        self._conn = conn

    def start(self) -> bytes:
        """The ClientHello, for the connecting side."""
        self._handshake()
        return self._drain()

    def receive(self, data: bytes) -> bytes:
        try:
            if data:
                self._conn.bio_write(data)
            if not self.handshaken and not self._handshake():
                return b""
            chunks = []
            while True:
                try:
                    chunks.append(self._conn.recv(_CHUNK))
                except SSL.WantReadError:
                    break
                except SSL.ZeroReturnError:
                    break           # close_notify: the TCP close follows
            return b"".join(chunks)
        except SSL.Error as e:
            raise TlsFailed(_error_text(e)) from None

    def _handshake(self) -> bool:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return False
        except SSL.Error as e:
            raise TlsFailed(_error_text(e)) from None
        self.handshaken = True
        return True

    def send(self, data: bytes) -> bytes:
        if not self.handshaken:
            self._held.append(data)
            return self._drain()
        if self._held:
            data, self._held = b"".join(self._held) + data, []
        try:
            if data:
                self._conn.sendall(data)
        except SSL.Error as e:
            raise TlsFailed(_error_text(e)) from None
        return self._drain()

    def pending_output(self) -> bytes:
        if self.handshaken and self._held:
            return self.send(b"")
        return self._drain()

    def _drain(self) -> bytes:
        out = []
        while True:
            try:
                chunk = self._conn.bio_read(_CHUNK)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            out.append(chunk)
        return b"".join(out)

    def close(self) -> bytes:
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass
        return self._drain()

    def peer_certificate(self) -> PeerCertificate | None:
        """What the handshake proved about the peer (None: it sent no certificate)."""
        cert = self._conn.get_peer_certificate()
        if cert is None:
            return None
        try:
            names = names_of(cert.to_cryptography())
        except ValueError:
            names = CertNames()
        return PeerCertificate(not self.verify_errors, names, "; ".join(self.verify_errors))

    @property
    def alpn(self) -> bytes:
        return self._conn.get_alpn_proto_negotiated()


def _error_text(e: SSL.Error) -> str:
    parts = [p for arg in e.args for p in (arg if isinstance(arg, list) else [arg])]
    return ", ".join(str(p[-1]) if isinstance(p, tuple) and p else str(p) for p in parts) \
        or type(e).__name__
