"""XEP-0045 roles and affiliations: the permission tables of §5 as data (every combination),
and the muc#admin IQs on the in-memory harness (kick 307, ban 301, 321, lists, errors, what
occupants hear of changes to people who are not in the room)."""
from __future__ import annotations

import itertools

import pytest

from modules.muc.affiliations import (AFFILIATIONS, ROLES, check_affiliation_change,
                                      check_role_change, default_role)
from tests.harness.server import HarnessClient, Harness
from tests.modules.muc_helpers import (ADMIN, ROOM, USER, admin_set, codes, configure, create,
                                       error_of, h, item, join, muc)

__all__ = ["h", "muc"]


def cond(err: object) -> str | None:
    return None if err is None else err.condition  # type: ignore[attr-defined]


@pytest.mark.parametrize(("aff", "moderated", "role"), [
    ("owner", False, "moderator"), ("admin", True, "moderator"), ("member", True, "participant"),
    ("none", False, "participant"), ("none", True, "visitor")])
def test_initial_roles(aff: str, moderated: bool, role: str) -> None:             # §5.1.2
    assert default_role(aff, moderated) == role


# (actor affiliation, actor role, target affiliation, target role, new role) -> condition.
# Everything not listed is allowed; derived from §5.1.1, §5.1.3, §5.2.1, §8.2, §8.4, §9.6, §9.7.
def expected_role_error(a_aff: str, a_role: str, t_aff: str, t_role: str, new: str
                        ) -> str | None:
    rank = {"outcast": -1, "none": 0, "member": 1, "admin": 2, "owner": 3}
    a, t = rank[a_aff], rank[t_aff]
    if a_role != "moderator":
        return "forbidden"
    if new == "moderator":
        return None if a >= 2 else "forbidden"
    if new == "none":
        return "not-allowed" if t > a or (t_role == "moderator" and a < 2) else None
    if t_role == "moderator":
        return "not-allowed" if a < 2 or t >= 2 else None
    if new == "visitor" and t_role != "visitor" and (t >= 2 or t >= a):
        return "not-allowed"
    return None


PRESENT = [a for a in AFFILIATIONS if a != "outcast"]


def test_role_permission_table() -> None:
    """All 576 combinations of present occupants' affiliations and roles."""
    wrong = []
    for a_aff, a_role, t_aff, t_role, new in itertools.product(PRESENT, ROLES[:3], PRESENT,
                                                               ROLES[:3], ROLES):
        got = cond(check_role_change(a_aff, a_role, t_aff, t_role, new))
        want = expected_role_error(a_aff, a_role, t_aff, t_role, new)
        if got != want:
            wrong.append((a_aff, a_role, t_aff, t_role, new, got, want))
    assert not wrong


def test_role_rules_in_words() -> None:
    # §8.2 a member-moderator cannot kick an admin; an admin can kick a member.
    assert cond(check_role_change("member", "moderator", "admin", "moderator", "none")) == \
        "not-allowed"
    assert cond(check_role_change("admin", "moderator", "member", "participant", "none")) is None
    # §8.4: nobody revokes an admin's voice, not even an owner.
    assert cond(check_role_change("owner", "moderator", "admin", "moderator", "visitor")) == \
        "not-allowed"
    # §9.7: an admin cannot demote an owner's moderator role.
    assert cond(check_role_change("admin", "moderator", "owner", "moderator", "participant")) \
        == "not-allowed"
    # A participant does not kick anyone.
    assert cond(check_role_change("owner", "participant", "none", "participant", "none")) == \
        "forbidden"


@pytest.mark.parametrize(("actor", "target", "new", "expected"), [
    # §5.2.1 table, §5.2.2 chart, §9.1, §10.3-§10.8
    ("none", "none", "member", "forbidden"), ("member", "none", "outcast", "forbidden"),
    ("admin", "none", "member", None), ("admin", "member", "outcast", None),
    ("admin", "outcast", "none", None), ("admin", "none", "admin", "forbidden"),
    ("admin", "none", "owner", "forbidden"), ("admin", "admin", "outcast", "not-allowed"),
    ("admin", "owner", "outcast", "not-allowed"), ("admin", "admin", "member", "not-allowed"),
    ("owner", "admin", "outcast", None), ("owner", "none", "owner", None),
    ("owner", "owner", "admin", None), ("owner", "member", "admin", None)])
def test_affiliation_permission_table(actor: str, target: str, new: str,
                                      expected: str | None) -> None:
    err = check_affiliation_change(actor, target, new, self_change=False,  # type: ignore[arg-type]
                                   other_owners=1)
    assert cond(err) == expected


def test_self_ban_and_last_owner_are_conflicts() -> None:                          # §9.1, §10.6
    assert cond(check_affiliation_change("admin", "admin", "outcast", self_change=True,
                                         other_owners=1)) == "not-allowed"
    assert cond(check_affiliation_change("owner", "owner", "outcast", self_change=True,
                                         other_owners=1)) == "conflict"
    assert cond(check_affiliation_change("owner", "owner", "none", self_change=True,
                                         other_owners=0)) == "conflict"
    assert cond(check_affiliation_change("owner", "owner", "none", self_change=True,
                                         other_owners=1)) is None


# -- the IQs ---------------------------------------------------------------------------------
def room(h: Harness, *users: str, **config: object) -> dict[str, HarnessClient]:
    s = {"alice": h.login("alice@example.org/r")}
    create(s["alice"], "alice", **config)  # type: ignore[arg-type]
    for u in users:
        s[u] = h.login(f"{u}@example.org/r")
        join(s[u], u)
    for x in s.values():
        x.received()
    return s


def test_kick_by_moderator_with_307(h: Harness) -> None:                           # §8.2
    s = room(h, "bob", "carol")
    got = admin_set(s["alice"], "<item nick='bob' role='none'><reason>Avaunt</reason></item>")
    assert got.get("type") == "result"
    mine = s["bob"].received()[0]
    assert mine.get("type") == "unavailable" and codes(mine) == {110, 307}
    assert item(mine).find(f"{{http://jabber.org/protocol/muc#user}}actor").get("nick") == \
        "alice"
    assert item(mine).findtext("{http://jabber.org/protocol/muc#user}reason") == "Avaunt"
    theirs = s["carol"].received()[0]
    assert theirs.get("type") == "unavailable" and codes(theirs) == {307}
    assert codes(join(s["bob"], "bob")[-2]) == {110, 170}          # a kick is not a ban


def test_kick_by_a_participant_is_forbidden(h: Harness) -> None:
    s = room(h, "bob", "carol")
    err = admin_set(s["bob"], "<item nick='carol' role='none'/>")
    assert error_of(err) == ("auth", "forbidden")
    assert s["carol"].received() == []


def test_kick_unknown_nick_is_item_not_found(h: Harness) -> None:
    s = room(h)
    assert error_of(admin_set(s["alice"], "<item nick='ghost' role='none'/>"))[1] == \
        "item-not-found"


def test_ban_with_301_and_refused_reentry(h: Harness) -> None:                      # §9.1
    s = room(h, "bob", "carol")
    got = admin_set(s["alice"], "<item affiliation='outcast' jid='bob@example.org/r'>"
                                "<reason>Treason</reason></item>")
    assert got.get("type") == "result"
    mine = s["bob"].received()[0]
    assert codes(mine) == {110, 301} and item(mine).get("affiliation") == "outcast"
    assert codes(s["carol"].received()[0]) == {301}
    s["bob"].send(f"<presence to='{ROOM}/bob'><x xmlns='http://jabber.org/protocol/muc'/>"
                  "</presence>")
    assert error_of(s["bob"].received()[0])[1] == "forbidden"
    s["alice"].send(f"<iq type='get' id='l' to='{ROOM}'><query xmlns='{ADMIN}'>"
                    "<item affiliation='outcast'/></query></iq>")
    answer = [e for e in s["alice"].received() if e.get("id") == "l"][0]
    listed = answer.findall(f".//{{{ADMIN}}}item")
    assert [(i.get("jid"), i.findtext(f"{{{ADMIN}}}reason")) for i in listed] == \
        [("bob@example.org", "Treason")]


def test_ban_by_a_member_is_forbidden_and_of_an_owner_not_allowed(h: Harness) -> None:
    s = room(h, "bob", "carol")
    assert error_of(admin_set(s["bob"], "<item affiliation='outcast' jid='carol@example.org'/>"
                              ))[1] == "forbidden"
    admin_set(s["alice"], "<item affiliation='admin' jid='bob@example.org'/>")
    assert error_of(admin_set(s["bob"], "<item affiliation='outcast' jid='alice@example.org'/>"
                              ))[1] == "not-allowed"
    assert error_of(admin_set(s["alice"], "<item affiliation='outcast' "
                                          "jid='alice@example.org'/>"))[1] == "conflict"


def test_revoking_membership_of_members_only_room_removes_with_321(h: Harness) -> None:
    s = {"alice": h.login("alice@example.org/r")}
    create(s["alice"], "alice", membersonly=True)
    admin_set(s["alice"], "<item affiliation='member' jid='bob@example.org'/>")
    s["bob"] = h.login("bob@example.org/r")
    s["bob"].received()
    join(s["bob"], "bob")
    s["alice"].received()
    admin_set(s["alice"], "<item affiliation='none' jid='bob@example.org'/>")
    mine = s["bob"].received()[0]
    assert mine.get("type") == "unavailable" and codes(mine) == {110, 321}         # §9.4
    theirs = [e for e in s["alice"].received() if e.tag.endswith("presence")]
    assert len(theirs) == 1 and codes(theirs[0]) == {321}


def test_members_only_switch_removes_non_members_with_322(h: Harness) -> None:   # §10.2
    s = room(h, "bob")
    configure(s["alice"], membersonly=True)
    mine = s["bob"].received()[0]
    assert codes(mine) == {110, 322}


def test_granting_admin_makes_a_moderator_and_revoking_demotes(h: Harness) -> None:
    s = room(h, "bob", "carol")
    admin_set(s["alice"], "<item affiliation='admin' jid='bob@example.org'/>")
    seen = s["carol"].received()[0]
    assert (item(seen).get("affiliation"), item(seen).get("role")) == ("admin", "moderator")
    admin_set(s["alice"], "<item affiliation='member' jid='bob@example.org'/>")
    seen = s["carol"].received()[0]
    assert (item(seen).get("affiliation"), item(seen).get("role")) == ("member", "participant")


def test_voice_and_moderator_grants(h: Harness) -> None:                         # §8.3-§9.7
    s = room(h, "bob", "carol", moderatedroom=True)
    assert item(s["bob"].received()[0] if s["bob"].outbox else
                join(s["bob"], "bob")[-2]).get("role") == "visitor"
    admin_set(s["alice"], "<item nick='bob' role='participant'/>")
    assert item(s["carol"].received()[-1]).get("role") == "participant"
    # A mere moderator (not an admin) may not grant moderator status (§5.2.1).
    admin_set(s["alice"], "<item affiliation='admin' jid='bob@example.org'/>")
    s["carol"].received()
    admin_set(s["alice"], "<item nick='carol' role='moderator'/>")
    assert item(s["carol"].received()[-1]).get("role") == "moderator"
    assert error_of(admin_set(s["carol"], "<item nick='bob' role='visitor'/>"))[1] == \
        "not-allowed"                                  # §8.4: an admin keeps its voice


def test_one_bad_item_changes_nothing(h: Harness) -> None:                         # §9.2
    s = room(h, "bob", "carol")
    admin_set(s["alice"], "<item affiliation='admin' jid='bob@example.org'/>")
    for x in s.values():
        x.received()
    err = admin_set(s["bob"], "<item affiliation='outcast' jid='carol@example.org'/>"
                              "<item affiliation='outcast' jid='alice@example.org'/>")
    assert error_of(err)[1] == "not-allowed"
    assert s["carol"].received() == []


def test_item_with_role_and_affiliation_is_bad_request(h: Harness) -> None:    # §17.4.4
    s = room(h, "bob")
    err = admin_set(s["alice"], "<item nick='bob' role='none' affiliation='outcast' "
                                "jid='bob@example.org'/>")
    assert error_of(err)[1] == "bad-request"


def test_last_owner_cannot_leave_ownership(h: Harness) -> None:                    # §10.6
    s = room(h)
    assert error_of(admin_set(s["alice"], "<item affiliation='member' jid='alice@example.org'/>"
                              ))[1] == "conflict"
    admin_set(s["alice"], "<item affiliation='owner' jid='bob@example.org'/>")
    assert admin_set(s["alice"], "<item affiliation='member' jid='alice@example.org'/>"
                     ).get("type") == "result"


def lists(s: HarnessClient, what: str) -> list[tuple[str | None, str | None]] | str | None:
    s.send(f"<iq type='get' id='l' to='{ROOM}'><query xmlns='{ADMIN}'><item {what}/></query>"
           "</iq>")
    got = [e for e in s.received() if e.get("id") == "l"][0]
    if got.get("type") == "error":
        return error_of(got)[1]
    return [(i.get("jid"), i.get("nick")) for i in got.iter(f"{{{ADMIN}}}item")]


def test_list_permissions(h: Harness) -> None:                                   # §9.5, §10.5
    s = room(h, "bob")
    admin_set(s["alice"], "<item affiliation='member' jid='bob@example.org' nick='bob'/>")
    admin_set(s["alice"], "<item affiliation='admin' jid='carol@example.org'/>")
    s["bob"].received()
    assert lists(s["alice"], "affiliation='member'") == [("bob@example.org", "bob")]
    assert lists(s["bob"], "affiliation='member'") == "forbidden"       # semi-anonymous room
    assert lists(s["bob"], "affiliation='admin'") == "forbidden"
    assert lists(s["alice"], "affiliation='owner'") == [("alice@example.org", None)]
    assert lists(s["bob"], "role='participant'") == "forbidden"
    assert lists(s["alice"], "role='participant'") == [("bob@example.org/r", "bob")]
    assert lists(s["alice"], "affiliation='none'") == "bad-request"
    configure(s["alice"], whois="anyone")
    s["bob"].received()
    assert lists(s["bob"], "affiliation='member'") == [("bob@example.org", "bob")]   # §9.5
    assert lists(s["bob"], "affiliation='admin'") == [("carol@example.org", None)]   # §10.8


# -- affiliation changes of people not in the room (issue 11 §4) --------------------------
def told(s: HarnessClient) -> list[tuple[str | None, str | None, str | None]]:
    """(jid, affiliation, reason) of each affiliation notice `s` got from the room."""
    out = []
    for e in s.received():
        i = e.find(f"{{{USER}}}x/{{{USER}}}item")
        if e.tag == "{jabber:client}message" and e.get("from") == ROOM and i is not None:
            assert e.get("type") is None and i.get("role") == "none"    # XEP-0045's example
            out.append((i.get("jid"), i.get("affiliation"), i.findtext(f"{{{USER}}}reason")))
    return out


def test_outsiders_affiliation_changes_are_told_to_occupants(h: Harness) -> None:
    s = room(h, "bob", whois="anyone")                      # a private group, once ...
    admin_set(s["alice"], "<item affiliation='member' jid='bob@example.org'/>")
    configure(s["alice"], membersonly=True)                  # ... members-only
    assert told(s["bob"]) == []                              # an occupant's is its presence
    admin_set(s["alice"], "<item affiliation='member' jid='carol@example.org'>"
                          "<reason>welcome</reason></item>")
    assert told(s["bob"]) == [("carol@example.org", "member", "welcome")]
    assert told(s["alice"]) == [("carol@example.org", "member", "welcome")]
    admin_set(s["alice"], "<item affiliation='member' jid='carol@example.org'/>")
    assert told(s["bob"]) == []                              # no change, nothing to tell
    admin_set(s["alice"], "<item affiliation='none' jid='carol@example.org'/>")
    assert told(s["bob"]) == [("carol@example.org", "none", None)]
    configure(s["alice"], roomadmins=["dave@example.org"])              # §10.5 full list
    assert told(s["bob"]) == [("dave@example.org", "admin", None)]
    h.user("erin@example.org")
    s["alice"].send(f"<message to='{ROOM}'><x xmlns='{USER}'><invite to='erin@example.org'/>"
                    "</x></message>")                        # §9.5: invited, so a member
    assert told(s["bob"]) == [("erin@example.org", "member", None)]
    admin_set(s["alice"], "<item affiliation='outcast' jid='example.net'/>")   # a server
    assert told(s["bob"]) == [("example.net", "outcast", None)]


def test_semi_anonymous_room_tells_only_its_moderators(h: Harness) -> None:
    s = room(h, "bob")
    admin_set(s["alice"], "<item affiliation='member' jid='carol@example.org'/>")
    assert told(s["bob"]) == []                              # may not see real JIDs
    assert told(s["alice"]) == [("carol@example.org", "member", None)]
