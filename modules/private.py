# tests: tests/modules/test_private.py, tests/modules/test_bookmarks.py, tests/integration/test_pep_slixmpp.py
"""XEP-0049: Private XML Storage — a client's own settings (and legacy bookmarks) kept on the
server for the account's other clients.

- Set (to oneself, or without 'to'): each namespace of the <query/>'s children replaces what
  was stored under it; several children of one namespace are kept together ("an IQ set or
  result MAY contain multiple elements qualified by the same namespace"). Get: one child names
  the namespace; the answer holds what is stored, or that child as sent when nothing is.
- Errors: no child → <not-acceptable/> ("MUST respond with a Not Acceptable error"); a get
  naming several namespaces → <bad-request/> ("MUST NOT query for more than one namespace");
  a reserved namespace (jabber:*, http://jabber.org/*, vcard-temp) → <not-acceptable/>
  (XEP-0049 reserved namespaces); another account's storage → <forbidden/> ("the former is
  preferable"); more than `max_size` per namespace → <not-acceptable/>; more than
  `max_namespaces` namespaces → <not-allowed/> (a quota, as the roster's).
- Other modules may own a namespace: `private_get` folds what a get returns and `private_set`
  follows a set (XEP-0402 compat: storage:bookmarks mirrors the PEP bookmarks node).
Not here: bookmark conversion (modules/bookmarks.py).

Config ([modules.private]):
  max_size        size  default "64 KiB"  stored XML per namespace
  max_namespaces  int   default 100       namespaces per account
Storage: KeyValueStore: "private:<namespace>" per namespace, and "jabber:iq:private" (the
account's namespaces, one per line), written in one transaction.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from lxml import etree
from twisted.internet import defer

from stanzas import iq, ns
from stanzas.errors import StanzaError
from xmppd import hooks
from xmppd.hooks import PrivateQuery, UserEvent
from stanzas.jid import JID
from xmppd.concurrency import KeyedLock
from xmppd.module import IqRequest, Module, ModuleContext, number, size

NS = ns.PRIVATE
PREFIX = "private:"
MAX_NAMESPACE = 255 - len(PREFIX)            # kv_items.namespace is String(255)
RESERVED = ("jabber:", "http://jabber.org/", "vcard-temp")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          remove_comments=True, remove_pis=True)


@dataclass(frozen=True, slots=True)
class PrivateOptions:
    max_size: int = size(default="64 KiB", minimum=1024)
    max_namespaces: int = number(default=100, minimum=1, maximum=100_000)


class PrivateStorage(Module[PrivateOptions]):
    name = "private"
    xeps = (49,)
    Options = PrivateOptions

    def __init__(self, ctx: ModuleContext[PrivateOptions]) -> None:
        self.ctx = ctx
        self.kv = ctx.stores.kv
        self.locks: KeyedLock[JID] = KeyedLock()     # one set per account at a time
        ctx.disco_feature(NS)
        ctx.iq_get(NS, "query", self.get, to="self")
        ctx.iq_set(NS, "query", self.set, to="self")
        ctx.iq_get(NS, "query", self.not_yours, to="bare")
        ctx.iq_set(NS, "query", self.not_yours, to="bare")
        ctx.hook(hooks.user_deleted, self.forget)

    def not_yours(self, req: IqRequest) -> iq.Reply:
        raise StanzaError.forbidden("private storage belongs to its account")

    async def get(self, req: IqRequest) -> iq.Reply:
        kids = _children(req.payload)
        namespaces = {_namespace(k) for k in kids}
        if len(namespaces) > 1:
            raise StanzaError.bad_request("ask for one namespace at a time")
        namespace = namespaces.pop()
        user = req.sender.bare
        stored = await self.load(user, namespace)
        shown = self.ctx.fold(hooks.private_get, PrivateQuery(user, namespace, ()), stored)
        if isinstance(shown, defer.Deferred):
            shown = await shown
        q = iq.empty(NS, "query")
        for el in shown or (kids[0],):
            q.append(copy.deepcopy(el))
        return iq.result(req.stanza, q)

    async def set(self, req: IqRequest) -> iq.Reply:
        groups: dict[str, list[etree._Element]] = {}
        for el in _children(req.payload):
            groups.setdefault(_namespace(el), []).append(el)
        values: dict[str, bytes] = {}
        for namespace, elements in groups.items():
            data = _encode(elements)
            if len(data) > self.ctx.options.max_size:
                raise StanzaError.not_acceptable(
                    f"at most {self.ctx.options.max_size} bytes per namespace")
            values[namespace] = data
        user = req.sender.bare
        await self._save(user, values)
        for namespace, elements in groups.items():
            done = self.ctx.run(hooks.private_set,
                                  PrivateQuery(user, namespace, tuple(elements)))
            if isinstance(done, defer.Deferred):
                await done
        return iq.result(req.stanza)

    async def load(self, user: JID, namespace: str) -> tuple[etree._Element, ...]:
        """What `user` stored under `namespace` (for other modules too)."""
        data = await self.kv.get(user, PREFIX + namespace)
        return tuple(etree.fromstring(data, _PARSER)) if data else ()

    async def _save(self, user: JID, values: dict[str, bytes]) -> None:
        async with self.locks.hold(user):
            index = await self._index(user)
            known = dict.fromkeys(index + list(values))
            if len(known) > self.ctx.options.max_namespaces:
                raise StanzaError.not_allowed(
                    f"at most {self.ctx.options.max_namespaces} namespaces per account")
            changes: dict[str, bytes | None] = {PREFIX + ns: v for ns, v in values.items()}
            if len(known) != len(index):
                changes[NS] = "\n".join(known).encode()
            if not await self.kv.update(user, changes, self.ctx.clock.now()):
                raise StanzaError.internal_server_error("the account is gone")

    async def _index(self, user: JID) -> list[str]:
        data = await self.kv.get(user, NS)
        return [n for n in data.decode().split("\n") if n] if data else []

    async def forget(self, ev: UserEvent) -> None:
        # The rows went with the account (foreign key); this clears the cache.
        index = await self._index(ev.user)
        changes: dict[str, bytes | None] = {PREFIX + n: None for n in index}
        changes[NS] = None
        await self.kv.update(ev.user, changes, self.ctx.clock.now())


def _children(query: etree._Element) -> list[etree._Element]:
    kids = [c for c in query if isinstance(c.tag, str)]
    if not kids:
        raise StanzaError.not_acceptable("name a namespace with a child element")
    return kids


def _namespace(el: etree._Element) -> str:
    namespace = etree.QName(el).namespace or ""
    if not namespace or namespace.startswith(RESERVED):
        raise StanzaError.not_acceptable(f"{namespace or 'no namespace'} is reserved")
    if len(namespace) > MAX_NAMESPACE:
        raise StanzaError.not_acceptable(f"namespaces have at most {MAX_NAMESPACE} characters")
    return namespace


def _encode(elements: list[etree._Element]) -> bytes:
    wrapper = iq.empty(NS, "query")
    for el in elements:
        wrapper.append(copy.deepcopy(el))
    return etree.tostring(wrapper)
