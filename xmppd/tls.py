# tests: tests/core/test_tlslayer.py, tests/core/test_config.py, tests/integration/test_limits.py
"""TLS contexts for listeners, and a self-signed certificate for development start-ups.

- TLS 1.2+ only (RFC 7590 §3.1 recommends against older versions). On TLS 1.2 only the
  forward-secret AEAD suites of Mozilla's "intermediate" profile with ECDHE (RFC 7525 §4.2,
  kept by RFC 9325 §4.2): no RSA key exchange, CBC, SHA-1 MACs, RC4 or 3DES; TLS 1.3's suites
  are all AEAD and stay as OpenSSL has them. The client picks among them (it knows whether it
  has AES hardware). No compression, no renegotiation by the client.
- `ensure_certificate` writes a self-signed RSA-2048 certificate naming every virtual host
  (as subjectAltName dNSName) when the configured files are missing and generation is on.
- `reload_certificates(cert, key)` loads a new pair into every context made here (SIGHUP,
  `xmppctl reload`): new handshakes use it, established connections keep theirs. The pair is
  checked in a scratch context first, so a bad file changes nothing.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import ssl as stdlib_ssl
import weakref
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet import ssl

CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"))
"""TLS 1.2 cipher suites offered (OpenSSL names)."""


class TLSConfigError(Exception):
    pass


# Every context handed to a listener, so a reload reaches them all (they live as long as
# their listeners).
_STREAM: weakref.WeakSet[stdlib_ssl.SSLContext] = weakref.WeakSet()
_HTTPS: weakref.WeakSet[ssl.CertificateOptions] = weakref.WeakSet()


def ensure_certificate(cert: Path, key: Path, hosts: list[str], *, generate: bool) -> bool:
    """Make a self-signed pair if missing (and allowed). True if one was generated."""
    if cert.exists() and key.exists():
        return False
    if not generate:
        raise TLSConfigError(f"TLS certificate {cert} or key {key} is missing "
                             "(set tls.generate_self_signed = true for development)")
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt: list[x509.GeneralName] = []
    for h in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h.strip("[]"))))
        except ValueError:
            alt.append(x509.DNSName(h))
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=825))
                   .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                   .sign(private, hashes.SHA256()))
    cert.parent.mkdir(parents=True, exist_ok=True)
    key.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return True


class StreamContext(stdlib_ssl.SSLContext):
    """A stdlib SSLContext that also knows the RFC 5929 `tls-server-end-point` hash of its
    certificate (SCRAM-*-PLUS channel binding, XEP-0440)."""
    end_point: bytes = b""


def stream_context(cert: Path, key: Path, *, alpn: list[str] | None = None) -> StreamContext:
    """A stdlib SSLContext for the client listeners' own TLS layer (xmppd/listeners/tlslayer.py):
    TLS 1.2+, no compression, no renegotiation, optional ALPN (XEP-0368: `xmpp-client`)."""
    from xmppd.listeners.channel_binding import end_point_hash
    ctx = StreamContext(stdlib_ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = stdlib_ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS)
    ctx.options |= stdlib_ssl.OP_NO_COMPRESSION | stdlib_ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, stdlib_ssl.SSLError) as e:
        raise TLSConfigError(f"cannot load TLS certificate {cert} / key {key}: {e}") from None
    ctx.end_point = end_point_hash(cert)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    _STREAM.add(ctx)
    return ctx


def server_context(cert: Path, key: Path, *, alpn: list[bytes] | None = None
                   ) -> ssl.CertificateOptions:
    """A pyOpenSSL context for Twisted's listenSSL (the HTTPS listener: ALPN http/1.1)."""
    try:
        key_pem = key.read_bytes()
        cert_pem = cert.read_bytes()
        pkey = crypto.load_privatekey(crypto.FILETYPE_PEM, key_pem)
        chain = x509.load_pem_x509_certificates(cert_pem)
    except (OSError, ValueError, crypto.Error) as e:
        raise TLSConfigError(f"cannot load TLS certificate {cert} / key {key}: {e}") from None
    leaf = crypto.X509.from_cryptography(chain[0])
    extra = [crypto.X509.from_cryptography(c) for c in chain[1:]]
    options = ssl.CertificateOptions(
        privateKey=pkey, certificate=leaf, extraCertChain=extra or None,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2, enableSessions=False,
        acceptableProtocols=alpn,
        acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(  # type: ignore[no-untyped-call]
            CIPHERS))
    # OpenSSL keeps ~34 KiB of read/write buffers per connection unless told to release them
    # when idle; most XMPP connections are idle most of the time (memory per idle connection is
    # a product goal, docs/PERFORMANCE.md).
    options.getContext().set_mode(SSL.MODE_RELEASE_BUFFERS)
    _HTTPS.add(options)
    return options


def in_use() -> bool:
    """Whether any listener of this process serves TLS with a context made here."""
    return bool(len(_STREAM) or len(_HTTPS))


def reload_certificates(cert: Path, key: Path) -> str:
    """Load `cert`/`key` into every listener context; returns the new certificate's subject
    and expiry. Raises TLSConfigError (and changes nothing) if the pair does not load."""
    scratch = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_SERVER)
    try:
        scratch.load_cert_chain(str(cert), str(key))
        leaf = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    except (OSError, ValueError, stdlib_ssl.SSLError) as e:
        raise TLSConfigError(f"cannot load TLS certificate {cert} / key {key}: {e}") from None
    for ctx in list(_STREAM):
        ctx.load_cert_chain(str(cert), str(key))
    for options in list(_HTTPS):
        pyssl = options.getContext()
        pyssl.use_certificate_chain_file(str(cert))
        pyssl.use_privatekey_file(str(key))
        pyssl.check_privatekey()
    return f"{leaf.subject.rfc4514_string()}, valid until {leaf.not_valid_after_utc:%Y-%m-%d}"


