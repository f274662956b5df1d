"""Router pieces a MUC service needs: presence to a service domain passes the sender's
outbound presence processing; `fan_out` serialises a stanza once for many recipients."""
from __future__ import annotations

from typing import Any, Callable

from lxml import etree

from tests.harness.server import Harness, parse
from xmppd import hooks
from xmppd.hooks import STOP
from stanzas.jid import JID

MODULES = {"disco": {}, "roster": {}, "presence": {}}


def service(h: Harness) -> list[tuple[str, str, str]]:
    seen: list[tuple[str, str, str]] = []
    ctx = h.server.hosts["example.org"].contexts[0]
    ctx.service_domain("chat.example.org", lambda el, s, t: seen.append(
        (f"{etree.QName(el).localname}/{el.get('type', '')}", str(s), str(t))))
    return seen


def test_directed_presence_to_a_service_is_remembered_and_undone_on_disconnect(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules=MODULES)
    seen = service(h)
    alice = h.login("alice@example.org/phone")
    alice.send("<presence to='room@chat.example.org/alice'/>")
    assert seen == [("presence/", "alice@example.org/phone", "room@chat.example.org/alice")]
    h.disconnect(alice)
    # RFC 6121 §4.6.3: the presence module sends unavailable to directed-presence targets.
    assert seen == [("presence/", "alice@example.org/phone", "room@chat.example.org/alice"),
                    ("presence/unavailable", "alice@example.org/phone",
                     "room@chat.example.org/alice")]


def test_presence_stopped_by_presence_in_does_not_reach_the_service(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={"disco": {}})
    seen = service(h)
    h.server.hosts["example.org"].hooks.add(hooks.presence_in, lambda ev: STOP)
    alice = h.login("alice@example.org/phone", available=False)
    alice.send("<presence to='room@chat.example.org/alice'/>")
    alice.send("<message to='room@chat.example.org' type='groupchat'><body>x</body></message>")
    assert seen == [("message/groupchat", "alice@example.org/phone", "room@chat.example.org")]


def groupchat() -> etree._Element:
    return parse("<message from='room@chat.example.org/bob' type='groupchat' id='m1'>"
                 "<body>h&amp;llo 🌹</body></message>")


def test_fan_out_addresses_each_recipient(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={"disco": {}})
    a1, a2 = h.login("alice@example.org/a"), h.login("alice@example.org/b")
    bob = h.login("bob@example.org/x")
    h.server.router.fan_out(groupchat(), [a1.jid, a2.jid, bob.jid])
    for s in (a1, a2, bob):
        s.expect(f"<message from='room@chat.example.org/bob' to='{s.jid}' type='groupchat' "
                 "id='m1'><body>h&amp;llo 🌹</body></message>")
        s.expect_nothing()


def test_fan_out_serialises_once(make_harness: Callable[..., Harness], monkeypatch: Any) -> None:
    h = make_harness(modules={"disco": {}})
    sessions = [h.login(f"u{i}@example.org/r") for i in range(5)]
    import xmppd.router_deliver as router
    calls: list[int] = []
    real = router.serialize
    monkeypatch.setattr(router, "serialize", lambda el: calls.append(1) or real(el))
    h.server.router.fan_out(groupchat(), [s.jid for s in sessions])
    assert len(calls) == 1
    assert all(len(s.received()) == 1 for s in sessions)


def test_fan_out_routes_copies_for_the_unconnected_and_bounces_them(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={"disco": {}})
    seen = service(h)
    bob = h.login("bob@example.org/x")
    h.server.router.fan_out(groupchat(), [bob.jid, JID.parse("bob@example.org/gone")])
    bob.expect("<message from='room@chat.example.org/bob' to='bob@example.org/x' "
               "type='groupchat' id='m1'><body>{any}</body></message>")
    # RFC 6121 §8.5.3.2.1: groupchat to a gone resource is bounced to the room's occupant JID.
    assert seen == [("message/error", "bob@example.org/gone", "room@chat.example.org/bob")]


def test_fan_out_runs_user_inbound_per_recipient(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={"disco": {}})
    alice, bob = h.login("alice@example.org/a"), h.login("bob@example.org/x")
    asked: list[str] = []

    def veto(ev: hooks.StanzaEvent) -> object:
        asked.append(str(ev.to))
        return STOP if ev.to.bare == bob.jid.bare else None
    h.server.hosts["example.org"].hooks.add(hooks.user_inbound, veto)
    h.server.router.fan_out(groupchat(), [alice.jid, bob.jid])
    assert asked == ["alice@example.org/a", "bob@example.org/x"]
    assert len(alice.received()) == 1
    bob.expect_nothing()


def test_fan_out_hands_output_filters_each_recipients_own_copy(
        make_harness: Callable[..., Harness]) -> None:
    # Replaces the test of the removed `message_out` hook: per-recipient output handling
    # (XEP-0198, XEP-0352) now sees each recipient's copy, its `to` spliced in.
    h = make_harness(modules={"disco": {}})
    alice, bob = h.login("alice@example.org/a"), h.login("bob@example.org/x")
    seen: list[tuple[str, str | None]] = []

    def watch(session: Any, data: bytes) -> bool:
        seen.append((str(session.jid), etree.fromstring(data).get("to")))
        return False
    h.server.hosts["example.org"].output_filters.append((50, 0, watch))
    h.server.router.fan_out(groupchat(), [alice.jid, bob.jid])
    assert seen == [("alice@example.org/a", "alice@example.org/a"),
                    ("bob@example.org/x", "bob@example.org/x")]
    assert len(alice.received()) == 1 and len(bob.received()) == 1
