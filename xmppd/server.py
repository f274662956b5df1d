# tests: tests/core/test_router.py, tests/integration/test_core_slixmpp.py
"""The server: virtual hosts, their modules, the session manager, the router and the stores.

One `Server` per process. Each virtual host has its own hook registry, IQ handler table, disco
features and module instances (STYLE §2). Account operations live here because the CLI,
XEP-0077 and the admin commands all need the same steps (credentials, hooks, kicking sessions).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from lxml import etree
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from stanzas.errors import StreamError
from storage.accounts import AccountStore, SqlAccountStore
from storage.archive import ArchiveStore, SqlArchiveStore
from storage.cache import Cache
from storage.db import Database
from storage.kv import CachedKeyValueStore, KeyValueStore, SqlKeyValueStore
from storage.last import CachedLastActivityStore, LastActivityStore, SqlLastActivityStore
from storage.muc import MucStore, SqlMucStore
from storage.offline import OfflineStore, SqlOfflineStore
from storage.pubsub import PubsubStore, SqlPubsubStore
from storage.roster import CachedRosterStore, RosterStore, SqlRosterStore
from xmppd import hooks
from xmppd.clock import Clock
from xmppd.config import Config
from xmppd.hooks import HookRegistry, UserEvent
from stanzas.jid import JID, JIDError, nodeprep
from xmppd.module import Module, ModuleContext, resolve
from xmppd.router import Router
from xmppd.sasl import derive_all
from xmppd.sessions import SessionManager

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


@dataclass
class Stores:
    """Typed stores modules reach as `ctx.stores.<feature>` (STYLE §2)."""
    db: Database
    cache: Cache
    accounts: AccountStore
    kv: KeyValueStore             # small per-user documents (vCard, blocking list), cached
    roster: RosterStore           # rosters and subscription states (RFC 6121), cached
    last: LastActivityStore       # XEP-0012 last seen, cached
    offline: OfflineStore         # XEP-0160 offline messages (written by group commit)
    archive: ArchiveStore         # XEP-0313 archives and XEP-0441 prefs (group commit)
    pubsub: PubsubStore           # XEP-0163 PEP nodes, items, explicit subscriptions
    muc: MucStore                 # XEP-0045 rooms and affiliations, room archives


class Host:
    """One virtual host: what its modules registered."""

    def __init__(self, name: str, server: Server) -> None:
        self.name = name
        self.server = server
        self.hooks = HookRegistry()
        self.iq_handlers: dict[tuple[str, str, str], Callable[..., Any]] = {}
        self.features: dict[str, list[str]] = {"host": [], "account": []}
        self.identities: list[tuple[str, str, str]] = []
        self.stream_features: dict[str, list[Callable[[Any], etree._Element | None]]] = {
            "preauth": [], "session": []}
        self.preauth_policies: list[Callable[[str | None], bool]] = []
        self.pending_iqs: dict[tuple[str, str], defer.Deferred[Any]] = {}
        self.services: dict[type, object] = {}
        self.idle_interval: float | None = None     # see ModuleContext.on_idle
        self.modules: dict[str, Module[Any]] = {}
        self.contexts: list[ModuleContext[Any]] = []

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

    def preauth_allowed(self, peer_ip: str | None) -> bool:
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
        self.stores = Stores(db=db, cache=cache, accounts=SqlAccountStore(db),
                             kv=CachedKeyValueStore(SqlKeyValueStore(db), cache),
                             roster=CachedRosterStore(SqlRosterStore(db), cache),
                             last=CachedLastActivityStore(SqlLastActivityStore(db), cache),
                             offline=SqlOfflineStore(db), archive=SqlArchiveStore(db),
                             pubsub=SqlPubsubStore(db),
                             muc=SqlMucStore(db))
        self.sessions = SessionManager(
            max_sessions_per_user=config.limits.max_sessions_per_user)
        self.hosts: dict[str, Host] = {h: Host(h, self) for h in config.server.hosts}
        self.router = Router(self)
        self.connections: set[Any] = set()      # every live C2S connection, bound or not
        self.s2s: Any = None    # federation and components (xmppd/s2s/service.py), if configured

    def load_modules(self) -> None:
        """Instantiate the configured modules on every host (raises ConfigError)."""
        plan = resolve(self.config.modules)
        for host in self.hosts.values():
            for cls, options in plan:
                ctx: ModuleContext[Any] = ModuleContext(host, cls.name, options)
                host.contexts.append(ctx)
                host.modules[cls.name] = cls(ctx)

    async def stop(self) -> None:
        for conn in list(self.connections):
            conn.close(StreamError.system_shutdown())
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

    # -- accounts --------------------------------------------------------------------------
    def account_jid(self, username: str, host: str) -> JID:
        """The prepared bare JID for `username` on our `host`; raises ValueError if invalid."""
        if host not in self.hosts:
            raise ValueError(f"{host!r} is not a virtual host of this server")
        try:
            jid = JID.of(nodeprep(username), host)
        except JIDError as e:
            raise ValueError(f"invalid username {username!r}: {e}") from None
        if not jid.local:
            raise ValueError("the username must not be empty")
        return jid

    async def register_user(self, username: str, host: str, password: str) -> bool:
        """Create an account; False if it exists. Raises ValueError for a bad name/password."""
        jid = self.account_jid(username, host)
        if not password:
            raise ValueError("the password must not be empty")
        creds = derive_all(password, self.config.auth.scram_iterations)
        assert jid.local is not None
        created = await self.stores.accounts.create(jid.local, host, creds, self.clock.now())
        if created:
            await _settle(self.hosts[host].hooks.run(hooks.user_registered, UserEvent(jid)))
        return created

    async def set_password(self, username: str, host: str, password: str) -> bool:
        jid = self.account_jid(username, host)
        if not password:
            raise ValueError("the password must not be empty")
        creds = derive_all(password, self.config.auth.scram_iterations)
        assert jid.local is not None
        return await self.stores.accounts.set_credentials(jid.local, host, creds)

    async def delete_user(self, username: str, host: str) -> bool:
        """Delete an account and its data; its sessions are closed with <not-authorized/>."""
        jid = self.account_jid(username, host)
        assert jid.local is not None
        deleted = await self.stores.accounts.delete(jid.local, host)
        if deleted:
            for s in self.sessions.resources(jid):
                s.close(StreamError.not_authorized("this account was deleted"))
            await _settle(self.hosts[host].hooks.run(hooks.user_deleted, UserEvent(jid)))
        return deleted

    async def user_exists(self, jid: JID) -> bool:
        if jid.local is None or jid.domain not in self.hosts:
            return False
        if self.sessions.resources(jid.bare):
            return True
        return await self.stores.accounts.get(jid.local, jid.domain) is not None


async def _settle(result: bool | defer.Deferred[bool]) -> bool:
    if isinstance(result, defer.Deferred):
        return await result
    return result
