# tests: tests/modules/test_muc_service.py
"""Service discovery of the MUC service and its rooms (XEP-0045 §6, XEP-0030).

- The service JID: identity conference/text with the service's name and its features
  (§6.2), and the public rooms that are not locked as items (§6.3), with XEP-0059 paging.
- A room: its identity, features (muc_persistent, muc_membersonly, ... and MAM when it keeps
  an archive) and the muc#roominfo form (§6.4); the user's reserved nickname at node
  x-roomuser-item (§7.12); no items: occupants stay private (§6.5).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from modules.muc import codec
from modules.muc.codec import NS_MUC
from modules.muc.config import RoomConfig
from modules.muc.room import Room
from stanzas import iq, ns, rsm
from stanzas.errors import StanzaError
from stanzas.jid import JID
from xmppd.module import IqRequest

if TYPE_CHECKING:
    from modules.muc.service import MucService


def service_info(service: MucService, req: IqRequest) -> iq.Reply:
    if req.payload.get("node"):
        raise StanzaError.item_not_found("no such node")
    q = iq.empty(ns.DISCO_INFO, "query")
    codec.el("identity", ns.DISCO_INFO, q, category="conference", type="text",
             name=service.policy.name)
    # XEP-0421 §5: occupant ids are on in every room, so the service says so too.
    for feature in sorted({ns.DISCO_INFO, ns.DISCO_ITEMS, NS_MUC, codec.NS_STABLE_ID,
                           codec.NS_SELF_PING, codec.NS_OCCUPANT_ID, ns.PING}):
        codec.el("feature", ns.DISCO_INFO, q, var=feature)
    return iq.result(req.stanza, q)


async def service_items(service: MucService, req: IqRequest) -> iq.Reply:
    """§6.3: the public rooms (hidden and locked ones are not listed), with XEP-0059."""
    if req.payload.get("node"):
        raise StanzaError.item_not_found("no such node")
    listed: dict[JID, str] = {}
    for summary in await service.store.list_rooms(service.domain):
        cfg = RoomConfig.from_json(summary.config)
        if cfg.public and cfg.persistent:     # a temporary room's archive is not a room
            listed[summary.room] = cfg.name
    for room in service.rooms.values():
        listed.pop(room.jid, None)
        if room.config.public and not room.locked:
            listed[room.jid] = room.config.name
    jids = sorted(listed, key=str)
    q = iq.empty(ns.DISCO_ITEMS, "query")
    paging = rsm.parse(req.payload)
    start, end = rsm.window([str(j) for j in jids], paging)
    page = jids[start:end]
    for jid in page:
        item = codec.el("item", ns.DISCO_ITEMS, q, jid=str(jid))
        if listed[jid]:
            item.set("name", listed[jid])
    if paging is not None:
        rsm.answer(q, first=str(page[0]) if page else None,
                   last=str(page[-1]) if page else None, first_index=start,
                   count=len(jids))
    return iq.result(req.stanza, q)


def room_info(room: Room, req: IqRequest) -> iq.Reply:
    node = req.payload.get("node")
    q = iq.empty(ns.DISCO_INFO, "query")
    if node == "x-roomuser-item":
        # §7.12: the user's reserved nickname, or an empty query.
        q.set("node", node)
        entry = room.affiliations.get(str(req.sender.bare))
        if entry is not None and entry.nick:
            codec.el("identity", ns.DISCO_INFO, q, category="conference", type="text",
                     name=entry.nick)
        return iq.result(req.stanza, q)
    if node:
        raise StanzaError.item_not_found("no such node")
    codec.el("identity", ns.DISCO_INFO, q, category="conference", type="text",
             name=room.config.name or room.jid.local or "")
    features = {ns.DISCO_INFO, ns.DISCO_ITEMS, NS_MUC, codec.NS_STABLE_ID,
                codec.NS_SELF_PING, codec.NS_OCCUPANT_ID, ns.STANZA_ID, ns.PING,
                *room.config.features()}
    if room.config.archived:
        features.add(ns.MAM)
    for feature in sorted(features):
        codec.el("feature", ns.DISCO_INFO, q, var=feature)
    q.append(room.config.roominfo(len(room.occupants), room.subject, room.owners()))
    return iq.result(req.stanza, q)


def room_items(room: Room, req: IqRequest) -> iq.Reply:
    return iq.result(req.stanza, iq.empty(ns.DISCO_ITEMS, "query"))   # §6.5: occupants private
