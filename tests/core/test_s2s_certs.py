# tests: xmppd/s2s/certs.py
"""Which domains a certificate proves (RFC 6125 §6, RFC 6120 §13.7.1.2)."""
from __future__ import annotations

import pytest
from cryptography import x509

from tests.harness.pki import TestCA, server_names
from xmppd.s2s.certs import CertNames, PeerCertificate, names_of


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


def test_dns_name_matches_case_insensitively(ca: TestCA) -> None:
    names = names_of(ca.issue("Example.ORG", [x509.DNSName("Example.ORG")]).cert)
    assert names.matches("example.org")
    assert names.matches("EXAMPLE.org.")
    assert not names.matches("other.org")


def test_wildcard_covers_exactly_one_label(ca: TestCA) -> None:
    names = names_of(ca.issue("example.org", [x509.DNSName("*.example.org")]).cert)
    assert names.matches("conference.example.org")
    assert not names.matches("example.org")
    assert not names.matches("a.b.example.org")


def test_wildcard_over_a_single_label_is_refused() -> None:
    assert not CertNames(dns=("*.org",)).matches("example.org")
    assert not CertNames(dns=("*.",)).matches("org")


def test_srv_id_and_xmpp_addr_are_identities(ca: TestCA) -> None:
    srv = names_of(ca.issue("x", server_names(["example.org"], srv=True, dns=False)).cert)
    assert srv.srv == ("_xmpp-server.example.org",)
    assert srv.matches("example.org") and not srv.matches("x")
    xmpp = names_of(ca.issue("x", server_names(["example.org"], xmpp=True, dns=False)).cert)
    assert xmpp.xmpp == ("example.org",)
    assert xmpp.matches("example.org")


def test_srv_id_for_another_service_does_not_count() -> None:
    assert not CertNames(srv=("_imap.example.org",)).matches("example.org")
    assert CertNames(srv=("_xmpps-server.example.org",)).matches("example.org")


def test_common_name_counts_only_without_subject_alt_names(ca: TestCA) -> None:
    only_cn = names_of(ca.issue("example.org", []).cert)
    assert only_cn.cn == ("example.org",) and only_cn.matches("example.org")
    with_san = names_of(ca.issue("example.org", [x509.DNSName("other.org")]).cert)
    assert not with_san.matches("example.org")


def test_idn_domains_compare_as_a_labels() -> None:
    assert CertNames(dns=("xn--mnchen-3ya.example",)).matches("münchen.example")


def test_a_certificate_proves_nothing_unless_its_chain_verified() -> None:
    names = CertNames(dns=("example.org",))
    assert PeerCertificate(True, names).proves("example.org")
    assert not PeerCertificate(False, names, "self-signed").proves("example.org")
    assert not PeerCertificate(True, names).proves("example.net")
