# tests: tests/modules/test_disco.py, tests/integration/test_core_slixmpp.py
"""XEP-0030: Service Discovery — what this server and its accounts support.

- disco#info to the server: identity server/im plus whatever modules declared, and every
  feature they registered with `ctx.disco_feature()` (§3.1). disco#items to the server: its
  services (components register them here later) (§4.1).
- disco#info to an account's bare JID is answered by the server on the account's behalf
  (identity account/registered, account features such as PEP); unknown accounts get
  <service-unavailable/> so they cannot be probed (XEP-0030 §3.1, RFC 6121 §8.5.1).
- A `node` we do not know gets <item-not-found/> (§3.1).
Not here: caps hashes (modules/caps.py, later), the contents of nodes (PEP).

Config ([modules.disco]): none.
Storage: none (account existence through the account store).
"""
from __future__ import annotations

from lxml import etree

from stanzas import iq, ns
from stanzas.errors import StanzaError
from xmppd.module import IqRequest, Module, ModuleContext, NoOptions

_INFO = "{%s}" % ns.DISCO_INFO


class Disco(Module[NoOptions]):
    name = "disco"
    xeps = (30,)

    def __init__(self, ctx: ModuleContext[NoOptions]) -> None:
        self.ctx = ctx
        self.items: list[tuple[str, str]] = []     # (jid, name) of services on this host
        ctx.disco_feature(ns.DISCO_INFO)
        ctx.disco_feature(ns.DISCO_ITEMS)
        ctx.iq_get(ns.DISCO_INFO, "query", self.server_info, to="host")
        ctx.iq_get(ns.DISCO_ITEMS, "query", self.server_items, to="host")
        ctx.iq_get(ns.DISCO_INFO, "query", self.account_info, to="bare")
        ctx.iq_get(ns.DISCO_ITEMS, "query", self.account_items, to="bare")
        ctx.provide(self)

    def server_info(self, req: IqRequest) -> iq.Reply:
        _no_node(req)
        identities = [("server", "im", "xmppd")] + self.ctx.server.hosts[self.ctx.host].identities
        return iq.result(req.stanza, _info(identities,
                                           self.ctx.server.hosts[self.ctx.host].features["host"]))

    def server_items(self, req: IqRequest) -> iq.Reply:
        _no_node(req)
        q = iq.empty(ns.DISCO_ITEMS, "query")
        for jid, name in self.items:
            item = etree.SubElement(q, "{%s}item" % ns.DISCO_ITEMS, jid=jid)
            if name:
                item.set("name", name)
        return iq.result(req.stanza, q)

    async def account_info(self, req: IqRequest) -> iq.Reply:
        _no_node(req)
        if not await self.ctx.server.user_exists(req.to.bare):
            raise StanzaError.service_unavailable()
        features = [ns.DISCO_INFO, ns.DISCO_ITEMS] + \
            self.ctx.server.hosts[self.ctx.host].features["account"]
        return iq.result(req.stanza, _info([("account", "registered", "")], features))

    async def account_items(self, req: IqRequest) -> iq.Reply:
        _no_node(req)
        if not await self.ctx.server.user_exists(req.to.bare):
            raise StanzaError.service_unavailable()
        return iq.result(req.stanza, iq.empty(ns.DISCO_ITEMS, "query"))


def _no_node(req: IqRequest) -> None:
    if req.payload.get("node"):
        raise StanzaError.item_not_found("no such node")


def _info(identities: list[tuple[str, str, str]], features: list[str]) -> etree._Element:
    q = iq.empty(ns.DISCO_INFO, "query")
    for category, kind, name in sorted(set(identities)):
        ident = etree.SubElement(q, _INFO + "identity", category=category, type=kind)
        if name:
            ident.set("name", name)
    for feature in sorted(set(features)):
        etree.SubElement(q, _INFO + "feature", var=feature)
    return q
