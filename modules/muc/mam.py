# tests: tests/modules/test_muc_mam.py
"""XEP-0313 on a room JID: the room's own message archive, so a member who was away catches up.

- Who may query (§5.1.2 MUC Archives): whoever may enter at the time of the query — not an
  outcast, a member or better in a members-only room, and in a password-protected room only
  occupants and members. Others get <forbidden/>. Rooms with archiving off do not advertise
  urn:xmpp:mam:2 and answer <service-unavailable/>; a temporary room's archive lasts as long
  as the room (service.py deletes it with the room).
- Filters: 'with' (an occupant JID of this room, i.e. a nickname: §4.1.1 "the publisher"),
  'start', 'end', 'after-id', 'before-id'; paging with XEP-0059 (<max/>, <after/>, <before/>,
  empty <before/> for the last page) and <flip-page/>. Pages hold at most 100 messages. An
  unknown id is <item-not-found/>.
- Each result is the message as the room sent it, with the sender's real JID added in a
  muc#user <item/> only for who may see it now (non-anonymous room, or a moderator; §5.1.2),
  after stripping any <x/> the message carried (§8.2).
- A query first waits for archive writes in flight, so it sees every message sent before it.
"""
from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from lxml import etree

from modules.muc import codec
from modules.muc.affiliations import AFF_RANK, MEMBER
from modules.muc.room import Room
from stanzas import delay, forms, iq, ns, rsm
from stanzas.errors import StanzaError
from storage.muc import ArchiveQuery
from stanzas.jid import JID, JIDError
from xmppd.module import IqRequest

if TYPE_CHECKING:
    from modules.muc.service import MucService

MAX_PAGE = 100
DEFAULT_PAGE = 50


def may_read(room: Room, user: JID) -> None:
    aff = room.affiliation(user)
    if aff == "outcast":
        raise StanzaError.forbidden("you are banned from this room")
    rank = AFF_RANK[aff]
    if room.config.members_only and rank < MEMBER:
        raise StanzaError.forbidden("this archive is for members")
    if room.config.password_protected and rank < MEMBER and user not in room.by_session:
        raise StanzaError.forbidden("enter the room to read its archive")


def fields(room: Room, req: IqRequest) -> iq.Reply:
    """§4.1.5: the query form."""
    q = iq.empty(ns.MAM, "query")
    q.append(forms.build("form", [
        forms.Field("with", "jid-single"), forms.Field("start", "text-single"),
        forms.Field("end", "text-single"), forms.Field("after-id", "text-single"),
        forms.Field("before-id", "text-single")], form_type=ns.MAM))
    return iq.result(req.stanza, q)


async def query(service: MucService, room: Room, req: IqRequest) -> iq.Reply:
    if not room.config.archived:
        raise StanzaError.service_unavailable("this room keeps no archive")
    may_read(room, req.sender)
    q = _parse(room, req.payload)
    flip = req.payload.find("{%s}flip-page" % ns.MAM) is not None
    await service.archive_settled()
    try:
        page = await service.store.query(room.jid, q)
    except LookupError:
        raise StanzaError.item_not_found("no such message in this archive") from None
    viewer = room.by_session.get(req.sender)
    shows_jids = room.config.non_anonymous or (viewer is not None and viewer.role == "moderator")
    query_id = req.payload.get("queryid")
    messages = list(reversed(page.messages)) if flip else page.messages
    for m in messages:
        out = codec.stanza("message", room.jid, req.sender, id=secrets.token_hex(8))
        result = codec.el("result", ns.MAM, out, id=m.stanza_id)
        if query_id is not None:
            result.set("queryid", query_id)
        original = etree.fromstring(m.payload)
        for x in original.findall(codec.USER_X):
            original.remove(x)                                     # §8.2 spoofing
        if shows_jids and m.sender:
            sender = JID.parse(m.sender)
            now = room.occupants.get(m.nick)
            role = now.role if now is not None and now.bare == sender else "none"
            codec.user_x(codec.Item(room.affiliation(sender), role, sender), (), original)
        delay.forwarded(original, when=delay.stamp(m.at, micro=True), parent=result)
        service.send(out)
    fin = codec.el("fin", ns.MAM)
    if page.complete:
        fin.set("complete", "true")
    first = last = None
    if page.messages:
        first, last = page.messages[0].stanza_id, page.messages[-1].stanza_id
        if flip:
            first, last = last, first
    rsm.answer(fin, first=first, last=last, first_index=page.first_index or 0, count=page.count)
    return iq.result(req.stanza, fin)


def _parse(room: Room, payload: etree._Element) -> ArchiveQuery:
    start = end = None
    nick: str | None = None
    after = before = None
    x = forms.find(payload)
    if x is not None:
        form = forms.parse_submit(x)
        if form.form_type != ns.MAM:
            raise StanzaError.bad_request(f"expected a {ns.MAM} form")
        unknown = set(form.values) - {"with", "start", "end", "after-id", "before-id"}
        if unknown:
            # §4.1.1: "MUST return a <bad-request/> for fields it does not understand"
            raise StanzaError.bad_request(f"unsupported field {sorted(unknown)[0]!r}")
        if form.text("with"):
            try:
                with_jid = JID.parse(form.text("with"))
            except JIDError as e:
                raise StanzaError.jid_malformed(str(e)) from None
            if with_jid.bare != room.jid or with_jid.resource is None:
                raise StanzaError.bad_request("'with' is an occupant JID of this room")
            nick = with_jid.resource
        start = codec.parse_stamp(form.text("start")) if form.text("start") else None
        end = codec.parse_stamp(form.text("end")) if form.text("end") else None
        after = form.text("after-id") or None
        before = form.text("before-id") or None
    page = rsm.parse(payload) or rsm.Request()
    if page.index is not None:
        # XEP-0059 §2.4: "MAY return a <feature-not-implemented/> error"
        raise StanzaError.feature_not_implemented("RSM <index/> is not supported")
    if page.after is not None:
        after = page.after
    if page.before is not None:
        before = page.before
    return ArchiveQuery(start=start, end=end, nick=nick, after=after, before=before,
                        limit=page.limit(DEFAULT_PAGE, MAX_PAGE))

