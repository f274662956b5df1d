# tests: tests/modules/test_muc_admin.py, tests/modules/test_muc_config.py, tests/modules/test_muc_messages.py
"""What a room's occupants are told when moderators, admins and owners change it (XEP-0045
§8-§10): kicks and role changes, affiliation changes, a room that became members-only, a new
configuration, and destruction.

- Role changes (§8): a kick (307) removes the occupant; anything else is its new presence.
- Affiliation changes (§9, §10): an occupant's is a ban (301), a removal from a members-only
  room (321) or its new presence. Of someone who is not in the room, occupants get a message
  from the room with a muc#user <item jid affiliation/> (§10.3, §10.6, §10.7 "MAY", in the
  format of §10.3's example, as Prosody sends it): only those who may see real JIDs get it —
  everyone in a non-anonymous room, moderators in a semi-anonymous one.
- A configuration change while occupants are present (§10.2.1) — the first configuration of a
  new room too — is a groupchat message from the room with 104, plus 170/171 when the room
  became logged or not and 172/173 when it became non-anonymous or semi-anonymous. 104 comes
  with the privacy codes as well: clients show both.
- Destruction (§10.9): <destroy/> with the reason, alternate venue and password; at service
  shutdown, 332 instead (§11.2).
Not here: who may make a change (affiliations.py), the IQs that make them (admin.py).
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

from modules.muc import codec
from modules.muc.affiliations import AFF_RANK, MEMBER, Role, role_after_affiliation
from modules.muc.codec import Item, NS_USER
from modules.muc.config import RoomConfig
from stanzas.jid import JID

if TYPE_CHECKING:
    from modules.muc.room import Occupant, Room


def set_role(room: Room, occ: Occupant, role: Role, actor: Occupant | None,
             reason: str | None) -> None:
    if role == "none":
        room.remove(occ, codes={307}, actor=actor.nick if actor else None,
                    reason=reason)                                               # §8.2
        return
    occ.role = role
    room.broadcast_presence(occ, reason=reason)                                  # §8.3-§9.7


def affiliation_changed(room: Room, jid: str, old: str, actor: Occupant | None,
                        reason: str | None) -> None:
    """After the affiliation of `jid` (a bare JID or a domain) changed from `old`: ban (301),
    removal from a members-only room (321), a presence update with the new affiliation and
    role (§9.1-§9.4, §10.3-§10.8), or, for someone not in the room, a notice."""
    actor_nick = actor.nick if actor else None
    present = False
    for occ in list(room.occupants.values()):
        if str(occ.bare) != jid and occ.bare.domain != jid:
            continue
        present = True
        new = room.affiliation(occ.bare)
        if new == "outcast":
            room.remove(occ, codes={301}, actor=actor_nick, reason=reason)
        elif room.config.members_only and AFF_RANK[new] < MEMBER:
            # §9.4: only the unavailable presence, not a de-affiliation first.
            room.remove(occ, codes={321}, actor=actor_nick, reason=reason)
        else:
            occ.role = role_after_affiliation(old, new, occ.role, room.config.moderated)
            room.broadcast_presence(occ, reason=reason)
    entry = room.affiliations.get(jid)
    new_affiliation = entry.affiliation if entry is not None else "none"
    if not present and new_affiliation != old:
        _tell_of_outsider(room, jid, new_affiliation, reason)


def _tell_of_outsider(room: Room, jid: str, affiliation: str, reason: str | None) -> None:
    """The affiliation of someone not in the room changed: a message from the room (§10.3
    example) to the occupants who may see real JIDs, serialised once."""
    recipients = [s for occ in room.occupants.values() if room.sees_jids(occ)
                  for s in occ.sessions]
    if not recipients:
        return
    out = codec.stanza("message", room.jid, id=secrets.token_hex(8))
    codec.user_x(Item(affiliation, "none", JID.parse(jid), reason=reason), (), out)
    room.send_to(recipients, out)


def members_only_now(room: Room) -> None:
    """§10.2 (322): non-members leave a room that became members-only."""
    for occ in list(room.occupants.values()):
        if AFF_RANK[room.affiliation(occ.bare)] < MEMBER:
            room.remove(occ, codes={322})


def configuration_changed(room: Room, old: RoomConfig, was_archiving: bool) -> None:
    """§10.2.1: tell the occupants, once `room` has its new configuration. `was_archiving`:
    whether the room was archiving before (a new room, still locked, was not)."""
    new = room.config
    codes = set()
    if room.archiving != was_archiving:
        codes.add(170 if room.archiving else 171)
    if new.whois != old.whois:
        codes.add(172 if new.non_anonymous else 173)
    if codes or new != old:
        codes.add(104)
    if codes and room.occupants:
        out = codec.stanza("message", room.jid, type="groupchat", id=secrets.token_hex(8))
        codec.user_x(None, codes, out)
        room.send_to(room.sessions(), out)


def room_destroyed(room: Room, reason: str | None, alternate: JID | None, password: str | None,
                   codes: Iterable[int] = ()) -> None:
    """§10.9: one unavailable presence to each occupant, with <destroy/>; or, at service
    shutdown, 332 (§11.2)."""
    for occ in list(room.occupants.values()):
        for session in occ.sessions:
            out = codec.stanza("presence", room.jid.with_resource(occ.nick), session,
                               type="unavailable")
            x = codec.user_x(Item("none", "none"), set(codes) | ({110} if codes else set()),
                             out)
            if not codes:
                d = codec.el("destroy", NS_USER, x)
                if alternate is not None:
                    d.set("jid", str(alternate))
                if reason:
                    codec.el("reason", NS_USER, d).text = reason
                if password:
                    codec.el("password", NS_USER, d).text = password
            room.send(out)
    room.occupants.clear()
    room.by_session.clear()
