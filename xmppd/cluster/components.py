# tests: tests/cluster/test_components.py, tests/integration/test_push_slixmpp.py
"""External components (XEP-0114) across a cluster: a component's stream reaches one node
(through the balancer), yet every node routes stanzas for its domain, as in an ejabberd
cluster (docs/CLUSTER.md "Components").

- Where: the hash `<prefix>{cluster}:components`, domain → node, written when a component
  authenticates on a node and deleted (only if it still names this node) when its stream ends.
  Entries naming a node that is not live are ignored; a node starting drops its own old ones.
  Every node keeps a copy in memory (`where`), told of changes over the nodes' streams
  (`call` "cluster.component") and re-read from Redis at start, when the live set changes,
  every `resync_every` seconds, and when a stanza comes for a domain it does not know.
- Routing: on every node each configured component domain not connected there is a service
  domain (`router.services`) whose handler forwards the stanza to the component's node (a
  `call` over the nodes' streams, as placed MUC rooms are reached): the sender's XEP-0198 ack
  waits for that node's answer, given once the stanza went down the component's stream. A
  component nobody holds answers `<service-unavailable/>` (as one not connected, XEP-0114).
- Replies: an IQ result or error the component sends to a bare JID or a domain answers a
  `send_iq` of the node that forwarded the request (push notifications, XEP-0357); the
  component's node remembers (IQ `to`, id) → that node and forwards the reply there.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import defer

from stanzas.errors import StanzaError, error_reply
from stanzas.jid import JID, JIDError
from xmppd.xmlstream import serialize

if TYPE_CHECKING:
    from xmppd.cluster.node import ClusterNode

log = logging.getLogger(__name__)
_E = etree._Element
_IQ = "{jabber:client}iq"
_CALL = "cluster.component"
_REPLY = "cluster.component.reply"
_IN = "cluster.component.in"
_MAX_REQUESTS = 10000           # remembered forwarded IQs awaiting the component's answer
_DEL_MINE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""
_DROP_MINE = """
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[1] then redis.call('HDEL', KEYS[1], all[i]) end
end
return 0
"""


class ClusterComponents:
    """What `S2SService.component_observer` calls on a cluster node (see the module doc)."""

    def __init__(self, node: ClusterNode, *, resync_every: float = 60.0) -> None:
        self.cluster = node
        self.server = node.server
        self.redis = node.redis
        self.key = f"{node.prefix}{{cluster}}:components"
        self.resync_every = resync_every
        self.configured = [c.domain for c in self.server.config.components]
        self.where: dict[str, str] = {}          # domain -> node holding its stream (not us)
        self.requests: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._undo: list[Any] = []
        self._loop: Any = None

    @property
    def s2s(self) -> Any:
        return self.server.s2s

    def local(self, domain: str) -> bool:
        """Its stream is here and open (a closing one drops what is written to it)."""
        conn = self.s2s.components.get(domain) if self.s2s is not None else None
        return conn is not None and getattr(conn.stream, "state", "open") != "closed"

    # -- start and stop -------------------------------------------------------------------
    async def start(self) -> None:
        if self.s2s is None or not self.configured:
            return
        self.s2s.component_observer = self
        me = self.cluster.node
        await self.redis.execute("EVAL", _DROP_MINE, 1, self.key, me)
        for domain in self.configured:
            if not self.local(domain):
                self._install(domain)
        self._undo.append(self.cluster.answer(_IN, self._down))
        self._undo.append(self.cluster.answer(_CALL, self._told))
        self._undo.append(self.cluster.answer(_REPLY, self._reply_in))
        self.cluster.nodes.listeners.append(self._live_changed)
        for domain in list(self.s2s.components):        # connected before the node joined
            self.connected(domain)
        await self.resync()
        self._loop = self.cluster.reactor.callLater(self.resync_every, self._again)

    def stop(self) -> None:
        for undo in self._undo:
            undo()
        if self._live_changed in self.cluster.nodes.listeners:
            self.cluster.nodes.listeners.remove(self._live_changed)
        if self._loop is not None and self._loop.active():
            self._loop.cancel()
        if self.s2s is not None and self.s2s.component_observer is self:
            self.s2s.component_observer = None

    def _again(self) -> None:
        self._resync_logged()
        self._loop = self.cluster.reactor.callLater(self.resync_every, self._again)

    def _resync_logged(self) -> None:
        defer.Deferred.fromCoroutine(self.resync()).addErrback(
            lambda f: log.warning("component locations not read: %s", f.value))

    async def resync(self) -> None:
        raw: Any = await self.redis.execute("HGETALL", self.key)
        found: dict[str, str] = {}
        for i in range(0, len(raw or []) - 1, 2):
            found[raw[i].decode()] = raw[i + 1].decode()
        live = self.cluster.nodes.live
        self.where = {d: n for d, n in found.items()
                      if n in live and n != self.cluster.node and not self.local(d)}

    def _live_changed(self, live: frozenset[str], gone: frozenset[str]) -> None:
        if gone:
            self.where = {d: n for d, n in self.where.items() if n not in gone}
        self._resync_logged()

    # -- S2SService's observer ----------------------------------------------------------------
    def connected(self, domain: str) -> None:
        """A component authenticated here: the cluster routes its domain to this node."""
        me = self.cluster.node
        self.where.pop(domain, None)
        self.redis.execute("HSET", self.key, domain, me).addErrback(
            lambda f: log.warning("component %s not recorded: %s", domain, f.value))
        self._tell(domain, me)

    def lost(self, domain: str) -> None:
        """Its stream here ended: the domain is nobody's until it connects again."""
        me = self.cluster.node
        if domain in self.configured:
            self._install(domain)
        self.redis.execute("EVAL", _DEL_MINE, 1, self.key, domain, me).addErrback(
            lambda f: log.warning("component %s not cleared: %s", domain, f.value))
        self._tell(domain, None)

    def inbound(self, el: _E) -> bool:
        """A stanza from a component here; True if it went to the node that awaits it."""
        if el.tag != _IQ or el.get("type") not in ("result", "error") or not self.requests:
            return False
        to = el.get("to") or ""
        node = self.requests.pop((to, el.get("id") or ""), None)
        if node is None:
            return False
        if node == self.cluster.node:
            return False
        self.cluster.transport.send(node, ["call", 0, _REPLY, serialize(el).decode()],
                                    reply=False)
        return True

    # -- routing ---------------------------------------------------------------------------
    def _install(self, domain: str) -> None:
        def forward(el: _E, sender: JID, to: JID) -> Any:
            return self._forward(domain, el, sender, to)
        self.server.router.services[domain] = forward

    def _forward(self, domain: str, el: _E, sender: JID, to: JID) -> Any:
        node = self.where.get(domain)
        if node is not None and node in self.cluster.nodes.live:
            return self._send(node, el, sender, to)
        return defer.Deferred.fromCoroutine(self._look_up(domain, el, sender, to))

    async def _look_up(self, domain: str, el: _E, sender: JID, to: JID,
                       retry: bool = True) -> Any:
        try:
            raw: Any = await self.redis.execute("HGET", self.key, domain)
        except Exception as e:
            log.warning("component %s not located: %s", domain, e)
            raw = None
        node = raw.decode() if isinstance(raw, bytes) else None
        if node is not None and node != self.cluster.node and node in self.cluster.nodes.live:
            self.where[domain] = node
            return await self._send(node, el, sender, to, retry)
        if self.local(domain):                          # it connected here meanwhile
            return self.server.router.services[domain](el, sender, to)
        self._unavailable(el, domain)
        return None

    def _send(self, node: str, el: _E, sender: JID, to: JID, retry: bool = True) -> Any:
        d = self.cluster.transport.send(node, ["call", 0, _IN, [
            serialize(el).decode(), str(sender), str(to), self.cluster.node]])
        assert d is not None
        return d.addCallback(self._sent, node, el, sender, to, retry)

    def _sent(self, taken: Any, node: str, el: _E, sender: JID, to: JID, retry: bool) -> Any:
        if taken is True:
            return None
        if taken is False and retry:    # it left that node: where is it now? (once)
            if self.where.get(to.domain) == node:
                del self.where[to.domain]
            return defer.Deferred.fromCoroutine(self._look_up(to.domain, el, sender, to, False))
        self._unavailable(el, to.domain)    # nowhere, or that node could not be reached
        return None

    def _down(self, args: Any) -> bool:
        """A stanza another node forwarded: down the component's stream here, if it is."""
        try:
            el = etree.fromstring(str(args[0]).encode())
            sender, to, origin = JID.parse(args[1]), JID.parse(args[2]), str(args[3])
        except (etree.XMLSyntaxError, JIDError, IndexError):
            return True                 # nothing anybody could do with it
        if not self.local(to.domain):
            return False
        if el.tag == _IQ and el.get("type") in ("get", "set") and sender.resource is None:
            self.requests[(str(sender), el.get("id") or "")] = origin
            while len(self.requests) > _MAX_REQUESTS:
                self.requests.popitem(last=False)
        self.server.router.services[to.domain](el, sender, to)
        return True

    def _unavailable(self, el: _E, domain: str) -> None:
        if el.get("type") in ("error", "result"):
            return
        self.server.router.route(error_reply(el, StanzaError.service_unavailable(
            f"the component {domain} is not connected")))

    # -- what other nodes tell ------------------------------------------------------------------
    def _tell(self, domain: str, node: str | None) -> None:
        for other in self.cluster.nodes.live:
            if other != self.cluster.node:
                self.cluster.transport.send(other, ["call", 0, _CALL, [domain, node]],
                                            reply=False)

    def _told(self, args: Any) -> None:
        domain, node = str(args[0]), args[1]
        if node is None:
            self.where.pop(domain, None)
        elif not self.local(domain):
            self.where[domain] = str(node)

    def _reply_in(self, data: Any) -> None:
        try:
            el = etree.fromstring(str(data).encode())
            JID.parse(el.get("from") or "")
        except (etree.XMLSyntaxError, JIDError):
            return
        self.server.router.route(el)
