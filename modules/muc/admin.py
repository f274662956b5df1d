# tests: tests/modules/test_muc_admin.py, tests/modules/test_muc_config.py
"""XEP-0045 muc#admin and muc#owner IQs on a room: the role and affiliation lists (§8.5, §9.2,
§9.5, §9.8, §10.5, §10.8), changes to them (kick, voice, moderator, ban, member, admin, owner),
the configuration form (§10.1, §10.2) and room destruction (§10.9).

- A set is validated whole before anything changes (§9.2: "SHOULD NOT apply any of the
  requested changes" when one is prohibited); an item naming both a role and an affiliation
  is <bad-request/> (§17.4.4). Permissions come from affiliations.py.
- Affiliation changes of a persistent room are stored before they take effect, so a reply
  means the change survives a restart. Changes to one room run one at a time (its lock).
- Adding someone to a members-only room's member list invites them (§9.5 SHOULD).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from modules.muc import codec
from modules.muc.affiliations import (AFF_RANK, ADMIN, AFFILIATIONS, MEMBER, ROLES, Role,
                                      check_affiliation_change, check_role_change)
from modules.muc.changes import (affiliation_changed, configuration_changed, members_only_now,
                                 set_role)
from modules.muc.codec import NS_ADMIN, NS_OWNER
from modules.muc.messages import invitation
from modules.muc.room import Occupant, Room
from stanzas import forms, iq
from stanzas.errors import StanzaError
from storage.muc import Affiliation, AffiliationEntry
from stanzas.jid import JID, JIDError
from xmppd.module import IqRequest

if TYPE_CHECKING:
    from modules.muc.service import MucService

_ITEM = "{%s}item" % NS_ADMIN


def _affiliation_key(text: str | None) -> str:
    """§10.6: affiliations belong to bare JIDs ("SHOULD use the bare JID representation");
    a bare domain names a whole server (§9.2)."""
    if not text:
        raise StanzaError.bad_request("an affiliation item needs a 'jid'")
    try:
        return str(JID.parse(text).bare)
    except JIDError as e:
        raise StanzaError.jid_malformed(str(e)) from None


def _reason(item: etree._Element) -> str | None:
    return item.findtext("{%s}reason" % NS_ADMIN)


# -- muc#admin get ---------------------------------------------------------------------------
def admin_get(room: Room, req: IqRequest) -> iq.Reply:
    items = req.payload.findall(_ITEM)
    if len(items) != 1 or (items[0].get("affiliation") is None) == (items[0].get("role") is None):
        raise StanzaError.bad_request("ask for one affiliation or one role")
    item = items[0]
    actor_aff = room.affiliation(req.sender)
    actor = room.by_session.get(req.sender)
    q = iq.empty(NS_ADMIN, "query")
    wanted = item.get("affiliation")
    if wanted is not None:
        if wanted not in AFFILIATIONS or wanted == "none":
            raise StanzaError.bad_request(f"no affiliation list {wanted!r}")
        if not _may_read_affiliations(room, wanted, actor_aff, actor):
            raise StanzaError.forbidden("you may not see that list")
        for jid, entry in sorted(room.affiliations.items()):
            if entry.affiliation != wanted:
                continue
            # §17.4.6: affiliation, bare jid, nick (not for outcasts); never a role.
            out = codec.el("item", NS_ADMIN, q, affiliation=wanted, jid=jid)
            if entry.nick and wanted != "outcast":
                out.set("nick", entry.nick)
            if entry.reason:
                codec.el("reason", NS_ADMIN, out).text = entry.reason
        return iq.result(req.stanza, q)
    role = item.get("role")
    if role not in ROLES or role == "none":
        raise StanzaError.bad_request(f"no role list {role!r}")
    if actor is None or actor.role != "moderator":
        raise StanzaError.forbidden("only moderators see role lists")            # §8.5, §9.8
    for occ in sorted(room.occupants.values(), key=lambda o: o.nick):
        if occ.role == role:
            # §17.4.5: nick, role, affiliation and the full JID.
            codec.el("item", NS_ADMIN, q, affiliation=room.affiliation(occ.bare), role=role,
                     nick=occ.nick, jid=str(occ.primary))
    return iq.result(req.stanza, q)


def _may_read_affiliations(room: Room, wanted: str, actor_aff: str,
                           actor: Occupant | None) -> bool:
    rank = AFF_RANK[actor_aff]
    if wanted in ("owner", "admin"):
        # §10.5/§10.8: owners; "In non-anonymous rooms, the service MAY process the request".
        return rank == AFF_RANK["owner"] or (room.config.non_anonymous and rank >= MEMBER)
    if wanted == "member":
        if rank >= ADMIN:
            return True
        # §9.5: in non-anonymous rooms members (occupants or not) SHOULD get it; §5.2.1 ***:
        # in semi-anonymous rooms they SHOULD NOT. muc#roomconfig_getmemberlist picks roles.
        if not room.config.non_anonymous:
            return False
        return rank >= MEMBER or (actor is not None and
                                  actor.role in room.config.get_member_list)
    return rank >= ADMIN                                                          # outcasts


# -- muc#admin set ---------------------------------------------------------------------------
async def admin_set(service: MucService, room: Room, req: IqRequest) -> iq.Reply:
    items = req.payload.findall(_ITEM)
    if not items:
        raise StanzaError.bad_request("no items")
    await room.lock.acquire()
    try:
        actor = room.by_session.get(req.sender)
        actor_aff = room.affiliation(req.sender)
        roles: list[tuple[Occupant, Role, str | None]] = []
        changes: dict[str, AffiliationEntry | None] = {}
        reasons: dict[str, str | None] = {}
        for item in items:
            has_aff, has_role = item.get("affiliation") is not None, item.get("role") is not None
            if has_aff == has_role:
                raise StanzaError.bad_request("an item changes a role or an affiliation")  # §17.4.4
            if has_role:
                roles.append(_role_change(room, item, actor, actor_aff))
            else:
                key, entry = _affiliation_change(room, item, req.sender, actor_aff)
                changes[key] = entry
                reasons[key] = _reason(item)
        if changes:
            _check_owners_left(room, changes)
            old = {k: room.affiliations[k].affiliation if k in room.affiliations else "none"
                   for k in changes}
            await service.store_affiliations(room, changes)
            for key, entry in changes.items():
                if entry is None:
                    room.affiliations.pop(key, None)
                else:
                    room.affiliations[key] = entry
            for key in changes:
                affiliation_changed(room, key, old[key], actor, reasons[key])
            if room.config.members_only:
                inviter = str(req.sender.bare)
                for key, entry in changes.items():
                    if entry is not None and entry.affiliation == "member" and \
                            old[key] == "none" and "@" in key:
                        service.send(invitation(room, inviter, None, None, JID.parse(key)))
        for occ, role, reason in roles:
            if occ.nick in room.occupants:
                set_role(room, occ, role, actor, reason)
    finally:
        room.lock.release()
    return iq.result(req.stanza)


def _role_change(room: Room, item: etree._Element, actor: Occupant | None,
                 actor_aff: str) -> tuple[Occupant, Role, str | None]:
    role = item.get("role")
    nick = item.get("nick")
    if role not in ROLES:
        raise StanzaError.bad_request(f"unknown role {role!r}")
    if not nick:
        raise StanzaError.bad_request("a role item needs a 'nick'")               # §17.4.5
    if actor is None:
        raise StanzaError.forbidden("only moderators change roles")
    target = room.occupants.get(nick)
    if target is None:
        raise StanzaError.item_not_found(f"no occupant {nick!r}")
    err = check_role_change(actor_aff, actor.role, room.affiliation(target.bare), target.role,
                            role)
    if err is not None:
        raise err
    return target, role, _reason(item)


def _affiliation_change(room: Room, item: etree._Element, sender: JID, actor_aff: str
                        ) -> tuple[str, AffiliationEntry | None]:
    new = item.get("affiliation")
    if new not in AFFILIATIONS:
        raise StanzaError.bad_request(f"unknown affiliation {new!r}")
    key = _affiliation_key(item.get("jid"))
    current = room.affiliations.get(key)
    old = current.affiliation if current is not None else "none"
    owners = [j for j in room.owners() if j != key]
    err = check_affiliation_change(actor_aff, old, new, self_change=key == str(sender.bare),
                                   other_owners=len(owners))
    if err is not None:
        raise err
    if new == "none":
        return key, None
    nick = item.get("nick")
    if nick is None:
        nick = current.nick if current is not None else ""
    if new == "outcast":
        nick = ""                              # §9.1: "MUST remove the outcast's nickname"
    elif nick:
        holder = room.reserved_by(nick)
        if holder is not None and holder != key:
            raise StanzaError.conflict(f"{nick!r} is reserved by someone else")
    return key, AffiliationEntry(new, nick, _reason(item) or "")


def _check_owners_left(room: Room, changes: dict[str, AffiliationEntry | None]) -> None:
    owners = {j for j, e in room.affiliations.items() if e.affiliation == "owner"}
    for key, entry in changes.items():
        if entry is not None and entry.affiliation == "owner":
            owners.add(key)
        else:
            owners.discard(key)
    if not owners:
        raise StanzaError.conflict("a room needs an owner")                       # §10.6


# -- muc#owner -------------------------------------------------------------------------------
def _require_owner(room: Room, req: IqRequest) -> None:
    if room.affiliation(req.sender) != "owner":
        raise StanzaError.forbidden("only owners configure or destroy a room")    # §10.2, §10.9


def owner_get(service: MucService, room: Room, req: IqRequest) -> iq.Reply:
    _require_owner(room, req)
    if any(isinstance(c.tag, str) for c in req.payload):
        raise StanzaError.bad_request("ask with an empty query")
    q = iq.empty(NS_OWNER, "query")
    admins = sorted(j for j, e in room.affiliations.items() if e.affiliation == "admin")
    q.append(room.config.form(service.limits, room.owners(), admins, str(room.jid)))
    return iq.result(req.stanza, q)


async def owner_set(service: MucService, room: Room, req: IqRequest) -> iq.Reply:
    _require_owner(room, req)
    destroy = req.payload.find("{%s}destroy" % NS_OWNER)
    if destroy is not None:
        alt = destroy.get("jid")
        try:
            alternate = JID.parse(alt) if alt else None
        except JIDError as e:
            raise StanzaError.jid_malformed(str(e)) from None
        await service.destroy(room, destroy.findtext("{%s}reason" % NS_OWNER),
                              alternate, destroy.findtext("{%s}password" % NS_OWNER))
        return iq.result(req.stanza)
    x = forms.find(req.payload)
    if x is None:
        raise StanzaError.bad_request("expected a data form or <destroy/>")
    if x.get("type") == "cancel":
        if room.locked:
            # §10.1.3: "If the room owner cancels the initial configuration, the service
            # MUST destroy the room".
            await service.destroy(room, None, None, None)
        return iq.result(req.stanza)
    submitted = forms.parse_submit(x)
    await room.lock.acquire()
    try:
        await configure(service, room, submitted, req.sender)
    finally:
        room.lock.release()
    return iq.result(req.stanza)


async def configure(service: MucService, room: Room, form: forms.Submitted,
                    sender: JID) -> None:
    """Apply a submitted muc#roomconfig form (empty: accept the defaults, an instant room,
    §10.1.2). muc#roomconfig_roomowners/_roomadmins are full lists (§10.5 note)."""
    old = room.config
    new = old.submit(form, service.limits)
    changes: dict[str, AffiliationEntry | None] = {}
    lists: tuple[tuple[str, Affiliation], ...] = (("muc#roomconfig_roomowners", "owner"),
                                                  ("muc#roomconfig_roomadmins", "admin"))
    for var, aff in lists:
        if not form.has(var):
            continue
        wanted = {_affiliation_key(v) for v in form.values[var] if v.strip()}
        for key, held in room.affiliations.items():
            if held.affiliation == aff and key not in wanted and key not in changes:
                changes[key] = None
        for key in wanted:
            current = room.affiliations.get(key)
            if current is None or current.affiliation != aff:
                changes[key] = AffiliationEntry(aff, current.nick if current else "")
    if changes:
        _check_owners_left(room, changes)
    was_archiving = room.archiving
    await service.store_config(room, new, changes)
    room.config = new
    room.locked = False
    old_affs = {k: room.affiliations[k].affiliation if k in room.affiliations else "none"
                for k in changes}
    for key, entry in changes.items():
        if entry is None:
            room.affiliations.pop(key, None)
        else:
            room.affiliations[key] = entry
    actor = room.by_session.get(sender)
    for key in changes:
        affiliation_changed(room, key, old_affs[key], actor, None)
    if new.members_only and not old.members_only:
        members_only_now(room)
    configuration_changed(room, old, was_archiving)
