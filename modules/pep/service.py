# tests: tests/modules/test_pep.py, tests/integration/test_pep_slixmpp.py
"""The PEP service of one virtual host: node operations, access models and notifications
(XEP-0163 over XEP-0060). IQ parsing lives in modules/pep/__init__.py; other modules (avatar
conversion, bookmarks) call these operations directly. Every operation raises StanzaError with
the XEP-0060 condition for what went wrong.

- Access (XEP-0060 §4.5, §6.5.x): the owner always; "open" anyone; "presence" whoever may see
  the owner's presence (`may_see_presence`: a 'from'/'both' subscription, not blocked), else
  <not-authorized/><presence-subscription-required/>; "roster" such a contact in one of
  `roster_groups_allowed`, else <not-authorized/><not-in-roster-group/>; "whitelist" nobody
  else (only the owner is affiliated): <not-allowed/><closed-node/>.
- Notifications (XEP-0163 §4) are <message type='headline'/> from the owner's bare JID: to
  each available resource of the owner and of contacts the node's access model lets in whose
  verified caps (XEP-0115) advertise '<node>+notify' (§4.3 filtered notifications), and to
  explicit subscribers. Live ones name the publishing resource (XEP-0033 replyto, §4.3.1 3).
- Last published items (§4.3.2, §4.3.4) go to a resource at its initial presence and when its
  caps gain an interest, for the owner's own nodes and those of every contact it is subscribed
  to (one query for all of them), and after a new presence subscription (the owner's presence
  arriving at a resource that has not had that owner's items yet). Explicit subscribers get
  them on subscribing and at initial presence (`on_sub_and_presence`).
Writes to one owner's nodes are serialised (a lock per owner) so preconditions and
configuration checks see the state they change.
"""
from __future__ import annotations

import copy
import secrets
from lxml import etree
from twisted.internet import defer

from modules.caps import CapsService
from modules.pep.config import (
    NS, NS_EVENT, NodeConfig, PepOptions, apply, pubsub_error, unmet, unsupported)
from modules.roster import RosterService, has_from
from stanzas import delay, ns
from stanzas.errors import StanzaError
from storage.pubsub import MAX_ITEM_ID, MAX_NODE, Item, Node
from storage.roster import RosterItem
from xmppd import hooks
from xmppd.hooks import PepEvent, PresenceQuery
from stanzas.jid import JID
from xmppd.concurrency import KeyedLock
from xmppd.module import ModuleContext

_C = "{%s}" % ns.CLIENT
_EV = "{%s}" % NS_EVENT
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          remove_comments=True, remove_pis=True)


def payload_of(item: Item) -> etree._Element | None:
    return etree.fromstring(item.payload, _PARSER) if item.payload else None


def item_element(item: Item, namespace: str, payload: bool = True) -> etree._Element:
    el = etree.Element("{%s}item" % namespace, id=item.id)
    body = payload_of(item) if payload else None
    if body is not None:
        el.append(body)
    return el


def check_node(name: str | None) -> str:
    if not name:
        raise pubsub_error("bad-request", "nodeid-required")
    if len(name) > MAX_NODE:
        raise StanzaError.not_acceptable(f"node names have at most {MAX_NODE} characters")
    return name


class PepService:
    def __init__(self, ctx: ModuleContext[PepOptions]) -> None:
        self.ctx = ctx
        self.options = ctx.options
        self.store = ctx.stores.pubsub
        self.roster = ctx.service(RosterService)
        self.caps = ctx.service(CapsService)
        self.defaults = NodeConfig()
        self.locks: KeyedLock[JID] = KeyedLock()     # writes to one owner's nodes

    # -- nodes and access ------------------------------------------------------------------
    async def node(self, owner: JID, name: str) -> tuple[Node, NodeConfig]:
        """The node and its configuration; <item-not-found/> if there is none (§6.5.9)."""
        node = await self.store.node(owner, check_node(name))
        if node is None:
            raise StanzaError.item_not_found(f"no node {name}")
        return node, NodeConfig.from_json(node.config)

    async def access_error(self, owner: JID, config: NodeConfig,
                           asker: JID) -> StanzaError | None:
        """Why `asker` may not subscribe to or read a node of `owner` (XEP-0060 §6.1.3,
        §6.5.x), or None."""
        asker = asker.bare
        if asker == owner or config.access_model == "open":
            return None
        if config.access_model == "whitelist":
            return pubsub_error("not-allowed", "closed-node")           # §6.5.8
        sees = await self._may_see(owner, asker)
        if config.access_model == "presence":
            return None if sees else pubsub_error("not-authorized",
                                                  "presence-subscription-required")  # §6.5.6
        item = (await self.roster.roster(owner)).items.get(asker)
        if sees and item is not None and set(item.groups) & set(config.roster_groups_allowed):
            return None
        return pubsub_error("not-authorized", "not-in-roster-group")    # §6.5.7

    async def _may_see(self, owner: JID, asker: JID) -> bool:
        allowed = self.ctx.fold(hooks.may_see_presence, PresenceQuery(owner, asker), False)
        if isinstance(allowed, defer.Deferred):
            allowed = await allowed
        return bool(allowed)

    async def auto_subscribed(self, owner: JID, config: NodeConfig, item: RosterItem) -> bool:
        """XEP-0060 §9.1.2: a contact with a presence subscription is subscribed to every
        node whose access model lets it in."""
        if config.access_model == "whitelist" or not has_from(item):
            return False
        if config.access_model == "roster" and \
                not set(item.groups) & set(config.roster_groups_allowed):
            return False
        return await self._may_see(owner, item.contact)

    # -- operations ------------------------------------------------------------------------
    async def publish(self, owner: JID, name: str, item: etree._Element | None, *,
                      publisher: JID, options: dict[str, list[str]] | None = None,
                      defaults: NodeConfig | None = None, origin: str = "client") -> str:
        """Publish (XEP-0060 §7.1) with auto-create (§7.1.4) and publish-options preconditions
        (§7.1.5); `defaults` configure a node this call creates. Returns the item id."""
        check_node(name)
        server_max = self.options.max_items_per_node

        async def run() -> tuple[NodeConfig, Item, list[str]]:
            node = await self.store.node(owner, name)
            if node is None:
                config = defaults or self.defaults
                if options:
                    config = apply(config, options, server_max)     # §7.1.5 rule 3
            else:
                config = NodeConfig.from_json(node.config)
                if options and unmet(config, options, server_max):  # §7.1.5 rule 1
                    raise pubsub_error("conflict", "precondition-not-met")
            stored = self._item(item, config, publisher)
            if node is None:
                if len(await self.store.nodes(owner)) >= self.options.max_nodes:
                    raise StanzaError.not_allowed(
                        f"an account has at most {self.options.max_nodes} nodes")
                await self.store.create(owner, name, config.to_json(), self.ctx.clock.now())
            dropped: list[str] = []
            if config.persist_items:
                dropped = await self.store.publish(owner, name, stored,
                                                   max_items=config.limit(server_max)) or []
            return config, stored, dropped
        config, stored, _ = await self.locks.run(owner, run)
        if config.deliver_notifications:
            items = etree.Element(_EV + "items", node=name)
            items.append(item_element(stored, NS_EVENT, config.deliver_payloads))
            await self.notify(owner, name, config, items, replyto=publisher)
        published = item_element(stored, NS)
        await self._changed(PepEvent(owner, name, "publish", stored.id, published, origin))
        return stored.id

    def _item(self, item: etree._Element | None, config: NodeConfig, publisher: JID) -> Item:
        """The item to store, checked against the node's event type (§7.1.3.5–§7.1.3.6)."""
        if item is None:
            if config.persist_items:
                raise pubsub_error("bad-request", "item-required")
            if config.deliver_payloads:
                raise pubsub_error("bad-request", "payload-required")
            return Item(secrets.token_hex(16), b"", str(publisher), self.ctx.clock.now())
        if not config.persist_items and not config.deliver_payloads:
            raise pubsub_error("bad-request", "item-forbidden")
        children = [c for c in item if isinstance(c.tag, str)]
        if len(children) > 1:
            raise pubsub_error("bad-request", "invalid-payload", "one payload per item")
        if not children and config.deliver_payloads:
            raise pubsub_error("bad-request", "payload-required")
        item_id = item.get("id") or secrets.token_hex(16)
        if len(item_id) > MAX_ITEM_ID:
            raise StanzaError.not_acceptable(f"item ids have at most {MAX_ITEM_ID} characters")
        payload = etree.tostring(children[0], with_tail=False) if children else b""
        if len(payload) > self.options.max_payload_size:
            raise pubsub_error("not-acceptable", "payload-too-big",
                               f"at most {self.options.max_payload_size} bytes")
        return Item(item_id, payload, str(publisher), self.ctx.clock.now())

    async def retract(self, owner: JID, name: str, item_id: str, *, notify: bool | None,
                      origin: str = "client") -> None:
        """Delete an item (§7.2); subscribers hear of it if asked (`notify`) or, without the
        attribute, if the node says so (pubsub#notify_retract)."""
        async def run() -> NodeConfig:
            _, config = await self.node(owner, name)
            if not config.persist_items:
                raise unsupported("persistent-items")                # §7.2.3.5
            if not await self.store.retract(owner, name, item_id):
                raise StanzaError.item_not_found(f"no item {item_id}")  # §7.2.3.2
            return config
        config = await self.locks.run(owner, run)
        if config.deliver_notifications and (config.notify_retract if notify is None else notify):
            items = etree.Element(_EV + "items", node=name)
            etree.SubElement(items, _EV + "retract", id=item_id)
            await self.notify(owner, name, config, items)
        await self._changed(PepEvent(owner, name, "retract", item_id, None, origin))

    async def items(self, owner: JID, name: str, asker: JID, *, ids: list[str] | None = None,
                    last: int | None = None) -> list[Item]:
        """Retrieve items (§6.5) as `asker` may."""
        _, config = await self.node(owner, name)
        denied = await self.access_error(owner, config, asker)
        if denied is not None:
            raise denied
        if not config.persist_items:
            raise unsupported("persistent-items")                    # §6.5.4
        return await self.store.items(owner, name, ids=ids, last=last)

    async def create(self, owner: JID, name: str, config: NodeConfig) -> None:
        """§8.1: <conflict/> if it exists."""
        async def run() -> None:
            if len(await self.store.nodes(owner)) >= self.options.max_nodes:
                raise StanzaError.not_allowed(
                    f"an account has at most {self.options.max_nodes} nodes")
            if not await self.store.create(owner, check_node(name), config.to_json(),
                                           self.ctx.clock.now()):
                raise StanzaError.conflict(f"node {name} exists")
        await self.locks.run(owner, run)

    async def configure(self, owner: JID, name: str, values: dict[str, list[str]]) -> None:
        """§8.2.5: apply a submitted form; invalid values leave the node unchanged."""
        async def run() -> None:
            _, config = await self.node(owner, name)
            new = apply(config, values, self.options.max_items_per_node)
            await self.store.configure(owner, name, new.to_json())
        await self.locks.run(owner, run)

    async def delete(self, owner: JID, name: str, redirect: str | None = None) -> None:
        """§8.4: delete the node; its subscribers are told (with the redirect URI, if any)."""
        async def run() -> tuple[NodeConfig, list[JID]]:
            _, config = await self.node(owner, name)
            targets = await self.recipients(owner, name, config) if config.notify_delete else []
            await self.store.delete(owner, name)
            return config, targets
        config, targets = await self.locks.run(owner, run)
        event = etree.Element(_EV + "delete", node=name)
        if redirect:
            etree.SubElement(event, _EV + "redirect", uri=redirect)
        self._send(owner, targets, event)
        await self._changed(PepEvent(owner, name, "delete", None, None, "client"))

    async def purge(self, owner: JID, name: str) -> None:
        """§8.5: delete every item; one <purge/> notification, not one per item."""
        async def run() -> NodeConfig:
            _, config = await self.node(owner, name)
            if not config.persist_items:
                raise unsupported("persistent-items")                # §8.5.3.3
            await self.store.purge(owner, name)
            return config
        config = await self.locks.run(owner, run)
        if config.deliver_notifications and config.notify_retract:
            await self.notify(owner, name, config, etree.Element(_EV + "purge", node=name))
        await self._changed(PepEvent(owner, name, "purge", None, None, "client"))

    async def subscribe(self, owner: JID, name: str, subscriber: JID) -> None:
        """§6.1: an explicit subscription; the last item follows (§6.1.7)."""
        node, config = await self.node(owner, name)
        denied = await self.access_error(owner, config, subscriber)
        if denied is not None:
            raise denied
        subscribers = await self.store.subscribers(owner, name)
        if subscriber not in subscribers and len(subscribers) >= self.options.max_subscribers:
            raise pubsub_error("not-allowed", "too-many-subscriptions")  # §6.1.3.9
        if not await self.store.subscribe(owner, name, subscriber, self.ctx.clock.now()):
            raise StanzaError.item_not_found(f"no node {name}")
        if config.send_last_published_item != "never" and config.persist_items:
            last = await self.store.items(owner, name, last=1)
            if last:
                self.send_last(owner, name, last[0], subscriber)

    async def unsubscribe(self, owner: JID, name: str, subscriber: JID) -> None:
        """§6.2: <unexpected-request/><not-subscribed/> if there is no such subscription."""
        await self.node(owner, name)
        if not await self.store.unsubscribe(owner, name, subscriber):
            raise pubsub_error("unexpected-request", "not-subscribed")  # §6.2.3.2

    # -- notifications ---------------------------------------------------------------------
    async def recipients(self, owner: JID, name: str, config: NodeConfig) -> list[JID]:
        """Who is notified of a change at the node (XEP-0163 §4.3): full JIDs of interested
        available resources, and explicit subscribers as they subscribed."""
        wanted = name + "+notify"
        targets: dict[JID, None] = {}

        def interested(user: JID) -> list[JID]:
            return [s.jid for s in self.ctx.sessions.resources(user)
                    if s.available and wanted in self.caps.features(s.jid)]
        for jid in interested(owner):
            targets[jid] = None
        if config.access_model != "whitelist":
            roster = await self.roster.roster(owner)
            for item in list(roster.items.values()):
                if not has_from(item):
                    continue
                found = interested(item.contact)
                if found and await self.auto_subscribed(owner, config, item):
                    targets.update(dict.fromkeys(found))
        for sub in await self.store.subscribers(owner, name):
            if sub in targets or (sub.resource is None and any(t.bare == sub for t in targets)):
                continue                                    # XEP-0163 §4.3.2: one each
            if await self.access_error(owner, config, sub) is None:
                targets[sub] = None
        return list(targets)

    async def notify(self, owner: JID, name: str, config: NodeConfig, event: etree._Element,
                     replyto: JID | None = None) -> None:
        self._send(owner, await self.recipients(owner, name, config), event, replyto=replyto)

    def _send(self, owner: JID, targets: list[JID], event: etree._Element, *,
              replyto: JID | None = None, stamp: float | None = None) -> None:
        for to in targets:
            # XEP-0163 §4.3.1 3: replyto only for those with a presence subscription (the
            # owner's own resources included); never to an explicit subscriber without one.
            share = replyto is not None and replyto.resource is not None and (
                to.bare == owner or has_from(self._cached_item(owner, to)))
            self.ctx.send(message(owner, to, event, replyto=replyto if share else None,
                                  stamp=stamp))

    def _cached_item(self, owner: JID, contact: JID) -> RosterItem | None:
        roster = self.roster.cached(owner)
        return roster.items.get(contact.bare) if roster is not None else None

    def send_last(self, owner: JID, name: str, item: Item, to: JID) -> None:
        """§4.3.2: the last published item, with the time it was published (XEP-0203)."""
        items = etree.Element(_EV + "items", node=name)
        items.append(item_element(item, NS_EVENT))
        self._send(owner, [to], items, stamp=item.published_at)

    # -- helpers ---------------------------------------------------------------------------
    async def _changed(self, ev: PepEvent) -> None:
        result = self.ctx.run(hooks.pep_changed, ev)
        if isinstance(result, defer.Deferred):
            await result


def message(owner: JID, to: JID, event_child: etree._Element, *, replyto: JID | None = None,
            stamp: float | None = None) -> etree._Element:
    """A notification (XEP-0060 §7.1.2.1): headline from the owner's bare JID (XEP-0163
    §4.3.1 1), with a unique id (§7.1.2: "SHOULD possess an 'id'")."""
    msg = etree.Element(_C + "message", nsmap={None: ns.CLIENT},  # type: ignore[dict-item]
                        type="headline", id=secrets.token_hex(8))
    msg.set("from", str(owner))
    msg.set("to", str(to))
    event = etree.SubElement(msg, _EV + "event", nsmap={None: NS_EVENT})  # type: ignore[dict-item]
    event.append(copy.deepcopy(event_child))
    if replyto is not None:
        addresses = etree.SubElement(msg, "{%s}addresses" % ns.ADDRESS,
                                     nsmap={None: ns.ADDRESS})  # type: ignore[dict-item]
        etree.SubElement(addresses, "{%s}address" % ns.ADDRESS, type="replyto",
                         jid=str(replyto))
    if stamp is not None:
        delay.delay(delay.stamp(stamp), str(owner), msg)       # XEP-0163 §4.3.2, XEP-0203
    return msg
