"""XEP-0045 owners: the muc#roomconfig form (§10.1, §10.2), instant and reserved rooms, room
destruction (§10.9), and persistence of rooms, configuration, subject and affiliations."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from modules.muc.config import Limits, RoomConfig
from stanzas.forms import Submitted
from stanzas.errors import StanzaError
from tests.harness.server import HarnessClient, Harness
from tests.modules.muc_helpers import (OWNER, ROOM, USER, admin_set, codes, configure, create,
                                       error_of, h, item, join, join_xml, kinds, muc)
from xmppd.config import ConfigError
from stanzas.jid import JID

__all__ = ["h", "muc"]
LIMITS = Limits(max_users=200, max_users_limit=1000, history=20, history_limit=100)
X = "{jabber:x:data}"


def form_of(s: HarnessClient) -> dict[str, list[str]]:
    s.send(f"<iq type='get' id='f' to='{ROOM}'><query xmlns='{OWNER}'/></iq>")
    got = s.received()[0]
    assert got.get("type") == "result", got
    x = got.find(f"{{{OWNER}}}query/{X}x")
    assert x is not None and x.get("type") == "form"
    return {f.get("var") or "": [v.text or "" for v in f.findall(X + "value")]
            for f in x.findall(X + "field")}


def test_reserved_room_gets_the_form_then_its_configuration(h: Harness) -> None:  # §10.1.3
    alice = h.login("alice@example.org/r")
    join(alice, "alice")
    fields = form_of(alice)
    assert fields["FORM_TYPE"] == ["http://jabber.org/protocol/muc#roomconfig"]
    for var in ("roomname", "roomdesc", "persistentroom", "publicroom", "membersonly",
                "moderatedroom", "passwordprotectedroom", "roomsecret", "maxusers", "whois",
                "changesubject", "allowinvites", "allowpm", "presencebroadcast",
                "getmemberlist", "enablelogging", "roomadmins", "roomowners"):
        assert f"muc#roomconfig_{var}" in fields, var
    assert fields["muc#maxhistoryfetch"] == ["20"]
    assert fields["muc#roomconfig_roomowners"] == ["alice@example.org"]
    configure(alice, roomname="A Dark Cave", membersonly=True, maxusers=30,
              roomadmins=["bob@example.org"], **{"muc#unknown_field": "ignored"})
    fields = form_of(alice)
    assert fields["muc#roomconfig_roomname"] == ["A Dark Cave"]
    assert fields["muc#roomconfig_membersonly"] == ["1"]
    assert fields["muc#roomconfig_maxusers"] == ["30"]
    assert fields["muc#roomconfig_roomadmins"] == ["bob@example.org"]


def test_only_owners_configure(h: Harness) -> None:                                # §10.2
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "alice")
    join(bob, "bob")
    bob.send(f"<iq type='get' id='f' to='{ROOM}'><query xmlns='{OWNER}'/></iq>")
    err = bob.received()[-1]
    assert error_of(err) == ("auth", "forbidden")
    assert err.find(f"{{{OWNER}}}query") is not None
    bob.send(f"<iq type='set' id='d' to='{ROOM}'><query xmlns='{OWNER}'><destroy/></query>"
             "</iq>")
    assert error_of(bob.received()[-1]) == ("auth", "forbidden")                    # §10.9


@pytest.mark.parametrize(("fields", "condition"), [
    ({"passwordprotectedroom": True}, "not-acceptable"),                     # §10.1.3
    ({"persistentroom": "maybe"}, "bad-request"),
    ({"maxusers": 5000}, "not-acceptable"),
    ({"maxusers": "many"}, "bad-request"),
    ({"whois": "everyone"}, "not-acceptable"),
    ({"allowpm": "cats"}, "not-acceptable"),
    ({"presencebroadcast": ["moderator", "owner"]}, "not-acceptable"),
    ({"muc#maxhistoryfetch": 101}, "not-acceptable"),
    ({"roomowners": []}, "conflict"),                                        # §10.6
])
def test_bad_configuration_is_refused_and_changes_nothing(
        h: Harness, fields: dict[str, object], condition: str) -> None:
    alice = h.login("alice@example.org/r")
    create(alice, "alice")
    body = "".join(f"<field var='{k if '#' in k else 'muc#roomconfig_' + k}'>"
                   + "".join(f"<value>{x}</value>" for x in (v if isinstance(v, list) else
                                                            [v if not isinstance(v, bool) else
                                                             int(v)]))
                   + "</field>" for k, v in fields.items())
    alice.send(f"<iq type='set' id='c' to='{ROOM}'><query xmlns='{OWNER}'><x xmlns='jabber:x:data'"
               f" type='submit'>{body}</x></query></iq>")
    assert error_of(alice.received()[-1])[1] == condition
    assert form_of(alice)["muc#roomconfig_maxusers"] == ["200"]


def test_form_round_trip() -> None:
    cfg = RoomConfig.defaults(LIMITS)
    new = cfg.submit(Submitted("http://jabber.org/protocol/muc#roomconfig", {
        "muc#roomconfig_roomname": ["Cave"], "muc#roomconfig_whois": ["anyone"],
        "muc#roomconfig_presencebroadcast": ["visitor", "moderator"],
        "muc#roomconfig_maxusers": ["none"]}), LIMITS)
    assert (new.name, new.whois, new.presence_broadcast, new.max_users) == \
        ("Cave", "anyone", ("moderator", "visitor"), 1000)
    assert RoomConfig.from_json(new.to_json()) == new
    assert RoomConfig.from_json({"name": "x", "unknown": 1}).name == "x"
    with pytest.raises(StanzaError):
        cfg.submit(Submitted("urn:other", {}), LIMITS)


def test_cancelling_the_initial_configuration_destroys_the_room(h: Harness) -> None:
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    join(alice, "alice")
    alice.send(f"<iq type='set' id='c' to='{ROOM}'><query xmlns='{OWNER}'>"
               "<x xmlns='jabber:x:data' type='cancel'/></query></iq>")
    got = alice.received()
    gone = [e for e in got if e.tag.endswith("presence")][0]
    assert gone.get("type") == "unavailable"
    assert gone.find(f"{{{USER}}}x/{{{USER}}}destroy") is not None
    assert got[-1].get("type") == "result"
    bob.send(join_xml("bob"))
    assert codes(bob.received()[0]) == {110, 201}                          # a brand new room


def test_destroy_with_reason_and_alternate_venue(h: Harness) -> None:              # §10.9
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "alice", persistentroom=True)
    join(bob, "bob")
    alice.received()
    alice.send(f"<iq type='set' id='d' to='{ROOM}'><query xmlns='{OWNER}'>"
               "<destroy jid='other@conference.example.org'><reason>Macbeth doth come."
               "</reason><password>pw</password></destroy></query></iq>")
    mine = bob.received()
    assert len(mine) == 1 and mine[0].get("type") == "unavailable"
    d = mine[0].find(f"{{{USER}}}x/{{{USER}}}destroy")
    assert d.get("jid") == "other@conference.example.org"
    assert d.findtext(f"{{{USER}}}reason") == "Macbeth doth come."
    assert d.findtext(f"{{{USER}}}password") == "pw"
    assert (item(mine[0]).get("affiliation"), item(mine[0]).get("role")) == ("none", "none")
    assert alice.received()[-1].get("type") == "result"
    from tests.harness.server import resolve
    assert resolve(h.server.stores.muc.load_room(JID.parse(ROOM))) is None


def service(h: Harness):  # type: ignore[no-untyped-def]
    return h.server.hosts["example.org"].modules["muc"].service  # type: ignore[attr-defined]


def test_persistent_room_config_affiliations_and_subject_are_stored(h: Harness) -> None:
    from tests.harness.server import resolve
    alice = h.login("alice@example.org/r")
    create(alice, "alice", persistentroom=True, roomname="Cave", membersonly=True)
    admin_set(alice, "<item affiliation='member' jid='bob@example.org' nick='bob'/>")
    alice.send(f"<message to='{ROOM}' type='groupchat'><subject>Spells</subject></message>")
    stored = resolve(h.server.stores.muc.load_room(JID.parse(ROOM)))
    assert stored is not None
    assert stored.config["name"] == "Cave" and stored.config["members_only"] is True
    assert {k: e.affiliation for k, e in stored.affiliations.items()} == {
        "alice@example.org": "owner", "bob@example.org": "member"}
    assert (stored.subject, stored.subject_nick) == ("Spells", "alice")


def test_empty_persistent_room_is_read_back_with_everything(h: Harness) -> None:
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "alice", persistentroom=True, roomname="Cave", membersonly=True)
    admin_set(alice, "<item affiliation='member' jid='bob@example.org'/>")
    alice.send(f"<message to='{ROOM}' type='groupchat'><subject>Spells</subject></message>")
    alice.send(f"<message to='{ROOM}' type='groupchat'><body>remember me</body></message>")
    alice.send(f"<presence to='{ROOM}/alice' type='unavailable'/>")
    alice.received()
    bob.received()
    assert JID.parse(ROOM) not in service(h).rooms                  # left memory when empty
    got = join(bob, "bob")
    assert kinds(got) == ["presence:bob", "message:remember me", "subject"]
    assert item(got[0]).get("affiliation") == "member"
    assert got[-1].findtext("{jabber:client}subject") == "Spells"
    carol = h.login("carol@example.org/r")
    carol.send(join_xml("carol"))
    assert error_of(carol.received()[0])[1] == "registration-required"


def test_making_a_room_temporary_forgets_it(h: Harness) -> None:
    from tests.harness.server import resolve
    alice = h.login("alice@example.org/r")
    create(alice, "alice", persistentroom=True)
    assert resolve(h.server.stores.muc.load_room(JID.parse(ROOM))) is not None
    configure(alice, persistentroom=False)          # its archive is kept while it lasts ...
    assert resolve(h.server.stores.muc.load_room(JID.parse(ROOM))) is not None
    alice.send(f"<presence to='{ROOM}/alice' type='unavailable'/>")
    alice.received()
    assert resolve(h.server.stores.muc.load_room(JID.parse(ROOM))) is None     # ... no longer
    create(alice, "alice", persistentroom=True)
    configure(alice, persistentroom=False, enablelogging=False)     # no archive: forgotten now
    assert resolve(h.server.stores.muc.load_room(JID.parse(ROOM))) is None


def password_rule(current: RoomConfig, **values: str) -> tuple[bool, str]:
    new = current.submit(Submitted("http://jabber.org/protocol/muc#roomconfig", {
        f"muc#roomconfig_{k}": [v] for k, v in values.items()}), LIMITS)
    return new.password_protected, new.password


def test_a_room_secret_turns_password_protection_on_unless_turned_off() -> None:  # issue 11
    off = RoomConfig.defaults(LIMITS)
    on = replace(off, password_protected=True, password="pw")
    assert password_rule(off, roomsecret="pw") == (True, "pw")
    # The whole form sent back with "off" as offered and a secret filled in: protected.
    assert password_rule(off, passwordprotectedroom="0", roomsecret="pw") == (True, "pw")
    assert password_rule(on, passwordprotectedroom="1", roomsecret="pw") == (True, "pw")
    assert password_rule(on, roomname="Cave") == (True, "pw")
    # Turned off explicitly: off, and the password forgotten, so the form sent back unchanged
    # later keeps it off.
    assert password_rule(on, passwordprotectedroom="0", roomsecret="pw") == (False, "")
    assert password_rule(off, passwordprotectedroom="0", roomsecret="") == (False, "")
    assert password_rule(on, roomsecret="") == (False, "")       # clearing it opens the room
    with pytest.raises(StanzaError) as refused:
        password_rule(on, passwordprotectedroom="1", roomsecret="")          # §10.1.3
    assert refused.value.condition == "not-acceptable"


def test_a_room_with_only_a_secret_asks_for_it(h: Harness) -> None:              # §7.2.6
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "alice", roomsecret="cauldronburn")
    assert form_of(alice)["muc#roomconfig_passwordprotectedroom"] == ["1"]
    bob.send(join_xml("bob"))
    assert error_of(bob.received()[0]) == ("auth", "not-authorized")
    got = join(bob, "bob", extra="<password>cauldronburn</password>")
    assert codes(got[-2]) == {110, 170}


def test_owner_lists_in_the_form_are_full_lists(h: Harness) -> None:               # §10.5
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "alice")
    configure(alice, roomowners=["alice@example.org", "bob@example.org"])
    assert codes(join(bob, "bob")[-2]) == {110, 170}
    assert item(join(bob, "bob")[-2]).get("affiliation") == "owner"
    configure(alice, roomowners=["bob@example.org"])
    bob.received()
    assert form_of(bob)["muc#roomconfig_roomowners"] == ["bob@example.org"]


@pytest.mark.parametrize("options", [{"domain": "not a domain"}, {"admins": ["@@"]},
                                     {"history": 50, "history_limit": 10}])
def test_bad_module_options_stop_start_up(make_harness: Callable[..., Harness],
                                          options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        make_harness(modules={"disco": {}, "muc": options})
