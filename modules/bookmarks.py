# tests: tests/modules/test_bookmarks.py, tests/integration/test_pep_slixmpp.py
"""XEP-0402 PEP Native Bookmarks kept in step with XEP-0048 'storage:bookmarks' — in XEP-0049
private storage and in the XEP-0048 PEP node — so clients of every generation see one list of
group chats.

- The 'urn:xmpp:bookmarks:1' PEP node (one item per room, id = the room's JID) is the truth.
- XEP-0049 get of storage:bookmarks is built from it: a <conference jid=...> per item with its
  name, autojoin, nick, password and extension elements, plus the <url/> bookmarks stored in
  private storage (XEP-0402 §1: URL bookmarks are dropped from the new format, not from ours).
- XEP-0049 set of storage:bookmarks (XEP-0402 §5.3.2): new or changed rooms are published,
  missing ones retracted with notify; unchanged rooms are left alone ("SHOULD NOT send
  notifications for unchanged items"). Extension elements of a room survive a legacy client
  that does not know them (XEP-0402 §3 "MUST preserve").
- A publish to the XEP-0048 PEP node 'storage:bookmarks' is applied the same way, and a
  change to the XEP-0402 node republishes an existing 'storage:bookmarks' node (item
  'current'), so XEP-0048 PEP clients follow too (§5.3 "#compat-pep").
- Nodes this module creates are private XEP-0223 storage as XEP-0402 §4 configures them:
  persistent, max_items max, whitelist (owner only), last item never pushed.
- The account advertises 'urn:xmpp:bookmarks:1#compat' and '#compat-pep' (§5.3, §6).
Not here: the PEP protocol (modules/pep/), private storage (modules/private.py).

Config: none.
Storage: through PepService and the private module.
"""
from __future__ import annotations

from dataclasses import replace

from lxml import etree

from stanzas import ns
from modules.pep import NodeConfig, PepService, payload_of
from stanzas.errors import StanzaError
from xmppd import hooks
from xmppd.hooks import PepEvent, PrivateQuery
from stanzas.jid import JID, JIDError
from xmppd.concurrency import KeyedLock
from xmppd.module import Module, ModuleContext, NoOptions

NS = ns.BOOKMARKS
LEGACY = ns.BOOKMARKS_LEGACY
_B, _L = "{%s}" % NS, "{%s}" % LEGACY
_ITEM = "{%s}item" % ns.PUBSUB
ORIGIN = "bookmarks"
# XEP-0402 §4 (and XEP-0223 §4): the publish-options every client uses for this node.
PRIVATE = replace(NodeConfig(), access_model="whitelist", max_items=None,
                  send_last_published_item="never")


class Bookmarks(Module[NoOptions]):
    name = "bookmarks"
    xeps = (48, 402)
    depends = ("pep", "private")

    def __init__(self, ctx: ModuleContext[NoOptions]) -> None:
        self.ctx = ctx
        self.pep = ctx.service(PepService)
        self.locks: KeyedLock[JID] = KeyedLock()     # one conversion per user at a time
        ctx.disco_feature(NS + "#compat", to="account")
        ctx.disco_feature(NS + "#compat-pep", to="account")
        ctx.hook(hooks.private_get, self.private_get)
        ctx.hook(hooks.private_set, self.private_set)
        ctx.hook(hooks.pep_changed, self.pep_changed)

    # -- XEP-0049 --------------------------------------------------------------------------
    async def private_get(self, q: PrivateQuery, stored: tuple[etree._Element, ...]) \
            -> tuple[etree._Element, ...]:
        if q.namespace != LEGACY:
            return stored
        return (await self._legacy(q.user, [u for s in stored for u in s.findall(_L + "url")]),)

    async def private_set(self, q: PrivateQuery) -> None:
        if q.namespace != LEGACY:
            return
        rooms = [c for s in q.elements if s.tag == _L + "storage"
                 for c in s.findall(_L + "conference")]
        await self.locks.run(q.user, lambda: self._apply(q.user, rooms, refresh=True))

    # -- PEP -------------------------------------------------------------------------------
    async def pep_changed(self, ev: PepEvent) -> None:
        if ev.origin == ORIGIN:
            return
        if ev.node == LEGACY and ev.kind == "publish" and ev.item is not None:
            storage = ev.item.find(_L + "storage")
            rooms = storage.findall(_L + "conference") if storage is not None else []
            await self.locks.run(ev.owner, lambda: self._apply(ev.owner, rooms, refresh=False))
        elif ev.node == NS:
            await self.locks.run(ev.owner, lambda: self._refresh(ev.owner))

    # -- conversion ------------------------------------------------------------------------
    async def _apply(self, user: JID, rooms: list[etree._Element], refresh: bool) -> None:
        """Make the XEP-0402 node hold exactly `rooms` (legacy <conference/> elements)."""
        current = {_norm(i.id) or i.id: i for i in await self.pep.store.items(user, NS)}
        wanted: dict[str, etree._Element] = {}
        for room in rooms:
            jid = _norm(room.get("jid") or "")
            if jid is None:
                self.ctx.log.info("bookmark of %s without a valid room JID skipped", user)
                continue
            old = current.get(jid)
            wanted[jid] = to_native(room, payload_of(old) if old is not None else None)
        changed = False
        for jid, conference in wanted.items():
            old = current.get(jid)
            if old is not None and _same(payload_of(old), conference):
                continue
            item = etree.Element(_ITEM, id=old.id if old is not None else jid)
            item.append(conference)
            await self.pep.publish(user, NS, item, publisher=user, defaults=PRIVATE,
                                   origin=ORIGIN)
            changed = True
        for jid, old in current.items():
            if jid not in wanted:
                try:
                    await self.pep.retract(user, NS, old.id, notify=True, origin=ORIGIN)
                    changed = True
                except StanzaError as e:
                    self.ctx.log.info("bookmark %s of %s not retracted: %s", old.id, user, e)
        if changed and refresh:
            await self._refresh(user)

    async def _refresh(self, user: JID) -> None:
        """Republish an existing XEP-0048 PEP node from the XEP-0402 node."""
        if await self.pep.store.node(user, LEGACY) is None:
            return
        last = await self.pep.store.items(user, LEGACY, last=1)
        old = payload_of(last[0]) if last else None
        urls = old.findall(_L + "url") if old is not None else []
        item = etree.Element(_ITEM, id="current")
        item.append(await self._legacy(user, urls))
        await self.pep.publish(user, LEGACY, item, publisher=user, origin=ORIGIN)

    async def _legacy(self, user: JID, urls: list[etree._Element]) -> etree._Element:
        """<storage xmlns='storage:bookmarks'/> with the XEP-0402 rooms and `urls`."""
        storage = etree.Element(_L + "storage", nsmap={None: LEGACY})  # type: ignore[dict-item]
        for item in await self.pep.store.items(user, NS):
            conference = payload_of(item)
            if conference is not None and conference.tag == _B + "conference":
                storage.append(to_legacy(item.id, conference))
        for url in urls:
            storage.append(_copy(url))
        return storage


def to_native(room: etree._Element, old: etree._Element | None) -> etree._Element:
    """An XEP-0048 <conference/> as an XEP-0402 one. Its foreign children become the
    <extensions/>; without any, those of the room's current item are kept."""
    conference = etree.Element(_B + "conference", nsmap={None: NS})  # type: ignore[dict-item]
    if room.get("name"):
        conference.set("name", room.get("name") or "")
    if room.get("autojoin") in ("1", "true"):
        conference.set("autojoin", "true")
    for tag in ("nick", "password"):
        text = room.findtext(_L + tag)
        if text:
            etree.SubElement(conference, _B + tag).text = text
    foreign = [c for c in room if isinstance(c.tag, str) and not c.tag.startswith(_L)]
    kept = old.find(_B + "extensions") if old is not None else None
    if foreign:
        extensions = etree.SubElement(conference, _B + "extensions")
        for c in foreign:
            extensions.append(_copy(c))
    elif kept is not None and len(kept):
        conference.append(_copy(kept))
    return conference


def to_legacy(jid: str, conference: etree._Element) -> etree._Element:
    """An XEP-0402 item as an XEP-0048 <conference jid=.../>, extensions inside it."""
    room = etree.Element(_L + "conference", jid=jid)
    if conference.get("name"):
        room.set("name", conference.get("name") or "")
    room.set("autojoin", "true" if conference.get("autojoin") in ("1", "true") else "false")
    for tag in ("nick", "password"):
        text = conference.findtext(_B + tag)
        if text:
            etree.SubElement(room, _L + tag).text = text
    extensions = conference.find(_B + "extensions")
    if extensions is not None:
        for c in extensions:
            if isinstance(c.tag, str):
                room.append(_copy(c))
    return room


def _same(a: etree._Element | None, b: etree._Element) -> bool:
    return a is not None and _key(a) == _key(b)


def _key(conference: etree._Element) -> tuple[object, ...]:
    extensions = conference.find(_B + "extensions")
    return (conference.get("name") or "", conference.get("autojoin") in ("1", "true"),
            conference.findtext(_B + "nick") or "", conference.findtext(_B + "password") or "",
            tuple(etree.tostring(c, method="c14n") for c in (extensions if extensions is not None
                                                              else []) if isinstance(c.tag, str)))


def _norm(jid: str) -> str | None:
    try:
        return str(JID.parse(jid)) if jid else None
    except JIDError:
        return None


def _copy(el: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(el, with_tail=False))
