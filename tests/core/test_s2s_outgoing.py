# tests: xmppd/s2s/outgoing.py, xmppd/s2s/incoming.py, xmppd/s2s/dialback.py
"""OutgoingStream: the stream we open to another server, sans-IO, fed what a peer would say;
then an OutgoingStream and an IncomingStream wired to each other (both of our sides), through
STARTTLS, SASL EXTERNAL, dialback with a third stream as the authoritative server, and bidi."""
from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from stanzas import ns
from tests.harness.s2s import Reader, names, q, s2s_header, stream_error
from tests.harness.server import parse
from xmppd.s2s.certs import CertNames, PeerCertificate
from xmppd.s2s.dialback import DialbackKeys
from xmppd.s2s.incoming import Authenticated, DialbackVerify, InboundSettings, IncomingStream
from xmppd.s2s.outgoing import Failed, OutboundSettings, OutgoingStream, Ready, VerifyResult
from xmppd.s2s.stream import Closed, Limits, Stanza, StartTLS

LOCAL = "example.org"
REMOTE = "remote.example"
KEYS = DialbackKeys(b"ours")
TRUSTED = PeerCertificate(True, CertNames(dns=(REMOTE,)))
UNTRUSTED = PeerCertificate(False, CertNames(dns=(REMOTE,)), "self-signed certificate")
LIMITS = Limits(auth_timeout=30, idle_timeout=300)


def settings(**kw: Any) -> OutboundSettings:
    base: dict[str, Any] = dict(limits=LIMITS, keys=KEYS, is_local=lambda d: d == LOCAL)
    base.update(kw)
    return OutboundSettings(**base)


class Remote:
    """The receiving server as a script: reads what we send, writes what it says."""

    def __init__(self, s: OutboundSettings | None = None) -> None:
        self.stream = OutgoingStream(s or settings(), LOCAL, REMOTE, now=0.0)
        self.reader = Reader()

    def send(self, data: str) -> None:
        self.stream.receive(data.encode(), 1.0)

    def recv(self) -> list[Any]:
        return self.reader.feed(self.stream.data_to_send())

    def header(self, features: str, **kw: Any) -> None:
        self.send(s2s_header(to=LOCAL, from_=REMOTE, stream_id="S1", **kw)
                  + f"<stream:features>{features}</stream:features>")

    def to_tls(self, peer: PeerCertificate, features: str) -> list[Any]:
        self.stream.connected()
        assert self.recv() == ["<stream>"]
        h = self.reader.header
        assert h is not None and (h.get("from"), h.get("to")) == (LOCAL, REMOTE)
        assert h.nsmap["db"] == ns.DIALBACK
        self.header(f"<starttls xmlns='{ns.TLS}'><required/></starttls>")
        assert names(self.recv()) == ["tls:starttls"]
        self.send(f"<proceed xmlns='{ns.TLS}'/>")
        assert self.stream.events() == [StartTLS()]
        self.stream.tls_started(peer)
        self.reader.restart()
        assert self.recv() == ["<stream>"]
        self.header(features)
        return self.recv()


EXTERNAL = f"<mechanisms xmlns='{ns.SASL}'><mechanism>EXTERNAL</mechanism></mechanisms>"
DIALBACK = f"<dialback xmlns='{ns.DIALBACK_FEATURE}'><errors/></dialback>"
BIDI = f"<bidi xmlns='{ns.BIDI_FEATURE}'/>"


def test_nothing_is_sent_before_the_connection() -> None:
    r = Remote()
    assert r.recv() == [] and r.stream.next_deadline() == 30.0


def test_external_then_restart_then_ready() -> None:
    r = Remote()
    [auth] = r.to_tls(TRUSTED, EXTERNAL + DIALBACK)
    assert auth.tag == q("sasl:auth") and auth.get("mechanism") == "EXTERNAL"
    assert auth.text == "ZXhhbXBsZS5vcmc="             # our domain, XEP-0178 §3
    r.send(f"<success xmlns='{ns.SASL}'/>")
    r.reader.restart()
    assert r.recv() == ["<stream>"]
    assert r.stream.events() == []
    r.header("")
    assert r.stream.events() == [Ready("sasl")]
    r.stream.send_stanza(parse(f"<message from='a@{LOCAL}' to='b@{REMOTE}'><body>x</body>"
                               "</message>"), 2.0)
    [msg] = r.recv()
    assert msg.tag == q("s:message") and msg.find(q("s:body")).text == "x"


def test_failed_external_falls_back_to_dialback() -> None:
    r = Remote()
    r.to_tls(UNTRUSTED, EXTERNAL + DIALBACK)
    r.send(f"<failure xmlns='{ns.SASL}'><not-authorized/></failure>")
    [res] = r.recv()
    assert res.tag == q("db:result") and (res.get("from"), res.get("to")) == (LOCAL, REMOTE)
    assert res.text == KEYS.key(REMOTE, LOCAL, "S1")
    r.send(f"<db:result from='{REMOTE}' to='{LOCAL}' type='valid'/>")
    assert r.stream.events() == [Ready("dialback")]


def test_dialback_result_for_another_pair_is_not_ours() -> None:
    r = Remote()
    r.to_tls(UNTRUSTED, DIALBACK)
    r.send(f"<db:result from='other.example' to='{LOCAL}' type='valid'/>")
    assert r.stream.events() == [] and r.stream.state == "dialback"


@pytest.mark.parametrize(("answer", "reason"), [
    ("type='invalid'/>", "dialback-invalid"),
    (f"type='error'><error type='cancel'><remote-server-not-found xmlns='{ns.STANZA_ERRORS}'/>"
     "</error></db:result>", "dialback-error"),
])
def test_dialback_refusals_fail_the_stream(answer: str, reason: str) -> None:
    r = Remote()
    r.to_tls(UNTRUSTED, DIALBACK)
    r.send(f"<db:result from='{REMOTE}' to='{LOCAL}' " + answer)
    events = r.stream.events()
    assert isinstance(events[0], Failed) and events[0].reason == reason
    assert isinstance(events[-1], Closed)


def test_a_peer_without_tls_is_left() -> None:
    r = Remote()
    r.stream.connected()
    r.recv()
    r.header(DIALBACK)
    items = r.recv()
    assert stream_error(items) == "policy-violation"
    assert isinstance(r.stream.events()[0], Failed)


def test_required_certificates_leave_an_unverified_peer() -> None:
    r = Remote(settings(require_valid_certificates=True))
    items = r.to_tls(UNTRUSTED, EXTERNAL + DIALBACK)
    assert stream_error(items) == "policy-violation"
    [failed, _closed] = r.stream.events()
    assert failed == Failed("certificate", "self-signed certificate")


def test_no_method_in_common_fails() -> None:
    r = Remote()
    r.stream.connected()
    r.recv()
    r.send(s2s_header(to=LOCAL, from_=REMOTE, stream_id="S1", dialback=False)
           + f"<stream:features><starttls xmlns='{ns.TLS}'/></stream:features>")
    r.recv()
    r.send(f"<proceed xmlns='{ns.TLS}'/>")
    r.stream.events()
    r.stream.tls_started(UNTRUSTED)
    r.reader.restart()
    r.recv()
    r.send(s2s_header(to=LOCAL, from_=REMOTE, stream_id="S2", dialback=False)
           + "<stream:features/>")
    assert stream_error(r.recv()) == "undefined-condition"
    assert r.stream.events()[0] == Failed("auth", "neither SASL EXTERNAL nor dialback")


def test_bidi_is_requested_when_offered_and_carries_stanzas_back() -> None:
    r = Remote()
    items = r.to_tls(TRUSTED, BIDI + EXTERNAL)
    assert names(items) == ["bidi:bidi", "sasl:auth"]
    r.send(f"<success xmlns='{ns.SASL}'/>")
    r.reader.restart()
    r.recv()
    r.header("")
    assert r.stream.events() == [Ready("sasl")]
    r.send(f"<message from='b@{REMOTE}/x' to='a@{LOCAL}'/>")
    [ev] = r.stream.events()
    assert isinstance(ev, Stanza) and ev.stanza.tag == "{%s}message" % ns.CLIENT
    r.send(f"<message from='b@other.example' to='a@{LOCAL}'/>")
    assert stream_error(r.recv()) == "invalid-from"


def test_stanzas_on_an_outgoing_stream_without_bidi_are_refused() -> None:
    r = Remote(settings(bidi=False))
    r.to_tls(TRUSTED, BIDI + EXTERNAL)
    r.send(f"<success xmlns='{ns.SASL}'/>")
    r.reader.restart()
    r.recv()
    r.header("")
    r.stream.events()
    r.send(f"<message from='b@{REMOTE}' to='a@{LOCAL}'/>")
    assert stream_error(r.recv()) == "unsupported-stanza-type"


def test_verify_requests_wait_for_the_stream_and_match_answers() -> None:
    r = Remote()
    r.stream.connected()
    r.stream.request_verify("ID1", "k1")
    assert r.recv() == ["<stream>"]            # not before TLS and authentication start
    r.header(f"<starttls xmlns='{ns.TLS}'/>")
    r.recv()
    r.send(f"<proceed xmlns='{ns.TLS}'/>")
    r.stream.events()
    r.stream.tls_started(UNTRUSTED)
    r.reader.restart()
    r.recv()
    r.header(DIALBACK)
    result, verify = r.recv()
    assert result.tag == q("db:result")
    assert (verify.tag, verify.get("id"), verify.text) == (q("db:verify"), "ID1", "k1")
    assert (verify.get("from"), verify.get("to")) == (LOCAL, REMOTE)
    r.send(f"<db:verify from='{REMOTE}' to='{LOCAL}' id='OTHER' type='valid'/>")
    assert r.stream.events() == []             # §3.1: answers nothing we asked
    r.send(f"<db:verify from='{REMOTE}' to='{LOCAL}' id='ID1' type='invalid'/>")
    assert r.stream.events() == [VerifyResult(REMOTE, LOCAL, "ID1", "invalid")]
    r.send(f"<db:verify from='{REMOTE}' to='{LOCAL}' id='ID1' type='valid'/>")
    assert r.stream.events() == []             # answered once only


def test_dialback_requests_on_our_outgoing_stream_get_an_error() -> None:
    r = Remote()
    r.to_tls(UNTRUSTED, DIALBACK)
    r.send(f"<db:result from='{REMOTE}' to='{LOCAL}'>key</db:result>")
    [err] = r.recv()
    assert err.get("type") == "error" and err[0][0].tag == q("stanza:feature-not-implemented")


def test_negotiation_has_a_deadline() -> None:
    r = Remote()
    r.stream.connected()
    r.recv()
    r.stream.on_timeout(30.0)
    assert stream_error(r.recv()) == "connection-timeout"


# -- both of our sides, wired ------------------------------------------------------------------
class Wire:
    """Our OutgoingStream (as LOCAL) talking to our IncomingStream (as REMOTE's server)."""

    def __init__(self, out_peer: PeerCertificate, in_peer: PeerCertificate, *,
                 theirs: DialbackKeys = DialbackKeys(b"theirs"), **inbound: Any) -> None:
        self.out = OutgoingStream(settings(), LOCAL, REMOTE, now=0.0)
        base: dict[str, Any] = dict(limits=LIMITS, is_local=lambda d: d == REMOTE,
                                    allowed=lambda d: True, keys=theirs)
        base.update(inbound)
        self.inc = IncomingStream(InboundSettings(**base), now=0.0)
        self.out_peer, self.in_peer = out_peer, in_peer
        self.out_events: list[Any] = []
        self.in_events: list[Any] = []

    def pump(self) -> None:
        for _ in range(50):
            a, b = self.out.data_to_send(), self.inc.data_to_send()
            if not a and not b:
                return
            if a:
                self.inc.receive(a, 1.0)
            if b:
                self.out.receive(b, 1.0)
            self.in_events += self.inc.events()
            for ev in self.out.events():
                self.out_events.append(ev)
                if isinstance(ev, StartTLS):
                    # <proceed/> arrived: both ends of one TLS connection finish together
                    self.inc.tls_started(self.in_peer)
                    self.out.tls_started(self.out_peer)
        raise AssertionError("the streams never settled")


def test_our_two_sides_agree_on_external() -> None:
    w = Wire(TRUSTED, PeerCertificate(True, CertNames(dns=(LOCAL,))))
    w.out.connected()
    w.pump()
    assert Ready("sasl") in w.out_events
    assert Authenticated(LOCAL, REMOTE, "sasl") in w.in_events
    w.out.send_stanza(parse(f"<message from='a@{LOCAL}/r' to='b@{REMOTE}'/>"), 2.0)
    w.pump()
    assert isinstance(w.in_events[-1], Stanza)


def test_our_two_sides_agree_on_dialback_verified_by_a_third_stream() -> None:
    # LOCAL's keys are KEYS; REMOTE must ask LOCAL's authoritative server (a stream of ours
    # that REMOTE opens to LOCAL, answered by an IncomingStream holding KEYS).
    w = Wire(UNTRUSTED, UNTRUSTED)
    w.out.connected()
    w.pump()
    [verify] = [e for e in w.in_events if isinstance(e, DialbackVerify)]
    back = OutgoingStream(settings(is_local=lambda d: d == REMOTE), REMOTE, LOCAL, now=0.0)
    auth = IncomingStream(InboundSettings(limits=LIMITS, is_local=lambda d: d == LOCAL,
                                          allowed=lambda d: True, keys=KEYS), now=0.0)
    back.request_verify(verify.stream_id, verify.key)
    back.connected()
    outcome: list[Any] = []
    for _ in range(50):
        a, b = back.data_to_send(), auth.data_to_send()
        if not a and not b:
            break
        auth.receive(a, 1.0) if a else None
        back.receive(b, 1.0) if b else None
        for ev in auth.events():
            if isinstance(ev, DialbackVerify):   # the third stream's own dialback: not here
                auth.dialback_result(ev.remote, ev.local, "remote-server-timeout")
        for ev in back.events():
            if isinstance(ev, StartTLS):
                auth.tls_started(UNTRUSTED)
                back.tls_started(UNTRUSTED)
            if isinstance(ev, VerifyResult):
                outcome.append(ev)
    assert outcome == [VerifyResult(LOCAL, REMOTE, verify.stream_id, "valid")]
    w.inc.dialback_result(verify.remote, verify.local, outcome[0].outcome)
    w.pump()
    assert Ready("dialback") in w.out_events
    assert Authenticated(LOCAL, REMOTE, "dialback") in w.in_events


def test_a_forged_key_is_found_invalid_by_the_authoritative_server() -> None:
    auth = IncomingStream(InboundSettings(limits=LIMITS, is_local=lambda d: d == LOCAL,
                                          allowed=lambda d: True, keys=KEYS, tls="optional"),
                          now=0.0)
    auth.receive(s2s_header(to=LOCAL, from_=REMOTE).encode(), 0.0)
    auth.data_to_send()
    forged = DialbackKeys(b"mallory").key(REMOTE, LOCAL, "S9")
    auth.receive(f"<db:verify from='{REMOTE}' to='{LOCAL}' id='S9'>{forged}</db:verify>"
                 .encode(), 0.0)
    [answer] = Reader().feed(b"<r xmlns:db='%s'>" % ns.DIALBACK.encode()
                             + auth.data_to_send())[1:]
    assert isinstance(answer, etree._Element) and answer.get("type") == "invalid"
