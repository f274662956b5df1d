"""XEP-0045 messages on the in-memory harness: groupchat fan-out with stanza and occupant ids,
subject changes, private messages, IQs to occupants (XEP-0410 self-ping), invitations and
voice requests."""
from __future__ import annotations

from typing import Any

from tests.harness.server import HarnessClient, Harness
from tests.modules.muc_helpers import (OWNER, ROOM, SERVICE, USER, admin_set, codes, configure,
                                       create, error_of, h, item, join, kinds, muc)

__all__ = ["h", "muc"]
SID = "{urn:xmpp:sid:0}stanza-id"
OID = "{urn:xmpp:occupant-id:0}occupant-id"


def room_of(h: Harness, *users: str, **config: Any) -> list[HarnessClient]:
    """Owner alice plus the given users, all joined under their names."""
    sessions = [h.login("alice@example.org/r")]
    create(sessions[0], "alice", **config)
    for u in users:
        s = h.login(f"{u}@example.org/r")
        join(s, u)
        sessions.append(s)
    for s in sessions:
        s.received()
    return sessions


def test_groupchat_reaches_every_occupant_once_with_ids(h: Harness) -> None:        # §7.4
    alice, bob, carol = room_of(h, "bob", "carol")
    bob.send(f"<message to='{ROOM}' type='groupchat' id='m1'><body>hello</body>"
             f"<stanza-id xmlns='urn:xmpp:sid:0' id='fake' by='{ROOM}'/>"
             "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='fake'/>"
             f"<x xmlns='{USER}'><item affiliation='owner' role='moderator'/></x></message>")
    got = {s.jid.local: s.received() for s in (alice, bob, carol)}
    assert all(len(msgs) == 1 for msgs in got.values()), got
    ids = set()
    for user, (msg,) in got.items():
        assert msg.get("from") == f"{ROOM}/bob" and msg.get("to") == f"{user}@example.org/r"
        assert msg.get("id") == "m1"                              # muc#stable_id
        assert msg.find(f"{{{USER}}}x") is None                   # spoofed <x/> stripped
        (sid,) = msg.findall(SID)                                 # only the room's own
        assert sid.get("by") == ROOM and sid.get("id") != "fake"
        (oid,) = msg.findall(OID)
        assert oid.get("id") != "fake"
        ids.add((sid.get("id"), oid.get("id")))
    assert len(ids) == 1                                          # the same message for all
    bob.send(f"<message to='{ROOM}' type='groupchat'><body>again</body></message>")
    assert bob.received()[0].find(OID).get("id") == list(ids)[0][1]   # XEP-0421: stable
    assert bob.received() == []


def test_message_without_id_gets_one(h: Harness) -> None:
    alice, = room_of(h)
    alice.send(f"<message to='{ROOM}' type='groupchat'><body>x</body></message>")
    assert alice.received()[0].get("id")


def test_non_occupant_gets_not_acceptable(h: Harness) -> None:                     # §7.4
    room_of(h)
    eve = h.login("eve@example.org/r")
    eve.send(f"<message to='{ROOM}' type='groupchat' id='e1'><body>hi</body></message>")
    err = eve.received()[0]
    assert err.get("id") == "e1" and error_of(err) == ("modify", "not-acceptable")
    assert err.findtext("{jabber:client}body") == "hi"


def test_visitor_in_moderated_room_is_forbidden(h: Harness) -> None:               # §7.4
    alice, bob = room_of(h, "bob", moderatedroom=True)
    bob.send(f"<message to='{ROOM}' type='groupchat'><body>hi</body></message>")
    assert error_of(bob.received()[0]) == ("auth", "forbidden")
    assert alice.received() == []


def test_message_to_missing_room_is_item_not_found(h: Harness) -> None:            # §17.2.3
    alice = h.login("alice@example.org/r")
    alice.send(f"<message to='nope@{SERVICE}' type='groupchat'><body>x</body></message>")
    assert error_of(alice.received()[0])[1] == "item-not-found"


def test_chat_to_the_room_is_bad_request(h: Harness) -> None:                      # §17.2.1
    alice, = room_of(h)
    alice.send(f"<message to='{ROOM}' type='chat'><body>x</body></message>")
    assert error_of(alice.received()[0])[1] == "bad-request"


def test_subject_change_by_moderator_and_refusal_for_participants(h: Harness) -> None:  # §8.1
    alice, bob = room_of(h, "bob")
    alice.send(f"<message to='{ROOM}' type='groupchat'><subject>Spells</subject></message>")
    msg = bob.received()[0]
    assert msg.get("from") == f"{ROOM}/alice" and msg.findtext("{jabber:client}subject") == \
        "Spells"
    bob.send(f"<message to='{ROOM}' type='groupchat' id='s2'><subject>Mine</subject></message>")
    err = bob.received()[0]
    assert error_of(err) == ("auth", "forbidden")
    assert err.findtext("{jabber:client}subject") == "Mine"
    alice.received()
    # A message with a subject and a body is a message, not a subject change.
    bob.send(f"<message to='{ROOM}' type='groupchat'><subject>t</subject><body>b</body>"
             "</message>")
    assert kinds(alice.received()) == ["message:b"]


def test_occupants_may_change_the_subject_when_configured(h: Harness) -> None:
    alice, bob = room_of(h, "bob", changesubject=True)
    bob.send(f"<message to='{ROOM}' type='groupchat'><subject>Ours</subject></message>")
    assert alice.received()[0].findtext("{jabber:client}subject") == "Ours"


def test_private_messages(h: Harness) -> None:                                      # §7.5
    alice, bob = room_of(h, "bob")
    bob_laptop = h.login("bob@example.org/laptop")
    join(bob_laptop, "bob")
    alice.received()
    bob.received()                          # the laptop's own presence (RFC 6121 §4.2.2)
    alice.send(f"<message to='{ROOM}/bob' type='chat' id='p1'><body>psst</body></message>")
    for s in (bob, bob_laptop):                     # RECOMMENDED: to all of bob's sessions
        msg = s.received()[0]
        assert msg.get("from") == f"{ROOM}/alice" and msg.get("type") == "chat"
        assert msg.find(f"{{{USER}}}x") is not None and msg.find(OID) is not None
    alice.send(f"<message to='{ROOM}/bob' type='groupchat'><body>x</body></message>")
    assert error_of(alice.received()[0])[1] == "bad-request"
    alice.send(f"<message to='{ROOM}/nobody' type='chat'><body>x</body></message>")
    assert error_of(alice.received()[0])[1] == "item-not-found"
    eve = h.login("eve@example.org/r")
    eve.send(f"<message to='{ROOM}/bob' type='chat'><body>x</body></message>")
    assert error_of(eve.received()[0])[1] == "not-acceptable"


def test_private_messages_can_be_limited(h: Harness) -> None:
    alice, bob = room_of(h, "bob", allowpm="moderators")
    bob.send(f"<message to='{ROOM}/alice' type='chat'><body>x</body></message>")
    assert error_of(bob.received()[0])[1] == "forbidden"
    alice.send(f"<message to='{ROOM}/bob' type='chat'><body>x</body></message>")
    assert kinds(bob.received()) == ["message:x"]


def test_self_ping_is_answered_by_the_service(h: Harness) -> None:                # XEP-0410
    alice, bob = room_of(h, "bob")
    bob.send(f"<iq type='get' id='sp' to='{ROOM}/bob'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert bob.received()[0].get("type") == "result"
    eve = h.login("eve@example.org/r")
    eve.send(f"<iq type='get' id='sp' to='{ROOM}/eve'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert error_of(eve.received()[0]) == ("modify", "not-acceptable")


def test_iq_to_an_occupant_is_relayed_without_real_jids(h: Harness) -> None:       # §18.4
    alice, bob = room_of(h, "bob")
    bob.send(f"<iq type='get' id='v1' to='{ROOM}/alice'><vCard xmlns='vcard-temp'/></iq>")
    relayed = alice.received()[0]
    assert relayed.get("from") == f"{ROOM}/bob" and relayed.get("id") != "v1"
    alice.send(f"<iq type='result' id='{relayed.get('id')}' to='{ROOM}/bob'>"
               "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>")
    answer = bob.received()[0]
    assert (answer.get("from"), answer.get("id"), answer.get("type")) == \
        (f"{ROOM}/alice", "v1", "result")
    eve = h.login("eve@example.org/r")
    eve.send(f"<iq type='get' id='d' to='{ROOM}/alice'>"
             "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    assert error_of(eve.received()[0])[1] == "bad-request"                 # §6.7


def invite_xml(to: str, reason: str = "") -> str:
    r = f"<reason>{reason}</reason>" if reason else ""
    return (f"<message to='{ROOM}' id='inv'><x xmlns='{USER}'><invite to='{to}'>{r}</invite>"
            "</x></message>")


def test_mediated_invitation_to_an_open_room(h: Harness) -> None:                 # §7.8.2
    alice, bob = room_of(h, "bob")
    configure(alice, passwordprotectedroom=True, roomsecret="pw")
    bob.received()
    carol = h.login("carol@example.org/r")
    bob.send(invite_xml("carol@example.org", "come"))
    msg = carol.received()[0]
    assert msg.get("from") == ROOM
    inv = msg.find(f"{{{USER}}}x/{{{USER}}}invite")
    assert inv.get("from") == f"{ROOM}/bob"                       # semi-anonymous room
    assert inv.findtext(f"{{{USER}}}reason") == "come"
    assert msg.findtext(f"{{{USER}}}x/{{{USER}}}password") == "pw"
    bob.send(invite_xml("nobody@example.org"))
    assert error_of(bob.received()[0])[1] == "item-not-found"
    # Invitations through an open room do not make members (§9.5).
    assert alice.received() == []


def test_members_only_invitations_come_from_admins_and_add_members(h: Harness) -> None:
    alice, = room_of(h, membersonly=True)
    # bob is not a member yet: alice, the owner, invites him.
    bob = h.login("bob@example.org/r")
    alice.send(invite_xml("bob@example.org"))
    assert bob.received()[0].find(f"{{{USER}}}x/{{{USER}}}invite") is not None
    assert item(join(bob, "bob")[1]).get("affiliation") == "member"
    alice.received()
    carol = h.login("carol@example.org/r")
    bob.send(invite_xml("carol@example.org"))              # §9.5: a mere member: forbidden
    assert error_of(bob.received()[0]) == ("auth", "forbidden")
    assert carol.received() == []


def test_members_may_invite_when_allowed(h: Harness) -> None:
    alice, = room_of(h, membersonly=True, allowinvites=True)
    admin_set(alice, "<item affiliation='member' jid='bob@example.org'/>")
    bob, carol = h.login("bob@example.org/r"), h.login("carol@example.org/r")
    join(bob, "bob")
    bob.send(invite_xml("carol@example.org"))
    assert carol.received()[0].find(f"{{{USER}}}x/{{{USER}}}invite") is not None
    assert item(join(carol, "carol")[-2]).get("affiliation") == "member"


def test_decline_goes_back_to_the_inviter(h: Harness) -> None:
    alice, = room_of(h)
    carol = h.login("carol@example.org/r")
    carol.send(f"<message to='{ROOM}'><x xmlns='{USER}'><decline to='alice@example.org/r'>"
               "<reason>busy</reason></decline></x></message>")
    msg = alice.received()[0]
    dec = msg.find(f"{{{USER}}}x/{{{USER}}}decline")
    assert msg.get("from") == ROOM and dec.get("from") == "carol@example.org"
    assert dec.findtext(f"{{{USER}}}reason") == "busy"


def test_voice_request_and_approval(h: Harness) -> None:                         # §7.13, §8.6
    alice, bob = room_of(h, "bob", moderatedroom=True)
    form = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"
            "http://jabber.org/protocol/muc#request</value></field><field var='muc#role'>"
            "<value>participant</value></field></x>")
    bob.send(f"<message to='{ROOM}'>{form}</message>")
    request = alice.received()[0]
    fields = {f.get("var"): f.findtext("{jabber:x:data}value")
              for f in request.iter("{jabber:x:data}field")}
    assert fields["muc#roomnick"] == "bob" and fields["muc#jid"] == "bob@example.org/r"
    approve = form.replace("</x>", "<field var='muc#roomnick'><value>bob</value></field>"
                                   "<field var='muc#request_allow'><value>true</value></field>"
                                   "</x>")
    alice.send(f"<message to='{ROOM}'>{approve}</message>")
    assert item(bob.received()[0]).get("role") == "participant"
    bob.send(f"<message to='{ROOM}' type='groupchat'><body>at last</body></message>")
    assert kinds(alice.received()) == ["presence:bob", "message:at last"]


def test_config_change_is_announced_with_status_codes(h: Harness) -> None:       # §10.2.1
    alice, bob = room_of(h, "bob")
    configure(alice, whois="anyone")
    assert codes(bob.received()[0]) == {104, 172}       # 104 with the privacy codes: issue 11
    configure(alice, roomname="Cave")
    notice = bob.received()[0]
    assert (notice.get("from"), notice.get("type"), codes(notice)) == (ROOM, "groupchat", {104})
    configure(alice, persistentroom=True)
    assert codes(bob.received()[0]) == {104}
    configure(alice, enablelogging=False)
    assert codes(bob.received()[0]) == {104, 171}
    configure(alice, enablelogging=True)
    assert codes(bob.received()[0]) == {104, 170}
    configure(alice, whois="moderators")
    assert codes(bob.received()[0]) == {104, 173}
    configure(alice, roomname="Cave")
    assert bob.received() == []                          # nothing changed: nothing to say


def test_first_configuration_is_announced_too(h: Harness) -> None:          # issue 11 §3
    alice = h.login("alice@example.org/r")
    join(alice, "alice")                                 # a new room, locked (201)
    alice.send(f"<iq type='set' id='c' to='{ROOM}'><query xmlns='{OWNER}'>"
               "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_whois'>"
               "<value>anyone</value></field></x></query></iq>")
    got = alice.received()
    notices = [e for e in got if e.tag == "{jabber:client}message"]
    assert len(notices) == 1 and notices[0].get("type") == "groupchat"
    assert codes(notices[0]) == {104, 170, 172}          # now archived and non-anonymous
    assert got[-1].get("type") == "result"
