# tests: modules/register.py
"""XEP-0077 on the in-memory harness (the pre-auth path is covered by the slixmpp test)."""
from __future__ import annotations

from typing import Any, Callable

from lxml import etree

from tests.harness.server import Harness, parse, resolve
from xmppd.module import IqRequest


class FakeStream:
    def __init__(self, peer_ip: str | None) -> None:
        self.peer_ip = peer_ip


def preauth(h: Harness, xml: str, peer_ip: str = "127.0.0.1") -> etree._Element:
    """Run a pre-auth IQ the way the C2S shell does, returning the reply."""
    host = h.server.hosts["example.org"]
    el = parse(xml)
    payload = el[0]
    handler = host.iq_handlers[(el.get("type"), "preauth", payload.tag)]
    out: list[etree._Element] = []
    from stanzas.jid import JID
    req = IqRequest(el, JID.of(None, "example.org"), JID.of(None, "example.org"), payload,
                    FakeStream(peer_ip))
    h.server.router.call_iq_handler(handler, req, out.append)
    assert out
    return out[0]


def loopback(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(modules={"register": {"allow_from": ["127.0.0.0/8"]}})


def condition(el: etree._Element) -> str | None:
    err = el.find("{jabber:client}error")
    if err is None:
        return None
    return etree.QName(err[0]).localname


REGISTER_QUERY = "{jabber:iq:register}query"


def test_policy_and_feature_follow_allow_from(make_harness: Any) -> None:
    h = loopback(make_harness)
    host = h.server.hosts["example.org"]
    assert host.preauth_allowed("127.0.0.1", REGISTER_QUERY)
    assert not host.preauth_allowed("192.0.2.7", REGISTER_QUERY)
    assert not host.preauth_allowed(None, REGISTER_QUERY)
    assert host.stream_features_for("preauth", FakeStream("127.0.0.1"))
    assert host.stream_features_for("preauth", FakeStream("192.0.2.7")) == []


def test_registration_is_off_by_default(harness: Harness) -> None:
    assert not harness.server.hosts["example.org"].preauth_allowed("127.0.0.1", REGISTER_QUERY)


def test_fields_then_sign_up_then_conflict(make_harness: Any) -> None:
    h = loopback(make_harness)
    form = preauth(h, "<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>")
    assert form.get("type") == "result"
    assert form.find(".//{jabber:iq:register}username") is not None
    ok = preauth(h, "<iq type='set' id='r2'><query xmlns='jabber:iq:register'>"
                    "<username>Newbie</username><password>pw12</password></query></iq>")
    assert ok.get("type") == "result"
    assert resolve(h.server.stores.accounts.get("newbie", "example.org")) is not None
    dup = preauth(h, "<iq type='set' id='r3'><query xmlns='jabber:iq:register'>"
                     "<username>newbie</username><password>x</password></query></iq>")
    assert condition(dup) == "conflict"


def test_missing_fields_and_bad_names(make_harness: Any) -> None:
    h = loopback(make_harness)
    r = preauth(h, "<iq type='set' id='r4'><query xmlns='jabber:iq:register'>"
                   "<username>x</username></query></iq>")
    assert condition(r) == "not-acceptable"
    r = preauth(h, "<iq type='set' id='r5'><query xmlns='jabber:iq:register'>"
                   "<username>a@b</username><password>pw</password></query></iq>")
    assert condition(r) == "jid-malformed"
    r = preauth(h, "<iq type='set' id='r6'><query xmlns='jabber:iq:register'><remove/>"
                   "</query></iq>")
    assert condition(r) == "not-authorized"


def test_min_password_length(make_harness: Any) -> None:
    h = make_harness(modules={"register": {"allow_from": ["127.0.0.1"],
                                           "min_password_length": 8}})
    r = preauth(h, "<iq type='set' id='r7'><query xmlns='jabber:iq:register'>"
                   "<username>shorty</username><password>short</password></query></iq>")
    assert condition(r) == "not-acceptable"


def sign_up(h: Harness, name: str, stream: FakeStream) -> str | None:
    """The error condition of one sign-up on `stream` (None: the account was made)."""
    host = h.server.hosts["example.org"]
    el = parse("<iq type='set' id='s'><query xmlns='jabber:iq:register'><username>%s</username>"
               "<password>pw-%s</password></query></iq>" % (name, name))
    out: list[etree._Element] = []
    from stanzas.jid import JID
    req = IqRequest(el, JID.of(None, "example.org"), JID.of(None, "example.org"), el[0], stream)
    h.server.router.call_iq_handler(
        host.iq_handlers[("set", "preauth", el[0].tag)], req, out.append)
    return condition(out[0])


def test_one_account_per_stream(make_harness: Any) -> None:
    h = loopback(make_harness)
    stream = FakeStream("127.0.0.1")
    assert sign_up(h, "first", stream) is None
    assert sign_up(h, "second", stream) == "not-acceptable"      # XEP-0077 §3.1
    assert sign_up(h, "second", FakeStream("127.0.0.1")) is None


def test_sign_ups_per_address_and_in_total_within_the_window(make_harness: Any) -> None:
    h = make_harness(modules={"register": {"allow_from": ["127.0.0.0/8"], "max_per_ip": 2,
                                           "max_total": 3, "window": "1 h"}})
    assert sign_up(h, "a1", FakeStream("127.0.0.1")) is None
    assert sign_up(h, "a2", FakeStream("127.0.0.1")) is None
    assert sign_up(h, "a3", FakeStream("127.0.0.1")) == "resource-constraint"
    assert resolve(h.server.stores.accounts.get("a3", "example.org")) is None
    assert sign_up(h, "b1", FakeStream("127.0.0.2")) is None
    assert sign_up(h, "c1", FakeStream("127.0.0.3")) == "resource-constraint"   # 3 in all
    h.clock.advance(3600)
    assert sign_up(h, "a3", FakeStream("127.0.0.1")) is None
    assert sign_up(h, "c1", FakeStream("127.0.0.3")) is None


def test_limit_error_is_of_type_wait(make_harness: Any) -> None:
    h = make_harness(modules={"register": {"allow_from": ["127.0.0.0/8"], "max_per_ip": 1}})
    assert sign_up(h, "w1", FakeStream("127.0.0.1")) is None
    r = preauth(h, "<iq type='set' id='w'><query xmlns='jabber:iq:register'>"
                   "<username>w2</username><password>pw</password></query></iq>")
    assert condition(r) == "resource-constraint"
    assert r.find("{jabber:client}error").get("type") == "wait"       # type: ignore[union-attr]


def test_logged_in_user_sees_registered_and_changes_password(harness: Harness) -> None:
    alice = harness.login("alice@example.org/a")
    alice.send("<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>")
    alice.expect("<iq type='result' id='g1' from='alice@example.org' to='alice@example.org/a'>"
                 "<query xmlns='jabber:iq:register'><registered/><username>alice</username>"
                 "<password/></query></iq>")
    old = resolve(harness.server.stores.accounts.get("alice", "example.org")).credentials
    alice.send("<iq type='set' id='c1' to='example.org'><query xmlns='jabber:iq:register'>"
               "<username>alice</username><password>new-pw</password></query></iq>")
    alice.expect("<iq type='result' id='c1' from='example.org' to='alice@example.org/a'/>")
    new = resolve(harness.server.stores.accounts.get("alice", "example.org")).credentials
    assert new != old
    alice.send("<iq type='set' id='c2' to='example.org'><query xmlns='jabber:iq:register'>"
               "<username>bob</username><password>x</password></query></iq>")
    got = alice.received()[0]
    assert got.get("type") == "error"


def test_remove_answers_then_closes_sessions(harness: Harness) -> None:
    alice = harness.login("alice@example.org/a")
    other = harness.login("alice@example.org/b")
    alice.send("<iq type='set' id='x1'><query xmlns='jabber:iq:register'><remove/></query></iq>")
    alice.expect("<iq type='result' id='x1' from='alice@example.org' to='alice@example.org/a'/>")
    assert not alice.closed
    harness.clock.advance(0)
    assert alice.closed_with == "not-authorized" and other.closed_with == "not-authorized"
    assert resolve(harness.server.stores.accounts.get("alice", "example.org")) is None
