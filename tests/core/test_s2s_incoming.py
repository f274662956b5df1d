# tests: xmppd/s2s/incoming.py, xmppd/s2s/stream.py
"""IncomingStream: a stream another server opened to us, sans-IO: every negotiation branch
(STARTTLS, SASL EXTERNAL, dialback as receiving and as authoritative server, bidi), the
address checks on stanzas, the limits and the deadlines. Time is a float."""
from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from stanzas import ns
from tests.harness.s2s import Reader, b64, names, q, s2s_header, stream_error
from xmppd.s2s.certs import CertNames, PeerCertificate
from xmppd.s2s.dialback import DialbackKeys
from xmppd.s2s.incoming import Authenticated, DialbackVerify, InboundSettings, IncomingStream
from xmppd.s2s.stream import Closed, Limits, Stanza, StartTLS

LOCAL = "example.org"
REMOTE = "remote.example"
KEYS = DialbackKeys(b"s3cret")
TRUSTED = PeerCertificate(True, CertNames(dns=(REMOTE,)))
UNTRUSTED = PeerCertificate(False, CertNames(dns=(REMOTE,)), "self-signed certificate")
LOCALS = {LOCAL, "conference." + LOCAL}


def settings(**kw: Any) -> InboundSettings:
    base: dict[str, Any] = dict(
        limits=Limits(auth_timeout=60, idle_timeout=600, preauth_stanza_size=2048,
                      preauth_elements=16),
        is_local=lambda d: d in LOCALS, allowed=lambda d: d != "denied.example", keys=KEYS,
        hosts_hint=(LOCAL,))
    base.update(kw)
    return InboundSettings(**base)


class Peer:
    """The remote server's side of one IncomingStream."""

    def __init__(self, s: InboundSettings | None = None, *, now: float = 0.0) -> None:
        self.stream = IncomingStream(s or settings(), now=now, peer_ip="192.0.2.7")
        self.now = now
        self.reader = Reader()

    def send(self, data: str) -> None:
        self.stream.receive(data.encode(), self.now)

    def recv(self) -> list[Any]:
        return self.reader.feed(self.stream.data_to_send())

    def open(self, *, from_: str | None = REMOTE, to: str = LOCAL, **kw: Any) -> etree._Element:
        self.reader.restart()
        self.send(s2s_header(to=to, from_=from_, **kw))
        items = self.recv()
        assert items[0] == "<stream>", items
        assert items[1].tag == q("stream:features"), items
        return items[1]

    def starttls(self, peer: PeerCertificate | None) -> etree._Element:
        self.open()
        self.send(f"<starttls xmlns='{ns.TLS}'/>")
        assert names(self.recv()) == ["tls:proceed"]
        assert self.stream.events() == [StartTLS()]
        self.stream.tls_started(peer)
        return self.open()

    def dialback_pair(self, remote: str = REMOTE) -> None:
        """Authenticate `remote` -> LOCAL by dialback (verified as valid)."""
        self.send(f"<db:result from='{remote}' to='{LOCAL}'>k3y</db:result>")
        assert self.stream.events() == [DialbackVerify(remote, LOCAL, "k3y",
                                                       self.stream.stream_id)]
        self.stream.dialback_result(remote, LOCAL, "valid")
        [res] = self.recv()
        assert (res.tag, res.get("type")) == (q("db:result"), "valid")
        assert self.stream.events() == [Authenticated(remote, LOCAL, "dialback")]

    def closed_with(self) -> str | None:
        items = self.recv()
        assert items[-1] == "</stream>", items
        events = self.stream.events()
        assert isinstance(events[-1], Closed), events
        return stream_error(items)


def feature_names(features: etree._Element) -> list[str]:
    return names(list(features))


# -- the stream header ------------------------------------------------------------------------
@pytest.mark.parametrize(("header", "condition"), [
    (dict(to="unknown.example"), "host-unknown"),
    (dict(to=None), "host-unknown"),
    (dict(from_=LOCAL), "invalid-from"),                   # a peer claiming to be us
    (dict(from_="user@remote.example"), "invalid-from"),
    (dict(from_="denied.example"), "policy-violation"),    # s2s.deny
    (dict(version=None), "unsupported-version"),
])
def test_bad_headers_are_refused_after_our_header(header: dict[str, Any], condition: str) -> None:
    p = Peer()
    kw: dict[str, Any] = dict(to=LOCAL, from_=REMOTE)
    kw.update(header)
    p.send(s2s_header(**kw))
    items = p.recv()
    assert items[0] == "<stream>" and p.reader.header is not None
    assert p.reader.header.get("from") in (LOCAL, kw["to"])
    assert stream_error(items) == condition
    assert items[-1] == "</stream>"
    assert isinstance(p.stream.events()[-1], Closed)


def test_a_client_stream_namespace_is_refused() -> None:
    p = Peer()
    p.send(s2s_header(to=LOCAL, from_=REMOTE, xmlns=ns.CLIENT))
    assert p.closed_with() == "invalid-namespace"


def test_our_header_answers_with_the_pair_and_a_fresh_id() -> None:
    p = Peer()
    p.open()
    h = p.reader.header
    assert h is not None
    assert (h.get("from"), h.get("to"), h.get("version")) == (LOCAL, REMOTE, "1.0")
    assert h.nsmap["db"] == ns.DIALBACK and len(h.get("id") or "") >= 16


def test_service_domains_are_served_too() -> None:
    p = Peer()
    p.open(to="conference." + LOCAL)
    assert p.stream.local == "conference." + LOCAL


# -- STARTTLS ----------------------------------------------------------------------------------
def test_only_starttls_is_offered_on_a_plain_stream() -> None:
    assert feature_names(Peer().open()) == ["tls:starttls"]
    assert Peer().open().find(q("tls:starttls")).find(q("tls:required")) is not None


@pytest.mark.parametrize("first", [
    f"<db:result from='{REMOTE}' to='{LOCAL}'>k</db:result>",
    f"<auth xmlns='{ns.SASL}' mechanism='EXTERNAL'>=</auth>",
    f"<message from='a@{REMOTE}' to='b@{LOCAL}'/>",
])
def test_nothing_but_starttls_before_tls(first: str) -> None:
    p = Peer()
    p.open()
    p.send(first)
    assert p.closed_with() == "not-authorized"


def test_bytes_pipelined_after_starttls_are_dropped() -> None:
    p = Peer()
    p.open()
    p.send(f"<starttls xmlns='{ns.TLS}'/><db:result from='{REMOTE}' to='{LOCAL}'>k</db:result>")
    assert names(p.recv()) == ["tls:proceed"]
    assert p.stream.events() == [StartTLS()]
    p.stream.tls_started(UNTRUSTED)
    p.open()
    assert p.stream.events() == []


def test_starttls_on_a_secure_stream_fails() -> None:
    p = Peer()
    p.starttls(TRUSTED)
    p.send(f"<starttls xmlns='{ns.TLS}'/>")
    items = p.recv()
    assert names(items) == ["tls:failure", "</stream>"]


def test_optional_tls_offers_the_rest_beside_starttls() -> None:
    f = Peer(settings(tls="optional")).open()
    assert feature_names(f) == ["tls:starttls", "dbf:dialback", "bidif:bidi"]
    assert f.find(q("tls:starttls")).find(q("tls:required")) is None


# -- SASL EXTERNAL -----------------------------------------------------------------------------
def test_external_is_offered_when_the_certificate_proves_the_sender() -> None:
    f = Peer().starttls(TRUSTED)
    assert feature_names(f) == ["sasl:mechanisms", "dbf:dialback", "bidif:bidi"]
    assert [m.text for m in f.find(q("sasl:mechanisms"))] == ["EXTERNAL"]
    assert f.find(q("dbf:dialback")).find(q("dbf:errors")) is not None


@pytest.mark.parametrize("peer", [UNTRUSTED, None,
                                  PeerCertificate(True, CertNames(dns=("other.example",)))])
def test_no_external_without_a_certificate_for_the_sender(peer: PeerCertificate | None) -> None:
    assert feature_names(Peer().starttls(peer)) == ["dbf:dialback", "bidif:bidi"]


def test_no_dialback_feature_without_the_dialback_namespace() -> None:
    p = Peer()
    p.open(dialback=False)
    p.send(f"<starttls xmlns='{ns.TLS}'/>")
    p.recv()
    p.stream.tls_started(UNTRUSTED)
    assert feature_names(p.open(dialback=False)) == ["bidif:bidi"]


@pytest.mark.parametrize("authzid", ["=", b64(REMOTE), ""])
def test_external_success_authenticates_the_pair_and_restarts(authzid: str) -> None:
    p = Peer()
    p.starttls(TRUSTED)
    p.send(f"<auth xmlns='{ns.SASL}' mechanism='EXTERNAL'>{authzid}</auth>")
    assert names(p.recv()) == ["sasl:success"]
    assert p.stream.events() == [Authenticated(REMOTE, LOCAL, "sasl")]
    assert feature_names(p.open()) == []            # after SASL: nothing more to negotiate
    p.send(f"<message from='juliet@{REMOTE}/x' to='romeo@{LOCAL}'><body>hi</body></message>")
    [ev] = p.stream.events()
    assert isinstance(ev, Stanza)
    assert ev.stanza.tag == "{%s}message" % ns.CLIENT
    assert ev.stanza.find("{%s}body" % ns.CLIENT).text == "hi"


@pytest.mark.parametrize(("auth", "condition"), [
    (f"<auth xmlns='{ns.SASL}' mechanism='EXTERNAL'>{b64('other.example')}</auth>",
     "invalid-authzid"),
    (f"<auth xmlns='{ns.SASL}' mechanism='EXTERNAL'>!!</auth>", "incorrect-encoding"),
    (f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'>AGEAYg==</auth>", "invalid-mechanism"),
])
def test_external_failures_leave_the_stream_open(auth: str, condition: str) -> None:
    p = Peer()
    p.starttls(TRUSTED)
    p.send(auth)
    [failure] = p.recv()
    assert failure.tag == q("sasl:failure") and etree.QName(failure[0]).localname == condition
    assert p.stream.events() == [] and p.stream.state != "closed"
    p.send(f"<db:result from='{REMOTE}' to='{LOCAL}'>k</db:result>")   # XEP-0178 §3
    assert p.stream.events() == [Authenticated(REMOTE, LOCAL, "certificate")]


def test_external_without_a_proving_certificate_is_not_authorized() -> None:
    p = Peer()
    p.starttls(UNTRUSTED)
    p.send(f"<auth xmlns='{ns.SASL}' mechanism='EXTERNAL'>=</auth>")
    [failure] = p.recv()
    assert etree.QName(failure[0]).localname == "not-authorized"


# -- dialback as the receiving server ----------------------------------------------------------
def test_dialback_key_is_verified_with_the_authoritative_server() -> None:
    p = Peer()
    p.starttls(UNTRUSTED)
    p.dialback_pair()
    p.send(f"<presence from='juliet@{REMOTE}/x' to='romeo@{LOCAL}'/>")
    [ev] = p.stream.events()
    assert isinstance(ev, Stanza) and ev.stanza.tag == "{%s}presence" % ns.CLIENT


def test_a_certificate_for_the_sender_makes_dialback_valid_at_once() -> None:
    p = Peer()
    p.starttls(TRUSTED)
    p.send(f"<db:result from='{REMOTE}' to='{LOCAL}'>k3y</db:result>")
    [res] = p.recv()
    assert res.get("type") == "valid"
    assert p.stream.events() == [Authenticated(REMOTE, LOCAL, "certificate")]


def test_invalid_key_closes_a_stream_with_no_other_pair() -> None:
    p = Peer()
    p.starttls(UNTRUSTED)
    p.send(f"<db:result from='{REMOTE}' to='{LOCAL}'>bad</db:result>")
    p.stream.events()
    p.stream.dialback_result(REMOTE, LOCAL, "invalid")
    items = p.recv()
    assert items[0].get("type") == "invalid" and items[-1] == "</stream>"


def test_invalid_key_for_a_second_domain_keeps_the_stream() -> None:
    p = Peer()
    p.starttls(UNTRUSTED)
    p.dialback_pair()
    p.send(f"<db:result from='chat.{REMOTE}' to='{LOCAL}'>bad</db:result>")
    p.stream.events()
    p.stream.dialback_result("chat." + REMOTE, LOCAL, "invalid")
    [res] = p.recv()
    assert res.get("type") == "error" and res[0][0].tag == q("stanza:forbidden")
    assert p.stream.state != "closed"
    p.send(f"<message from='x@chat.{REMOTE}' to='romeo@{LOCAL}'/>")
    assert p.closed_with() == "invalid-from"


def test_dialback_errors_are_reported_not_fatal() -> None:
    p = Peer()
    p.starttls(UNTRUSTED)
    p.send(f"<db:result from='{REMOTE}' to='{LOCAL}'>k</db:result>")
    p.stream.events()
    p.stream.dialback_result(REMOTE, LOCAL, "remote-server-timeout")
    [res] = p.recv()
    assert (res.get("type"), res.get("from"), res.get("to")) == ("error", LOCAL, REMOTE)
    assert res[0][0].tag == q("stanza:remote-server-timeout")
    assert p.stream.state != "closed"


def test_an_answer_for_no_pending_request_is_ignored() -> None:
    p = Peer()
    p.starttls(UNTRUSTED)
    p.stream.dialback_result(REMOTE, LOCAL, "valid")
    assert p.recv() == [] and p.stream.pairs == set()


@pytest.mark.parametrize(("element", "condition"), [
    (f"<db:result from='{REMOTE}' to='elsewhere.example'>k</db:result>", "item-not-found"),
    ("<db:result from='denied.example' to='example.org'>k</db:result>", "policy-violation"),
    (f"<db:result from='{LOCAL}' to='{LOCAL}'>k</db:result>", "policy-violation"),
    (f"<db:result from='{REMOTE}' to='{LOCAL}'></db:result>", "bad-request"),
])
def test_dialback_requests_refused_with_errors(element: str, condition: str) -> None:
    p = Peer()
    p.starttls(UNTRUSTED)
    p.send(element)
    [res] = p.recv()
    assert res.get("type") == "error" and etree.QName(res[0][0]).localname == condition
    assert p.stream.events() == [] and p.stream.state != "closed"


def test_required_certificates_refuse_dialback_without_one() -> None:
    p = Peer(settings(require_valid_certificates=True))
    p.starttls(UNTRUSTED)
    p.send(f"<db:result from='{REMOTE}' to='{LOCAL}'>k</db:result>")
    [res] = p.recv()
    assert res[0][0].tag == q("stanza:not-authorized") and p.stream.events() == []


def test_unsolicited_dialback_answers_are_dropped() -> None:
    p = Peer()
    p.starttls(UNTRUSTED)
    p.send(f"<db:result from='{REMOTE}' to='{LOCAL}' type='valid'/>"
           f"<db:verify from='{REMOTE}' to='{LOCAL}' id='x' type='valid'/>")
    assert p.recv() == [] and p.stream.events() == [] and not p.stream.pairs
    p.send(f"<message from='a@{REMOTE}' to='b@{LOCAL}'/>")
    assert p.closed_with() == "not-authorized"


# -- dialback as the authoritative server ------------------------------------------------------
def test_verify_requests_are_answered_from_our_keys() -> None:
    p = Peer()
    p.starttls(UNTRUSTED)
    good = KEYS.key(REMOTE, LOCAL, "abc")
    p.send(f"<db:verify from='{REMOTE}' to='{LOCAL}' id='abc'>{good}</db:verify>"
           f"<db:verify from='{REMOTE}' to='{LOCAL}' id='abd'>{good}</db:verify>"
           f"<db:verify from='{REMOTE}' to='nowhere.example' id='abc'>{good}</db:verify>")
    a, b, c = p.recv()
    assert (a.get("type"), a.get("from"), a.get("to"), a.get("id")) == (
        "valid", LOCAL, REMOTE, "abc")
    assert b.get("type") == "invalid"
    assert c.get("type") == "error" and c[0][0].tag == q("stanza:item-not-found")
    assert p.stream.pairs == set() and p.stream.state != "closed"


# -- stanzas -----------------------------------------------------------------------------------
def authenticated() -> Peer:
    p = Peer()
    p.starttls(UNTRUSTED)
    p.dialback_pair()
    return p


@pytest.mark.parametrize(("stanza", "condition"), [
    (f"<message from='mallory@evil.example' to='romeo@{LOCAL}'/>", "invalid-from"),
    (f"<message from='romeo@{LOCAL}/x' to='juliet@{LOCAL}'/>", "invalid-from"),
    (f"<message from='{LOCAL}' to='juliet@{LOCAL}'/>", "invalid-from"),
    (f"<message from='a@{REMOTE}' to='b@other.example'/>", "host-unknown"),
    (f"<message to='b@{LOCAL}'/>", "improper-addressing"),
    (f"<iq from='a@{REMOTE}' type='get' id='1'/>", "improper-addressing"),
    (f"<message from='a@@{REMOTE}' to='b@{LOCAL}'/>", "improper-addressing"),
    ("<foo xmlns='urn:example'/>", "unsupported-stanza-type"),
    (f"<message xmlns='{ns.CLIENT}' from='a@{REMOTE}' to='b@{LOCAL}'/>",
     "unsupported-stanza-type"),
])
def test_stanzas_that_may_not_pass_close_the_stream(stanza: str, condition: str) -> None:
    p = authenticated()
    p.send(stanza)
    assert p.closed_with() == condition


def test_stanzas_to_service_domains_pass() -> None:
    p = authenticated()
    p.send(f"<presence from='a@{REMOTE}/r' to='room@conference.{LOCAL}/nick'/>")
    [ev] = p.stream.events()
    assert isinstance(ev, Stanza)


def test_forwarded_stanzas_keep_their_namespace() -> None:
    p = authenticated()
    p.send(f"<message from='a@{REMOTE}' to='b@{LOCAL}'><body>x</body>"
           "<result xmlns='urn:xmpp:mam:2'><forwarded xmlns='urn:xmpp:forward:0'>"
           "<message xmlns='jabber:client' from='c@d'><body>y</body></message></forwarded>"
           "</result><error type='cancel'/></message>")
    [ev] = p.stream.events()
    assert isinstance(ev, Stanza)
    data = etree.tostring(ev.stanza)
    assert data.startswith(b'<message xmlns="jabber:client"')
    assert b"jabber:server" not in data
    inner = ev.stanza.find(".//{urn:xmpp:forward:0}forwarded/{%s}message" % ns.CLIENT)
    assert inner is not None and inner.find("{%s}body" % ns.CLIENT).text == "y"


def test_preauth_limits_hold_until_a_pair_is_authenticated() -> None:
    big = "x" * 4000
    p = Peer()
    p.starttls(UNTRUSTED)
    p.send(f"<db:result from='{REMOTE}' to='{LOCAL}'>{big}</db:result>")
    assert p.closed_with() == "policy-violation"
    p = authenticated()
    p.send(f"<message from='a@{REMOTE}' to='b@{LOCAL}'><body>{big}</body></message>")
    assert isinstance(p.stream.events()[0], Stanza)


def test_bidi_is_remembered() -> None:
    p = Peer()
    p.starttls(UNTRUSTED)
    p.send(f"<bidi xmlns='{ns.BIDI}'/>")
    assert p.stream.bidi and p.recv() == []


# -- endings and deadlines ---------------------------------------------------------------------
def test_the_peers_close_is_answered() -> None:
    p = authenticated()
    p.send("</stream:stream>")
    assert p.closed_with() is None


def test_the_peers_stream_error_is_kept() -> None:
    p = authenticated()
    p.send(f"<stream:error><system-shutdown xmlns='{ns.STREAM_ERRORS}'/></stream:error>")
    items = p.recv()
    assert items[-1] == "</stream>" and stream_error(items) is None
    assert p.stream.events() == [Closed(None, "system-shutdown")]


def test_authentication_must_finish_in_time() -> None:
    p = Peer(now=100.0)
    p.open()
    assert p.stream.next_deadline() == 160.0
    p.stream.on_timeout(159.0)
    assert p.stream.state != "closed"
    p.stream.on_timeout(160.0)
    assert p.closed_with() == "connection-timeout"


def test_an_idle_stream_is_closed_cleanly() -> None:
    p = authenticated()
    p.now = 50.0
    p.send(" ")
    assert p.stream.next_deadline() == 650.0
    p.stream.on_timeout(650.0)
    assert p.closed_with() is None
