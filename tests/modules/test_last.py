"""XEP-0012 last activity on the in-memory harness (the design of STYLE §11)."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from storage.last import LastSeen
from tests.harness.server import Harness, resolve
from tests.modules.contacts import MODULES, make_contacts, put
from xmppd import hooks
from xmppd.hooks import Stop
from stanzas.jid import JID

LAST = "jabber:iq:last"
FORBIDDEN = ("<error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
             "</error>")


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(modules=MODULES)


def ask(session: Any, to: str, id: str = "l1") -> None:
    session.send(f"<iq type='get' id='{id}' to='{to}'><query xmlns='{LAST}'/></iq>")


def test_stranger_gets_forbidden(harness: Harness) -> None:                        # §3, §8
    romeo, _ = harness.login("romeo@example.org/a"), harness.user("juliet@example.org")
    ask(romeo, "juliet@example.org")
    romeo.expect("<iq type='error' id='l1' from='juliet@example.org' to='romeo@example.org/a'>"
                 f"<query xmlns='{LAST}'/>{FORBIDDEN}</iq>")


@pytest.mark.parametrize("romeos_side", ["none", "from"])
def test_only_a_subscription_to_the_user_counts(harness: Harness, romeos_side: Any) -> None:
    # juliet's item for romeo says 'to': juliet sees romeo, romeo does not see juliet
    put(harness, "juliet@example.org", "romeo@example.org", "to")
    put(harness, "romeo@example.org", "juliet@example.org", romeos_side)
    romeo = harness.login("romeo@example.org/a")
    ask(romeo, "juliet@example.org")
    assert romeo.received()[0].get("type") == "error"


def test_contact_sees_seconds_since_logout_with_status(harness: Harness) -> None:
    make_contacts(harness, "romeo@example.org", "juliet@example.org")
    juliet = harness.login("juliet@example.org/phone")
    juliet.send("<presence type='unavailable'><status>Goodbye</status></presence>")
    harness.clock.advance(90)
    romeo = harness.login("romeo@example.org/a")
    ask(romeo, "juliet@example.org", "l2")
    romeo.expect("<iq type='result' id='l2' from='juliet@example.org' to='romeo@example.org/a'>"
                 f"<query xmlns='{LAST}' seconds='90'>Goodbye</query></iq>")


def test_a_dropped_connection_counts_as_logout_without_status(harness: Harness) -> None:
    make_contacts(harness, "romeo@example.org", "juliet@example.org")
    juliet = harness.login("juliet@example.org/phone")
    harness.clock.advance(5)
    harness.disconnect(juliet)
    harness.clock.advance(7)
    romeo = harness.login("romeo@example.org/a")
    ask(romeo, "juliet@example.org")
    romeo.expect("<iq type='result' id='l1' from='juliet@example.org' to='romeo@example.org/a'>"
                 f"<query xmlns='{LAST}' seconds='7'/></iq>")


def test_online_user_reports_zero(harness: Harness) -> None:
    make_contacts(harness, "romeo@example.org", "juliet@example.org")
    harness.login("juliet@example.org/phone")
    harness.clock.advance(30)
    romeo = harness.login("romeo@example.org/a")
    ask(romeo, "juliet@example.org")
    romeo.expect("<iq type='result' id='l1' from='juliet@example.org' to='romeo@example.org/a'>"
                 f"<query xmlns='{LAST}' seconds='0'/></iq>")


def test_one_resource_leaving_is_not_a_logout(harness: Harness) -> None:
    make_contacts(harness, "romeo@example.org", "juliet@example.org")
    phone = harness.login("juliet@example.org/phone")
    harness.login("juliet@example.org/laptop")
    phone.send("<presence type='unavailable'/>")
    harness.clock.advance(10)
    romeo = harness.login("romeo@example.org/a")
    ask(romeo, "juliet@example.org")
    assert romeo.received()[0][0].get("seconds") == "0"


def test_users_may_ask_about_themselves(harness: Harness) -> None:
    juliet = harness.login("juliet@example.org/phone")
    ask(juliet, "juliet@example.org")
    assert juliet.received()[0][0].get("seconds") == "0"


def test_registration_counts_until_the_first_logout(harness: Harness) -> None:
    make_contacts(harness, "romeo@example.org", "juliet@example.org")   # registers both now
    harness.clock.advance(3600)
    romeo = harness.login("romeo@example.org/a")
    ask(romeo, "juliet@example.org")
    romeo.expect("<iq type='result' id='l1' from='juliet@example.org' to='romeo@example.org/a'>"
                 f"<query xmlns='{LAST}' seconds='3600'/></iq>")


def test_no_record_is_service_unavailable(harness: Harness) -> None:
    make_contacts(harness, "romeo@example.org", "juliet@example.org")
    last = harness.server.hosts["example.org"].modules["last"]
    resolve(last.store.delete(JID.parse("juliet@example.org")))  # type: ignore[attr-defined]
    romeo = harness.login("romeo@example.org/a")
    ask(romeo, "juliet@example.org")
    got = romeo.received()[0]
    assert got.get("type") == "error"
    assert got.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}service-unavailable") is not None


def test_blocked_contact_gets_forbidden(harness: Harness) -> None:                # veto fold
    make_contacts(harness, "romeo@example.org", "juliet@example.org")
    harness.server.hosts["example.org"].hooks.add(
        hooks.may_see_presence, lambda q, acc: Stop(False), hooks.LATE)
    romeo = harness.login("romeo@example.org/a")
    ask(romeo, "juliet@example.org")
    romeo.expect("<iq type='error' id='l1' from='juliet@example.org' to='romeo@example.org/a'>"
                 f"<query xmlns='{LAST}'/>{FORBIDDEN}</iq>")


def test_server_query_returns_uptime(harness: Harness) -> None:
    harness.clock.advance(123)
    romeo = harness.login("romeo@example.org/a")
    ask(romeo, "example.org")
    romeo.expect("<iq type='result' id='l1' from='example.org' to='romeo@example.org/a'>"
                 f"<query xmlns='{LAST}' seconds='123'/></iq>")


def test_clock_stepping_back_never_gives_negative_seconds(harness: Harness) -> None:
    make_contacts(harness, "romeo@example.org", "juliet@example.org")
    last = harness.server.hosts["example.org"].modules["last"]
    future = harness.clock.seconds() + 500
    resolve(last.store.put(JID.parse("juliet@example.org"),  # type: ignore[attr-defined]
                           LastSeen(future, "")))
    romeo = harness.login("romeo@example.org/a")
    ask(romeo, "juliet@example.org")
    assert romeo.received()[0][0].get("seconds") == "0"


def test_deleted_user_record_is_gone(harness: Harness) -> None:
    juliet = harness.login("juliet@example.org/phone")
    juliet.send("<presence type='unavailable'/>")
    last = harness.server.hosts["example.org"].modules["last"]
    user = JID.parse("juliet@example.org")
    assert resolve(last.store.get(user)) is not None  # type: ignore[attr-defined]
    resolve(harness.server.accounts.delete("juliet", "example.org"))
    assert resolve(last.store.get(user)) is None  # type: ignore[attr-defined]


def test_full_jid_query_is_refused_to_strangers_and_delivered_to_contacts(
        harness: Harness) -> None:
    juliet = harness.login("juliet@example.org/phone")
    romeo = harness.login("romeo@example.org/a")
    ask(romeo, "juliet@example.org/phone")
    romeo.expect("<iq type='error' id='l1' from='juliet@example.org/phone' "
                 f"to='romeo@example.org/a'><query xmlns='{LAST}'/>{FORBIDDEN}</iq>")
    juliet.received()
    put(harness, "juliet@example.org", "romeo@example.org", "from")
    ask(romeo, "juliet@example.org/phone", "l2")
    juliet.expect("<iq type='get' id='l2' from='romeo@example.org/a' "
                  f"to='juliet@example.org/phone'><query xmlns='{LAST}'/></iq>")


def test_last_activity_is_advertised(harness: Harness) -> None:
    assert LAST in harness.server.hosts["example.org"].features["host"]
