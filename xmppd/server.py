# tests: tests/core/test_router.py, tests/core/test_module.py, tests/integration/test_core_slixmpp.py
"""The server: virtual hosts, their modules, the session manager, the router and the stores.

One `Server` per process. Each virtual host has its own hook registry, IQ handler table, disco
features and items, output filters and module instances (STYLE §2); modules reach all of it
through their `ModuleContext` only. Stores are built on first use (storage/stores.py), so the
core builds none for a feature whose module is not loaded. Account operations live in
xmppd/accounts.py (shared by xmppctl, XEP-0077 and admin commands).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from lxml import etree
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from stanzas.errors import StanzaError, StreamError
from storage.cache import Cache
from storage.db import Database
from storage.stores import Stores
from xmppd.accounts import Accounts
from xmppd.clock import Clock
from xmppd.config import Config
from xmppd import hooks
from xmppd.hooks import HookRegistry, ServerStopping
from xmppd.loader import resolve
from xmppd.metrics import Metrics
from xmppd.module import HttpEndpoint, Module, ModuleContext
from xmppd.router import Router
from xmppd.sessions import SessionManager

if TYPE_CHECKING:
    from xmppd.listeners.session import InputObserver, OutputFilter

log = logging.getLogger(__name__)


class Host:
    """One virtual host: what its modules registered."""

    def __init__(self, name: str, server: Server) -> None:
        self.name = name
        self.server = server
        self.hooks = HookRegistry()
        self.iq_handlers: dict[tuple[str, str, str], Callable[..., Any]] = {}
        self.features: dict[str, list[str]] = {"host": [], "account": []}
        self.identities: list[tuple[str, str, str]] = []
        self.items: list[tuple[str, str]] = []            # disco#items of the host: (jid, name)
        self.stream_features: dict[str, list[Callable[[Any], etree._Element | None]]] = {
            "preauth": [], "session": []}
        self.preauth_policies: list[Callable[[str | None], bool]] = []
        self.output_filters: list[tuple[int, int, OutputFilter]] = []
        self.input_observers: list[InputObserver] = []
        self.pending_iqs: dict[tuple[str, str], defer.Deferred[Any]] = {}
        self.iq_targets: dict[tuple[str, str], str] = {}     # pending IQ -> its 'to'
        self.services: dict[type, object] = {}
        self.idle_interval: float | None = None     # see ModuleContext.on_idle
        self.modules: dict[str, Module[Any]] = {}
        self.contexts: list[ModuleContext[Any]] = []
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def recipient_gone(self, jid: str) -> None:
        """A client session ended: the server's IQs waiting for its answer get
        <service-unavailable/> now (what the router answers for a gone full JID)."""
        gone = [k for k, to in self.iq_targets.items() if to == jid]
        for key in gone:
            del self.iq_targets[key]
            d = self.pending_iqs.pop(key, None)
            if d is not None and not d.called:
                d.errback(StanzaError.service_unavailable())

    def stream_features_for(self, stage: str, stream: Any) -> list[etree._Element]:
        out = []
        for provider in self.stream_features[stage]:
            try:
                el = provider(stream)
            except Exception:
                log.exception("stream feature provider failed on %s", self.name)
                continue
            if el is not None:
                out.append(el)
        return out

    def preauth_allowed(self, peer_ip: str | None, tag: str) -> bool:
        """May an IQ with payload `tag` come before authentication from `peer_ip`? Only if a
        module handles it `to="preauth"` and a module's policy allows the peer."""
        if not any(k[1] == "preauth" and k[2] == tag for k in self.iq_handlers):
            return False
        return any(policy(peer_ip) for policy in self.preauth_policies)


class Server:
    def __init__(self, config: Config, *, reactor: IReactorTime, db: Database,
                 cache: Cache) -> None:
        self.config = config
        self.reactor = reactor
        self.clock = Clock(reactor)
        self.started_at = self.clock.now()
        self.db = db
        self.cache = cache
        self.stores = Stores(db, cache)
        self.metrics = Metrics(self)            # xmppd/metrics.py: the registry a listener serves
        self.sessions: SessionManager
        if config.cluster is None:
            self.sessions = SessionManager(
                max_sessions_per_user=config.limits.max_sessions_per_user)
        else:
            from xmppd.cluster.sessions import ClusterSessions
            self.sessions = ClusterSessions(
                max_sessions_per_user=config.limits.max_sessions_per_user,
                node=config.cluster.node, epoch=int(self.clock.now() * 1000))
        self.hosts: dict[str, Host] = {h: Host(h, self) for h in config.server.hosts}
        self.local_domains = frozenset(self.hosts)
        self.accounts = Accounts(self)
        self.router = Router(self)
        self.connections: set[Any] = set()      # every live C2S connection, bound or not
        self.starting: list[defer.Deferred[Any]] = []   # modules' start-up reads (port files wait)
        self.stopping = False                   # stop() began: new client streams are refused
        # HTTP listeners started for this server (xmppd/listeners/http.py), in config order
        self.http_listeners: list[Any] = []
        self.s2s: Any = None    # federation and components (xmppd/s2s/service.py), if configured
        # One node of several ([cluster], docs/CLUSTER.md): joins once the reactor runs; a
        # client's resource binding waits for it.
        self.cluster: Any = None
        if config.cluster is not None:
            from xmppd.cluster.node import ClusterNode
            self.cluster = ClusterNode(self, reactor)
            reactor.callWhenRunning(self._join_cluster)  # type: ignore[attr-defined]

    def _join_cluster(self) -> None:
        d = defer.Deferred.fromCoroutine(self.cluster.start())
        d.addErrback(lambda f: log.error("could not join the cluster: %s", f.getTraceback()))

    def load_modules(self) -> None:
        """Instantiate the configured modules on every host (raises ConfigError)."""
        plan = resolve(self.config.modules)
        for host in self.hosts.values():
            for cls, options in plan:
                ctx: ModuleContext[Any] = ModuleContext(host, cls.name, options)
                host.contexts.append(ctx)
                host.modules[cls.name] = cls(ctx)

    def http_endpoints(self, host: str) -> list[HttpEndpoint]:
        """The HTTP listeners as clients of `host` reach them, TLS first."""
        found = [HttpEndpoint(lst.base_url(host=host), lst.secure, lst.config.upload_path)
                 for lst in self.http_listeners]
        return sorted(found, key=lambda e: not e.secure)

    async def stop(self) -> None:
        """Goodbyes (`server_stopping`) while clients are connected, then every client
        stream closes with <system-shutdown/>, then modules stop and are unloaded.
        A cluster node drains first: its rooms go to the other nodes, and after the streams
        closed it waits (up to `cluster.drain_timeout`) until their clients resumed their
        sessions elsewhere (XEP-0198), so nothing they had not acknowledged is stranded."""
        self.stopping = True
        if self.cluster is not None and self.cluster.started:
            await self.cluster.leave()
        for host in self.hosts.values():
            done = host.hooks.run(hooks.server_stopping, ServerStopping(host.name))
            if isinstance(done, defer.Deferred):
                await done
        for conn in list(self.connections):
            conn.close(StreamError.system_shutdown())
        if self.cluster is not None and self.cluster.started:
            await self.cluster.drained()
        for host in self.hosts.values():
            for name, module in reversed(list(host.modules.items())):
                try:
                    await module.stop()
                except Exception:
                    log.exception("module %s failed to stop on %s", name, host.name)
            for ctx in reversed(host.contexts):
                ctx.close()
            host.modules.clear()
            host.contexts.clear()
        if self.cluster is not None:
            await self.cluster.stop()
