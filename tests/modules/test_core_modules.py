# tests: modules/disco.py, modules/ping.py, modules/version.py, modules/time.py
"""XEP-0030, 0199, 0092, 0202 on the in-memory harness."""
from __future__ import annotations

from tests.harness.server import Harness

ITEM_NOT_FOUND = ("<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:"
                  "xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' "
                  "xml:lang='en'>{any}</text></error>")


def test_server_answers_ping(harness: Harness) -> None:
    alice = harness.login("alice@example.org/phone")
    alice.send("<iq type='get' id='p1' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>")
    alice.expect("<iq type='result' id='p1' from='example.org' to='alice@example.org/phone'/>")


def test_ping_to_own_bare_jid_is_answered_by_the_server(harness: Harness) -> None:
    alice = harness.login("alice@example.org/phone")
    alice.send("<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
    alice.expect("<iq type='result' id='p2' from='alice@example.org' "
                 "to='alice@example.org/phone'/>")


def test_disco_info_lists_identity_and_features(harness: Harness) -> None:
    alice = harness.login("alice@example.org/phone")
    alice.send("<iq type='get' id='d1' to='example.org'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    alice.expect(
        "<iq type='result' id='d1' from='example.org' to='alice@example.org/phone'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'>"
        "<identity category='server' type='im' name='xmppd'/>"
        "<feature var='http://jabber.org/protocol/disco#info'/>"
        "<feature var='http://jabber.org/protocol/disco#items'/>"
        "<feature var='jabber:iq:register'/>"
        "<feature var='jabber:iq:version'/>"
        "<feature var='urn:xmpp:ping'/>"
        "<feature var='urn:xmpp:time'/>"
        "</query></iq>")


def test_disco_features_follow_loaded_modules(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(modules={"disco": {}})
    alice = h.login("alice@example.org/phone")
    alice.send("<iq type='get' id='d1' to='example.org'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    got = alice.received()[0]
    features = [f.get("var") for f in got.iter("{http://jabber.org/protocol/disco#info}feature")]
    assert features == ["http://jabber.org/protocol/disco#info",
                        "http://jabber.org/protocol/disco#items"]


def test_disco_unknown_node_is_item_not_found(harness: Harness) -> None:
    alice = harness.login("alice@example.org/phone")
    alice.send("<iq type='get' id='d2' to='example.org'>"
               "<query xmlns='http://jabber.org/protocol/disco#info' node='nope'/></iq>")
    alice.expect("<iq type='error' id='d2' from='example.org' to='alice@example.org/phone'>"
                 "<query xmlns='http://jabber.org/protocol/disco#info' node='nope'/>"
                 f"{ITEM_NOT_FOUND}</iq>")


def test_disco_items_of_server(harness: Harness) -> None:
    alice = harness.login("alice@example.org/phone")
    alice.send("<iq type='get' id='d3' to='example.org'>"
               "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    alice.expect("<iq type='result' id='d3' from='example.org' to='alice@example.org/phone'>"
                 "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>")


def test_disco_of_account_answers_for_existing_users_only(harness: Harness) -> None:
    alice = harness.login("alice@example.org/phone")
    harness.user("bob@example.org")
    alice.send("<iq type='get' id='d4' to='bob@example.org'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    alice.expect("<iq type='result' id='d4' from='bob@example.org' to='alice@example.org/phone'>"
                 "<query xmlns='http://jabber.org/protocol/disco#info'>"
                 "<identity category='account' type='registered'/>"
                 "<feature var='http://jabber.org/protocol/disco#info'/>"
                 "<feature var='http://jabber.org/protocol/disco#items'/>"
                 "</query></iq>")
    alice.send("<iq type='get' id='d5' to='ghost@example.org'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    got = alice.received()[0]
    assert got.get("type") == "error"
    assert got.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}service-unavailable") is not None


def test_version_hides_os_by_default(harness: Harness) -> None:
    alice = harness.login("alice@example.org/phone")
    alice.send("<iq type='get' id='v1' to='example.org'><query xmlns='jabber:iq:version'/></iq>")
    alice.expect("<iq type='result' id='v1' from='example.org' to='alice@example.org/phone'>"
                 "<query xmlns='jabber:iq:version'><name>xmppd</name><version>{any}</version>"
                 "</query></iq>")


def test_version_shows_os_when_configured(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(modules={"version": {"show_os": True}})
    alice = h.login("alice@example.org/phone")
    alice.send("<iq type='get' id='v1' to='example.org'><query xmlns='jabber:iq:version'/></iq>")
    alice.expect("<iq type='result' id='v1' from='example.org' to='alice@example.org/phone'>"
                 "<query xmlns='jabber:iq:version'><name>xmppd</name><version>{any}</version>"
                 "<os>{any}</os></query></iq>")


def test_entity_time_follows_the_clock(harness: Harness) -> None:
    harness.clock.advance(1_700_000_000 - harness.clock.seconds())
    alice = harness.login("alice@example.org/phone")
    alice.send("<iq type='get' id='t1' to='example.org'><time xmlns='urn:xmpp:time'/></iq>")
    alice.expect("<iq type='result' id='t1' from='example.org' to='alice@example.org/phone'>"
                 "<time xmlns='urn:xmpp:time'><tzo>+00:00</tzo>"
                 "<utc>2023-11-14T22:13:20.000Z</utc></time></iq>")
