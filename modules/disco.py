# tests: tests/modules/test_core_modules.py, tests/integration/test_core_slixmpp.py
"""XEP-0030: Service Discovery — what this server and its accounts support.

- disco#info to the server: identity server/im plus whatever modules declared, and every
  feature they registered with `ctx.disco_feature()` (§3.1). disco#items to the server: its
  services (components register them here later) (§4.1).
- disco#info to an account's bare JID is answered by the server on the account's behalf
  (identity account/registered, account features such as PEP); unknown accounts get
  <service-unavailable/> so they cannot be probed (XEP-0030 §3.1, RFC 6121 §8.5.1).
- A `node` nobody answers gets <item-not-found/> (§3.1). Account queries fold
  `account_disco_info` / `account_disco_items`, so modules add identities and items or answer
  their nodes (PEP: identity pubsub/pep, its nodes); node queries to the server fold
  `server_disco_info` / `server_disco_items` (XEP-0050 ad-hoc commands).
Not here: caps (modules/caps.py), the contents of nodes (modules/pep/).

Config ([modules.disco]): none.
Storage: none (account existence through the account store).
"""
from __future__ import annotations

from lxml import etree
from twisted.internet import defer

from stanzas import iq, ns
from stanzas.errors import StanzaError
from xmppd import hooks
from xmppd.hooks import DiscoQuery, FoldHook
from xmppd.module import IqRequest, Module, ModuleContext, NoOptions

_INFO = "{%s}" % ns.DISCO_INFO


class Disco(Module[NoOptions]):
    name = "disco"
    xeps = (30,)

    def __init__(self, ctx: ModuleContext[NoOptions]) -> None:
        self.ctx = ctx
        ctx.disco_feature(ns.DISCO_INFO)
        ctx.disco_feature(ns.DISCO_ITEMS)
        ctx.iq_get(ns.DISCO_INFO, "query", self.server_info, to="host")
        ctx.iq_get(ns.DISCO_ITEMS, "query", self.server_items, to="host")
        ctx.iq_get(ns.DISCO_INFO, "query", self.account_info, to="bare")
        ctx.iq_get(ns.DISCO_ITEMS, "query", self.account_items, to="bare")

    async def server_info(self, req: IqRequest) -> iq.Reply:
        if req.payload.get("node"):
            return iq.result(req.stanza, await self._fold(hooks.server_disco_info, req, None))
        info = self.ctx.host_disco()
        return iq.result(req.stanza, _info([("server", "im", "xmppd"), *info.identities],
                                           list(info.features)))

    async def server_items(self, req: IqRequest) -> iq.Reply:
        if req.payload.get("node"):
            return iq.result(req.stanza, await self._fold(hooks.server_disco_items, req, None))
        q = iq.empty(ns.DISCO_ITEMS, "query")
        for jid, name in self.ctx.host_disco().items:
            item = etree.SubElement(q, "{%s}item" % ns.DISCO_ITEMS, jid=jid)
            if name:
                item.set("name", name)
        return iq.result(req.stanza, q)

    async def account_info(self, req: IqRequest) -> iq.Reply:
        if not await self.ctx.user_exists(req.to.bare):
            raise StanzaError.service_unavailable()
        node = req.payload.get("node") or None
        answer = None
        if node is None:
            features = [ns.DISCO_INFO, ns.DISCO_ITEMS, *self.ctx.host_disco().account_features]
            answer = _info([("account", "registered", "")], features)
        # Modules add to the account's answer or answer their nodes (PEP, XEP-0163 §6).
        return iq.result(req.stanza, await self._fold(hooks.account_disco_info, req, answer))

    async def account_items(self, req: IqRequest) -> iq.Reply:
        if not await self.ctx.user_exists(req.to.bare):
            raise StanzaError.service_unavailable()
        node = req.payload.get("node") or None
        answer = iq.empty(ns.DISCO_ITEMS, "query") if node is None else None
        return iq.result(req.stanza, await self._fold(hooks.account_disco_items, req, answer))

    async def _fold(self, hook: FoldHook[DiscoQuery, etree._Element | None], req: IqRequest,
                    answer: etree._Element | None) -> etree._Element:
        q = DiscoQuery(req.to.bare, req.sender, req.payload.get("node") or None)
        found = self.ctx.fold(hook, q, answer)
        if isinstance(found, defer.Deferred):
            found = await found
        if found is None:
            raise StanzaError.item_not_found("no such node")
        return found


def _info(identities: list[tuple[str, str, str]], features: list[str]) -> etree._Element:
    q = iq.empty(ns.DISCO_INFO, "query")
    for category, kind, name in sorted(set(identities)):
        ident = etree.SubElement(q, _INFO + "identity", category=category, type=kind)
        if name:
            ident.set("name", name)
    for feature in sorted(set(features)):
        etree.SubElement(q, _INFO + "feature", var=feature)
    return q
