# tests: tests/core/test_s2s_certs.py, tests/core/test_s2s_service.py, tests/integration/
"""Test certificates made with `cryptography`: a test CA issuing server certificates (with the
XMPP name forms of RFC 6120 §13.7.1.2), and self-signed ones. EC P-256 keys: fast to make."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

XMPP_ADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")
DNS_SRV = ObjectIdentifier("1.3.6.1.5.5.7.8.7")


def _utf8(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 128
    return bytes([0x0C, len(data)]) + data


def _ia5(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 128
    return bytes([0x16, len(data)]) + data


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def cert_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM)
                        for c in (self.cert, *self.chain))

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def write(self, cert: Path, key: Path) -> None:
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o644)        # read by servers running as their own users in tests


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey,
             days: int = 30, *, expired: bool = False) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(days=400 if expired else 1)
    end = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=days)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end))


def server_names(domains: list[str], *, wildcard: bool = False, srv: bool = False,
                 xmpp: bool = False, dns: bool = True) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for d in domains:
        if dns:
            names.append(x509.DNSName(d))
            if wildcard:
                names.append(x509.DNSName("*." + d))
        if srv:
            names.append(x509.OtherName(DNS_SRV, _ia5("_xmpp-server." + d)))
        if xmpp:
            names.append(x509.OtherName(XMPP_ADDR, _utf8(d)))
    return names


class TestCA:
    __test__ = False            # not a pytest class

    def __init__(self, name: str = "xmppd test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(name)
        self.cert = (_builder(name, self.name, self.key, days=60)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                  False, False), True)
                     .sign(self.key, hashes.SHA256()))

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, cn: str, names: list[x509.GeneralName] | None = None, *,
              expired: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        b = _builder(cn, self.name, key, expired=expired)
        if names is None:
            names = server_names([cn])
        if names:
            b = b.add_extension(x509.SubjectAlternativeName(names), False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                   ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        return Issued(b.sign(self.key, hashes.SHA256()), key)


def self_signed(cn: str, names: list[x509.GeneralName] | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    b = _builder(cn, _name(cn), key)
    if names is None:
        names = server_names([cn])
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(names), False)
    return Issued(b.sign(key, hashes.SHA256()), key)
