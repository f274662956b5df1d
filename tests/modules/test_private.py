"""XEP-0049 private XML storage on the in-memory harness."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from lxml import etree

from tests.harness.server import HarnessClient, Harness, resolve
from tests.modules.pep_helpers import check_error, ok, result_of
from stanzas.jid import JID

A, B = "alice@example.org", "bob@example.org"
NS = "jabber:iq:private"


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(modules={"disco": {}, "private": {}})


def iq(kind: str, body: str, to: str = "") -> str:
    target = f" to='{to}'" if to else ""
    return f"<iq type='{kind}' id='p'{target}><query xmlns='{NS}'>{body}</query></iq>"


def stored(s: HarnessClient, body: str) -> list[bytes]:
    reply = ok(result_of(s, iq("get", body)))
    q = reply.find(f"{{{NS}}}query")
    assert q is not None
    return [etree.tostring(c, method="c14n") for c in q]


def c14n(xml: str) -> bytes:
    return etree.tostring(etree.fromstring(xml), method="c14n")


def test_set_then_get(h: Harness) -> None:
    alice = h.login(A + "/phone")
    prefs = "<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>"
    ok(result_of(alice, iq("set", prefs)))
    assert stored(alice, "<exodus xmlns='exodus:prefs'/>") == [c14n(prefs)]
    other = h.login(A + "/laptop")                     # the account's other clients see it
    assert stored(other, "<exodus xmlns='exodus:prefs'/>") == [c14n(prefs)]


def test_nothing_stored_answers_the_empty_element(h: Harness) -> None:
    alice = h.login(A + "/phone")
    assert stored(alice, "<x xmlns='urn:nothing'/>") == [c14n("<x xmlns='urn:nothing'/>")]


def test_a_set_replaces_per_namespace_and_keeps_several_elements(h: Harness) -> None:
    alice = h.login(A + "/phone")
    ok(result_of(alice, iq("set", "<a xmlns='urn:one'>1</a><b xmlns='urn:two'>2</b>")))
    ok(result_of(alice, iq("set", "<a xmlns='urn:one'>x</a><a xmlns='urn:one'>y</a>")))
    assert stored(alice, "<a xmlns='urn:one'/>") == [c14n("<a xmlns='urn:one'>x</a>"),
                                                     c14n("<a xmlns='urn:one'>y</a>")]
    assert stored(alice, "<b xmlns='urn:two'/>") == [c14n("<b xmlns='urn:two'>2</b>")]


@pytest.mark.parametrize("kind", ["get", "set"])
@pytest.mark.parametrize("body", [
    "",                                                   # no child: MUST not-acceptable
    "<q xmlns='jabber:iq:roster'/>",                      # reserved namespaces
    "<vCard xmlns='vcard-temp'/>",
    "<x xmlns='http://jabber.org/protocol/muc'/>",
    "<nons/>",                                            # jabber:iq:private itself
    f"<x xmlns='urn:{'n' * 250}'/>",
])
def test_not_acceptable(h: Harness, kind: str, body: str) -> None:
    alice = h.login(A + "/phone")
    check_error(result_of(alice, iq(kind, body)), "not-acceptable", kind="modify")


def test_a_get_asks_for_one_namespace(h: Harness) -> None:
    alice = h.login(A + "/phone")
    check_error(result_of(alice, iq("get", "<a xmlns='urn:one'/><b xmlns='urn:two'/>")),
                "bad-request")


@pytest.mark.parametrize("kind", ["get", "set"])
def test_someone_elses_storage_is_forbidden(h: Harness, kind: str) -> None:
    h.user(B)
    alice = h.login(A + "/phone")
    check_error(result_of(alice, iq(kind, "<a xmlns='urn:one'/>", to=B)), "forbidden")


def test_size_and_namespace_limits(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={"private": {"max_size": "1 KiB", "max_namespaces": 2}})
    alice = h.login(A + "/phone")
    check_error(result_of(alice, iq("set", f"<a xmlns='urn:one'>{'x' * 1100}</a>")),
                "not-acceptable")
    ok(result_of(alice, iq("set", "<a xmlns='urn:one'/>")))
    ok(result_of(alice, iq("set", "<a xmlns='urn:two'/>")))
    check_error(result_of(alice, iq("set", "<a xmlns='urn:three'/>")), "not-allowed")
    ok(result_of(alice, iq("set", "<a xmlns='urn:two'>again</a>")))      # replacing is fine


def test_account_deletion_forgets_it(h: Harness) -> None:
    alice = h.login(A + "/phone")
    ok(result_of(alice, iq("set", "<a xmlns='urn:one'>secret</a>")))
    resolve(h.server.accounts.delete("alice", "example.org"))
    assert resolve(h.server.stores.kv.get(JID.parse(A), "private:urn:one")) is None
    h.user(A)
    again = h.login(A + "/new")
    assert stored(again, "<a xmlns='urn:one'/>") == [c14n("<a xmlns='urn:one'/>")]


def test_advertised_on_the_server(h: Harness) -> None:
    alice = h.login(A + "/phone")
    reply = ok(result_of(alice, "<iq type='get' id='d' to='example.org'><query "
                                "xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
    assert NS in {f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}"
                                                    "feature")}
