# tests: tests/modules/test_muc_service.py, tests/modules/test_muc_occupants.py
"""The MUC service of one virtual host (`conference.<host>`): it owns the service domain, finds
rooms (in memory, else in the store), creates them, answers the service's and rooms' IQs, and
keeps rooms and their archives in the database.

- The service JID answers disco#info (identity conference/text, XEP-0045 §6.2), disco#items
  (public, unlocked rooms, §6.3, with XEP-0059 paging) and pings; rooms answer disco#info with
  their features and muc#roominfo (§6.4), x-roomuser-item (§7.12), empty disco#items (§6.5),
  muc#admin, muc#owner, MAM and pings. Other IQs: <service-unavailable/>; anything for a room
  that does not exist: <item-not-found/> (§17.2.3), or, for a join, the room is created.
- Room creation (§10.1): `create_rooms` = "anyone", "local" (accounts of this server) or
  "admins" (the `admins` list); others get <not-allowed/> (§10.1.1). A new room is locked
  until its owner configures it (or accepts the defaults: an instant room).
- Rooms load lazily: a stanza for a room not in memory waits for one store read; stanzas
  arriving meanwhile queue behind it in order. An empty temporary room goes away, with its
  archive if it kept one (also at shutdown; one a crash left behind is deleted when read);
  an empty persistent room leaves memory and is read again when someone comes back.
- Archive writes are group-committed (storage/batch.py): what arrives while a write runs goes
  in the next transaction, off the delivery path; `receive` tells the router when a stanza's
  write is committed. MAM queries wait for writes in flight.
Not here: what is written to the database (persistence.py), occupants and messages (room.py,
messages.py), admin/owner IQs (admin.py), MAM (mam.py), discovery answers (disco.py), effects
of admin/owner changes (changes.py).
"""
from __future__ import annotations

import inspect
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lxml import etree
from twisted.internet import defer
from twisted.python.failure import Failure

from modules.muc import admin, codec, disco, mam
from modules.muc.changes import room_destroyed
from modules.muc.codec import NS_ADMIN, NS_OWNER
from modules.muc.config import Limits, RoomConfig
from modules.muc.persistence import RoomStorage
from modules.muc.room import HistoryEntry, Occupant, Room
from stanzas import iq, ns
from stanzas.errors import StanzaError
from storage.batch import MAX_PENDING, GroupCommit
from storage.muc import AffiliationEntry, ArchivedMessage, MucStore
from stanzas.jid import JID
from xmppd import hooks
from xmppd.cluster.api import ClusterService
from xmppd.concurrency import KeyedLock, OneLoad
from xmppd.module import IqRequest

if TYPE_CHECKING:
    from xmppd.module import ModuleContext

_C = "{%s}" % ns.CLIENT
RoomIq = Callable[["MucService", Room, IqRequest], "iq.Reply | Awaitable[iq.Reply]"]
CreatePolicy = Literal["anyone", "local", "admins"]


@dataclass(frozen=True, slots=True)
class Policy:
    create_rooms: CreatePolicy
    admins: frozenset[JID]
    name: str


class MucService(RoomStorage):
    def __init__(self, ctx: ModuleContext[Any], domain: str, limits: Limits,
                 policy: Policy) -> None:
        self.ctx = ctx
        self.domain = domain
        self.jid = JID.of(None, domain)
        self.limits = limits
        self.policy = policy
        self.store: MucStore = ctx.stores.muc
        self.rooms: dict[JID, Room] = {}
        self.loading: OneLoad[JID, Room | None] = OneLoad()
        # Storage down: writes wait and are retried (the senders' acks wait with them); past
        # MAX_PENDING, messages for archived rooms are refused with a wait-type error.
        self.archive_writes: GroupCommit[ArchivedMessage, None] = GroupCommit(
            self._write_archive, name="room archive", clock=ctx.clock, max_pending=MAX_PENDING)
        self._due: list[defer.Deferred[None]] | None = None    # archive writes of a stanza
        self.writes: KeyedLock[JID] = KeyedLock()   # one room's writes, in the order made
        self.cluster: ClusterService | None = None   # set on a cluster node (__init__.py)

    # -- plumbing used by rooms ------------------------------------------------------------
    def now(self) -> float:
        return self.ctx.clock.now()

    def send(self, stanza: etree._Element) -> None:
        self.ctx.send(stanza)

    def fan_out(self, stanza: etree._Element, recipients: list[JID]) -> None:
        self.ctx.fan_out(stanza, recipients)

    def announce(self, room: Room, message: etree._Element, occ: Occupant) -> None:
        """`groupchat_sent`: who belongs to the room and who is in it (XEP-0357 push)."""
        members = tuple((JID.parse(j), e.nick) for j, e in room.affiliations.items()
                        if e.affiliation in ("member", "admin", "owner") and "@" in j)
        here = tuple((full, o.nick) for o in room.occupants.values() for full in o.sessions)
        self.ctx.run(hooks.groupchat_sent, hooks.GroupchatEvent(
            room.jid, message, occ.bare, room.config.members_only, members, here))

    def _run(self, result: Any, what: str) -> None:
        if isinstance(result, Coroutine):
            d = defer.Deferred.fromCoroutine(result)
            d.addErrback(self._failed, what)

    def _failed(self, f: Failure, what: str) -> None:
        self.ctx.log.error("MUC %s failed: %s", what, f.getTraceback())

    # -- routing ---------------------------------------------------------------------------
    def receive(self, el: etree._Element, sender: JID, to: JID) -> defer.Deferred[None] | None:
        """The router's handler for everything addressed to the service domain. None once
        `el` is handled, else a Deferred that fires when it is: after the room was read from
        the store and the archive write `el` caused is committed (an XEP-0198 ack for a
        groupchat message waits for it, as for a 1:1 archive write: DESIGN.md "✓ sent")."""
        if to.local is None:
            self.to_service(el, sender, to)
            return None
        room = self.rooms.get(to.bare)
        if room is not None:
            return self._durable(lambda: self.dispatch(room, el, sender, to))
        # One store read per room; stanzas arriving meanwhile wait for it, in order.
        first = to.bare not in self.loading
        d = self.loading(to.bare, lambda: self._load(to.bare))
        return d.addCallbacks(self._loaded, self._not_loaded, callbackArgs=(el, sender, to),
                              errbackArgs=(el, to.bare, first))

    async def _load(self, jid: JID) -> Room | None:
        """A stored room with its last messages as the join history (§7.2.15), which an
        archived room keeps across restarts; in memory before any waiting stanza runs."""
        stored = await self.store.load_room(jid)
        if stored is None:
            return None
        if not RoomConfig.from_json(stored.config).persistent:
            await self.store.delete_room(jid)   # a temporary room's archive, left by a crash
            return None
        room = Room.from_stored(self, stored)
        if room.config.archived:
            for m in await self.store.recent(jid, room.history.maxlen or 0):
                el = etree.fromstring(m.payload)
                if el.find(codec.BODY) is not None:
                    room.history.append(HistoryEntry(el, m.at, m.nick))
        if jid not in self.rooms:
            self.rooms[jid] = room
        return room

    def _loaded(self, _: Room | None, el: etree._Element, sender: JID, to: JID
                ) -> defer.Deferred[None] | None:
        try:
            room = self.rooms.get(to.bare)
            if room is None:
                self.no_room(el, sender, to)
                return None
            return self._durable(lambda: self.dispatch(room, el, sender, to))
        except Exception:
            self.ctx.log.exception("MUC failed on a stanza for %s", to.bare)
            return None

    def _durable(self, handle: Callable[[], None]) -> defer.Deferred[None] | None:
        """Run `handle()`; the archive writes it made (None if none) as one Deferred."""
        due: list[defer.Deferred[None]] = []
        self._due = due
        try:
            handle()
        finally:
            self._due = None
        if not due:
            return None
        return defer.gatherResults(due).addCallback(lambda _: None)

    def _not_loaded(self, failure: Failure, el: etree._Element, jid: JID, first: bool) -> None:
        if first:
            self.ctx.log.warning("cannot load room %s: %s", jid, failure.value)
        if el.get("type") not in ("error", "result"):
            self.send(codec.error(el, StanzaError.internal_server_error(type="wait"), jid))

    def dispatch(self, room: Room, el: etree._Element, sender: JID, to: JID) -> None:
        if el.tag == _C + "iq" and to.resource is None:
            self.room_iq(room, el, sender, to)
            return
        self._run(room.receive(el, sender, to), f"stanza for {room.jid}")

    def no_room(self, el: etree._Element, sender: JID, to: JID) -> None:
        kind = el.get("type")
        if el.tag == _C + "presence":
            if kind is not None:
                return
            if to.resource is None:
                self.send(codec.error(el, StanzaError.jid_malformed("a nickname is needed"),
                                      to.bare))
            elif el.find(codec.MUC_X) is None:
                self.send(codec.error(el, StanzaError.item_not_found("no such room"), to.bare))
            elif not self.may_create(sender):
                self.send(codec.error(el, StanzaError.not_allowed(
                    "you may not create rooms here"), to.bare))                      # §10.1.1
            else:
                self.create(el, sender, to)
            return
        if kind not in ("error", "result"):
            self.send(codec.error(el, StanzaError.item_not_found("no such room"), to.bare))

    def may_create(self, sender: JID) -> bool:
        if self.policy.create_rooms == "anyone":
            return True
        if self.policy.create_rooms == "local":
            return sender.domain in self.ctx.local_domains
        return sender.bare in self.policy.admins

    def create(self, el: etree._Element, sender: JID, to: JID) -> None:
        """§10.1.1: the creator becomes the owner of a locked room (status 201)."""
        assert to.resource is not None
        room = Room(self, to.bare, RoomConfig.defaults(self.limits),
                    {str(sender.bare): AffiliationEntry("owner")},
                    secret=secrets.token_urlsafe(24), created_at=self.now(), locked=True)
        self.rooms[room.jid] = room
        if room.join(el, sender, to.resource, created=True) is None:
            self.rooms.pop(room.jid, None)

    def vacated(self, room: Room) -> None:
        """The room is empty: a temporary room goes away (§7.14 note), a persistent one
        leaves memory (it is read again when needed) unless a change to it is under way."""
        if self.rooms.get(room.jid) is not room or room.occupants:
            return
        if not room.config.persistent or room.locked or not room.lock.locked:
            del self.rooms[room.jid]
            if not room.config.persistent:
                self.forget(room)

    # -- service JID -----------------------------------------------------------------------
    def to_service(self, el: etree._Element, sender: JID, to: JID) -> None:
        kind = el.get("type")
        if el.tag != _C + "iq":
            if el.tag == _C + "message" and kind != "error":
                self.send(codec.error(el, StanzaError.service_unavailable(), self.jid))
            return
        if kind not in ("get", "set"):
            return
        payload = iq.payload(el)
        handler: Callable[[IqRequest], Any] | None = None
        if payload is not None and kind == "get":
            handler = {"{%s}query" % ns.DISCO_INFO: lambda req: disco.service_info(self, req),
                       "{%s}query" % ns.DISCO_ITEMS: lambda req: disco.service_items(self, req),
                       "{%s}ping" % ns.PING: lambda req: iq.result(req.stanza)}.get(payload.tag)
        if handler is None or payload is None:
            self.send(codec.error(el, StanzaError.service_unavailable(), self.jid))
            return
        self.ctx.call_iq(handler, IqRequest(el, sender, to, payload), self.send)

    # -- room JIDs -------------------------------------------------------------------------
    def room_iq(self, room: Room, el: etree._Element, sender: JID, to: JID) -> None:
        kind = el.get("type")
        if kind not in ("get", "set"):
            return
        payload = iq.payload(el)
        if payload is None:
            self.send(codec.error(el, StanzaError.bad_request("an IQ has one child"), room.jid))
            return
        if room.locked and room.affiliation(sender) != "owner":
            self.send(codec.error(el, StanzaError.item_not_found("no such room"), room.jid))
            return
        handler = ROOM_IQS.get((kind, payload.tag))
        if handler is None:
            self.send(codec.error(el, StanzaError.service_unavailable(), room.jid))
            return

        def call(req: IqRequest) -> Any:
            try:
                result = handler(self, room, req)
            except Exception:
                self.vacated(room)
                raise
            if not inspect.isawaitable(result):
                self.vacated(room)      # a room read in for this IQ alone leaves memory again
                return result

            async def then() -> Any:
                try:
                    return await result
                finally:
                    self.vacated(room)
            return then()
        self.ctx.call_iq(call, IqRequest(el, sender, to, payload), self.send)

    async def destroy(self, room: Room, reason: str | None, alternate: JID | None,
                      password: str | None) -> None:
        """§10.9: forget the room (and its archive), then tell each occupant."""
        await self._delete(room)
        room_destroyed(room, reason, alternate, password)
        if self.rooms.get(room.jid) is room:
            del self.rooms[room.jid]

    def placement_changed(self) -> None:
        """A cluster's live set changed: rooms placed on another node now leave memory here;
        a persistent one is read from the store there, a temporary one is gone (with its
        archive), as after a restart, and its occupants hear status 332. Occupants of a moved
        persistent room learn it by XEP-0410 self-ping: the new node does not know them, and
        their clients join again."""
        cluster = self.cluster
        if cluster is None:
            return
        for room in list(self.rooms.values()):
            if cluster.owner(room.jid) != cluster.node:
                del self.rooms[room.jid]
                if not room.config.persistent:      # gone: its occupants hear it (§11.2)
                    room_destroyed(room, None, None, None, codes=(332,))
                    self.forget(room)

    def shutting_down(self) -> None:
        """§11.2: occupants hear 332 when the service shuts down."""
        for room in list(self.rooms.values()):
            room_destroyed(room, None, None, None, codes=(332,))
            if not room.config.persistent:
                self.forget(room)
        self.rooms.clear()

    async def stop(self) -> None:
        """Archive writes are flushed."""
        self.shutting_down()
        await self.archive_writes.flushed()
        await self.writes.drained()


def _admin_get(s: MucService, r: Room, q: IqRequest) -> Any:
    return admin.admin_get(r, q)


ROOM_IQS: dict[tuple[str, str], Callable[[MucService, Room, IqRequest], Any]] = {
    ("get", "{%s}query" % ns.DISCO_INFO): lambda s, r, q: disco.room_info(r, q),
    ("get", "{%s}query" % ns.DISCO_ITEMS): lambda s, r, q: disco.room_items(r, q),
    ("get", "{%s}query" % NS_ADMIN): _admin_get,
    ("set", "{%s}query" % NS_ADMIN): admin.admin_set,
    ("get", "{%s}query" % NS_OWNER): admin.owner_get,
    ("set", "{%s}query" % NS_OWNER): admin.owner_set,
    ("get", "{%s}query" % ns.MAM): lambda s, r, q: mam.fields(r, q),
    ("set", "{%s}query" % ns.MAM): mam.query,
    ("get", "{%s}ping" % ns.PING): lambda s, r, q: iq.result(q.stanza),
}
