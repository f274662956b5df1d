"""RFC 6121 §2 roster management and XEP-0237 versioning on the in-memory harness."""
from __future__ import annotations

from typing import Any, Callable

import pytest
from lxml import etree

from storage.errors import StorageError
from storage.roster import RosterItem
from tests.harness.server import Harness, resolve
from tests.modules.contacts import MODULES, ROSTER, interested, item, kinds, make_contacts, put, \
    service
from xmppd import hooks
from xmppd.hooks import PresenceQuery, Stop
from stanzas.jid import JID

ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(modules=MODULES)


def error(cond: str, type: str, text: bool = True) -> str:
    t = f"<text xmlns='{ERR}' xml:lang='en'>{{any}}</text>" if text else ""
    return f"<error type='{type}'><{cond} xmlns='{ERR}'/>{t}</error>"


def roster_set(session: Any, item_xml: str, id: str = "s1") -> None:
    session.send(f"<iq type='set' id='{id}'><query xmlns='{ROSTER}'>{item_xml}</query></iq>")


# -- get ----------------------------------------------------------------------------------

def test_empty_roster_has_a_version(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    alice.send(f"<iq type='get' id='r1'><query xmlns='{ROSTER}'/></iq>")
    alice.expect("<iq type='result' id='r1' from='alice@example.org' to='alice@example.org/phone'>"
                 f"<query xmlns='{ROSTER}' ver='0'/></iq>")


def test_get_lists_listed_items_in_jid_order_with_all_attributes(h: Harness) -> None:
    put(h, "alice@example.org", "zed@example.org", "both", name="Zed", groups=("B", "A"))
    put(h, "alice@example.org", "bob@example.org", "none", ask=True, approved=True)
    put(h, "alice@example.org", "eve@example.org", "none", pending_in=True, listed=False)
    alice = h.login("alice@example.org/phone")
    alice.send(f"<iq type='get' id='r1'><query xmlns='{ROSTER}'/></iq>")
    alice.expect(
        "<iq type='result' id='r1' from='alice@example.org' to='alice@example.org/phone'>"
        f"<query xmlns='{ROSTER}' ver='2'>"
        "<item jid='bob@example.org' subscription='none' ask='subscribe' approved='true'/>"
        "<item jid='zed@example.org' name='Zed' subscription='both'>"
        "<group>B</group><group>A</group></item>"
        "</query></iq>")


def test_someone_elses_roster_is_forbidden(h: Harness) -> None:
    h.user("bob@example.org")
    alice = h.login("alice@example.org/phone")
    alice.send(f"<iq type='get' id='r1' to='bob@example.org'><query xmlns='{ROSTER}'/></iq>")
    alice.expect("<iq type='error' id='r1' from='bob@example.org' to='alice@example.org/phone'>"
                 f"<query xmlns='{ROSTER}'/>{error('forbidden', 'auth')}</iq>")
    roster_set(alice, "<item jid='eve@example.org'/>")
    alice.send(f"<iq type='set' id='r2' to='bob@example.org'><query xmlns='{ROSTER}'>"
               "<item jid='eve@example.org'/></query></iq>")
    got = alice.received()[-1]
    assert got.get("id") == "r2" and got.find(f".//{{{ERR}}}forbidden") is not None


# -- versioning (RFC 6121 §2.6, XEP-0237) ------------------------------------------------

def test_unchanged_version_gets_an_empty_result(h: Harness) -> None:
    put(h, "alice@example.org", "bob@example.org", "both")
    alice = h.login("alice@example.org/phone")
    alice.send(f"<iq type='get' id='r1'><query xmlns='{ROSTER}' ver='1'/></iq>")
    alice.expect("<iq type='result' id='r1' from='alice@example.org' "
                 "to='alice@example.org/phone'/>")


def test_older_or_empty_version_gets_the_full_roster(h: Harness) -> None:
    put(h, "alice@example.org", "bob@example.org", "both")
    put(h, "alice@example.org", "bob@example.org", "both", name="Bob")
    alice = h.login("alice@example.org/phone")
    for ver in ("1", "", "garbage"):
        alice.send(f"<iq type='get' id='r1'><query xmlns='{ROSTER}' ver='{ver}'/></iq>")
        alice.expect("<iq type='result' id='r1' from='alice@example.org' "
                     f"to='alice@example.org/phone'><query xmlns='{ROSTER}' ver='2'>"
                     "<item jid='bob@example.org' name='Bob' subscription='both'/>"
                     "</query></iq>")


def test_a_pending_request_from_a_stranger_does_not_change_the_version(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    interested(alice)
    eve = h.login("eve@example.org/pc")
    eve.send("<presence type='subscribe' to='alice@example.org'/>")
    assert kinds(alice) == [("presence", "subscribe", "eve@example.org", "alice@example.org")]
    alice.send(f"<iq type='get' id='r1'><query xmlns='{ROSTER}' ver='0'/></iq>")
    alice.expect("<iq type='result' id='r1' from='alice@example.org' "
                 "to='alice@example.org/phone'/>")                  # XEP-0237 §5: not visible


def test_stream_features_advertise_versioning_and_pre_approval(h: Harness) -> None:
    features = h.server.hosts["example.org"].stream_features_for("session", None)
    assert [f.tag for f in features] == ["{urn:xmpp:features:rosterver}ver",
                                         "{urn:xmpp:features:pre-approval}sub"]


# -- set: add, update, remove --------------------------------------------------------------

def test_add_answers_result_and_pushes_to_every_interested_resource(h: Harness) -> None:
    phone = h.login("alice@example.org/phone")
    laptop = h.login("alice@example.org/laptop")
    quiet = h.login("alice@example.org/quiet")         # never asked for the roster
    interested(phone)
    interested(laptop)
    roster_set(phone, "<item jid='Bob@Example.org' name='Bob'><group>Friends</group>"
                      "<group>Work</group></item>")
    push = ("<iq type='set' id='{any}' to='alice@example.org/%s'>"
            f"<query xmlns='{ROSTER}' ver='1'><item jid='bob@example.org' name='Bob' "
            "subscription='none'><group>Friends</group><group>Work</group></item>"
            "</query></iq>")
    phone.expect(push % "phone")
    phone.expect("<iq type='result' id='s1' from='alice@example.org' "
                 "to='alice@example.org/phone'/>")
    laptop.expect(push % "laptop")
    quiet.expect_nothing()
    assert item(h, "alice@example.org", "bob@example.org") == RosterItem(
        JID.parse("bob@example.org"), "Bob", ("Friends", "Work"))


def test_update_keeps_the_subscription_and_ignores_client_state_attributes(h: Harness) -> None:
    put(h, "alice@example.org", "bob@example.org", "to", name="Old", groups=("X",))
    alice = h.login("alice@example.org/phone")
    interested(alice)
    roster_set(alice, "<item jid='bob@example.org' name='New' subscription='both' "
                      "ask='subscribe' approved='true'/>")
    alice.expect("<iq type='set' id='{any}' to='alice@example.org/phone'>"
                 f"<query xmlns='{ROSTER}' ver='2'>"
                 "<item jid='bob@example.org' name='New' subscription='to'/></query></iq>")
    alice.expect("<iq type='result' id='s1' from='alice@example.org' "
                 "to='alice@example.org/phone'/>")


def test_an_unchanged_set_pushes_nothing_and_keeps_the_version(h: Harness) -> None:
    put(h, "alice@example.org", "bob@example.org", "none", name="Bob")
    alice = h.login("alice@example.org/phone")
    interested(alice)
    roster_set(alice, "<item jid='bob@example.org' name='Bob'/>")
    assert kinds(alice) == [("iq", "result", "alice@example.org", "alice@example.org/phone")]
    assert resolve(service(h).roster(JID.parse("alice@example.org"))).version == 1


def test_remove_pushes_removal(h: Harness) -> None:
    put(h, "alice@example.org", "bob@example.org", "none")
    alice = h.login("alice@example.org/phone")
    interested(alice)
    roster_set(alice, "<item jid='bob@example.org' subscription='remove'/>")
    alice.expect("<iq type='set' id='{any}' to='alice@example.org/phone'>"
                 f"<query xmlns='{ROSTER}' ver='2'>"
                 "<item jid='bob@example.org' subscription='remove'/></query></iq>")
    alice.expect("<iq type='result' id='s1' from='alice@example.org' "
                 "to='alice@example.org/phone'/>")
    assert item(h, "alice@example.org", "bob@example.org") is None


def test_removing_an_absent_or_unlisted_item_is_item_not_found(h: Harness) -> None:
    put(h, "alice@example.org", "eve@example.org", "none", pending_in=True, listed=False)
    alice = h.login("alice@example.org/phone")
    for jid in ("bob@example.org", "eve@example.org"):
        roster_set(alice, f"<item jid='{jid}' subscription='remove'/>")
        got = alice.received()
        assert len(got) == 1 and got[0].get("type") == "error"
        assert got[0].find(f".//{{{ERR}}}item-not-found") is not None       # §2.5.3


def test_removal_cancels_both_subscriptions(h: Harness) -> None:
    make_contacts(h, "alice@example.org", "bob@example.org")
    bob = h.login("bob@example.org/pc")
    interested(bob)
    alice = h.login("alice@example.org/phone")
    bob.received()
    roster_set(alice, "<item jid='bob@example.org' subscription='remove'/>")
    assert kinds(bob) == [
        ("iq", "set", None, "bob@example.org/pc"),                           # from → to
        ("presence", "unsubscribe", "alice@example.org", "bob@example.org"),
        ("iq", "set", None, "bob@example.org/pc"),                           # to → none
        ("presence", "unsubscribed", "alice@example.org", "bob@example.org"),
        ("presence", "unavailable", "alice@example.org/phone", "bob@example.org"),
    ]
    assert item(h, "bob@example.org", "alice@example.org") == RosterItem(
        JID.parse("alice@example.org"), subscription="none")
    assert item(h, "alice@example.org", "bob@example.org") is None


# -- set: errors (RFC 6121 §2.3.3) ---------------------------------------------------------

@pytest.mark.parametrize("payload, condition, type", [
    ("<item jid='a@example.org'/><item jid='b@example.org'/>", "bad-request", "modify"),
    ("", "bad-request", "modify"),
    ("<item name='no jid'/>", "bad-request", "modify"),
    ("<item jid='bad@@example.org'/>", "jid-malformed", "modify"),
    ("<item jid='a@exa mple.org'/>", "jid-malformed", "modify"),
    ("<item jid='a@example.org/res'/>", "not-acceptable", "modify"),
    ("<item jid='alice@example.org'/>", "not-allowed", "cancel"),
    ("<item jid='a@example.org' name='" + "n" * 1024 + "'/>", "not-acceptable", "modify"),
    ("<item jid='a@example.org'><group></group></item>", "not-acceptable", "modify"),
    ("<item jid='a@example.org'><group>" + "g" * 1024 + "</group></item>",
     "not-acceptable", "modify"),
    ("<item jid='a@example.org'><group>G</group><group>G</group></item>",
     "bad-request", "modify"),
])
def test_bad_roster_sets_get_the_rfc_error(h: Harness, payload: str, condition: str,
                                           type: str) -> None:
    alice = h.login("alice@example.org/phone")
    interested(alice)
    alice.send(f"<iq type='set' id='s1'><query xmlns='{ROSTER}'>{payload}</query></iq>")
    got = alice.received()
    assert len(got) == 1, [etree.tostring(g) for g in got]     # and no push
    err = got[0].find("{jabber:client}error")
    assert got[0].get("type") == "error" and err is not None and err.get("type") == type
    assert err.find(f"{{{ERR}}}{condition}") is not None, etree.tostring(got[0])
    assert resolve(service(h).get(JID.parse("alice@example.org"))) == []


def test_names_up_to_the_limit_are_fine(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={**MODULES, "roster": {"max_name_length": 5}})
    alice = h.login("alice@example.org/phone")
    roster_set(alice, "<item jid='a@example.org' name='12345'><group>ab✓de</group></item>")
    assert kinds(alice) == [("iq", "result", "alice@example.org", "alice@example.org/phone")]
    roster_set(alice, "<item jid='a@example.org' name='123456'/>")
    assert alice.received()[0].find(f".//{{{ERR}}}not-acceptable") is not None


def test_roster_item_limit_is_not_allowed(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={**MODULES, "roster": {"max_items": 2}})
    alice = h.login("alice@example.org/phone")
    for i in range(2):
        roster_set(alice, f"<item jid='c{i}@example.org'/>")
    assert [k[1] for k in kinds(alice)] == ["result", "result"]
    roster_set(alice, "<item jid='c2@example.org'/>", id="s3")
    alice.expect("<iq type='error' id='s3' from='alice@example.org' to='alice@example.org/phone'>"
                 f"<query xmlns='{ROSTER}'><item jid='c2@example.org'/></query>"
                 f"{error('not-allowed', 'cancel')}</iq>")
    roster_set(alice, "<item jid='c1@example.org' name='updating is fine'/>")
    assert [k[1] for k in kinds(alice)] == ["result"]
    # a subscription request would add a third item: refused with the same error
    alice.send("<presence type='subscribe' to='c2@example.org' id='p1'/>")
    alice.expect("<presence type='error' id='p1' from='c2@example.org' "
                 f"to='alice@example.org/phone'>{error('not-allowed', 'cancel')}</presence>")


# -- may_see_presence and RosterService ----------------------------------------------------

@pytest.mark.parametrize("subscription, allowed", [
    ("none", False), ("to", False), ("from", True), ("both", True)])
def test_may_see_presence_follows_the_subscription(h: Harness, subscription: Any,
                                                   allowed: bool) -> None:
    put(h, "alice@example.org", "bob@example.org", subscription)
    hooks_ = h.server.hosts["example.org"].hooks
    query = PresenceQuery(JID.parse("alice@example.org"), JID.parse("bob@example.org"))
    assert resolve(hooks_.fold(hooks.may_see_presence, query, False)) is allowed   # from store
    h.login("alice@example.org/phone")
    assert hooks_.fold(hooks.may_see_presence, query, False) is allowed            # in memory


def test_a_veto_after_the_roster_wins(h: Harness) -> None:
    make_contacts(h, "alice@example.org", "bob@example.org")
    reg = h.server.hosts["example.org"].hooks
    reg.add(hooks.may_see_presence, lambda q, acc: Stop(False), hooks.LATE)
    query = PresenceQuery(JID.parse("alice@example.org"), JID.parse("bob@example.org"))
    assert resolve(reg.fold(hooks.may_see_presence, query, False)) is False


def test_service_reads_items_and_subscriptions(h: Harness) -> None:
    put(h, "alice@example.org", "bob@example.org", "to", name="B")
    put(h, "alice@example.org", "eve@example.org", "none", pending_in=True, listed=False)
    svc, alice = service(h), JID.parse("alice@example.org")
    assert resolve(svc.get(alice)) == [RosterItem(JID.parse("bob@example.org"), "B",
                                                  subscription="to")]
    assert resolve(svc.subscription(alice, JID.parse("bob@example.org/x"))) == "to"
    assert resolve(svc.subscription(alice, JID.parse("nobody@example.org"))) == "none"
    assert resolve(svc.pending_requests(alice)) == [JID.parse("eve@example.org")]


def test_roster_lives_in_memory_only_while_the_user_has_sessions(h: Harness) -> None:
    alice_jid = JID.parse("alice@example.org")
    put(h, "alice@example.org", "bob@example.org", "both")
    assert service(h).cached(alice_jid) is None
    phone = h.login("alice@example.org/phone")
    laptop = h.login("alice@example.org/laptop")
    assert service(h).cached(alice_jid) is not None
    phone.close()
    assert service(h).cached(alice_jid) is not None
    laptop.close()
    assert service(h).cached(alice_jid) is None


def test_online_roster_reads_never_reach_the_store(h: Harness) -> None:
    put(h, "alice@example.org", "bob@example.org", "both")
    alice = h.login("alice@example.org/phone")
    svc = service(h)

    class Broken:
        async def get(self, user: JID) -> Any:
            raise StorageError("database down")
    real, svc.store = svc.store, Broken()  # type: ignore[assignment]
    try:
        alice.send(f"<iq type='get' id='r1'><query xmlns='{ROSTER}'/></iq>")
        assert alice.received()[0].get("type") == "result"
        assert resolve(svc.subscription(JID.parse("alice@example.org"),
                                        JID.parse("bob@example.org"))) == "both"
    finally:
        svc.store = real


def test_storage_failure_on_set_is_internal_server_error_wait(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    svc = service(h)

    class Broken:
        async def put(self, user: JID, item: RosterItem, *, bump: bool = True) -> int:
            raise StorageError("database down")
    real, svc.store = svc.store, Broken()  # type: ignore[assignment]
    try:
        roster_set(alice, "<item jid='bob@example.org'/>")
        err = alice.received()[0].find("{jabber:client}error")
        assert err is not None and err.get("type") == "wait"
        assert err.find(f"{{{ERR}}}internal-server-error") is not None
    finally:
        svc.store = real
    assert resolve(svc.get(JID.parse("alice@example.org"))) == []


def test_deleting_an_account_ends_its_contacts_subscriptions(h: Harness) -> None:
    make_contacts(h, "alice@example.org", "bob@example.org")
    put(h, "carol@example.org", "bob@example.org", "none", ask=True)
    resolve(h.server.accounts.delete("bob", "example.org"))
    assert item(h, "alice@example.org", "bob@example.org") == RosterItem(
        JID.parse("bob@example.org"), subscription="none")
    assert item(h, "carol@example.org", "bob@example.org") == RosterItem(
        JID.parse("bob@example.org"), subscription="none")
    h.user("bob@example.org")                               # the name again: a new person
    assert resolve(service(h).get(JID.parse("bob@example.org"))) == []
