# tests: tests/modules/test_pep.py, tests/modules/test_avatar_conversion.py, tests/integration/test_pep_slixmpp.py
"""XEP-0163: Personal Eventing Protocol — every account is a pubsub service (XEP-0060 subset):
avatars (XEP-0084), OMEMO device lists and bundles, bookmarks (XEP-0402/0223), nicknames...

- Owner (IQs to one's own bare JID): publish with auto-create (§7.1.4) and publish-options
  preconditions (§7.1.5: <conflict/><precondition-not-met/>), retract with notify (§7.2),
  create with or without configuration (§8.1), configure get/set with an XEP-0004 form (§8.2),
  default configuration (§8.3), delete (§8.4), purge (§8.5), affiliations (owner only, §8.9.1).
  Anyone else publishing or managing gets <forbidden/> (§7.1.3.1, §8.x).
- Everyone (IQs to the account's bare JID): items — all, by id, or the newest `max_items`
  (§6.5) — under the node's access model (open/presence/roster/whitelist, errors as §6.5.x);
  explicit subscribe/unsubscribe (§6.1, §6.2; XEP-0163 §5 "MUST support ... subscribe,
  unsubscribe"), one's subscriptions (§5.6) and affiliations (§5.7). Subscription options
  and owner management of subscriptions are not offered: <feature-not-implemented/> with
  <unsupported/> naming the feature (§6.3.4.6, §8.8.1.x).
- Notifications and last items: presence-based auto-subscription filtered by XEP-0115 caps
  '+notify' (XEP-0163 §4), see modules/pep/service.py.
- Disco (XEP-0163 §6): the account answers identity pubsub/pep and the features below; its
  disco#items lists the nodes the asker may see, a node's disco#info its meta-data (§5.4) and
  disco#items its item ids (§5.5).
- XEP-0398 avatar conversion with the vcard module: modules/pep/avatar.py.
Not here: bookmarks compatibility (modules/bookmarks.py), caps (modules/caps.py), storage
(storage/pubsub.py).

Config ([modules.pep]):
  max_items_per_node  int   default 256       items a node keeps at most ("max" means this)
  max_nodes           int   default 1000      nodes per account; more: <not-allowed/>
  max_payload_size    size  default "256 KiB" one item's payload; more: <payload-too-big/>
  max_subscribers     int   default 1000      explicit subscribers per node
  vcard_conversion    bool  default true      XEP-0398 (when the vcard module is loaded)
Storage: PubsubStore (storage/pubsub.py).
"""
from __future__ import annotations

from lxml import etree

from modules.pep.avatar import FEATURE as VCARD_CONVERSION, AvatarConversion
from modules.pep.config import (
    NODE_CONFIG, NS, NS_OWNER, PUBLISH_OPTIONS, NodeConfig, PepOptions, apply,
    config_form, meta_data_form, parse_form, pubsub_error, unsupported)
from modules.pep.last_items import SENT, LastItems
from modules.pep.service import PepService, check_node, item_element, payload_of
from stanzas import iq, ns
from stanzas.errors import StanzaError
from xmppd import hooks
from xmppd.hooks import DiscoQuery, UserEvent
from stanzas.jid import JID, JIDError
from xmppd.module import IqRequest, Module, ModuleContext

__all__ = ["Pep", "PepService", "NodeConfig", "SENT", "payload_of"]

_P, _O = "{%s}" % NS, "{%s}" % NS_OWNER
_INFO, _ITEMS = "{%s}" % ns.DISCO_INFO, "{%s}" % ns.DISCO_ITEMS
FEATURES = [NS] + [f"{NS}#{f}" for f in (
    "access-presence", "auto-create", "auto-subscribe", "config-node", "config-node-max",
    "create-and-configure", "create-nodes", "delete-items", "delete-nodes",
    "filtered-notifications", "item-ids", "last-published", "meta-data", "multi-items",
    "persistent-items", "presence-notifications", "presence-subscribe", "publish",
    "publish-options", "purge-nodes", "retract-items", "retrieve-affiliations",
    "retrieve-default", "retrieve-items", "retrieve-subscriptions", "subscribe")]


class Pep(Module[PepOptions]):
    name = "pep"
    xeps = (60, 163, 84, 223, 398)
    depends = ("roster", "caps")
    Options = PepOptions

    def __init__(self, ctx: ModuleContext[PepOptions]) -> None:
        self.ctx = ctx
        self.service = PepService(ctx)
        ctx.provide(self.service)
        last_items = LastItems(ctx, self.service)
        ctx.provide(last_items)                 # the peer that sends an owner's items
        for feature in FEATURES:
            ctx.disco_feature(feature, to="account")
        ctx.iq_set(NS, "pubsub", self.pubsub_set, to=("self", "bare"))
        ctx.iq_get(NS, "pubsub", self.pubsub_get, to=("self", "bare"))
        ctx.iq_set(NS_OWNER, "pubsub", self.owner_set, to=("self", "bare"))
        ctx.iq_get(NS_OWNER, "pubsub", self.owner_get, to=("self", "bare"))
        ctx.hook(hooks.caps_changed, last_items.on_caps_changed)
        ctx.hook(hooks.presence_in, last_items.on_presence, priority=hooks.LATE)
        ctx.hook(hooks.account_disco_info, self.disco_info)
        ctx.hook(hooks.account_disco_items, self.disco_items)
        ctx.hook(hooks.user_deleted, self.forget)
        self.avatars = AvatarConversion(ctx, self.service) \
            if ctx.options.vcard_conversion else None

    # -- http://jabber.org/protocol/pubsub -------------------------------------------------
    async def pubsub_set(self, req: IqRequest) -> iq.Reply:
        action, extra = _action(req.payload)
        owner, asker = req.to.bare, req.sender
        name = action.get("node")
        if action.tag == _P + "publish":
            _owner_only(req)
            items = action.findall(_P + "item")
            if len(items) > 1:
                raise pubsub_error("bad-request", "invalid-payload", "one item per publish")
            options = None
            if extra is not None and extra.tag == _P + "publish-options":
                options = parse_form(next(iter(extra), None), PUBLISH_OPTIONS) or None
            item_id = await self.service.publish(owner, check_node(name),
                                                 items[0] if items else None,
                                                 publisher=asker, options=options)
            result = iq.empty(NS, "pubsub")
            published = etree.SubElement(result, _P + "publish", node=name or "")
            etree.SubElement(published, _P + "item", id=item_id)
            return iq.result(req.stanza, result)
        if action.tag == _P + "retract":
            _owner_only(req)
            items = action.findall(_P + "item")
            if len(items) != 1 or not items[0].get("id"):
                raise pubsub_error("bad-request", "item-required")    # §7.2.3.4
            notify = action.get("notify")
            await self.service.retract(owner, check_node(name), items[0].get("id") or "",
                                       notify=None if notify is None else notify in ("1", "true"))
            return iq.result(req.stanza)
        if action.tag == _P + "create":
            _owner_only(req)
            if not name:
                raise pubsub_error("not-acceptable", "nodeid-required")  # no instant nodes
            config = self.service.defaults
            if extra is not None and extra.tag == _P + "configure":
                if extra.get("node") is not None:
                    raise StanzaError.bad_request("<configure/> in a create has no 'node'")
                x = next(iter(extra), None)
                values = parse_form(x, NODE_CONFIG) if x is not None else None
                if values:
                    config = apply(config, values, self.ctx.options.max_items_per_node)
            await self.service.create(owner, check_node(name), config)
            return iq.result(req.stanza)
        if action.tag in (_P + "subscribe", _P + "unsubscribe"):
            subscriber = _subscriber(action, asker)
            if action.tag == _P + "unsubscribe":
                await self.service.unsubscribe(owner, check_node(name), subscriber)
                return iq.result(req.stanza)
            if extra is not None and extra.tag == _P + "options":
                raise unsupported("subscription-options")
            await self.service.subscribe(owner, check_node(name), subscriber)
            result = iq.empty(NS, "pubsub")
            etree.SubElement(result, _P + "subscription", node=name or "", jid=str(subscriber),
                             subscription="subscribed")
            return iq.result(req.stanza, result)
        if action.tag == _P + "options":
            raise unsupported("subscription-options")               # §6.3.4.6
        raise StanzaError.bad_request("not a pubsub set request")

    async def pubsub_get(self, req: IqRequest) -> iq.Reply:
        action, _ = _action(req.payload)
        owner, asker = req.to.bare, req.sender
        if action.tag == _P + "items":
            ids = [i.get("id") or "" for i in action.findall(_P + "item")]
            last = _max_items(action.get("max_items"))
            name = check_node(action.get("node"))
            found = await self.service.items(owner, name, asker, ids=[i for i in ids if i] or None,
                                             last=last)
            result = iq.empty(NS, "pubsub")
            items = etree.SubElement(result, _P + "items", node=name)
            for item in found:
                items.append(item_element(item, NS))
            return iq.result(req.stanza, result)
        if action.tag == _P + "subscriptions":                     # §5.6
            node = action.get("node")
            result = iq.empty(NS, "pubsub")
            subs = etree.SubElement(result, _P + "subscriptions")
            if node:
                subs.set("node", node)
            for sub in await self.service.store.subscriptions_of(asker):
                if sub.owner == owner and (not node or sub.node == node):
                    etree.SubElement(subs, _P + "subscription", node=sub.node,
                                     jid=str(sub.subscriber), subscription="subscribed")
            return iq.result(req.stanza, result)
        if action.tag == _P + "affiliations":                      # §5.7
            node = action.get("node")
            result = iq.empty(NS, "pubsub")
            affs = etree.SubElement(result, _P + "affiliations")
            if node:
                affs.set("node", node)
            if asker.bare == owner:
                for n in await self.service.store.nodes(owner):
                    if not node or n.name == node:
                        etree.SubElement(affs, _P + "affiliation", node=n.name,
                                         affiliation="owner")
            return iq.result(req.stanza, result)
        if action.tag == _P + "options":
            raise unsupported("subscription-options")
        if action.tag == _P + "default":
            raise unsupported("retrieve-default-sub")
        raise StanzaError.bad_request("not a pubsub get request")

    # -- http://jabber.org/protocol/pubsub#owner -------------------------------------------
    async def owner_get(self, req: IqRequest) -> iq.Reply:
        action, _ = _action(req.payload)
        _owner_only(req)
        owner = req.to.bare
        result = iq.empty(NS_OWNER, "pubsub")
        if action.tag == _O + "default":                           # §8.3
            default = etree.SubElement(result, _O + "default")
            default.append(config_form(self.service.defaults, "form"))
            return iq.result(req.stanza, result)
        name = check_node(action.get("node"))
        if action.tag == _O + "configure":                         # §8.2.1
            _, config = await self.service.node(owner, name)
            groups = tuple(sorted({g for i in (await self.service.roster.get(owner))
                                   for g in i.groups}))
            configure = etree.SubElement(result, _O + "configure", node=name)
            configure.append(config_form(config, "form", groups))
            return iq.result(req.stanza, result)
        if action.tag == _O + "affiliations":                      # §8.9.1
            await self.service.node(owner, name)
            affs = etree.SubElement(result, _O + "affiliations", node=name)
            etree.SubElement(affs, _O + "affiliation", jid=str(owner), affiliation="owner")
            return iq.result(req.stanza, result)
        if action.tag == _O + "subscriptions":
            raise unsupported("manage-subscriptions")
        raise StanzaError.bad_request("not a pubsub#owner get request")

    async def owner_set(self, req: IqRequest) -> iq.Reply:
        action, _ = _action(req.payload)
        _owner_only(req)
        owner = req.to.bare
        name = check_node(action.get("node"))
        if action.tag == _O + "configure":                         # §8.2.5
            values = parse_form(next(iter(action), None), NODE_CONFIG)
            if values is None:
                await self.service.node(owner, name)               # §8.2.4: cancel
            else:
                await self.service.configure(owner, name, values)
            return iq.result(req.stanza)
        if action.tag == _O + "delete":                            # §8.4
            redirect = action.find(_O + "redirect")
            await self.service.delete(owner, name,
                                      redirect.get("uri") if redirect is not None else None)
            return iq.result(req.stanza)
        if action.tag == _O + "purge":                             # §8.5
            await self.service.purge(owner, name)
            return iq.result(req.stanza)
        if action.tag == _O + "affiliations":
            raise unsupported("modify-affiliations")               # §8.9.2.4
        if action.tag == _O + "subscriptions":
            raise unsupported("manage-subscriptions")              # §8.8.2.4
        raise StanzaError.bad_request("not a pubsub#owner set request")

    # -- disco -----------------------------------------------------------------------------
    async def disco_info(self, q: DiscoQuery, acc: etree._Element | None) \
            -> etree._Element | None:
        if q.node is None:
            if acc is not None:
                identities = acc.findall(_INFO + "identity")
                at = acc.index(identities[-1]) + 1 if identities else 0
                acc.insert(at, etree.Element(_INFO + "identity", category="pubsub", type="pep"))
                if self.avatars is not None and self.avatars.vcard() is not None:
                    etree.SubElement(acc, _INFO + "feature", var=VCARD_CONVERSION)
            return acc
        visible = await self._visible(q.user, q.node, q.asker)
        if visible is None:
            return acc
        query = iq.empty(ns.DISCO_INFO, "query")
        query.set("node", q.node)
        etree.SubElement(query, _INFO + "identity", category="pubsub", type="leaf")
        etree.SubElement(query, _INFO + "feature", var=NS)
        etree.SubElement(query, _INFO + "feature", var=f"{NS}#meta-data")
        query.append(meta_data_form(visible, str(q.user)))
        return query

    async def disco_items(self, q: DiscoQuery, acc: etree._Element | None) \
            -> etree._Element | None:
        if q.node is None:
            if acc is None:
                return acc
            for node in await self.service.store.nodes(q.user):    # XEP-0163 §6.2 note
                config = NodeConfig.from_json(node.config)
                if await self.service.access_error(q.user, config, q.asker) is None:
                    item = etree.SubElement(acc, _ITEMS + "item", jid=str(q.user),
                                            node=node.name)
                    if config.title:
                        item.set("name", config.title)
            return acc
        visible = await self._visible(q.user, q.node, q.asker)
        if visible is None:
            return acc
        query = iq.empty(ns.DISCO_ITEMS, "query")
        query.set("node", q.node)
        if visible.persist_items:                                  # §5.5: item ids as names
            for stored in await self.service.store.items(q.user, q.node):
                etree.SubElement(query, _ITEMS + "item", jid=str(q.user), name=stored.id)
        return query

    async def _visible(self, owner: JID, name: str, asker: JID) -> NodeConfig | None:
        """The node's configuration if it exists and `asker` may see it (else: not found)."""
        if not name or len(name) > 255:
            return None
        node = await self.service.store.node(owner, name)
        if node is None:
            return None
        config = NodeConfig.from_json(node.config)
        return config if await self.service.access_error(owner, config, asker) is None else None

    async def forget(self, ev: UserEvent) -> None:
        """The account's nodes went with it (foreign keys); its subscriptions to others' go."""
        await self.service.store.forget_subscriber(ev.user)


def _action(pubsub: etree._Element) -> tuple[etree._Element, etree._Element | None]:
    """The request element of a <pubsub/> and what follows it (publish-options, configure,
    options)."""
    kids = [c for c in pubsub if isinstance(c.tag, str)]
    if not kids or len(kids) > 2:
        raise StanzaError.bad_request("a <pubsub/> request has one action")
    return kids[0], kids[1] if len(kids) == 2 else None


def _owner_only(req: IqRequest) -> None:
    if req.sender.bare != req.to.bare:
        raise StanzaError.forbidden("only the account owner may do that")  # §7.1.3.1, §8.x


def _subscriber(action: etree._Element, asker: JID) -> JID:
    """§6.1.3.1: the 'jid' must be the asker's, bare or full."""
    try:
        jid = JID.parse(action.get("jid") or "")
    except JIDError:
        jid = None
    if jid is None or jid.bare != asker.bare:
        raise pubsub_error("bad-request", "invalid-jid")
    return jid


def _max_items(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise StanzaError.bad_request("max_items is a positive number")
    return n
