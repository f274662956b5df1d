"""XEP-0115 entity capabilities on the in-memory harness: the verification string (§5.1),
verification of a client's answer (§5.4), the shared cache and what PEP sees of it."""
from __future__ import annotations

import logging
from collections.abc import Callable
import pytest
from lxml import etree

from modules.caps import CapsService, verification_string, verified
from tests.harness.server import HarnessClient, Harness, resolve
from tests.modules.contacts import make_contacts
from tests.modules.pep_helpers import (
    INFO, MODULES, TUNE, answer, caps, caps_presence, disco_query, event_items, notify, ok,
    online, publish, result_of, tune)
from xmppd import hooks
from stanzas.jid import JID

A, B = "alice@example.org", "bob@example.org"


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(modules=dict(MODULES))


def info(body: str) -> etree._Element:
    return etree.fromstring(f"<query xmlns='{INFO}'>{body}</query>")


def features(h: Harness, session: HarnessClient) -> frozenset[str]:
    service = h.server.hosts["example.org"].services[CapsService]
    assert isinstance(service, CapsService)
    return service.features(session.jid)


def recorded(h: Harness) -> list[hooks.CapsChanged]:
    seen: list[hooks.CapsChanged] = []
    h.server.hosts["example.org"].hooks.add(hooks.caps_changed, seen.append)
    return seen


# -- the verification string (§5.1) ---------------------------------------------------------

def test_simple_example_of_the_xep() -> None:
    q = info("<identity category='client' type='pc' name='Exodus 0.9.1'/>"
             "<feature var='http://jabber.org/protocol/caps'/>"
             "<feature var='http://jabber.org/protocol/disco#info'/>"
             "<feature var='http://jabber.org/protocol/disco#items'/>"
             "<feature var='http://jabber.org/protocol/muc'/>")
    assert verified(q, "sha-1", "QgayPKawpkPSDYmwT/WM94uAlu0=") == {
        "http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc"}
    assert verified(q, "sha-1", "QgayPKawpkPSDYmwT/WM94uAlu1=") is None


COMPLEX = (
    "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
    "<identity xml:lang='el' category='client' name='\u03a8 0.11' type='pc'/>"
    "<feature var='http://jabber.org/protocol/caps'/>"
    "<feature var='http://jabber.org/protocol/disco#info'/>"
    "<feature var='http://jabber.org/protocol/disco#items'/>"
    "<feature var='http://jabber.org/protocol/muc'/>"
    "<x xmlns='jabber:x:data' type='result'>"
    "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>"
    "<field var='ip_version' type='text-multi'><value>ipv4</value><value>ipv6</value></field>"
    "<field var='os'><value>Mac</value></field>"
    "<field var='os_version'><value>10.5.1</value></field>"
    "<field var='software'><value>Psi</value></field>"
    "<field var='software_version'><value>0.11</value></field></x>")


def test_complex_example_with_a_data_form() -> None:
    assert verified(info(COMPLEX), "sha-1", "q07IKJEyjvHSyhy//CH0CxmKi8w=") is not None
    # field order and value order in the answer do not matter (§5.1 sorts them)
    shuffled = COMPLEX.replace("<value>ipv4</value><value>ipv6</value>",
                               "<value>ipv6</value><value>ipv4</value>")
    assert verified(info(shuffled), "sha-1", "q07IKJEyjvHSyhy//CH0CxmKi8w=") is not None


@pytest.mark.parametrize("body", [
    "<identity category='client' type='pc'/><identity category='client' type='pc'/>",  # 3.3
    "<feature var='a'/><feature var='a'/>",                                              # 3.4
    ("<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
     "<value>urn:a</value></field></x>") * 2,                                            # 3.5
    ("<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
     "<value>urn:a</value><value>urn:b</value></field></x>"),                            # 3.5
])
def test_ill_formed_answers_never_verify(body: str) -> None:
    assert verification_string(info(body)) is None


def test_forms_without_a_hidden_form_type_are_ignored() -> None:
    base = "<identity category='client' type='pc'/><feature var='a'/>"
    ignored = ("<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'>"
               "<value>urn:a</value></field><field var='f'><value>v</value></field></x>"
               "<x xmlns='jabber:x:data' type='result'><field var='g'><value>v</value></field></x>")
    assert verification_string(info(base + ignored)) == verification_string(info(base)) == \
        "client/pc//<a<"


# -- learning caps from clients (§5.4) -------------------------------------------------------

def test_first_client_is_asked_later_ones_are_not(h: Harness) -> None:
    ver, body = caps(notify(TUNE))
    phone = h.login(A + "/phone", available=False)
    phone.send(caps_presence(ver))
    question = disco_query(phone)
    assert question is not None
    assert question.find(f"{{{INFO}}}query").get("node") == f"http://test.example/c#{ver}"  # type: ignore[union-attr]
    assert features(h, phone) == frozenset()             # not known until answered
    answer(phone, question, body)
    assert TUNE + "+notify" in features(h, phone)
    laptop = h.login(B + "/laptop", available=False)
    laptop.send(caps_presence(ver))
    assert disco_query(laptop) is None                   # cached: nobody asked again
    assert features(h, laptop) == features(h, phone)
    stored = resolve(h.server.stores.cache.get(f"caps/sha-1/{ver}"))
    assert stored is not None and (TUNE + "+notify").encode() in stored


def test_shared_cache_answers_without_asking(h: Harness) -> None:
    ver, _ = caps(["urn:x+notify"])
    resolve(h.server.stores.cache.set(f"caps/sha-1/{ver}", b"urn:x+notify\nurn:y", 60))
    s = h.login(A + "/phone", available=False)
    s.send(caps_presence(ver))
    assert disco_query(s) is None
    assert features(h, s) == {"urn:x+notify", "urn:y"}


def test_a_mismatching_answer_gives_no_interest_and_is_logged(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    ver, _ = caps(notify(TUNE))
    _, other = caps(notify(TUNE, "urn:extra"))
    s = h.login(A + "/phone", available=False)
    s.send(caps_presence(ver))
    question = disco_query(s)
    assert question is not None
    with caplog.at_level(logging.WARNING, logger="modules.caps"):
        answer(s, question, other)
    assert features(h, s) == frozenset()
    assert "do not verify" in caplog.text
    assert resolve(h.server.stores.cache.get(f"caps/sha-1/{ver}")) is None
    # the next client with this string is asked itself (§5.4 3.8), and proves it
    t = h.login(B + "/pc", available=False)
    t.send(caps_presence(ver))
    q2 = disco_query(t)
    assert q2 is not None
    answer(t, q2, caps(notify(TUNE))[1])
    assert TUNE + "+notify" in features(h, t)


def test_waiting_clients_are_asked_when_the_first_answer_fails(h: Harness) -> None:
    ver, body = caps(notify(TUNE))
    liar = h.login(A + "/phone", available=False)
    honest = h.login(B + "/pc", available=False)
    liar.send(caps_presence(ver))
    honest.send(caps_presence(ver))
    q1 = disco_query(liar)
    assert q1 is not None and disco_query(honest) is None      # one question in flight
    answer(liar, q1, "<feature var='urn:lie'/>")
    q2 = disco_query(honest)
    assert q2 is not None
    answer(honest, q2, body)
    assert TUNE + "+notify" in features(h, honest)
    assert features(h, liar) == frozenset()


def test_error_or_silence_gives_no_features(h: Harness) -> None:
    ver, _ = caps(["urn:q"])
    s = h.login(A + "/phone", available=False)
    s.send(caps_presence(ver))
    q = disco_query(s)
    assert q is not None
    s.send(f"<iq type='error' id='{q.get('id')}' to='example.org'><error type='cancel'>"
           f"<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
    assert features(h, s) == frozenset()
    ver2, _ = caps(["urn:r"])
    t = h.login(B + "/pc", available=False)
    t.send(caps_presence(ver2))
    assert disco_query(t) is not None
    h.clock.advance(30)                                  # query_timeout
    assert features(h, t) == frozenset()
    assert not h.server.hosts["example.org"].pending_iqs


def test_unsupported_hash_is_asked_but_never_cached(h: Harness) -> None:
    _, body = caps(notify(TUNE))
    s = h.login(A + "/phone", available=False)
    s.send(caps_presence("whatever", hash="md5"))
    q = disco_query(s)
    assert q is not None
    answer(s, q, body)
    assert TUNE + "+notify" in features(h, s)            # for this client only (§5.4 2)
    t = h.login(B + "/pc", available=False)
    t.send(caps_presence("whatever", hash="md5"))
    assert disco_query(t) is not None                    # asked again: not cached


def test_legacy_caps_without_hash_are_ignored(h: Harness) -> None:
    s = h.login(A + "/phone", available=False)
    s.send("<presence><c xmlns='http://jabber.org/protocol/caps' node='http://x' ver='1.0'/>"
           "</presence>")
    assert disco_query(s) is None
    assert features(h, s) == frozenset()


def test_unknown_jids_have_no_features(h: Harness) -> None:
    service = h.server.hosts["example.org"].services[CapsService]
    assert isinstance(service, CapsService)
    assert service.features(JID.parse("nobody@example.org/x")) == frozenset()
    assert service.features(JID.parse("nobody@example.org")) == frozenset()


def test_caps_changed_fires_at_initial_change_and_unavailable(h: Harness) -> None:
    seen = recorded(h)
    known = {"urn:a", INFO}
    s = online(h, A + "/phone", ["urn:a"])
    # initial presence: nothing known yet; then the verified answer
    assert [(e.initial, set(e.old), set(e.new)) for e in seen] == [
        (True, set(), set()), (False, set(), known)]
    seen.clear()
    s.send(caps_presence(caps(["urn:a"])[0], "<status>away</status>"))
    assert seen == []                                     # same caps: nothing new
    s.send("<presence type='unavailable'/>")
    assert [(e.initial, set(e.old), set(e.new)) for e in seen] == [(False, known, set())]
    seen.clear()
    s.send(caps_presence(caps(["urn:a"])[0]))            # known now: one initial event
    assert [(e.initial, set(e.new)) for e in seen] == [(True, known)]
    seen.clear()
    advertise_b = caps(["urn:b"])
    s.send(caps_presence(advertise_b[0]))
    q = disco_query(s)
    assert q is not None
    answer(s, q, advertise_b[1])
    assert [(e.initial, set(e.old), set(e.new)) for e in seen] == [
        (False, known, {"urn:b", INFO})]


def test_unverified_clients_get_no_pep_notifications(h: Harness) -> None:
    make_contacts(h, A, B)
    alice = online(h, A + "/phone")
    ver, _ = caps(notify(TUNE))
    bob = h.login(B + "/pc", available=False)
    bob.send(caps_presence(ver))
    q = disco_query(bob)
    assert q is not None
    answer(bob, q, caps(notify(TUNE, "urn:more"))[1])     # does not hash to `ver`
    bob.received()
    ok(result_of(alice, publish(TUNE, tune("x"))))
    assert event_items(bob) == []


def test_stopping_cancels_questions_in_flight(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules=dict(MODULES))
    s = h.login(A + "/phone", available=False)
    s.send(caps_presence(caps(["urn:z"])[0]))
    assert h.server.hosts["example.org"].pending_iqs
    # the harness teardown stops the server and asserts no tracker or timer is left
