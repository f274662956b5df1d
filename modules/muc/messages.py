# tests: tests/modules/test_muc_messages.py
"""XEP-0045 messages of a room: groupchat fan-out (§7.4) with XEP-0359 stanza ids and XEP-0421
occupant ids, subject changes (§8.1), private messages (§7.5), voice requests (§7.13, §8.6),
mediated invitations and declines (§7.8.2), and IQs to occupants (§18.4, XEP-0410 self-ping).

- A groupchat message is cleaned of what only the room may say, stamped, and serialised once
  for all occupants (router.fan_out); one with a body joins the history and the archive.
- A private message goes to every session of the recipient as a routed copy of its own (the
  recipient's archive and carbons see it, XEP-0313, XEP-0280 §6).
- An error from an occupant's session that says the stanza could not be delivered removes
  that session (§18.1.2 Ghost Users, 333); other errors to an occupant JID go back to the sender.
- IQs to an occupant are relayed with our own ids, so neither side learns the other's real
  JID; a ping to oneself is answered at once (XEP-0410 §3.3).
Not here: presence and the occupant list (room.py), admin and owner IQs (admin.py).
"""
from __future__ import annotations

import copy
import secrets
from typing import TYPE_CHECKING, Any

from lxml import etree

from modules.muc import codec
from modules.muc.changes import affiliation_changed
from modules.muc.affiliations import ADMIN, AFF_RANK, MEMBER
from modules.muc.codec import NS_REQUEST, NS_USER
from stanzas import forms, iq, ns
from stanzas.errors import StanzaError
from storage.muc import AffiliationEntry
from stanzas.jid import JID, JIDError

if TYPE_CHECKING:
    from modules.muc.room import Occupant, Room

_E = etree._Element
MAX_RELAYED_IQS = 1000          # per room: relayed IQs awaiting an answer


# -- messages to the room and to occupants -------------------------------------------------
def receive(room: Room, el: _E, sender: JID, to: JID) -> Any:
    kind = el.get("type") or "normal"
    occ = room.by_session.get(sender)
    if kind == "error":
        if occ is not None and codec.condition(el) in codec.DELIVERY_ERRORS:
            room.drop_session(occ, sender, codes=(333,))           # §18.1.2 Ghost Users
        elif occ is not None and to.resource is not None:
            relay_error(room, el, occ, to.resource)
        return None
    if to.resource is not None:
        private_message(room, el, sender, occ, to.resource)
        return None
    if kind == "groupchat":
        groupchat(room, el, sender, occ)
        return None
    x = el.find(codec.USER_X)
    if x is not None and x.find("{%s}invite" % NS_USER) is not None:
        return invite(room, el, sender, occ, x)
    if x is not None and x.find("{%s}decline" % NS_USER) is not None:
        return decline(room, el, sender, x)
    form = forms.find(el)
    if form is not None:
        voice_form(room, el, sender, occ, form)
        return None
    # §17.2.1: "A service MAY ... reject [improperly typed messages] with a bad-request".
    room.refuse(el, StanzaError.bad_request("messages to a room are of type groupchat"))
    return None


def groupchat(room: Room, el: _E, sender: JID, occ: Occupant | None) -> None:
    if occ is None:
        room.refuse(el, StanzaError.not_acceptable("you are not in this room"))   # §7.4
        return
    if occ.role == "visitor" or occ.role == "none":
        room.refuse(el, StanzaError.forbidden("you have no voice in this room"))  # §7.4
        return
    if room.config.archived and room.service.archive_writes.full:
        # Storage down and the backlog full: not taken rather than not archived (DESIGN.md).
        room.refuse(el, StanzaError.resource_constraint("the room archive is not available "
                                                        "right now; try again later"))
        return
    if codec.is_subject_change(el):
        # §8.1: moderators; others only if muc#roomconfig_changesubject allows.
        if occ.role != "moderator" and not room.config.change_subject:
            room.refuse(el, StanzaError.forbidden("only moderators change the subject"))
            return
        set_subject(room, el, occ)
        return
    out = codec.clean_message(el, room.jid)
    stamp(room, out, occ)
    now = room.service.now()
    room.send_to(room.sessions(), out)
    if out.find(codec.BODY) is not None:
        room.remember(out, now, occ.nick)
        room.service.archive(room, out, now, occ)
        room.service.announce(room, out, occ)       # members away: push (XEP-0357)


def stamp(room: Room, out: _E, occ: Occupant) -> str:
    """From the occupant JID, the client's id kept (§7.4, muc#stable_id) or one made up,
    with our occupant-id (XEP-0421) and stanza-id (XEP-0359, by the room)."""
    out.set("from", str(room.jid.with_resource(occ.nick)))
    if not out.get("id"):
        out.set("id", secrets.token_hex(8))
    codec.el("occupant-id", codec.NS_OCCUPANT_ID, out, id=occ.occupant_id)
    sid = secrets.token_urlsafe(12)
    codec.el("stanza-id", ns.STANZA_ID, out, id=sid, by=str(room.jid))
    return sid


def set_subject(room: Room, el: _E, occ: Occupant) -> None:
    out = codec.clean_message(el, room.jid)
    stamp(room, out, occ)
    now = room.service.now()
    room.subject = out.findtext(codec.SUBJECT) or ""
    room.subject_nick, room.subject_at = occ.nick, now
    room.subject_by = occ.occupant_id
    room.send_to(room.sessions(), out)
    room.service.subject_changed(room)
    room.service.archive(room, out, now, occ)      # XEP-0313 §5.1.2: subjects are kept


def private_message(room: Room, el: _E, sender: JID, occ: Occupant | None, nick: str) -> None:
    """§7.5: from the sender's occupant JID to every session of the recipient."""
    if el.get("type") == "groupchat":
        room.refuse(el, StanzaError.bad_request("private messages are not groupchat"))
        return
    if occ is None:
        room.refuse(el, StanzaError.not_acceptable("you are not in this room"))
        return
    target = room.occupants.get(nick)
    if target is None:
        room.refuse(el, StanzaError.item_not_found("no such occupant"))
        return
    allowed = {"anyone": True, "participants": occ.role in ("participant", "moderator"),
               "moderators": occ.role == "moderator", "none": False}[room.config.allow_pm]
    if not allowed:
        room.refuse(el, StanzaError.forbidden("private messages are not allowed here"))
        return
    out = codec.clean_message(el, room.jid, keep_user_x=True)
    out.set("from", str(room.jid.with_resource(occ.nick)))
    if out.find(codec.USER_X) is None:
        codec.el("x", NS_USER, out)                         # §7.5: "SHOULD add the <x/>"
    codec.el("occupant-id", codec.NS_OCCUPANT_ID, out, id=occ.occupant_id)
    route_to(room, list(target.sessions), out)


def route_to(room: Room, recipients: list[JID], stanza: _E) -> None:
    """One routed copy per recipient: a private message is the recipient's own chat, for
    its archive and carbons (XEP-0313, XEP-0280 §6), not a room broadcast."""
    for to in recipients:
        mine = copy.deepcopy(stanza)
        mine.set("to", str(to))
        room.send(mine)


def relay_error(room: Room, el: _E, occ: Occupant, nick: str) -> None:
    """An error answering a private message goes back to its sender, from our side."""
    target = room.occupants.get(nick)
    if target is None:
        return
    out = copy.deepcopy(el)
    out.set("from", str(room.jid.with_resource(occ.nick)))
    route_to(room, list(target.sessions), out)


def voice_form(room: Room, el: _E, sender: JID, occ: Occupant | None, x: _E) -> None:
    """§7.13 a visitor asks for voice (the request goes to the moderators as an approval
    form, §8.6); a moderator's submitted approval grants it."""
    try:
        form = forms.parse_submit(x)
    except StanzaError as e:
        room.refuse(el, e)
        return
    if form.form_type != NS_REQUEST or occ is None:
        room.refuse(el, StanzaError.bad_request("not a voice request from an occupant"))
        return
    if occ.role == "moderator" and form.has("muc#request_allow"):
        if not form.boolean("muc#request_allow", False):
            return
        target = room.occupants.get(form.text("muc#roomnick"))
        if target is not None and target.role == "visitor":
            target.role = "participant"
            room.broadcast_presence(target)                 # §8.3
        return
    if occ.role != "visitor" or form.text("muc#role") != "participant":
        return
    for mod in room.occupants.values():
        if mod.role != "moderator":
            continue
        msg = codec.stanza("message", room.jid, type="normal", id=secrets.token_hex(8))
        msg.append(forms.build("form", [
            forms.Field("muc#role", "list-single", "Requested role", ["participant"]),
            forms.Field("muc#jid", "jid-single", "User ID",
                        [str(occ.primary)] if room.sees_jids(mod) else []),
            forms.Field("muc#roomnick", "text-single", "Room Nickname", [occ.nick]),
            forms.Field("muc#request_allow", "boolean", "Grant voice to this person?",
                        ["0"])], form_type=NS_REQUEST, title="Voice request"))
        room.send_to(list(mod.sessions), msg)


# -- IQs to occupants (§18.4, XEP-0410) ---------------------------------------------------
def on_occupant_iq(room: Room, el: _E, sender: JID, to: JID) -> None:
    kind = el.get("type")
    assert to.resource is not None
    if kind in ("result", "error"):
        relay_answer(room, el, sender, to.resource)
        return
    if kind not in ("get", "set"):
        return
    occ = room.by_session.get(sender)
    payload = iq.payload(el)
    if occ is None:
        if payload is not None and etree.QName(payload).namespace in (ns.DISCO_INFO,
                                                                      ns.DISCO_ITEMS):
            room.refuse(el, StanzaError.bad_request("you are not in this room"))   # §6.7
        else:
            room.refuse(el, StanzaError.not_acceptable("you are not in this room"))
        return
    target = room.occupants.get(to.resource)
    if target is None:
        room.refuse(el, StanzaError.item_not_found("no such occupant"))
        return
    if target is occ and payload is not None and payload.tag == "{%s}ping" % ns.PING:
        room.send(iq.result(el))              # XEP-0410 §3.3: answer a self-ping at once
        return
    # §18.4: relayed to the real JID; neither side learns the other's real JID.
    relay_id = secrets.token_hex(8)
    room.relayed[relay_id] = (sender, el.get("id") or "", occ.nick)
    while len(room.relayed) > MAX_RELAYED_IQS:
        room.relayed.popitem(last=False)
    out = copy.deepcopy(el)
    out.set("from", str(room.jid.with_resource(occ.nick)))
    out.set("to", str(target.primary))
    out.set("id", relay_id)
    room.send(out)


def relay_answer(room: Room, el: _E, sender: JID, nick: str) -> None:
    found = room.relayed.get(el.get("id") or "")
    target = room.by_session.get(sender)
    if found is None or target is None:
        return
    asker, original_id, asker_nick = found
    if asker_nick != nick:
        return
    del room.relayed[el.get("id") or ""]
    out = copy.deepcopy(el)
    out.set("from", str(room.jid.with_resource(target.nick)))
    out.set("to", str(asker))
    out.set("id", original_id)
    room.send(out)


# -- invitations (§7.8.2) -----------------------------------------------------------------
async def invite(room: Room, el: etree._Element, sender: JID, occ: Occupant | None,
                 x: etree._Element) -> None:
    rank = AFF_RANK[room.affiliation(sender)]
    if occ is None and rank < ADMIN:
        room.refuse(el, StanzaError.not_acceptable("you are not in this room"))
        return
    if room.config.members_only and not room.config.allow_invites and rank < ADMIN:
        # §9.5: "if ... a mere member attempts to send an invitation, the service MUST
        # deny the invitation request and return a <forbidden/> error".
        room.refuse(el, StanzaError.forbidden("only admins invite to this room"))
        return
    invitees: list[tuple[JID, str | None]] = []
    for inv in x.iterfind("{%s}invite" % NS_USER):
        try:
            target = JID.parse(inv.get("to") or "")
        except JIDError:
            room.refuse(el, StanzaError.jid_malformed("invite whom?"))
            return
        if target.local is None or (target.domain in room.service.ctx.local_domains and
                                    not await room.service.ctx.user_exists(target)):
            room.refuse(el, StanzaError.item_not_found(f"no user {target.bare}"))
            return
        if room.affiliation(target) == "outcast" and rank < ADMIN:
            room.refuse(el, StanzaError.forbidden(f"{target.bare} is banned here"))
            return
        invitees.append((target, inv.findtext("{%s}reason" % NS_USER)))
    if room.config.members_only:
        # §9.5 MAY: an invitation into a members-only room makes the invitee a member.
        await room.lock.acquire()
        try:
            changes: dict[str, AffiliationEntry | None] = {
                str(t.bare): AffiliationEntry("member") for t, _ in invitees
                if AFF_RANK[room.affiliation(t)] < MEMBER}
            if changes:
                old = {k: room.affiliations[k].affiliation if k in room.affiliations
                       else "none" for k in changes}
                await room.service.store_affiliations(room, changes)
                for k, entry in changes.items():
                    assert entry is not None
                    room.affiliations[k] = entry
                    affiliation_changed(room, k, old[k], occ, None)
        finally:
            room.lock.release()
        room.service.vacated(room)
    # The inviter as the invitee may know them: the bare JID in non-anonymous rooms,
    # else the occupant JID (§7.8.2 allows either).
    inviter = str(sender.bare) if room.config.non_anonymous or occ is None \
        else str(room.jid.with_resource(occ.nick))
    for target, reason in invitees:
        room.send(invitation(room, inviter, reason, el.get("id"), target))


def decline(room: Room, el: etree._Element, sender: JID, x: etree._Element) -> None:
    d = x.find("{%s}decline" % NS_USER)
    assert d is not None
    try:
        target = JID.parse(d.get("to") or "")
    except JIDError:
        room.refuse(el, StanzaError.jid_malformed("decline to whom?"))
        return
    if target.bare == room.jid and target.resource is not None:
        occ = room.occupants.get(target.resource)
        if occ is None:
            room.refuse(el, StanzaError.item_not_found("no such occupant"))
            return
        target = occ.primary
    out = codec.stanza("message", room.jid, target, id=el.get("id"))
    dx = codec.el("x", NS_USER, out)
    dec = codec.el("decline", NS_USER, dx, **{"from": str(sender.bare)})
    reason = d.findtext("{%s}reason" % NS_USER)
    if reason:
        codec.el("reason", NS_USER, dec).text = reason
    room.send(out)


def invitation(room: Room, inviter: str, reason: str | None, message_id: str | None,
               invitee: JID) -> _E:
    """§7.8.2: the room's invitation, with the password if the room has one."""
    out = codec.stanza("message", room.jid, invitee, id=message_id or secrets.token_hex(8))
    x = codec.el("x", NS_USER, out)
    inv = codec.el("invite", NS_USER, x, **{"from": inviter})
    if reason:
        codec.el("reason", NS_USER, inv).text = reason
    if room.config.password_protected:
        codec.el("password", NS_USER, x).text = room.config.password
    return out
