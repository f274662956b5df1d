"""RFC 6121 §4 presence on the in-memory harness: broadcast, probes, unavailable on logout and
disconnect, directed presence, own resources, hooks."""
from __future__ import annotations

from typing import Any, Callable

import pytest
from lxml import etree

from storage.errors import StorageError
from tests.harness.server import Harness, parse
from tests.modules.contacts import MODULES, kinds, make_contacts, put, service
from xmppd import hooks
from xmppd.hooks import Stop
from stanzas.jid import JID

ALICE, BOB, CAROL, DAVE = ("alice@example.org", "bob@example.org", "carol@example.org",
                           "dave@example.org")


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    hh = make_harness(modules=MODULES)
    # alice's roster: bob both, carol from (sees alice), dave to (alice sees dave)
    make_contacts(hh, ALICE, BOB)
    put(hh, ALICE, CAROL, "from")
    put(hh, CAROL, ALICE, "to")
    put(hh, ALICE, DAVE, "to")
    put(hh, DAVE, ALICE, "from")
    return hh


def presences(session: Any) -> list[tuple[str | None, str | None, str | None]]:
    return [(t, f, to) for (name, t, f, to) in kinds(session) if name == "presence"]


def test_initial_presence_goes_to_from_and_both_contacts_and_own_resources(h: Harness) -> None:
    bob, carol, dave = (h.login(f"{u}/x") for u in (BOB, CAROL, DAVE))
    for s in (bob, carol, dave):
        s.received()
    alice = h.login(f"{ALICE}/phone", available=False)
    alice.send("<presence><show>away</show><status>lunch</status><priority>5</priority>"
               "</presence>")
    expected = (f"<presence from='{ALICE}/phone' to='%s'><show>away</show>"
                "<status>lunch</status><priority>5</priority></presence>")
    bob.expect(expected % BOB)
    carol.expect(expected % CAROL)
    dave.expect_nothing()                                    # 'to' only: dave does not see
    alice.expect(expected % ALICE)                           # §4.2.2: including the sender
    # then the probe answers from bob and dave (§4.3.2); carol has no 'from' for alice
    assert sorted(presences(alice)) == [(None, f"{BOB}/x", ALICE), (None, f"{DAVE}/x", ALICE)]


def test_probe_answer_is_each_available_resources_last_presence(h: Harness) -> None:
    bob1 = h.login(f"{BOB}/one", available=False)
    bob1.send("<presence><status>in a meeting</status><priority>3</priority></presence>")
    h.login(f"{BOB}/two", available=False)                   # connected, never available
    bob3 = h.login(f"{BOB}/three")
    bob3.send("<presence type='unavailable'/>")              # gone again
    alice = h.login(f"{ALICE}/phone", available=False)
    alice.send("<presence/>")
    alice.expect(f"<presence from='{ALICE}/phone' to='{ALICE}'/>")
    alice.expect(f"<presence from='{BOB}/one' to='{ALICE}'><status>in a meeting</status>"
                 "<priority>3</priority></presence>")
    alice.expect_nothing()                                   # dave is offline: no answer


def test_probe_from_someone_not_subscribed_gets_unsubscribed(h: Harness) -> None:
    h.login(f"{CAROL}/x")
    dave = h.login(f"{DAVE}/x")
    dave.received()
    # dave believes he has a subscription to carol; carol's server disagrees (§4.3.2 rule 1)
    put(h, DAVE, CAROL, "to")
    dave.send(f"<presence type='probe' to='{CAROL}'/>")
    assert ("unsubscribed", CAROL, DAVE) in presences(dave)
    assert service(h).cached(JID.parse(DAVE)).items[JID.parse(CAROL)].subscription == "none"  # type: ignore[union-attr]


def test_subsequent_presence_is_broadcast_without_new_probes(h: Harness) -> None:
    bob = h.login(f"{BOB}/x")
    alice = h.login(f"{ALICE}/phone")
    bob.received()
    alice.received()
    alice.send("<presence><show>dnd</show></presence>")
    assert presences(bob) == [(None, f"{ALICE}/phone", BOB)]
    assert presences(alice) == [(None, f"{ALICE}/phone", ALICE)]   # no probe answers again


def test_other_resources_see_each_other(h: Harness) -> None:
    phone = h.login(f"{ALICE}/phone")
    laptop = h.login(f"{ALICE}/laptop", available=False)
    phone.received()
    laptop.send("<presence><show>chat</show></presence>")
    assert presences(phone) == [(None, f"{ALICE}/laptop", ALICE)]
    got = presences(laptop)
    assert got[0] == (None, f"{ALICE}/laptop", ALICE)              # its own, first
    assert (None, f"{ALICE}/phone", f"{ALICE}/laptop") in got      # the other resource
    laptop.send("<presence type='unavailable'/>")
    assert presences(phone) == [("unavailable", f"{ALICE}/laptop", ALICE)]
    assert presences(laptop) == [("unavailable", f"{ALICE}/laptop", ALICE)]


def test_logout_broadcasts_unavailable_with_status(h: Harness) -> None:
    bob, carol, dave = (h.login(f"{u}/x") for u in (BOB, CAROL, DAVE))
    alice = h.login(f"{ALICE}/phone")
    for s in (bob, carol, dave):
        s.received()
    alice.send("<presence type='unavailable'><status>bye</status></presence>")
    bob.expect(f"<presence type='unavailable' from='{ALICE}/phone' to='{BOB}'>"
               "<status>bye</status></presence>")
    carol.expect(f"<presence type='unavailable' from='{ALICE}/phone' to='{CAROL}'>"
                 "<status>bye</status></presence>")
    dave.expect_nothing()
    alice.close()
    bob.expect_nothing()                                     # no second unavailable


@pytest.mark.parametrize("how", ["closed", "dropped"])
def test_disconnect_without_goodbye_broadcasts_unavailable(h: Harness, how: str) -> None:
    bob = h.login(f"{BOB}/x")
    other = h.login(f"{ALICE}/laptop")
    alice = h.login(f"{ALICE}/phone")
    bob.received()
    other.received()
    if how == "closed":
        alice.close()
    else:
        h.disconnect(alice)
    bob.expect(f"<presence type='unavailable' from='{ALICE}/phone' to='{BOB}'/>")
    other.expect(f"<presence type='unavailable' from='{ALICE}/phone' to='{ALICE}'/>")


def test_a_session_that_never_was_available_leaves_silently(h: Harness) -> None:
    bob = h.login(f"{BOB}/x")
    bob.received()
    alice = h.login(f"{ALICE}/phone", available=False)
    alice.send("<presence type='unavailable'/>")
    alice.close()
    bob.expect_nothing()


def test_directed_presence_is_delivered_tracked_and_cleaned_up(h: Harness) -> None:
    eve = h.login("eve@example.org/x")                       # no subscription with alice
    bob = h.login(f"{BOB}/x")
    alice = h.login(f"{ALICE}/phone")
    eve.received()
    bob.received()
    alice.send("<presence to='eve@example.org'><show>chat</show></presence>")
    eve.expect(f"<presence from='{ALICE}/phone' to='eve@example.org'><show>chat</show>"
               "</presence>")
    alice.send("<presence><show>away</show></presence>")     # broadcasts skip eve (§4.6)
    eve.expect_nothing()
    bob.received()
    h.disconnect(alice)
    eve.expect(f"<presence type='unavailable' from='{ALICE}/phone' to='eve@example.org'/>")
    bob.expect(f"<presence type='unavailable' from='{ALICE}/phone' to='{BOB}'/>")


def test_directed_unavailable_ends_the_tracking(h: Harness) -> None:
    eve = h.login("eve@example.org/x")
    alice = h.login(f"{ALICE}/phone")
    alice.send("<presence to='eve@example.org/x'/>")
    alice.send("<presence type='unavailable' to='eve@example.org/x'/>")
    eve.received()
    alice.send("<presence type='unavailable'/>")
    eve.expect_nothing()


def test_directed_presence_to_a_contact_is_not_tracked_twice(h: Harness) -> None:
    bob = h.login(f"{BOB}/x")
    alice = h.login(f"{ALICE}/phone")
    alice.send(f"<presence to='{BOB}'/>")
    bob.received()
    alice.send("<presence type='unavailable'/>")
    assert presences(bob) == [("unavailable", f"{ALICE}/phone", BOB)]


def test_directed_presence_tracking_is_bounded(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={**MODULES, "presence": {"max_directed": 1}})
    one, two = h.login("one@example.org/x"), h.login("two@example.org/x")
    alice = h.login(f"{ALICE}/phone")
    alice.send("<presence to='one@example.org'/>")
    alice.send("<presence to='two@example.org'/>")
    one.received()
    two.received()
    alice.send("<presence type='unavailable'/>")
    assert presences(one) == [("unavailable", f"{ALICE}/phone", "one@example.org")]
    assert presences(two) == []


def test_client_probe_is_stamped_and_answered(h: Harness) -> None:
    h.login(f"{BOB}/x")
    alice = h.login(f"{ALICE}/phone")
    alice.received()
    alice.send(f"<presence type='probe' to='{BOB}/x'/>")
    assert presences(alice) == [(None, f"{BOB}/x", ALICE)]


def test_unknown_presence_type_is_bad_request(h: Harness) -> None:
    alice = h.login(f"{ALICE}/phone")
    alice.send("<presence type='sideways' id='p1'/>")
    got = alice.received()
    assert got[0].get("type") == "error"
    assert got[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}bad-request") is not None


def test_presence_broadcast_hook_may_rewrite_the_stanza(h: Harness) -> None:
    def stamp(ev: hooks.StanzaEvent) -> None:
        etree.SubElement(ev.stanza, "{vcard-temp:x:update}x")
    h.server.hosts["example.org"].hooks.add(hooks.presence_broadcast, stamp)
    bob = h.login(f"{BOB}/x")
    bob.received()
    h.login(f"{ALICE}/phone")
    got = bob.received()
    assert got[0].find("{vcard-temp:x:update}x") is not None
    # and the stored presence, which answers probes, has it too
    bob2 = h.login(f"{BOB}/y", available=False)
    bob2.send("<presence/>")
    answer = [e for e in bob2.received() if e.get("from") == f"{ALICE}/phone"]
    assert answer and answer[0].find("{vcard-temp:x:update}x") is not None


def test_a_may_see_presence_veto_hides_presence_and_probe_answers(h: Harness) -> None:
    def block_bob(q: Any, acc: bool) -> Any:
        return Stop(False) if str(q.asker) == BOB else acc
    h.server.hosts["example.org"].hooks.add(hooks.may_see_presence, block_bob, hooks.LATE)
    bob, carol = h.login(f"{BOB}/x"), h.login(f"{CAROL}/x")
    bob.received()
    carol.received()
    h.login(f"{ALICE}/phone")
    assert presences(bob) == [] and presences(carol) == [(None, f"{ALICE}/phone", CAROL)]
    bob.send(f"<presence type='probe' to='{ALICE}'/>")
    assert presences(bob) == []                               # vetoed: silence, not unsubscribed


def test_user_offline_fires_when_the_last_resource_goes(h: Harness) -> None:
    seen: list[tuple[str, str]] = []
    h.server.hosts["example.org"].hooks.add(
        hooks.user_offline, lambda ev: seen.append((str(ev.user), ev.status)))
    phone = h.login(f"{ALICE}/phone")
    laptop = h.login(f"{ALICE}/laptop")
    phone.send("<presence type='unavailable'><status>one</status></presence>")
    assert seen == []
    laptop.send("<presence type='unavailable'><status>two</status></presence>")
    assert seen == [(ALICE, "two")]
    laptop.send("<presence/>")
    h.disconnect(laptop)
    assert seen == [(ALICE, "two"), (ALICE, "")]


def test_broadcast_and_probes_use_no_database(h: Harness) -> None:
    bob = h.login(f"{BOB}/x")
    alice = h.login(f"{ALICE}/phone", available=False)
    svc = service(h)

    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise StorageError("database down")
    real, svc.store = svc.store, Broken()  # type: ignore[assignment]
    try:
        bob.received()
        alice.send("<presence/>")
        assert presences(bob) == [(None, f"{ALICE}/phone", BOB)]
        assert (None, f"{BOB}/x", ALICE) in presences(alice)
        alice.send("<presence type='unavailable'/>")
        assert presences(bob) == [("unavailable", f"{ALICE}/phone", BOB)]
    finally:
        svc.store = real


def test_inbound_presence_from_server_side_is_delivered(h: Harness) -> None:
    bob = h.login(f"{BOB}/x")
    bob.received()
    h.server.router.route(parse(f"<presence from='eve@example.org/y' to='{BOB}'/>"))
    assert presences(bob) == [(None, "eve@example.org/y", BOB)]


def test_contacts_without_sessions_cost_nothing_at_login(h: Harness) -> None:
    """Presence to them would be dropped and probes unanswered, so neither is routed (no
    inbound hooks, no block-list or roster reads for offline users)."""
    routed: list[tuple[str, str]] = []
    h.server.hosts["example.org"].hooks.add(
        hooks.user_inbound, lambda ev: routed.append((str(ev.to), ev.stanza.get("type", ""))))
    bob = h.login(f"{BOB}/x")
    routed.clear()
    h.login(f"{ALICE}/phone")
    assert sorted(routed) == [(ALICE, ""), (BOB, ""), (BOB, "probe")]   # + bob's answer
    bob.received()
