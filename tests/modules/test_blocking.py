"""XEP-0191 blocking on the in-memory harness: the protocol, pushes, enforcement both ways,
JID matching (§6), presence on block/unblock, persistence and limits."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.harness.server import HarnessClient, Harness, resolve
from xmppd import hooks
from xmppd.hooks import PresenceQuery
from stanzas.jid import JID

MakeHarness = Callable[..., Harness]
SE = "urn:ietf:params:xml:ns:xmpp-stanzas"
BLOCKED_ERROR = (f"<error type='modify'><not-acceptable xmlns='{SE}'/>"
                 "<blocked xmlns='urn:xmpp:blocking:errors'/></error>")
UNAVAILABLE_ERROR = f"<error type='cancel'><service-unavailable xmlns='{SE}'/></error>"


@pytest.fixture
def h(make_harness: MakeHarness) -> Harness:
    return make_harness(modules={"disco": {}, "ping": {}, "blocking": {}})


def everyone_may_see_presence(h: Harness) -> None:
    """Stand-in for the roster's subscription fold: everyone is a subscribed contact."""
    h.server.hosts["example.org"].hooks.add(hooks.may_see_presence, lambda q, acc: True)


def block(s: HarnessClient, *jids: str, id: str = "b1") -> None:
    items = "".join(f"<item jid='{j}'/>" for j in jids)
    s.send(f"<iq type='set' id='{id}'><block xmlns='urn:xmpp:blocking'>{items}</block></iq>")


def unblock(s: HarnessClient, *jids: str, id: str = "u1") -> None:
    items = "".join(f"<item jid='{j}'/>" for j in jids)
    s.send(f"<iq type='set' id='{id}'><unblock xmlns='urn:xmpp:blocking'>{items}</unblock></iq>")


def result(s: HarnessClient, id: str) -> None:
    s.expect(f"<iq type='result' id='{id}' from='{s.jid.bare}' to='{s.jid}'/>")


def get_blocklist(s: HarnessClient, id: str = "g1") -> list[str]:
    s.send(f"<iq type='get' id='{id}'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
    (got,) = s.received()
    assert got.get("type") == "result" and got.get("id") == id, got
    return [i.get("jid") for i in got.iter("{urn:xmpp:blocking}item")]


def message(s: HarnessClient, to: str, body: str = "hi", id: str = "m1", kind: str = "chat") -> None:
    s.send(f"<message type='{kind}' id='{id}' to='{to}'><body>{body}</body></message>")


# -- the protocol -----------------------------------------------------------------------------

def test_feature_in_server_disco(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    alice.send("<iq type='get' id='d1' to='example.org'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    got = alice.received()[0]
    assert "urn:xmpp:blocking" in [f.get("var") for f in got.iter(
        "{http://jabber.org/protocol/disco#info}feature")]


def test_empty_blocklist(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    alice.send("<iq type='get' id='g1'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
    alice.expect("<iq type='result' id='g1' from='alice@example.org' "
                 "to='alice@example.org/phone'><blocklist xmlns='urn:xmpp:blocking'/></iq>")


def test_block_then_list_in_order_without_duplicates(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    block(alice, "romeo@montague.net", "iago@shakespeare.lit", "romeo@montague.net")
    result(alice, "b1")
    block(alice, "Iago@Shakespeare.lit", "montague.net", id="b2")     # prepared: the same JID
    result(alice, "b2")
    alice.send("<iq type='get' id='g1'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
    alice.expect("<iq type='result' id='g1' from='alice@example.org' to='alice@example.org/phone'>"
                 "<blocklist xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/>"
                 "<item jid='iago@shakespeare.lit'/><item jid='montague.net'/></blocklist></iq>")


def test_block_without_items_is_bad_request(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    alice.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'/></iq>")
    alice.expect("<iq type='error' id='b1' from='alice@example.org' to='alice@example.org/phone'>"
                 "<block xmlns='urn:xmpp:blocking'/><error type='modify'>"
                 f"<bad-request xmlns='{SE}'/><text xmlns='{SE}' xml:lang='en'>{{any}}</text>"
                 "</error></iq>")


@pytest.mark.parametrize("item, condition", [
    ("<item jid='a@b@c'/>", "jid-malformed"),
    ("<item jid='@example.org'/>", "jid-malformed"),
    ("<item/>", "bad-request"),
])
def test_bad_items_are_refused_and_nothing_is_blocked(h: Harness, item: str,
                                                      condition: str) -> None:
    alice = h.login("alice@example.org/phone")
    alice.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'>"
               f"<item jid='ok@example.net'/>{item}</block></iq>")
    got = alice.received()[0]
    assert got.get("type") == "error"
    assert got.find(f"{{jabber:client}}error/{{{SE}}}{condition}") is not None
    alice.send("<iq type='get' id='g1'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
    alice.expect("<iq type='result' id='g1' from='alice@example.org' "
                 "to='alice@example.org/phone'><blocklist xmlns='urn:xmpp:blocking'/></iq>")


def test_blocking_commands_are_for_ones_own_account_only(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    h.user("bob@example.org")
    alice.send("<iq type='get' id='g1' to='bob@example.org'>"
               "<blocklist xmlns='urn:xmpp:blocking'/></iq>")
    alice.expect("<iq type='error' id='g1' from='bob@example.org' to='alice@example.org/phone'>"
                 "<blocklist xmlns='urn:xmpp:blocking'/>"
                 f"{UNAVAILABLE_ERROR}</iq>")


def test_pushes_go_to_resources_that_requested_the_blocklist(h: Harness) -> None:
    phone = h.login("alice@example.org/phone")
    laptop = h.login("alice@example.org/laptop")
    tablet = h.login("alice@example.org/tablet")
    for s in (phone, laptop):
        s.send("<iq type='get' id='g0'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
        s.received()
    block(phone, "romeo@montague.net")
    for s in (phone, laptop):              # §3.3: the requester too
        s.expect(f"<iq type='set' id='{{any}}' from='alice@example.org' to='{s.jid}'>"
                 "<block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></block></iq>")
    result(phone, "b1")
    tablet.expect_nothing()
    unblock(laptop, "romeo@montague.net")
    for s in (phone, laptop):
        s.expect(f"<iq type='set' id='{{any}}' from='alice@example.org' to='{s.jid}'>"
                 "<unblock xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/>"
                 "</unblock></iq>")
    result(laptop, "u1")
    tablet.expect_nothing()


def test_unblock_all_pushes_an_empty_unblock(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    alice.send("<iq type='get' id='g0'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
    alice.received()
    block(alice, "romeo@montague.net", "iago@shakespeare.lit")
    alice.received()
    alice.send("<iq type='set' id='u2'><unblock xmlns='urn:xmpp:blocking'/></iq>")
    alice.expect("<iq type='set' id='{any}' from='alice@example.org' to='alice@example.org/phone'>"
                 "<unblock xmlns='urn:xmpp:blocking'/></iq>")
    result(alice, "u2")
    alice.send("<iq type='get' id='g1'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
    alice.expect("<iq type='result' id='g1' from='alice@example.org' "
                 "to='alice@example.org/phone'><blocklist xmlns='urn:xmpp:blocking'/></iq>")


def test_no_change_no_push(h: Harness) -> None:
    phone = h.login("alice@example.org/phone")
    phone.send("<iq type='get' id='g0'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
    phone.received()
    unblock(phone, "nobody@example.net")
    result(phone, "u1")
    block(phone, "romeo@montague.net")
    phone.received()
    block(phone, "romeo@montague.net", id="b2")
    result(phone, "b2")


def test_list_size_is_limited(make_harness: MakeHarness) -> None:
    h = make_harness(modules={"blocking": {"max_items": 2}})
    alice = h.login("alice@example.org/phone")
    block(alice, "a@example.net", "b@example.net")
    result(alice, "b1")
    block(alice, "c@example.net", id="b2")
    got = alice.received()[0]
    assert got.find(f"{{jabber:client}}error/{{{SE}}}not-acceptable") is not None
    block(alice, "a@example.net", id="b3")         # already there: not over the limit
    result(alice, "b3")


# -- enforcement: inbound ---------------------------------------------------------------------

def test_message_from_blocked_jid_is_refused_with_service_unavailable(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    bob = h.login("bob@example.org/pc")
    block(alice, "bob@example.org")
    result(alice, "b1")
    message(bob, "alice@example.org")
    alice.expect_nothing()
    bob.expect("<message type='error' id='m1' from='alice@example.org' to='bob@example.org/pc'>"
               f"{UNAVAILABLE_ERROR}</message>")
    message(bob, "alice@example.org/phone", id="m2")          # to the full JID as well
    alice.expect_nothing()
    bob.expect("<message type='error' id='m2' from='alice@example.org/phone' "
               f"to='bob@example.org/pc'>{UNAVAILABLE_ERROR}</message>")


def test_iq_from_blocked_jid(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    bob = h.login("bob@example.org/pc")
    block(alice, "bob@example.org")
    result(alice, "b1")
    bob.send("<iq type='get' id='i1' to='alice@example.org/phone'>"
             "<query xmlns='jabber:iq:version'/></iq>")
    bob.expect("<iq type='error' id='i1' from='alice@example.org/phone' to='bob@example.org/pc'>"
               f"<query xmlns='jabber:iq:version'/>{UNAVAILABLE_ERROR}</iq>")
    bob.send("<iq type='get' id='i2' to='alice@example.org'><ping xmlns='urn:xmpp:ping'/></iq>")
    bob.expect("<iq type='error' id='i2' from='alice@example.org' to='bob@example.org/pc'>"
               f"<ping xmlns='urn:xmpp:ping'/>{UNAVAILABLE_ERROR}</iq>")
    bob.send("<iq type='result' id='i3' to='alice@example.org/phone'/>")
    bob.send("<iq type='error' id='i4' to='alice@example.org/phone'>"
             f"{UNAVAILABLE_ERROR}</iq>")
    alice.expect_nothing()
    bob.expect_nothing()               # results and errors are dropped without an answer


def test_presence_and_errors_from_blocked_jid_vanish_silently(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    bob = h.login("bob@example.org/pc")
    block(alice, "bob@example.org")
    result(alice, "b1")
    for stanza in ("<presence to='alice@example.org'/>",
                   "<presence type='subscribe' to='alice@example.org'/>",
                   "<presence type='probe' to='alice@example.org'/>",
                   "<presence to='alice@example.org/phone'><status>hi</status></presence>",
                   "<message type='error' to='alice@example.org/phone'>"
                   f"{UNAVAILABLE_ERROR}</message>"):
        bob.send(stanza)
    alice.expect_nothing()
    bob.expect_nothing()


def test_unblocked_jid_gets_through_again(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    bob = h.login("bob@example.org/pc")
    block(alice, "bob@example.org")
    result(alice, "b1")
    unblock(alice, "bob@example.org")
    result(alice, "u1")
    message(bob, "alice@example.org/phone", body="back")
    alice.expect("<message type='chat' id='m1' from='bob@example.org/pc' "
                 "to='alice@example.org/phone'><body>back</body></message>")


@pytest.mark.parametrize("item, blocked, allowed", [
    # §6: user@domain/resource — only that resource
    ("bob@example.org/pc", ["bob@example.org/pc"], ["bob@example.org/tablet"]),
    # user@domain — any resource
    ("bob@example.org", ["bob@example.org/pc", "bob@example.org/tablet"],
     ["carol@example.org/pc"]),
    # domain — the domain, its users and its resources
    ("example.org", ["bob@example.org/pc", "carol@example.org/x"], ["dave@example.net/y"]),
])
def test_jid_matching_order(make_harness: MakeHarness, item: str, blocked: list[str],
                            allowed: list[str]) -> None:
    h = make_harness(modules={"blocking": {}}, hosts=("example.org", "example.net"))
    alice = h.login("alice@example.org/phone")
    block(alice, item)
    result(alice, "b1")
    for jid in blocked + allowed:
        s = h.login(jid)
        message(s, "alice@example.org/phone", body=jid)
        if jid in blocked:
            alice.expect_nothing()
            assert s.received()[0].get("type") == "error"
        else:
            alice.expect(f"<message type='chat' id='m1' from='{jid}' "
                         f"to='alice@example.org/phone'><body>{jid}</body></message>")


def test_domain_resource_item_matches_only_that_entity() -> None:
    from modules.blocking import Blocklist
    bl = Blocklist([JID.parse("example.net/res")])
    assert bl.matches(JID.parse("example.net/res"))
    assert not bl.matches(JID.parse("example.net"))
    assert not bl.matches(JID.parse("user@example.net/res"))      # §6: only that resource
    assert not bl.matches(JID.parse("example.net/other"))
    full = Blocklist([JID.parse("u@example.net/r")])
    assert full.matches(JID.parse("u@example.net/r"))
    assert not full.matches(JID.parse("u@example.net"))


def test_own_resources_are_never_blocked(h: Harness) -> None:
    phone = h.login("alice@example.org/phone")
    laptop = h.login("alice@example.org/laptop")
    block(phone, "alice@example.org", "example.org")
    result(phone, "b1")
    message(laptop, "alice@example.org/phone", body="to myself")
    phone.expect("<message type='chat' id='m1' from='alice@example.org/laptop' "
                 "to='alice@example.org/phone'><body>to myself</body></message>")


def test_blocking_the_own_domain_keeps_the_server_reachable(make_harness: MakeHarness) -> None:
    h = make_harness(modules={"ping": {"keepalive_interval": "60 s", "keepalive_timeout": "10 s"},
                              "blocking": {}})
    alice = h.login("alice@example.org/phone")
    block(alice, "example.org")
    result(alice, "b1")
    alice.send("<iq type='get' id='p1' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>")
    alice.expect("<iq type='result' id='p1' from='example.org' to='alice@example.org/phone'/>")
    h.clock.advance(60)                # the server's own keepalive ping still reaches her
    ping = alice.expect("<iq type='get' id='{any}' from='example.org' "
                        "to='alice@example.org/phone'><ping xmlns='urn:xmpp:ping'/></iq>")
    alice.send(f"<iq type='result' id='{ping.get('id')}' to='example.org'/>")
    h.clock.advance(10)
    assert not alice.closed


def test_blocklist_applies_while_the_user_is_offline_and_after_login(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    block(alice, "bob@example.org")
    result(alice, "b1")
    alice.close()
    blocking = h.server.hosts["example.org"].modules["blocking"]
    assert JID.parse("alice@example.org") not in blocking.online   # type: ignore[attr-defined]
    bob = h.login("bob@example.org/pc")
    bob.send("<iq type='get' id='p1' to='alice@example.org'><ping xmlns='urn:xmpp:ping'/></iq>")
    bob.expect("<iq type='error' id='p1' from='alice@example.org' to='bob@example.org/pc'>"
               f"<ping xmlns='urn:xmpp:ping'/>{UNAVAILABLE_ERROR}</iq>")
    alice = h.login("alice@example.org/tablet")
    assert get_blocklist(alice) == ["bob@example.org"]
    message(bob, "alice@example.org/tablet")
    alice.expect_nothing()
    assert bob.received()[0].get("type") == "error"


def test_deleting_the_account_deletes_its_blocklist(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    block(alice, "bob@example.org")
    result(alice, "b1")
    assert resolve(h.server.accounts.delete("alice", "example.org")) is True
    alice = h.login("alice@example.org/phone")          # the name, registered anew
    assert get_blocklist(alice) == []


# -- enforcement: outbound --------------------------------------------------------------------

def test_stanzas_to_a_blocked_jid_are_refused_with_blocked(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    bob = h.login("bob@example.org/pc")
    block(alice, "bob@example.org")
    result(alice, "b1")
    message(alice, "bob@example.org", body="Can you hear me now?")
    bob.expect_nothing()
    alice.expect("<message type='error' id='m1' from='bob@example.org' "
                 f"to='alice@example.org/phone'>{BLOCKED_ERROR}</message>")
    alice.send("<iq type='get' id='i1' to='bob@example.org/pc'><ping xmlns='urn:xmpp:ping'/></iq>")
    alice.expect("<iq type='error' id='i1' from='bob@example.org/pc' to='alice@example.org/phone'>"
                 f"<ping xmlns='urn:xmpp:ping'/>{BLOCKED_ERROR}</iq>")
    alice.send("<presence type='subscribe' to='bob@example.org'/>")
    alice.expect("<presence type='error' from='bob@example.org' to='alice@example.org/phone'>"
                 f"{BLOCKED_ERROR}</presence>")
    bob.expect_nothing()


def test_results_and_errors_to_a_blocked_jid_are_dropped_without_answer(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    bob = h.login("bob@example.org/pc")
    block(alice, "bob@example.org")
    result(alice, "b1")
    alice.send("<iq type='result' id='x1' to='bob@example.org/pc'/>")
    alice.send(f"<message type='error' id='x2' to='bob@example.org/pc'>"
               f"{UNAVAILABLE_ERROR}</message>")
    alice.expect_nothing()
    bob.expect_nothing()


def test_other_contacts_are_unaffected(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    carol = h.login("carol@example.org/pc")
    block(alice, "bob@example.org")
    result(alice, "b1")
    message(alice, "carol@example.org/pc", body="hello carol")
    carol.expect("<message type='chat' id='m1' from='alice@example.org/phone' "
                 "to='carol@example.org/pc'><body>hello carol</body></message>")
    alice.expect_nothing()


# -- presence ---------------------------------------------------------------------------------

def test_blocked_jid_may_not_see_presence(h: Harness) -> None:
    everyone_may_see_presence(h)
    alice = h.login("alice@example.org/phone")
    block(alice, "bob@example.org")
    result(alice, "b1")
    reg = h.server.hosts["example.org"].hooks
    ask = lambda asker: resolve(reg.fold(hooks.may_see_presence,  # noqa: E731
                                         PresenceQuery(JID.parse("alice@example.org"),
                                                       JID.parse(asker)), False))
    assert ask("bob@example.org") is False
    assert ask("carol@example.org") is True


def test_block_sends_unavailable_from_each_available_resource(h: Harness) -> None:
    everyone_may_see_presence(h)
    phone = h.login("alice@example.org/phone")
    h.login("alice@example.org/laptop")
    h.login("alice@example.org/hidden", available=False)
    bob = h.login("bob@example.org/pc")
    block(phone, "bob@example.org")
    got = sorted((p.get("from"), p.get("to"), p.get("type")) for p in bob.received())
    assert got == [("alice@example.org/laptop", "bob@example.org", "unavailable"),
                   ("alice@example.org/phone", "bob@example.org", "unavailable")]
    result(phone, "b1")


def test_block_sends_no_presence_to_those_not_allowed_to_see_it(h: Harness) -> None:
    phone = h.login("alice@example.org/phone")          # no subscription: the fold says no
    bob = h.login("bob@example.org/pc")
    block(phone, "bob@example.org")
    result(phone, "b1")
    bob.expect_nothing()


def test_unblock_sends_current_presence(h: Harness) -> None:
    everyone_may_see_presence(h)
    phone = h.login("alice@example.org/phone", available=False)
    phone.send("<presence id='p7'><show>away</show><status>lunch</status></presence>")
    bob = h.login("bob@example.org/pc")
    block(phone, "bob@example.org")
    result(phone, "b1")
    bob.received()
    unblock(phone, "bob@example.org")
    bob.expect("<presence from='alice@example.org/phone' to='bob@example.org'>"
               "<show>away</show><status>lunch</status></presence>")
    result(phone, "u1")


def test_server_speaking_for_the_user_is_blocked_too(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    bob = h.login("bob@example.org/pc")
    block(alice, "bob@example.org")
    result(alice, "b1")
    # what a presence broadcast or probe answer on alice's behalf looks like to the router
    h.server.router.route(_presence("alice@example.org/phone", "bob@example.org"))
    bob.expect_nothing()
    h.server.router.route(_presence("alice@example.org/phone", "bob@example.org",
                                    type="unavailable"))
    bob.expect("<presence type='unavailable' from='alice@example.org/phone' "
               "to='bob@example.org'/>")


def _presence(sender: str, to: str, type: str | None = None) -> Any:
    from tests.harness.server import parse
    el = parse(f"<presence from='{sender}' to='{to}'/>")
    if type:
        el.set("type", type)
    return el


# -- with the roster, presence and last modules -----------------------------------------------

@pytest.fixture
def friends(make_harness: MakeHarness) -> Harness:
    """alice, bob and carol on example.org, dave on example.net: all contacts of alice."""
    from tests.modules.contacts import MODULES, make_contacts
    hh = make_harness(modules={**MODULES, "blocking": {}}, hosts=("example.org", "example.net"))
    for other in ("bob@example.org", "carol@example.org", "dave@example.net"):
        make_contacts(hh, "alice@example.org", other)
    return hh


def presences(s: HarnessClient) -> list[tuple[str | None, str | None]]:
    return [(p.get("type"), p.get("from")) for p in s.received()
            if p.tag == "{jabber:client}presence"]


def test_blocked_contact_sees_the_user_go_offline_and_stay_offline(friends: Harness) -> None:
    h = friends
    alice = h.login("alice@example.org/phone")
    bob, carol = h.login("bob@example.org/pc"), h.login("carol@example.org/pc")
    alice.received()
    assert presences(bob) == []
    block(alice, "bob@example.org")
    assert presences(bob) == [("unavailable", "alice@example.org/phone")]     # §3.3
    result(alice, "b1")
    alice.send("<presence><status>busy</status></presence>")
    assert presences(bob) == []                        # the broadcast skips him...
    assert presences(carol) == [(None, "alice@example.org/phone")]   # ...not the others
    bob.send("<presence><status>hello?</status></presence>")
    assert presences(alice) == [(None, "alice@example.org/phone")]   # only her own echo
    assert presences(bob) == [(None, "bob@example.org/pc")]          # only his own echo
    bob.send("<iq type='get' id='l1' to='alice@example.org'><query xmlns='jabber:iq:last'/></iq>")
    bob.expect("<iq type='error' id='l1' from='alice@example.org' to='bob@example.org/pc'>"
               f"<query xmlns='jabber:iq:last'/>{UNAVAILABLE_ERROR}</iq>")


def test_blocked_contact_logging_in_later_does_not_see_the_user(friends: Harness) -> None:
    h = friends
    alice = h.login("alice@example.org/phone")
    block(alice, "bob@example.org")
    alice.received()
    bob = h.login("bob@example.org/pc", available=False)
    bob.send("<presence/>")             # his probe to alice goes unanswered
    assert presences(bob) == [(None, "bob@example.org/pc")]
    assert presences(alice) == []       # and his presence does not reach her


def test_unblock_sends_current_presence_and_broadcasts_resume(friends: Harness) -> None:
    h = friends
    alice = h.login("alice@example.org/phone", available=False)
    alice.send("<presence><show>dnd</show></presence>")
    bob = h.login("bob@example.org/pc")
    block(alice, "bob@example.org")
    alice.received()
    bob.received()
    unblock(alice, "bob@example.org")
    bob.expect("<presence from='alice@example.org/phone' to='bob@example.org'>"
               "<show>dnd</show></presence>")                                # §3.4
    result(alice, "u1")
    alice.send("<presence/>")
    assert presences(bob) == [(None, "alice@example.org/phone")]


def test_blocking_a_domain_tells_the_contacts_there(friends: Harness) -> None:
    h = friends
    alice = h.login("alice@example.org/phone")
    bob, dave = h.login("bob@example.org/pc"), h.login("dave@example.net/pc")
    for s in (alice, bob, dave):
        s.received()
    block(alice, "example.net")
    assert presences(dave) == [("unavailable", "alice@example.org/phone")]
    assert presences(bob) == []
    result(alice, "b1")
    unblock(alice, "example.net")
    assert presences(dave) == [(None, "alice@example.org/phone")]
