# tests: tests/storage/test_stores.py
"""The stores of one server, built on first use (STYLE §2: `ctx.stores.<feature>`).

One `Stores` per server, on its database and cache. A store is built when a module (or the
core) first asks for it, so a server without MUC never builds the MUC store; every module and
host then shares that one instance (its cache wrapper included). Only `accounts` is used by the
core itself (SASL credentials).
"""
from __future__ import annotations

from functools import cached_property

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
from storage.files import SqlUploadStore, UploadStore
from storage.settings import HostSettingsStore, SqlHostSettingsStore
from storage.fast import FastTokenStore, SqlFastTokenStore
from storage.invites import InviteStore, SqlInviteStore
from storage.push import PushStore, SqlPushStore


class Stores:
    """Typed stores modules reach as `ctx.stores.<feature>`."""

    def __init__(self, db: Database, cache: Cache) -> None:
        self.db = db
        self.cache = cache

    @cached_property
    def accounts(self) -> AccountStore:
        """Accounts and SCRAM credentials (the core: SASL, registration, xmppctl)."""
        return SqlAccountStore(self.db)

    @cached_property
    def kv(self) -> KeyValueStore:
        """Small per-user documents (vCard, blocking list, private XML), cached."""
        return CachedKeyValueStore(SqlKeyValueStore(self.db), self.cache)

    @cached_property
    def roster(self) -> RosterStore:
        """Rosters and subscription states (RFC 6121), cached."""
        return CachedRosterStore(SqlRosterStore(self.db), self.cache)

    @cached_property
    def last(self) -> LastActivityStore:
        """XEP-0012 last seen, cached."""
        return CachedLastActivityStore(SqlLastActivityStore(self.db), self.cache)

    @cached_property
    def offline(self) -> OfflineStore:
        """XEP-0160 offline messages."""
        return SqlOfflineStore(self.db)

    @cached_property
    def archive(self) -> ArchiveStore:
        """XEP-0313 archives and XEP-0441 preferences."""
        return SqlArchiveStore(self.db)

    @cached_property
    def pubsub(self) -> PubsubStore:
        """XEP-0163 PEP nodes, items, explicit subscriptions."""
        return SqlPubsubStore(self.db)

    @cached_property
    def muc(self) -> MucStore:
        """XEP-0045 rooms, affiliations and room archives."""
        return SqlMucStore(self.db)

    @cached_property
    def upload(self) -> UploadStore:
        """XEP-0363 upload slots and quotas."""
        return SqlUploadStore(self.db)

    @cached_property
    def settings(self) -> HostSettingsStore:
        """Run-time settings of each host (message of the day, registration lists)."""
        return SqlHostSettingsStore(self.db)

    @cached_property
    def fast(self) -> FastTokenStore:
        """XEP-0484 FAST tokens (the core: SASL2)."""
        return SqlFastTokenStore(self.db)

    @cached_property
    def push(self) -> PushStore:
        """XEP-0357 push registrations."""
        return SqlPushStore(self.db)

    @cached_property
    def invites(self) -> InviteStore:
        """XEP-0401 / XEP-0445 invitations."""
        return SqlInviteStore(self.db)

    def built(self) -> list[str]:
        """The names of the stores built so far."""
        return sorted(k for k in vars(self) if k not in ("db", "cache"))
