# tests: tests/cluster/test_cluster_nodes.py, tests/cluster/test_cluster_features.py
"""One cluster node's machinery, wired together (docs/CLUSTER.md): Redis, the live set (nodes.py),
the session registry and mirror (registry.py, sessions.py), inter-node delivery (transport.py),
placement (placement.py); it is also the `ClusterService` modules see (api.py).

What a node does with what other nodes send it (`_handle`):
- `d` (a stanza for a local full JID): written to that session — through its output filters,
  so XEP-0198 counts it — and answered at once; if the session moved to another node (resumed
  there: `redirect`, or the mirror says so) it follows it there, once; otherwise it is handled
  like a stanza for a resource that went away (`Router.undelivered`: messages to offline
  storage) and answered once stored. The sender's XEP-0198 ack waits for that answer.
- `close`: a session replaced by a login with the same full JID elsewhere (<conflict/>).
- `svc`: a stanza for a JID placed here (a MUC room), handed to the service's own handler,
  answered when the handler says it is handled (the room archive's commit).
- `call`: a request to a module here (`answer`), answered with its result.
- `chg`: another node wrote a user's data (`changed`): modules forget their copy (hook
  `user_data_changed`) before any stanza that write caused arrives here.
The leader (lowest live name) cleans up after a dead node: deletes its registry entries, ends its
sessions the normal way (contacts see them go unavailable, RFC 6121 §4.5.4; last seen is
recorded), and claims its inbound stream.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import TYPE_CHECKING, Any, Callable

from lxml import etree
from twisted.internet import defer

from stanzas.errors import StanzaError, StreamError, error_reply
from stanzas.jid import JID
from xmppd import hooks
from xmppd.cluster.api import SEQ_STRIDE, ClusterService
from xmppd.cluster import detached
from xmppd.cluster.components import ClusterComponents
from xmppd.cluster.nodes import Nodes
from xmppd.cluster.placement import Placement
from xmppd.cluster.redis import RedisClient
from xmppd.cluster.registry import Registry
from xmppd.cluster.remote import RemoteSession
from xmppd.cluster.restart import end_leftovers, leftovers
from xmppd.cluster.sessions import ClusterSessions
from xmppd.cluster.transport import Item, Transport
from xmppd.hooks import SessionEvent, StanzaEvent
from xmppd.xmlstream import serialize

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)
ServiceHandler = Callable[[etree._Element, JID, JID], Any]
# A stable small number per node name: the order in which names first joined.
_SLOT = """
local s = redis.call('HGET', KEYS[1], ARGV[1])
if s then return tonumber(s) end
s = redis.call('HLEN', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], s)
return s
"""


class ClusterNode:
    def __init__(self, server: Server, reactor: Any) -> None:
        cfg = server.config.cluster
        assert cfg is not None and isinstance(server.sessions, ClusterSessions)
        self.server = server
        self.reactor = reactor
        self.node = cfg.node
        self.config = cfg
        prefix = self.prefix = server.config.cache.prefix
        self.redis = RedisClient(reactor, cfg.redis_url)
        self.sessions: ClusterSessions = server.sessions
        self.placement = Placement(self.node)
        self.transport = Transport(self.redis, reactor, prefix, self.node,
                                   handle=self._handle, fallback=self._fallback,
                                   reply_timeout=max(30.0, 3 * cfg.node_timeout))
        self.registry = Registry(self.redis, reactor, prefix, self.node, self.sessions)
        self.nodes = Nodes(self.redis, reactor, prefix, self.node, heartbeat=cfg.heartbeat,
                           timeout=cfg.node_timeout, info=self._info)
        self.sessions.registry = self.registry
        self.sessions.transport = self.transport
        self.sessions.on_user_gone = self._user_gone
        self.registry.on_conflict = self._conflict
        self._placed: dict[str, ServiceHandler] = {}
        self._answers: dict[str, Callable[[Any], Any]] = {}
        self._reports: dict[str, Callable[[], Any]] = {}
        self._undo: list[Callable[[], None]] = []
        self._unsettled: dict[Any, set[defer.Deferred[None]]] = {}   # see _in_order
        self._redirects: dict[JID, tuple[str, float]] = {}     # moved sessions: node, until
        self.slot = 0                   # ClusterService.slot, from Redis at start
        self.components = ClusterComponents(self)      # XEP-0114 components, cluster-wide
        self.ready: defer.Deferred[None] = defer.Deferred()
        self.started = False
        self.drain = True               # stopping waits for sessions to move (not: SIGINT)
        for host in server.hosts.values():
            host.services[ClusterService] = self

    # -- ClusterService ----------------------------------------------------------------------
    def owner(self, jid: JID) -> str:
        return self.placement.owner(str(jid.bare))

    def live(self) -> frozenset[str]:
        return self.nodes.live

    def placed(self, domain: str, handler: ServiceHandler) -> ServiceHandler:
        self._placed[domain] = handler

        def routed(el: etree._Element, sender: JID, to: JID) -> Any:
            if to.local is None:
                return handler(el, sender, to)
            where = self.placement.owner(str(to.bare))
            if where == self.node:
                return handler(el, sender, to)
            return self.transport.send(where, ["svc", 0, serialize(el).decode(), str(sender),
                                               str(to)])
        return routed

    def changed(self, kind: str, user: JID) -> None:
        # Through the nodes' streams, not pub/sub: a stanza this write caused (an inbound
        # subscription) is queued after it, so its node forgets before it sees the stanza.
        for node in self.nodes.live:
            if node != self.node:
                self.transport.send(node, ["chg", 0, str(user.bare), kind], reply=False)

    def call(self, node: str, name: str, args: Any) -> defer.Deferred[Any]:
        """Fails with CancelledError if `node` does not answer within two node timeouts
        (it died: the leader answers what its stream held, but only once it noticed)."""
        d = self.transport.send(node, ["call", 0, name, args])
        assert d is not None
        timer = self.reactor.callLater(2 * self.config.node_timeout + 2, d.cancel)

        def done(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result
        return d.addBoth(done)

    def answer(self, name: str, fn: Callable[[Any], Any]) -> Callable[[], None]:
        self._answers[name] = fn
        return lambda: self._answers.pop(name, None) and None

    def mark(self, name: str, ttl: float) -> None:
        self.redis.execute("SET", self._name_key(name), self.node, "EX", max(1, int(ttl))) \
            .addErrback(lambda f: log.warning("could not record %s: %s", name, f.value))

    def located(self, name: str) -> defer.Deferred[str | None]:
        d = self.redis.execute("GET", self._name_key(name))
        return d.addCallback(lambda v: v.decode() if isinstance(v, bytes) else None)

    def _name_key(self, name: str) -> str:
        return f"{self.prefix}{{name:{name}}}:node"

    def report(self, name: str, fn: Callable[[], Any]) -> Callable[[], None]:
        """A figure for `xmppctl cluster status` (a module's rooms, say)."""
        self._reports[name] = fn
        return lambda: self._reports.pop(name, None) and None

    # -- start and stop ------------------------------------------------------------------------
    async def start(self) -> None:
        await self.redis.start()
        index: Any = await self.redis.execute("EVAL", _SLOT, 1, f"{self.prefix}{{cluster}}:slots",
                                              self.node)
        self.slot = int(index) % SEQ_STRIDE
        if int(index) >= SEQ_STRIDE:
            log.error("this cluster has seen %d node names; node %s shares archive residue %d "
                      "with another (two such nodes writing one archive in the same "
                      "microsecond collide): reuse node names (docs/CLUSTER.md)", int(index) + 1,
                      self.node, self.slot)
        stale = await leftovers(self)       # of this node's previous run (it crashed)
        self.nodes.listeners.append(self._live_changed)
        self.nodes.on_dead = self._dead
        self.nodes.on_rejoined = self._rejoined
        await self.nodes.start()
        self.placement.set_live(self.nodes.placeable)
        self.registry.set_live(self.nodes.live, self.nodes.dead)
        first: defer.Deferred[None] = defer.Deferred()

        async def subscribed() -> None:
            await self.registry.resync()
            if not first.called:
                first.callback(None)
        self.redis.subscribe([self.registry.channel], self.registry.on_message,
                             lambda: defer.Deferred.fromCoroutine(subscribed()))
        await first
        await self.transport.start()
        await self.components.start()
        for host in self.server.hosts.values():
            self._undo.append(host.hooks.add(hooks.presence_in, self._presence,
                                             hooks.FIRST))
            self._undo.append(host.hooks.add(hooks.stanza_in, self._in_order, hooks.FIRST))
            host.input_observers.append(self._observe)
            self._undo.append(functools.partial(host.input_observers.remove, self._observe))
            self._undo.append(host.hooks.add(hooks.session_available,
                                             lambda ev: self.sessions.changed(ev.session)))
            self._undo += detached.watch(self, host)
        self._resync_loop = self.reactor.callLater(self.registry.resync_every, self._resync)
        self.started = True
        log.info("cluster node %s joined (live: %s)", self.node, ", ".join(sorted(
            self.nodes.live)))
        self.ready.callback(None)
        end_leftovers(self, stale)

    def _resync(self) -> None:
        d = defer.Deferred.fromCoroutine(self.registry.resync())
        d.addErrback(lambda f: log.warning("session mirror resync failed: %s", f.value))
        self._resync_loop = self.reactor.callLater(self.registry.resync_every, self._resync)

    # -- drain (SIGTERM) --------------------------------------------------------------------------
    async def leave(self) -> None:
        """Rooms go to the other nodes now (this node leaves their placement)."""
        await self.nodes.leave()

    async def drained(self) -> None:
        """Until every local session was taken over elsewhere (XEP-0198 resumption) or ended,
        or `drain_timeout` passed; at once when not draining (every process stops)."""
        if not self.drain:
            return
        deadline = self.reactor.seconds() + self.config.drain_timeout
        while self.sessions.local_count() and self.reactor.seconds() < deadline:
            d: defer.Deferred[None] = defer.Deferred()
            self.reactor.callLater(0.1, d.callback, None)
            await d
        left = self.sessions.local_count()
        log.info("drained: %s", f"{left} sessions did not move in time" if left else
                 "every session moved or ended")

    async def stop(self) -> None:
        """The last registry writes (sessions that ended) and answers go out, then the
        connections close."""
        self.nodes.stop()
        self.components.stop()
        for undo in self._undo:
            undo()
        loop = getattr(self, "_resync_loop", None)
        if loop is not None and loop.active():
            loop.cancel()
        written = self.registry.flush() + self.transport.stop()
        self.registry.closing = True
        if written:
            done = defer.DeferredList(written)
            timer = self.reactor.callLater(5.0, done.cancel)
            await done.addBoth(lambda _: None)
            if timer.active():
                timer.cancel()
        self.redis.close()

    # -- what other nodes send -----------------------------------------------------------------
    def _handle(self, origin: str, item: Item) -> Any:
        kind = item[0]
        if kind == "d":
            return self._deliver(item[2], item[4], len(item) > 5)
        if kind == "svc":
            handler = self._placed.get(JID.parse(item[4]).domain)
            if handler is None:
                return None
            return handler(etree.fromstring(item[2].encode()), JID.parse(item[3]),
                           JID.parse(item[4]))
        if kind == "chg":                   # another node wrote this user's data
            self._fire_changed(JID.parse(item[2]), item[3])
            return None
        if kind == "close":
            session = self.sessions.local(JID.parse(item[2]))
            if session is not None and self.sessions.local_sids.get(session) == item[3]:
                session.close(StreamError(item[4] or "conflict", item[5]))
            return None
        if kind == "call":
            fn = self._answers.get(item[2])
            return defer.maybeDeferred(fn, item[3]) if fn is not None else None
        log.warning("unknown cluster item %r from %s", kind, origin)
        return None

    def _deliver(self, to: str, data: str, forwarded: bool = False) -> Any:
        jid = JID.parse(to)
        session = self.sessions.local(jid)
        if session is not None:         # as the router would: even one waiting to resume
            return session.send_bytes(data.encode())
        if not forwarded:               # it moved (resumed on another node): after it, once
            node = self._moved(jid)
            if node is not None:
                return self.transport.send(node, ["d", 0, to, "", data, 1])
        return self.server.router.undelivered([data.encode()], jid)

    def _moved(self, jid: JID) -> str | None:
        found = self._redirects.get(jid)
        if found is not None:
            if found[1] > self.reactor.seconds():
                return found[0]
            del self._redirects[jid]
        proxy = self.sessions.get(jid)
        return proxy.node if isinstance(proxy, RemoteSession) else None

    def redirect(self, jid: JID, node: str, ttl: float) -> None:
        now = self.reactor.seconds()
        self._redirects = {j: v for j, v in self._redirects.items() if v[1] > now}
        self._redirects[jid] = (node, now + ttl)

    def _fallback(self, node: str, item: Item) -> Any:
        """`node` could not be reached: what we can, here."""
        if item[0] == "d":
            return self.server.router.undelivered([item[4].encode()], JID.parse(item[2]))
        if item[0] == "svc":
            el = etree.fromstring(item[2].encode())
            if el.get("type") not in ("error", "result"):
                self.server.router.route(error_reply(
                    el, StanzaError("service-unavailable", type="wait")))
        return None

    def _conflict(self, node: str, jid: JID, sid: str) -> None:
        self.transport.send(node, ["close", 0, str(jid), sid, "conflict",
                                   "replaced by a new session with this resource"], reply=False)

    def _fire_changed(self, user: JID, kind: str | None) -> None:
        host = self.server.hosts.get(user.domain)
        if host is not None and host.hooks.has(hooks.user_data_changed):
            host.hooks.run(hooks.user_data_changed, hooks.UserDataChanged(user, kind))

    def _user_gone(self, user: JID) -> None:
        self._fire_changed(user, None)

    # -- a session's order -----------------------------------------------------------------------
    # One server answers a client's IQ to itself after everything the client sent before it
    # was handled; clients (and tests) sync on that ("ping, then..."). Across nodes a stanza
    # can still travel while the server answers: so an IQ to the server or the sender's own
    # account waits for the session's stanzas still in flight (cluster only).
    def _observe(self, session: Any, handled: defer.Deferred[None] | None) -> None:
        if handled is None:
            return
        pending = self._unsettled.setdefault(session, set())
        pending.add(handled)
        handled.addBoth(self._settled, session, handled)

    def _settled(self, result: Any, session: Any, d: defer.Deferred[None]) -> Any:
        pending = self._unsettled.get(session)
        if pending is not None:
            pending.discard(d)
            if not pending:
                del self._unsettled[session]
        return result

    def _in_order(self, ev: StanzaEvent) -> Any:
        el = ev.stanza
        if el.tag != "{jabber:client}iq" or el.get("type") not in ("get", "set") \
                or ev.to.resource is not None:
            return None
        if ev.to.local is not None and ev.to.bare != ev.sender.bare:
            return None
        pending = self._unsettled.get(ev.session)
        if not pending:
            return None
        return defer.DeferredList(list(pending)).addCallback(lambda _: None)

    # -- local sessions' changes -----------------------------------------------------------------
    def _presence(self, ev: StanzaEvent) -> None:
        session = ev.session
        if session is not None and ev.stanza.get("to") is None:
            self.sessions.changed(session)
        return None

    # -- the live set ----------------------------------------------------------------------------
    def _live_changed(self, live: frozenset[str], gone: frozenset[str]) -> None:
        self.placement.set_live(self.nodes.placeable)
        self.registry.set_live(live, self.nodes.dead)
        if self.started:
            for host in self.server.hosts.values():
                if host.hooks.has(hooks.placement_changed):
                    host.hooks.run(hooks.placement_changed, hooks.PlacementChanged(live, gone))

    async def _dead(self, node: str) -> bool:
        """The leader's cleanup after `node` died (see the module docstring)."""
        gone = await self.registry.drop_node(node)
        if gone:
            log.info("node %s is gone: ending its %d sessions", node, len(gone))
        for jid, entry in gone:
            self._end(RemoteSession(self.transport, jid, entry))
        return await self.transport.claim(node)

    def _end(self, proxy: RemoteSession) -> None:
        host = self.server.hosts.get(proxy.jid.domain)
        if host is None:
            return
        ev = SessionEvent(proxy)
        if self.sessions.get(proxy.jid) is None:
            host.hooks.run(hooks.session_closed, ev)
        host.hooks.run(hooks.session_ended, ev)

    def _rejoined(self) -> None:
        defer.Deferred.fromCoroutine(self.registry.reconcile()).addErrback(
            lambda f: log.warning("could not publish the sessions again: %s", f.value))

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"pid": os.getpid(), "started_at": self.nodes.started_at,
                                "sessions": self.sessions.local_count()}
        for name, fn in self._reports.items():
            try:
                info[name] = fn()
            except Exception:
                log.exception("cluster report %s failed", name)
        return info
