"""XEP-0045 occupants on the in-memory harness: entering (§7.2 and every join error), presence,
nick changes, leaving, several resources under one nick, ghosts, history and subject."""
from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from tests.harness.server import Harness
from tests.modules.muc_helpers import (MUC, ROOM, USER, admin_set, codes, configure, create,
                                       error_of, h, item, join, join_xml, kinds, muc)

__all__ = ["h", "muc"]


def test_creating_a_room_makes_the_creator_owner_with_201(h: Harness) -> None:   # §10.1.1
    alice = h.login("alice@example.org/phone")
    got = join(alice, "Alice")
    assert kinds(got) == ["presence:Alice", "subject"]
    assert codes(got[0]) == {110, 201}
    assert (item(got[0]).get("affiliation"), item(got[0]).get("role")) == ("owner", "moderator")
    assert got[0].find("{urn:xmpp:occupant-id:0}occupant-id") is not None
    assert got[1].get("type") == "groupchat" and got[1].findtext("{jabber:client}subject") == ""


def test_locked_room_refuses_others_until_configured(h: Harness) -> None:          # §7.2.11
    alice, bob = h.login("alice@example.org/phone"), h.login("bob@example.org/pc")
    join(alice, "Alice")
    bob.send(join_xml("Bob", id="j1"))
    err = bob.received()[0]
    assert err.get("type") == "error" and err.get("id") == "j1"
    assert err.get("from") == f"{ROOM}/Bob"
    assert error_of(err) == ("cancel", "item-not-found")
    assert err.find("{jabber:client}error").get("by") == ROOM
    assert err.find(f"{{{MUC}}}x") is not None
    configure(alice)                                                      # instant room
    assert kinds(join(bob, "Bob")) == ["presence:Alice", "presence:Bob", "subject"]


def test_join_order_others_then_self_then_history_then_subject(h: Harness) -> None:  # §7.1
    alice, bob, carol = (h.login(f"{u}@example.org/r") for u in ("alice", "bob", "carol"))
    create(alice, "Alice")
    join(bob, "Bob")
    bob.send(f"<message to='{ROOM}' type='groupchat'><body>one</body></message>")
    got = join(carol, "Carol")
    assert kinds(got) == ["presence:Alice", "presence:Bob", "presence:Carol", "message:one",
                          "subject"]
    assert codes(got[2]) == {110, 170}                      # archiving is on by default
    assert got[3].find("{urn:xmpp:delay}delay").get("from") == ROOM        # §7.2.15
    # The others learn of Carol; semi-anonymous: only the moderator sees her real JID.
    alice_sees = [e for e in alice.received() if e.get("from") == f"{ROOM}/Carol"]
    bob_sees = [e for e in bob.received() if e.get("from") == f"{ROOM}/Carol"]
    assert item(alice_sees[0]).get("jid") == "carol@example.org/r"
    assert item(bob_sees[0]).get("jid") is None


def test_non_anonymous_room_shows_jids_and_warns_with_100(h: Harness) -> None:    # §7.2.4
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice", whois="anyone")
    got = join(bob, "Bob")
    assert item(got[0]).get("jid") == "alice@example.org/r"
    assert codes(got[1]) == {100, 110, 170}
    assert item(got[1]).get("jid") == "bob@example.org/r"


def test_archived_persistent_room_warns_with_170(h: Harness) -> None:              # §7.2.12
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice", persistentroom=True)
    assert 170 in codes(join(bob, "Bob")[1])


def test_join_without_nick_is_jid_malformed(h: Harness) -> None:                  # §7.2.1
    alice = h.login("alice@example.org/r")
    alice.send(f"<presence to='{ROOM}'><x xmlns='{MUC}'/></presence>")
    assert error_of(alice.received()[0]) == ("modify", "jid-malformed")


def test_blank_nick_is_not_acceptable_and_spaces_are_trimmed_with_210(h: Harness) -> None:
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice")
    bob.send(join_xml("%20%20"))    # not a JID escape: a nick of percent signs is fine
    got = bob.received()
    assert item(got[1]).get("role") == "participant"
    carol = h.login("carol@example.org/r")
    carol.send(f"<presence to='{ROOM}/ Carol '><x xmlns='{MUC}'/></presence>")
    got = carol.received()
    mine = [e for e in got if e.get("from") == f"{ROOM}/Carol"]
    assert codes(mine[0]) == {110, 170, 210}                                # §7.2.3
    dave = h.login("dave@example.org/r")
    dave.send(f"<presence to='{ROOM}/   '><x xmlns='{MUC}'/></presence>")
    assert error_of(dave.received()[0])[1] == "not-acceptable"             # §17.1


def test_password_protected_room(h: Harness) -> None:                              # §7.2.6
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice", passwordprotectedroom=True, roomsecret="cauldronburn")
    bob.send(join_xml("Bob"))
    err = bob.received()[0]
    assert error_of(err) == ("auth", "not-authorized")
    got = join(bob, "Bob", extra="<password>wrong</password>")
    assert error_of(got[0]) == ("auth", "not-authorized")
    got = join(bob, "Bob", extra="<password>cauldronburn</password>")
    assert codes(got[-2]) == {110, 170}


def test_members_only_room_refuses_non_members(h: Harness) -> None:              # §7.2.7
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice", membersonly=True)
    bob.send(join_xml("Bob"))
    assert error_of(bob.received()[0]) == ("auth", "registration-required")
    assert admin_set(alice, "<item affiliation='member' jid='bob@example.org'/>"
                     ).get("type") == "result"
    alice.received()
    # §9.5: a new member of a members-only room is invited.
    invite = bob.received()[0]
    assert invite.get("from") == ROOM
    assert invite.find(f"{{{USER}}}x/{{{USER}}}invite").get("from") == "alice@example.org"
    got = join(bob, "Bob")
    assert (item(got[1]).get("affiliation"), item(got[1]).get("role")) == ("member",
                                                                           "participant")


def test_banned_user_is_forbidden_before_anything_else(h: Harness) -> None:      # §7.2.8
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice", membersonly=True, passwordprotectedroom=True, roomsecret="x")
    admin_set(alice, "<item affiliation='outcast' jid='bob@example.org'/>")
    bob.send(join_xml("Bob"))
    assert error_of(bob.received()[0]) == ("auth", "forbidden")


def test_banning_a_domain_bans_its_users(muc: Callable[..., Harness]) -> None:  # §9.2
    h = muc()
    alice, mallory = h.login("alice@example.org/r"), h.login("mallory@example.org/r")
    create(alice, "Alice")
    admin_set(alice, "<item affiliation='outcast' jid='example.org'/>")
    mallory.send(join_xml("Mallory"))
    assert error_of(mallory.received()[0]) == ("auth", "forbidden")
    assert codes(join(alice, "Alice")[-2]) == {110, 170}  # the owner's own entry: its JID


def test_nick_conflict_and_reserved_nick(h: Harness) -> None:                     # §7.2.9
    alice, bob, carol = (h.login(f"{u}@example.org/r") for u in ("alice", "bob", "carol"))
    create(alice, "Alice")
    bob.send(join_xml("Alice"))
    assert error_of(bob.received()[0]) == ("cancel", "conflict")
    admin_set(alice, "<item affiliation='member' jid='carol@example.org' nick='Witch'/>")
    bob.send(join_xml("Witch"))
    assert error_of(bob.received()[0]) == ("cancel", "conflict")
    assert codes(join(carol, "Witch")[-2]) == {110, 170}


def test_full_room_is_service_unavailable_except_for_admins(h: Harness) -> None:  # §7.2.10
    alice, bob, carol = (h.login(f"{u}@example.org/r") for u in ("alice", "bob", "carol"))
    create(alice, "Alice", maxusers=2)
    join(bob, "Bob")
    carol.send(join_xml("Carol"))
    assert error_of(carol.received()[0]) == ("wait", "service-unavailable")
    admin_set(alice, "<item affiliation='admin' jid='carol@example.org'/>")
    alice.received()
    assert codes(join(carol, "Carol")[-2]) == {110, 170}


def test_creation_can_be_restricted(muc: Callable[..., Harness]) -> None:        # §10.1.1
    h = muc(create_rooms="admins", admins=["boss@example.org"])
    alice, boss = h.login("alice@example.org/r"), h.login("boss@example.org/r")
    alice.send(join_xml("Alice"))
    assert error_of(alice.received()[0]) == ("cancel", "not-allowed")
    assert codes(join(boss, "Boss")[0]) == {110, 201}


def test_groupchat_1_0_presence_from_a_non_occupant_is_kicked(h: Harness) -> None:  # §7.2.23
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice")
    bob.send(f"<presence to='{ROOM}/Bob'/>")
    got = bob.received()[0]
    assert got.get("type") == "unavailable" and codes(got) == {110, 307, 333}
    assert (item(got).get("affiliation"), item(got).get("role")) == ("none", "none")
    assert alice.received() == []


def test_leaving_tells_everyone_with_110_to_self(h: Harness) -> None:             # §7.14
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice")
    join(bob, "Bob")
    alice.received()
    bob.send(f"<presence to='{ROOM}/Bob' type='unavailable'><status>bye</status></presence>")
    mine = bob.received()[0]
    assert mine.get("type") == "unavailable" and codes(mine) == {110}
    assert item(mine).get("role") == "none" and mine.findtext("{jabber:client}status") == "bye"
    theirs = alice.received()[0]
    assert theirs.get("type") == "unavailable" and codes(theirs) == set()
    assert theirs.findtext("{jabber:client}status") == "bye"
    bob.send(f"<presence to='{ROOM}/Bob' type='unavailable'/>")         # §17.3.5: ignored
    assert bob.received() == [] and alice.received() == []


def test_disconnect_leaves_rooms(h: Harness) -> None:                   # RFC 6121 §4.6.3
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice")
    join(bob, "Bob")
    alice.received()
    h.disconnect(bob)
    got = alice.received()
    assert [(e.get("from"), e.get("type")) for e in got] == [(f"{ROOM}/Bob", "unavailable")]


def test_temporary_room_goes_away_when_empty(h: Harness) -> None:
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice")
    alice.send(f"<presence to='{ROOM}/Alice' type='unavailable'/>")
    alice.received()
    bob.send(join_xml("Bob"))
    assert codes(bob.received()[0]) == {110, 201}                          # a new room


def test_presence_update_is_broadcast(h: Harness) -> None:                          # §7.7
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice")
    join(bob, "Bob")
    alice.received()
    bob.send(f"<presence to='{ROOM}/Bob'><show>away</show><x xmlns='{USER}'><item "
             "affiliation='owner' role='moderator'/></x></presence>")
    theirs = alice.received()[0]
    assert theirs.findtext("{jabber:client}show") == "away"
    # §17.3.6: what the client claimed in muc#user is not reflected.
    assert item(theirs).get("affiliation") == "none" and len(theirs.findall(f"{{{USER}}}x")) == 1
    assert codes(bob.received()[0]) == {110}


def test_nick_change_with_303(h: Harness) -> None:                                   # §7.6
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice")
    join(bob, "Bob")
    alice.received()
    bob.send(f"<presence to='{ROOM}/Robert'/>")
    mine = bob.received()
    assert [(e.get("from"), e.get("type")) for e in mine] == [
        (f"{ROOM}/Bob", "unavailable"), (f"{ROOM}/Robert", None)]
    assert codes(mine[0]) == {110, 303} and item(mine[0]).get("nick") == "Robert"
    assert codes(mine[1]) == {110}
    theirs = alice.received()
    assert codes(theirs[0]) == {303} and item(theirs[0]).get("nick") == "Robert"
    bob.send(f"<presence to='{ROOM}/Alice'/>")
    assert error_of(bob.received()[0]) == ("cancel", "conflict")
    bob.send(f"<message to='{ROOM}' type='groupchat'><body>x</body></message>")
    assert alice.received()[0].get("from") == f"{ROOM}/Robert"


def test_two_resources_share_one_nick(h: Harness) -> None:                          # §7.2.9
    alice, phone, laptop = (h.login(j) for j in ("alice@example.org/r", "bob@example.org/phone",
                                                 "bob@example.org/laptop"))
    create(alice, "Alice")
    join(phone, "Bob")
    alice.received()
    got = join(laptop, "Bob")
    assert codes(got[1]) == {110, 170} and got[1].get("from") == f"{ROOM}/Bob"
    assert alice.received() == []                           # still one occupant to the others
    alice.send(f"<message to='{ROOM}' type='groupchat'><body>both</body></message>")
    assert kinds(alice.received()) == ["message:both"]                      # reflected too
    assert kinds(phone.received()) == ["message:both"]
    assert kinds(laptop.received()) == ["message:both"]
    laptop.send(f"<presence to='{ROOM}/Bob' type='unavailable'/>")
    assert codes(laptop.received()[0]) == {110}
    assert alice.received() == []                           # Bob is still in, on his phone
    alice.send(f"<message to='{ROOM}' type='groupchat'><body>phone</body></message>")
    assert kinds(phone.received()) == ["message:phone"] and laptop.received() == []


def test_other_user_cannot_take_a_multi_session_nick(h: Harness) -> None:
    alice, bob = h.login("alice@example.org/a"), h.login("bob@example.org/b")
    create(alice, "Alice")
    bob.send(join_xml("Alice"))
    assert error_of(bob.received()[0])[1] == "conflict"


def test_rejoin_from_an_occupant_resends_everything(h: Harness) -> None:          # §7.2.1
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice")
    join(bob, "Bob")
    assert kinds(join(bob, "Bob")) == ["presence:Alice", "presence:Bob", "subject"]


def test_delivery_error_removes_a_ghost_with_333(h: Harness) -> None:            # §18.1.2
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice")
    join(bob, "Bob")
    alice.received()
    bob.send(f"<message to='{ROOM}/Alice' type='error'><error type='cancel'>"
             "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
             "</message>")
    theirs = alice.received()[0]
    assert theirs.get("type") == "unavailable" and codes(theirs) == {333}


def test_delivery_error_to_the_room_removes_that_session_only(h: Harness) -> None:  # §18.1.2
    """Clients answer a groupchat message to the room's bare JID (slixmpp's reply() does); a
    user's other session under the same nick stays in the room."""
    alice, phone, laptop = (h.login(j) for j in ("alice@example.org/r", "bob@example.org/phone",
                                                 "bob@example.org/laptop"))
    create(alice, "Alice")
    join(phone, "Bob")
    join(laptop, "Bob")
    alice.received()
    error = (f"<message to='{ROOM}' type='error'><error type='wait'><recipient-unavailable "
             "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
    laptop.send(error)
    assert codes(laptop.received()[0]) == {110, 333}
    assert alice.received() == []                           # Bob is still here, on the phone
    phone.send(error)
    gone = alice.received()[0]
    assert gone.get("type") == "unavailable" and codes(gone) == {333}


def test_history_limits_on_join(h: Harness) -> None:                               # §7.2.14
    alice = h.login("alice@example.org/r")
    create(alice, "Alice")
    for n in range(5):
        alice.send(f"<message to='{ROOM}' type='groupchat'><body>m{n}</body></message>")
        h.clock.advance(60)
    alice.received()

    def history(nick: str, attrs: str) -> list[etree._Element]:
        s = h.login(f"{nick}@example.org/r")
        got = join(s, nick, extra=f"<history {attrs}/>" if attrs else "")
        s.send(f"<presence to='{ROOM}/{nick}' type='unavailable'/>")
        return [e for e in got if kinds([e])[0].startswith("message")]

    def bodies(got: list[etree._Element]) -> list[str]:
        return [e.findtext("{jabber:client}body") or "" for e in got]
    everything = history("u1", "")
    assert bodies(everything) == [f"m{n}" for n in range(5)]
    assert bodies(history("u2", "maxstanzas='2'")) == ["m3", "m4"]
    assert bodies(history("u3", "maxchars='0'")) == []
    assert bodies(history("u4", "seconds='150'")) == ["m3", "m4"]
    since = "1970-01-12T13:49:00Z"          # 1,000,140 s: after m2 (sent at 1,000,120)
    assert bodies(history("u5", f"since='{since}'")) == ["m3", "m4"]
    # maxchars counts whole stanzas as sent (the same length for u1..u9) and never cuts one.
    last_two = sum(len(etree.tostring(e, encoding="unicode")) for e in everything[-2:])
    assert bodies(history("u6", f"maxchars='{last_two}'")) == ["m3", "m4"]
    assert bodies(history("u7", f"maxchars='{last_two - 1}'")) == ["m4"]
    s = h.login("u8@example.org/r")
    s.send(join_xml("u8", extra="<history maxstanzas='x'/>"))
    assert error_of(s.received()[0]) == ("modify", "bad-request")


def test_history_respects_the_room_setting(h: Harness) -> None:
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice", **{"muc#maxhistoryfetch": 1})
    for n in range(3):
        alice.send(f"<message to='{ROOM}' type='groupchat'><body>m{n}</body></message>")
    got = join(bob, "Bob", extra="<history maxstanzas='10'/>")
    assert [k for k in kinds(got) if k.startswith("message")] == ["message:m2"]


def test_subject_on_join_carries_its_setter_and_time(h: Harness) -> None:           # §7.2.16
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice")
    alice.send(f"<message to='{ROOM}' type='groupchat'><subject>Spells</subject></message>")
    got = join(bob, "Bob")[-1]
    assert got.get("from") == f"{ROOM}/Alice" and got.findtext("{jabber:client}subject") == \
        "Spells"
    assert got.find("{urn:xmpp:delay}delay").get("from") == ROOM
    mine = [e for e in alice.received() if e.findtext("{jabber:client}subject")][0]
    oid = "{urn:xmpp:occupant-id:0}occupant-id"
    assert got.find(oid).get("id") == mine.find(oid).get("id")               # XEP-0421


def test_a_gone_session_is_found_by_its_bounce(make_harness: Callable[..., Harness]) -> None:
    """Without the presence module nobody leaves for a dropped client; the first message the
    router cannot deliver bounces back to the room, which removes the ghost (§18.1.2, 333)."""
    h = make_harness(modules={"disco": {}, "muc": {}})
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "Alice")
    join(bob, "Bob")
    alice.received()
    h.disconnect(bob)
    assert alice.received() == []
    alice.send(f"<message to='{ROOM}' type='groupchat'><body>anyone?</body></message>")
    got = alice.received()
    assert kinds(got) == ["message:anyone?", "presence:Bob"]
    assert got[1].get("type") == "unavailable" and codes(got[1]) == {333}
