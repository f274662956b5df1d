# tests: tests/modules/test_muc_occupants.py, tests/modules/test_muc_admin.py
"""One room (XEP-0045): its occupants and their presence.

- Entering (§7.2): checks in this order — locked room <item-not-found/> (§7.2.11) unless an
  owner, banned <forbidden/> (§7.2.8), members-only <registration-required/> (§7.2.7), password
  <not-authorized/> (§7.2.6, owners and admins need none), nickname taken or reserved by
  someone else <conflict/> (§7.2.9), room full <service-unavailable/> (§7.2.10, admins and
  owners still enter). Access first, so an outsider learns nothing about who is inside. Then:
  the others' presence, self-presence with 110 (+100 non-anonymous, +170 archived, +201
  created, +210 nick changed by us), history, subject (§7.1 order of events).
- A second resource of the same user may take the same nick (§7.2.9 SHOULD): one occupant,
  several sessions; messages go to all of them. Presence shown is the last one a session sent.
- Leaving (§7.14), nick change with 303 (§7.6), presence updates (§7.7), and removals by
  others (kick, ban, affiliation: changes.py).
- A presence without the muc <x/> from a non-occupant is answered with the kick §7.2.23
  recommends (110, 307, 333). A delivery error from an occupant's session removes it (§18.1.2
  Ghost Users, status 333).
- Presence goes out at most four times serialised (with or without the real JID, self or
  others: router.fan_out).
Not here: history and subject for joiners (history.py), messages and IQs (messages.py), what
moderators, admins and owners change (changes.py, admin.py), MAM (mam.py), storage (service.py).
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import defer

from modules.muc import codec, history, messages
from modules.muc.affiliations import AFF_RANK, ADMIN, MEMBER, Role, default_role
from modules.muc.codec import Item, JoinRequest
from modules.muc.config import RoomConfig
from stanzas import ns
from stanzas.errors import StanzaError
from storage.muc import AffiliationEntry, StoredRoom
from stanzas.jid import JID, JIDError

if TYPE_CHECKING:
    from modules.muc.service import MucService

_E = etree._Element
_C = "{%s}" % ns.CLIENT


class Occupant:
    """One nickname in the room, held by one user through one or more sessions."""
    __slots__ = ("nick", "bare", "role", "sessions", "primary", "occupant_id")

    def __init__(self, nick: str, bare: JID, role: Role, occupant_id: str) -> None:
        self.nick = nick
        self.bare = bare
        self.role: Role = role
        self.sessions: dict[JID, _E] = {}       # full JID -> its cleaned presence
        self.primary: JID = bare                 # the session whose presence is shown
        self.occupant_id = occupant_id

    @property
    def presence(self) -> _E:
        return self.sessions[self.primary]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    message: _E                 # as the room sent it, without 'to'
    at: float
    nick: str


class Room:
    def __init__(self, service: MucService, jid: JID, config: RoomConfig,
                 affiliations: dict[str, AffiliationEntry], *, secret: str, created_at: float,
                 locked: bool = False, subject: str = "", subject_nick: str = "",
                 subject_at: float | None = None) -> None:
        self.service = service
        self.jid = jid
        self.config = config
        self.affiliations = affiliations
        self.secret = secret
        self.created_at = created_at
        self.locked = locked                        # created, awaiting configuration (§10.1)
        self.subject, self.subject_nick, self.subject_at = subject, subject_nick, subject_at
        self.subject_by: str | None = None          # occupant id of who set it, while known
        self.occupants: dict[str, Occupant] = {}
        self.by_session: dict[JID, Occupant] = {}
        self.history: deque[HistoryEntry] = deque(maxlen=service.limits.history_limit)
        self.lock = defer.DeferredLock()            # admin and owner changes, one at a time
        self.relayed: OrderedDict[str, tuple[JID, str, str]] = OrderedDict()

    @classmethod
    def from_stored(cls, service: MucService, stored: StoredRoom) -> Room:
        return cls(service, stored.room, RoomConfig.from_json(stored.config),
                   dict(stored.affiliations), secret=stored.secret,
                   created_at=stored.created_at, subject=stored.subject,
                   subject_nick=stored.subject_nick, subject_at=stored.subject_at)

    def stored(self) -> StoredRoom:
        return StoredRoom(self.jid, self.config.to_json(), self.secret, self.created_at,
                          self.subject, self.subject_nick, self.subject_at,
                          dict(self.affiliations))

    # -- who is who ------------------------------------------------------------------------
    def affiliation(self, user: JID) -> str:
        """§9.2: match the bare JID, then the domain (a ban of a whole domain)."""
        entry = self.affiliations.get(str(user.bare)) or self.affiliations.get(user.domain)
        return entry.affiliation if entry is not None else "none"

    def reserved_by(self, nick: str) -> str | None:
        """The bare JID that registered `nick` (§7.2.9, §9.3), if anyone did."""
        for jid, entry in self.affiliations.items():
            if entry.nick == nick and entry.affiliation != "outcast":
                return jid
        return None

    def owners(self) -> list[str]:
        return sorted(j for j, e in self.affiliations.items() if e.affiliation == "owner")

    def sees_jids(self, occ: Occupant) -> bool:
        """§7.2.3/§7.2.4: everyone in non-anonymous rooms, moderators in semi-anonymous ones."""
        return self.config.non_anonymous or occ.role == "moderator"

    def occupant_id_of(self, bare: JID) -> str:
        """XEP-0421 §4.1: stable per (room, user), unguessable, pseudonymous."""
        mac = hmac.new(self.secret.encode(), str(bare).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode()

    def sessions(self) -> list[JID]:
        return list(self.by_session)

    @property
    def empty(self) -> bool:
        return not self.occupants

    @property
    def archiving(self) -> bool:
        """Messages go to the room's archive: archiving is on and the room is configured
        (a new room's messages are not kept until its owner has configured it, §10.1)."""
        return self.config.archived and not self.locked

    # -- entry point -----------------------------------------------------------------------
    def receive(self, el: _E, sender: JID, to: JID) -> Any:
        tag = el.tag
        if tag == _C + "presence":
            return self.on_presence(el, sender, to)
        if tag == _C + "message":
            return messages.receive(self, el, sender, to)
        if tag == _C + "iq" and to.resource is not None:
            return messages.on_occupant_iq(self, el, sender, to)
        return None

    def send(self, stanza: _E) -> None:
        self.service.send(stanza)

    def refuse(self, el: _E, err: StanzaError) -> None:
        if el.get("type") != "error":
            self.send(codec.error(el, err, self.jid))

    # -- presence --------------------------------------------------------------------------
    def on_presence(self, el: _E, sender: JID, to: JID) -> None:
        kind = el.get("type")
        occ = self.by_session.get(sender)
        if kind == "error":
            if occ is not None and codec.condition(el) in codec.DELIVERY_ERRORS:
                self.drop_session(occ, sender, codes=(333,))
            return
        if kind == "unavailable":
            if occ is not None:
                self.leave(occ, sender, el)
            return          # §17.3.5: "silently ignore unavailable presence" from role none
        if kind is not None:
            return          # §17.3.1/2: probes and subscriptions are neither joins nor exits
        if to.resource is None:
            self.refuse(el, StanzaError.jid_malformed("a nickname is needed"))    # §7.2.1
            return
        if occ is None:
            self.join(el, sender, to.resource)
        elif to.resource != occ.nick:
            self.change_nick(occ, sender, to.resource, el)
        elif (x := el.find(codec.MUC_X)) is not None:
            # §7.2.1/§17.3.3: a join from an occupant "lost its synchronization": resend all.
            try:
                request = JoinRequest.parse(x)
            except StanzaError as e:
                self.refuse(el, e)
                return
            occ.sessions[sender] = codec.clean_presence(el)
            self.welcome(occ, sender, el, request, ())
        else:
            occ.sessions[sender] = codec.clean_presence(el)
            occ.primary = sender
            self.broadcast_presence(occ)

    def join(self, el: _E, sender: JID, nick: str, *, created: bool = False) -> Occupant | None:
        x = el.find(codec.MUC_X)
        if x is None:
            self.kick_gc10(el, sender)
            return None
        try:
            request = JoinRequest.parse(x)
            nick, modified = self.normalize_nick(nick)
        except StanzaError as e:
            self.refuse(el, e)
            return None
        aff = self.affiliation(sender)
        rank = AFF_RANK[aff]
        existing = self.occupants.get(nick)
        reserved = self.reserved_by(nick)
        if self.locked and aff != "owner":
            err = StanzaError.item_not_found("this room is not configured yet")       # §7.2.11
        elif aff == "outcast":
            err = StanzaError.forbidden("you are banned from this room")               # §7.2.8
        elif self.config.members_only and rank < MEMBER:
            err = StanzaError("registration-required", "this room is for members only")  # §7.2.7
        elif self.config.password_protected and rank < ADMIN and \
                request.password != self.config.password:
            err = StanzaError.not_authorized("a password is required")                 # §7.2.6
        elif (existing is not None and existing.bare != sender.bare) or \
                (reserved is not None and reserved != str(sender.bare)):
            err = StanzaError.conflict("that nickname is taken")                        # §7.2.9
        elif existing is None and len(self.occupants) >= self.config.max_users and \
                rank < ADMIN:
            # §7.2.10 (type 'wait' in the example); admins and owners "MUST" still enter.
            err = StanzaError("service-unavailable", "the room is full", type="wait")
        else:
            err = None
        if err is not None:
            self.refuse(el, err)
            return None
        occ = existing
        if occ is None:
            occ = Occupant(nick, sender.bare, default_role(aff, self.config.moderated),
                           self.occupant_id_of(sender.bare))
            self.occupants[nick] = occ
        occ.sessions[sender] = codec.clean_presence(el)
        if existing is None:
            occ.primary = sender
        self.by_session[sender] = occ
        codes = [201] if created else []
        if modified:
            codes.append(210)
        self.welcome(occ, sender, el, request, codes, announce=existing is None)
        return occ

    def welcome(self, occ: Occupant, session: JID, join: _E, request: JoinRequest,
                codes: Iterable[int], announce: bool = False) -> None:
        """§7.1: others' presence, self-presence, history, subject — in that order."""
        viewer_sees = self.sees_jids(occ)
        for other in list(self.occupants.values()):
            if other is occ or other.role not in self.config.presence_broadcast:
                continue
            self.send_to([session], self.presence_of(other, viewer_sees))
        self_codes = set(codes) | {110}
        if self.config.non_anonymous:
            self_codes.add(100)                                     # §7.2.4
        if self.archiving:
            self_codes.add(170)                                     # §7.2.12
        mine = self.presence_of(occ, viewer_sees, self_codes)
        if join.get("id") is not None:
            mine.set("id", join.get("id") or "")                   # §7.2.3 "MAY reflect"
        self.send_to([session], mine)
        if announce:
            self.broadcast_presence(occ, skip_self=True)
        history.send_history(self, session, request)
        history.send_subject(self, session)

    def normalize_nick(self, nick: str) -> tuple[str, bool]:
        """§17.1: no empty or invisible nicknames. Surrounding spaces are trimmed, which the
        joiner learns from status 210 (§7.2.3)."""
        trimmed = nick.strip()
        if not trimmed:
            raise StanzaError.not_acceptable("a nickname must not be blank")
        try:
            JID.of(self.jid.local, self.jid.domain, trimmed)
        except JIDError:
            raise StanzaError.jid_malformed("not a valid nickname") from None
        return trimmed, trimmed != nick

    def kick_gc10(self, el: _E, sender: JID) -> None:
        """§7.2.23: presence without <x/> from a non-occupant — a groupchat 1.0 join or a
        client that lost track — gets an explicit kick (110, 307, 333)."""
        out = codec.stanza("presence", el.get("to") or self.jid, sender, type="unavailable")
        codec.user_x(Item("none", "none", reason="You are not in the room."),
                     (110, 307, 333), out)
        self.send(out)

    def leave(self, occ: Occupant, session: JID, el: _E) -> None:
        status = el.find(_C + "status")
        self.drop_session(occ, session, status=status)

    def drop_session(self, occ: Occupant, session: JID, *, codes: Iterable[int] = (),
                     status: _E | None = None) -> None:
        """One session leaves (§7.14) or is found gone (§18.1.2, 333). The occupant goes when its
        last session does; otherwise the others stay and only this session hears 110."""
        if session not in occ.sessions:
            return
        if len(occ.sessions) > 1:
            del occ.sessions[session]
            self.by_session.pop(session, None)
            out = self.presence_of(occ, self.sees_jids(occ), {110, *codes},
                                   type="unavailable", role="none", status=status)
            self.send_to([session], out)
            if occ.primary == session:
                occ.primary = next(iter(occ.sessions))
                self.broadcast_presence(occ)
            return
        self.remove(occ, codes=codes, status=status)

    def remove(self, occ: Occupant, *, codes: Iterable[int] = (), actor: str | None = None,
               reason: str | None = None, status: _E | None = None,
               affiliation: str | None = None) -> None:
        """The occupant leaves the room: unavailable presence (role none) to itself with 110
        and to everyone else (§7.14, §8.2 307, §9.1 301, §9.4 321, §10.2 322, §18.1.2 333)."""
        item_codes = set(codes)
        self.broadcast_presence(occ, type="unavailable", role="none", codes=item_codes,
                                actor=actor, reason=reason, status=status,
                                affiliation=affiliation)
        for s in occ.sessions:
            self.by_session.pop(s, None)
        self.occupants.pop(occ.nick, None)
        if not self.occupants:
            self.service.vacated(self)

    def change_nick(self, occ: Occupant, session: JID, wanted: str, el: _E) -> None:
        """§7.6: unavailable from the old nick with 303 and the new nick, then available from
        the new one; every session of the occupant moves with it."""
        try:
            nick, modified = self.normalize_nick(wanted)
        except StanzaError as e:
            self.refuse(el, e)
            return
        holder = self.occupants.get(nick)
        reserved = self.reserved_by(nick)
        if (holder is not None and holder is not occ) or \
                (reserved is not None and reserved != str(occ.bare)):
            self.refuse(el, StanzaError.conflict("that nickname is taken"))         # §7.6
            return
        if holder is occ:
            return
        occ.sessions[session] = codec.clean_presence(el)
        self.broadcast_presence(occ, type="unavailable", codes={303}, new_nick=nick)
        del self.occupants[occ.nick]
        occ.nick = nick
        self.occupants[nick] = occ
        occ.primary = session
        self.broadcast_presence(occ, self_codes={210} if modified else set())

    # -- building and sending presence -----------------------------------------------------
    def presence_of(self, occ: Occupant, with_jid: bool, codes: Iterable[int] = (), *,
                    type: str | None = None, role: str | None = None, status: _E | None = None,
                    actor: str | None = None, reason: str | None = None,
                    new_nick: str | None = None, affiliation: str | None = None) -> _E:
        if type == "unavailable":
            out = codec.stanza("presence", self.jid.with_resource(occ.nick), type="unavailable")
            if status is not None:
                out.append(copy.deepcopy(status))
        else:
            out = copy.deepcopy(occ.presence)
            out.set("from", str(self.jid.with_resource(occ.nick)))
        aff = affiliation or self.affiliation(occ.bare)
        item = Item(aff, role or occ.role, occ.primary if with_jid else None, new_nick, actor,
                    reason)
        codec.user_x(item, codes, out)
        codec.el("occupant-id", codec.NS_OCCUPANT_ID, out, id=occ.occupant_id)
        return out

    def broadcast_presence(self, occ: Occupant, *, codes: Iterable[int] = (),
                           self_codes: Iterable[int] = (), skip_self: bool = False,
                           **kw: Any) -> None:
        """Send `occ`'s presence to every session in the room: up to four variants (self or
        others, with or without the real JID), each serialised once (§7.2.3, §7.2.4)."""
        codes = set(codes)
        groups: dict[tuple[bool, bool], list[JID]] = {}
        broadcast = occ.role in self.config.presence_broadcast or kw.get("type") == "unavailable"
        for other in self.occupants.values():
            if other is occ:
                if skip_self:
                    continue
                key = (True, self.sees_jids(other))
            elif broadcast:
                key = (False, self.sees_jids(other))
            else:
                continue
            groups.setdefault(key, []).extend(other.sessions)
        for (is_self, with_jid), recipients in groups.items():
            extra = {110, *self_codes} if is_self else set()
            self.send_to(recipients, self.presence_of(occ, with_jid, codes | extra, **kw))

    def send_to(self, recipients: list[JID], stanza: _E) -> None:
        if recipients:
            self.service.fan_out(stanza, recipients)

    def remember(self, message: _E, at: float, nick: str) -> None:
        self.history.append(HistoryEntry(message, at, nick))
