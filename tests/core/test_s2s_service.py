# tests: xmppd/s2s/service.py, xmppd/s2s/links.py, xmppd/listeners/s2s.py
"""Federation between in-memory servers over iosim connections (tests/harness/s2s_net.py):
the real shell, TLS with real certificates, S2SService and its links; time is a fake clock."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet import protocol

from tests.harness.pki import TestCA, self_signed
from tests.harness.s2s_net import Net
from tests.harness.server import parse
from xmppd.s2s.srv import Target


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    n = Net(tmp_path)
    yield n
    n.close()


@pytest.fixture
def ca_net(tmp_path: Path) -> Iterator[Net]:
    n = Net(tmp_path, ca=TestCA())
    yield n
    n.close()


def test_messages_cross_both_ways_by_dialback(net: Net) -> None:
    a, b = net.server("a.example"), net.server("b.example")
    alice, bob = a.login("alice@a.example/phone"), b.login("bob@b.example/pc")
    alice.send("<message to='bob@b.example/pc' type='chat' id='m1'><body>hi</body></message>")
    net.pump()
    bob.expect("<message from='alice@a.example/phone' to='bob@b.example/pc' type='chat' "
               "id='m1'><body>hi</body></message>")
    link = a.server.s2s.links[("a.example", "b.example")]
    assert link.ready_how == "dialback"
    bob.send("<message to='alice@a.example/phone' type='chat' id='m2'><body>yo</body></message>")
    net.pump()
    alice.expect("<message from='bob@b.example/pc' to='alice@a.example/phone' type='chat' "
                 "id='m2'><body>yo</body></message>")


def test_verifying_certificates_use_sasl_external_and_one_bidi_connection(ca_net: Net) -> None:
    a, b = ca_net.server("a.example"), ca_net.server("b.example")
    alice, bob = a.login("alice@a.example/phone"), b.login("bob@b.example/pc")
    alice.send("<message to='bob@b.example' type='chat'><body>1</body></message>")
    ca_net.pump()
    bob.expect("<message from='alice@a.example/phone' to='bob@b.example' type='chat'>"
               "<body>1</body></message>")
    assert a.server.s2s.links[("a.example", "b.example")].ready_how == "sasl"
    bob.send("<message to='alice@a.example' type='chat'><body>2</body></message>")
    ca_net.pump()
    alice.expect("<message from='bob@b.example/pc' to='alice@a.example' type='chat'>"
                 "<body>2</body></message>")
    # XEP-0288: b answered over a's connection; nobody opened a second one
    assert [d for d, _t in ca_net.connects] == ["a.example"]
    assert not b.server.s2s.links


def test_required_certificates_refuse_self_signed_peers(tmp_path: Path) -> None:
    net = Net(tmp_path)
    try:
        a = net.server("a.example", s2s={"require_valid_certificates": True})
        net.server("b.example")
        alice = a.login("alice@a.example/phone")
        alice.send("<message to='bob@b.example' type='chat' id='x'><body>1</body></message>")
        net.pump()
        err = alice.expect("<message from='bob@b.example' to='alice@a.example/phone' "
                           "type='error' id='x'><error type='cancel'>"
                           "<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                           "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' "
                           "xml:lang='en'>{any}</text></error></message>")
        assert "certificate" in "".join(err.itertext())
    finally:
        net.close()


def test_a_domain_without_a_server_bounces_at_once(net: Net) -> None:
    a = net.server("a.example")
    alice = a.login("alice@a.example/phone")
    alice.send("<message to='x@nowhere.example' type='chat' id='n'><body>?</body></message>")
    net.pump()
    got = alice.received()
    assert [e.get("type") for e in got] == ["error"]
    assert got[0][0][0].tag.endswith("remote-server-not-found")
    assert not a.server.s2s.links


def test_unreachable_targets_are_tried_in_order_then_bounced(net: Net) -> None:
    a = net.server("a.example")
    net.server("b.example")
    net.routes["b.example"] = [Target("dead.example", 5269), Target("b.example", 5269)]
    alice = a.login("alice@a.example/phone")
    alice.send("<message to='bob@b.example' type='chat'><body>1</body></message>")
    net.pump()
    assert [t.host for d, t in net.connects if d == "a.example"] == ["dead.example",
                                                                      "b.example"]
    # b.example has no bob and no offline storage: its answer crossed back (RFC 6121 §8.5.2.2)
    [answer] = alice.received()
    assert answer.get("from") == "bob@b.example" and answer[0][0].tag.endswith(
        "service-unavailable")
    net.routes["c.example"] = [Target("dead.example", 5269)]
    alice.send("<message to='carol@c.example' type='chat' id='c'><body>1</body></message>")
    net.pump()
    [err] = alice.received()
    assert err.get("type") == "error" and "refused" in "".join(err.itertext())


class Silent(protocol.Protocol):
    """A peer that accepts the connection and never says a word."""


def test_a_silent_server_bounces_queued_stanzas_after_the_timeout(net: Net) -> None:
    a = net.server("a.example", s2s={"connect_timeout": "20 s"})
    net.listeners[("silent.example", 5269)] = protocol.Factory.forProtocol(Silent)
    net.routes["silent.example"] = [Target("silent.example", 5269)]
    alice = a.login("alice@a.example/phone")
    for i in range(3):
        alice.send(f"<message to='x@silent.example' type='chat' id='q{i}'><body/></message>")
    net.pump()
    net.advance(19)
    assert alice.received() == []
    net.advance(1)
    got = alice.received()
    assert [e.get("id") for e in got] == ["q0", "q1", "q2"]
    assert all(e[0][0].tag.endswith("remote-server-timeout") for e in got)
    assert ("a.example", "silent.example") not in a.server.s2s.links


def test_the_queue_is_bounded(net: Net) -> None:
    a = net.server("a.example", s2s={"max_queue": 2})
    net.listeners[("silent.example", 5269)] = protocol.Factory.forProtocol(Silent)
    net.routes["silent.example"] = [Target("silent.example", 5269)]
    alice = a.login("alice@a.example/phone")
    for i in range(3):
        alice.send(f"<message to='x@silent.example' type='chat' id='q{i}'><body/></message>")
    net.pump()
    [err] = alice.received()
    assert err.get("id") == "q2" and err[0][0].tag.endswith("resource-constraint")
    net.advance(30)
    assert len(alice.received()) == 2


@pytest.mark.parametrize("policy", [{"deny": ["b.example"]}, {"allow": ["c.example"]}])
def test_policy_refuses_domains_without_connecting(net: Net, policy: dict[str, list[str]]
                                                   ) -> None:
    a = net.server("a.example", s2s=policy)
    net.server("b.example")
    alice = a.login("alice@a.example/phone")
    alice.send("<message to='bob@sub.b.example' type='chat' id='d'><body/></message>"
               if "deny" in policy else
               "<message to='bob@b.example' type='chat' id='d'><body/></message>")
    net.pump()
    [err] = alice.received()
    assert err[0][0].tag.endswith("remote-server-not-found") and net.connects == []


def test_policy_refuses_incoming_streams_from_denied_domains(net: Net) -> None:
    a = net.server("a.example")
    b = net.server("b.example", s2s={"deny": ["a.example"]})
    alice = a.login("alice@a.example/phone")
    b.login("bob@b.example/pc")
    alice.send("<message to='bob@b.example' type='chat' id='p'><body/></message>")
    net.pump()
    [err] = alice.received()
    assert err[0][0].tag.endswith("remote-server-not-found")
    assert "policy-violation" in "".join(err.itertext())


def test_idle_streams_close_and_the_next_stanza_reconnects(net: Net) -> None:
    a = net.server("a.example", s2s={"idle_timeout": "60 s"})
    b = net.server("b.example", s2s={"idle_timeout": "60 s"})
    alice, bob = a.login("alice@a.example/phone"), b.login("bob@b.example/pc")
    alice.send("<message to='bob@b.example/pc' type='chat'><body>1</body></message>")
    net.pump()
    bob.received()
    assert ("a.example", "b.example") in a.server.s2s.links
    net.advance(61)
    assert not a.server.s2s.links and not b.server.s2s.links
    assert not a.server.s2s.incoming and not b.server.s2s.incoming
    alice.send("<message to='bob@b.example/pc' type='chat'><body>2</body></message>")
    net.pump()
    assert [e.findtext("{jabber:client}body") for e in bob.received()] == ["2"]


def test_a_dialback_key_the_authoritative_server_denies_is_invalid(tmp_path: Path) -> None:
    net = Net(tmp_path)
    try:
        a = net.server("a.example")
        b = net.server("b.example")
        # a third server claims to be a.example: b asks a.example's real server, which
        # never issued that key.
        m = net.server("a.example.fake", cert=self_signed("a.example"), listen=False)
        m.server.s2s.keys = type(a.server.s2s.keys)(b"mallory")
        mallory = m.server.s2s
        bob = b.login("bob@b.example/pc")
        link = mallory._new_link("a.example.fake", "b.example")
        link.local = "a.example"            # forge the sender domain
        link.send(parse("<message from='alice@a.example/x' to='bob@b.example/pc'>"
                        "<body>forged</body></message>"))
        link.start()
        net.pump()
        assert link.state == "over" and link._failed is not None
        assert link._failed.reason == "dialback-invalid"
        bob.expect_nothing()
    finally:
        net.close()
