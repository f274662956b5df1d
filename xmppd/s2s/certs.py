# tests: tests/core/test_s2s_certs.py
"""Which XMPP domains a peer's certificate proves (RFC 6120 §13.7.1.2, RFC 6125 §6), sans-IO.

- The chain is checked by OpenSSL during the handshake (xmppd/listeners/peertls.py) against the
  system CA store and `s2s.ca_file`; `PeerCertificate.chain_valid` carries the outcome and
  `names` what the leaf certificate says.
- Reference identifiers, in RFC 6125 order: SRV-ID (`_xmpp-server.<domain>`, id-on-dnsSRV),
  DNS-ID (subjectAltName dNSName, a `*` only as the whole left-most label, matching exactly one
  label, never a public suffix alone), and XmppAddr (id-on-xmppAddr, RFC 6120 §13.7.1.4). The
  subject's Common Name counts only when the certificate has no subjectAltName identifier of
  those kinds (RFC 6125 §6.4.4).
- Domains compare case-insensitively, IDNs as their A-labels (certificates carry A-labels).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

ID_ON_XMPPADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")
ID_ON_DNSSRV = ObjectIdentifier("1.3.6.1.5.5.7.8.7")


@dataclass(frozen=True, slots=True)
class CertNames:
    dns: tuple[str, ...] = ()     # dNSName, lower-case A-labels, wildcards kept
    srv: tuple[str, ...] = ()     # SRVName values ("_xmpp-server.example.org")
    xmpp: tuple[str, ...] = ()    # XmppAddr values
    cn: tuple[str, ...] = ()      # subject CNs (used only without the above)

    def matches(self, domain: str) -> bool:
        """Whether these names identify the XMPP server `domain` (RFC 6125 §6)."""
        want = _a_label(domain)
        if want is None:
            return False
        for srv in self.srv:
            service, _, name = srv.partition(".")
            if service in ("_xmpp-server", "_xmpps-server") and _a_label(name) == want:
                return True
        if any(_dns_match(pattern, want) for pattern in self.dns):
            return True
        if any(_a_label(x) == want for x in self.xmpp):
            return True
        if not (self.dns or self.srv or self.xmpp):
            return any(_a_label(cn) == want for cn in self.cn)
        return False


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """What TLS learnt about the peer: whether its chain verified, and the leaf's names."""
    chain_valid: bool
    names: CertNames = field(default_factory=CertNames)
    error: str = ""               # why the chain did not verify, for logs

    def proves(self, domain: str) -> bool:
        return self.chain_valid and self.names.matches(domain)


def names_of(cert: x509.Certificate) -> CertNames:
    dns: list[str] = []
    srv: list[str] = []
    xmpp: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        san = None
    if san is not None:
        dns = [d.lower() for d in san.get_values_for_type(x509.DNSName)]
        for other in san.get_values_for_type(x509.OtherName):
            text = _der_string(other.value)
            if text is None:
                continue
            if other.type_id == ID_ON_XMPPADDR:
                xmpp.append(text)
            elif other.type_id == ID_ON_DNSSRV:
                srv.append(text.lower())
    cn = [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return CertNames(tuple(dns), tuple(srv), tuple(xmpp), tuple(cn))


def _a_label(domain: str) -> str | None:
    domain = domain.rstrip(".").lower()
    if not domain:
        return None
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain if domain.isascii() else None


def _dns_match(pattern: str, domain: str) -> bool:
    if not pattern.startswith("*."):
        return _a_label(pattern) == domain
    # RFC 6125 §6.4.3: the wildcard is the whole left-most label and stands for one label;
    # "*.com" style patterns (one label after the star) are refused.
    rest = _a_label(pattern[2:])
    if rest is None or "." not in rest or "*" in rest:
        return False
    head, dot, tail = domain.partition(".")
    return bool(dot) and bool(head) and tail == rest


def _der_string(data: bytes) -> str | None:
    """The text of a DER UTF8String / IA5String (an otherName value, possibly wrapped in the
    [0] EXPLICIT tag cryptography leaves on it); None for anything else."""
    if data[:1] == b"\xa0":
        inner = _der_value(data)
        if inner is None:
            return None
        data = inner
    if data[:1] not in (b"\x0c", b"\x16"):
        return None
    value = _der_value(data)
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _der_value(data: bytes) -> bytes | None:
    if len(data) < 2:
        return None
    length = data[1]
    start = 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 3 or len(data) < 2 + n:
            return None
        length = int.from_bytes(data[2:2 + n], "big")
        start = 2 + n
    if len(data) != start + length:
        return None
    return data[start:]
