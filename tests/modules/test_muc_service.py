"""The MUC service on the in-memory harness: discovery of the service, its rooms and a room
(XEP-0045 §6), reserved nicknames (§7.12), IQs the service does not know, shutdown (§11.2)."""
from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from tests.harness.server import HarnessClient, Harness, resolve
from tests.modules.muc_helpers import (ROOM, SERVICE, admin_set, codes, configure, create,
                                       error_of, h, join, muc)

__all__ = ["h", "muc"]
INFO, ITEMS = "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items"


def ask(s: HarnessClient, to: str, ns: str, extra: str = "", node: str = "") -> etree._Element:
    n = f" node='{node}'" if node else ""
    s.send(f"<iq type='get' id='q' to='{to}'><query xmlns='{ns}'{n}>{extra}</query></iq>")
    return [e for e in s.received() if e.get("id") == "q"][0]


def features(el: etree._Element) -> set[str]:
    return {f.get("var") or "" for f in el.iter(f"{{{INFO}}}feature")}


def test_host_lists_its_muc_service(h: Harness) -> None:                            # §6.1
    alice = h.login("alice@example.org/r")
    got = ask(alice, "example.org", ITEMS)
    assert [(i.get("jid"), i.get("name")) for i in got.iter(f"{{{ITEMS}}}item")] == \
        [(SERVICE, "Chatrooms")]


def test_service_domain_and_name_are_configurable(muc: Callable[..., Harness]) -> None:
    h = muc(domain="rooms.{host}", name="Groups")
    alice = h.login("alice@example.org/r")
    got = ask(alice, "example.org", ITEMS)
    assert [(i.get("jid"), i.get("name")) for i in got.iter(f"{{{ITEMS}}}item")] == \
        [("rooms.example.org", "Groups")]
    got = ask(alice, "rooms.example.org", INFO)
    assert got.find(f"{{{INFO}}}query/{{{INFO}}}identity").get("name") == "Groups"


def test_service_info(h: Harness) -> None:                                          # §6.2
    alice = h.login("alice@example.org/r")
    got = ask(alice, SERVICE, INFO)
    ident = got.find(f"{{{INFO}}}query/{{{INFO}}}identity")
    assert (ident.get("category"), ident.get("type")) == ("conference", "text")
    assert {"http://jabber.org/protocol/muc", "http://jabber.org/protocol/muc#stable_id",
            "urn:xmpp:occupant-id:0",
            "http://jabber.org/protocol/muc#self-ping-optimization"} <= features(got)
    assert error_of(ask(alice, SERVICE, INFO, node="x"))[1] == "item-not-found"


def test_room_list_has_public_unlocked_rooms_with_paging(h: Harness) -> None:       # §6.3
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "a", f"open@{SERVICE}", roomname="Open")
    create(alice, "a", f"stored@{SERVICE}", persistentroom=True)
    create(alice, "a", f"hidden@{SERVICE}", publicroom=False)
    join(bob, "b", f"locked@{SERVICE}")
    alice.send(f"<presence to='stored@{SERVICE}/a' type='unavailable'/>")   # leaves memory
    got = ask(alice, SERVICE, ITEMS)
    assert [(i.get("jid"), i.get("name")) for i in got.iter(f"{{{ITEMS}}}item")] == \
        [(f"open@{SERVICE}", "Open"), (f"stored@{SERVICE}", None)]
    rsm = "<set xmlns='http://jabber.org/protocol/rsm'><max>1</max></set>"
    got = ask(alice, SERVICE, ITEMS, rsm)
    assert [i.get("jid") for i in got.iter(f"{{{ITEMS}}}item")] == [f"open@{SERVICE}"]
    assert got.findtext(".//{http://jabber.org/protocol/rsm}count") == "2"
    after = rsm.replace("<max>1</max>", f"<max>1</max><after>open@{SERVICE}</after>")
    got = ask(alice, SERVICE, ITEMS, after)
    assert [i.get("jid") for i in got.iter(f"{{{ITEMS}}}item")] == [f"stored@{SERVICE}"]


def test_room_info_features_and_roominfo(h: Harness) -> None:                       # §6.4
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "alice", roomname="Cave", roomdesc="For witches", persistentroom=True,
           membersonly=True, whois="anyone")
    alice.send(f"<message to='{ROOM}' type='groupchat'><subject>Spells</subject></message>")
    got = ask(bob, ROOM, INFO)
    ident = got.find(f"{{{INFO}}}query/{{{INFO}}}identity")
    assert (ident.get("category"), ident.get("name")) == ("conference", "Cave")
    assert {"muc_persistent", "muc_membersonly", "muc_nonanonymous", "muc_unmoderated",
            "muc_unsecured", "muc_public", "urn:xmpp:mam:2", "urn:xmpp:sid:0",
            "urn:xmpp:occupant-id:0"} <= features(got)
    form = {f.get("var"): f.findtext("{jabber:x:data}value")
            for f in got.iter("{jabber:x:data}field")}
    assert form["FORM_TYPE"] == "http://jabber.org/protocol/muc#roominfo"
    assert form["muc#roominfo_subject"] == "Spells"
    assert form["muc#roominfo_occupants"] == "1"
    assert form["muc#roominfo_description"] == "For witches"
    configure(alice, enablelogging=False)
    assert "urn:xmpp:mam:2" not in features(ask(bob, ROOM, INFO))
    assert list(ask(bob, ROOM, ITEMS).iter(f"{{{ITEMS}}}item")) == []        # §6.5


def test_reserved_nickname_discovery(h: Harness) -> None:                           # §7.12
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "alice")
    admin_set(alice, "<item affiliation='member' jid='bob@example.org' nick='Robert'/>")
    got = ask(bob, ROOM, INFO, node="x-roomuser-item")
    assert got.find(f"{{{INFO}}}query").get("node") == "x-roomuser-item"
    assert got.find(f".//{{{INFO}}}identity").get("name") == "Robert"
    carol = h.login("carol@example.org/r")
    assert ask(carol, ROOM, INFO, node="x-roomuser-item").find(f".//{{{INFO}}}identity") is None


def test_unknown_rooms_and_iqs(h: Harness) -> None:
    alice = h.login("alice@example.org/r")
    assert error_of(ask(alice, f"nope@{SERVICE}", INFO))[1] == "item-not-found"  # §17.2.3
    create(alice, "alice")
    alice.send(f"<iq type='get' id='v' to='{ROOM}'><vCard xmlns='vcard-temp'/></iq>")
    assert error_of(alice.received()[0])[1] == "service-unavailable"
    alice.send(f"<iq type='get' id='p' to='{ROOM}'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert alice.received()[0].get("type") == "result"
    alice.send(f"<iq type='get' id='p' to='{SERVICE}'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert alice.received()[0].get("type") == "result"
    alice.send(f"<message to='{SERVICE}'><body>hi</body></message>")
    assert error_of(alice.received()[0])[1] == "service-unavailable"


def test_a_room_read_for_one_iq_leaves_memory_again(h: Harness) -> None:
    alice = h.login("alice@example.org/r")
    create(alice, "alice", persistentroom=True, roomname="Kept")
    alice.send(f"<presence to='{ROOM}/alice' type='unavailable'/>")
    service = h.server.hosts["example.org"].modules["muc"].service  # type: ignore[attr-defined]
    assert service.rooms == {}
    got = ask(alice, ROOM, INFO)
    assert got.find(f".//{{{INFO}}}identity").get("name") == "Kept"
    assert service.rooms == {}


def test_locked_room_answers_only_its_owner(h: Harness) -> None:                    # §10.1.1
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    join(alice, "alice")
    assert error_of(ask(bob, ROOM, INFO))[1] == "item-not-found"
    assert ask(alice, ROOM, INFO).get("type") == "result"


def test_shutdown_tells_occupants_with_332(h: Harness) -> None:                    # §11.2
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "alice")
    join(bob, "bob")
    alice.received()
    resolve(h.server.stop())
    got = bob.received()
    assert len(got) == 1 and got[0].get("type") == "unavailable" and codes(got[0]) == {110, 332}
