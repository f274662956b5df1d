# tests: tests/storage/test_kv_store.py
"""Small per-user documents kept whole: vCard, blocking list, private XML, preferences.

- `KeyValueStore` is the contract (STYLE §5): one opaque `bytes` value per (user, namespace);
  the module that owns a namespace chooses its encoding. `SqlKeyValueStore` keeps them in the
  `kv_items` table (SQLite, PostgreSQL); `CachedKeyValueStore` wraps any store with a `Cache`.
- `update` changes several namespaces of one user in one transaction (a vCard and its photo
  hash), so readers never see one without the other. Values belong to an account: writing for
  a user that does not exist changes nothing and answers False (the foreign key decides, so a
  concurrent account deletion cannot leave orphans). Deleting the account removes its rows.
- Users arrive as prepared bare JIDs; the row key is (domain, localpart).
Not here: what a namespace's value means (the modules), caches (`storage/cache.py`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from storage.cache import Cache
from storage.cached import ReadThrough
from storage.db import Database
from storage.models import kv_items
from stanzas.jid import JID

MAX_NAMESPACE = 255    # kv_items.namespace is String(255)


class KeyValueStore(Protocol):
    async def get(self, user: JID, namespace: str) -> bytes | None:
        """The value stored for `user` under `namespace`, or None."""
        ...

    async def put(self, user: JID, namespace: str, value: bytes, updated_at: float) -> bool:
        """Insert or replace one value; False (and no change) if the account does not exist."""
        ...

    async def delete(self, user: JID, namespace: str) -> bool:
        """Remove one value; True if there was one."""
        ...

    async def update(self, user: JID, changes: Mapping[str, bytes | None],
                     updated_at: float) -> bool:
        """Apply several puts (bytes) and deletes (None) atomically; False (and no change at
        all) if a put finds no such account."""
        ...


def _parts(user: JID) -> tuple[str, str]:
    if user.local is None or user.resource is not None:
        raise ValueError(f"a key-value store is keyed by an account's bare JID, not {user}")
    return user.domain, user.local


def _check_namespace(namespace: str) -> None:
    if not namespace or len(namespace) > MAX_NAMESPACE:
        raise ValueError(f"namespace must have 1 to {MAX_NAMESPACE} characters: {namespace!r}")


class SqlKeyValueStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert: Any = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    async def get(self, user: JID, namespace: str) -> bytes | None:
        host, username = _parts(user)
        _check_namespace(namespace)
        c = kv_items.c

        def txn(conn: Connection) -> bytes | None:
            value = conn.execute(select(c.value).where(
                c.host == host, c.username == username, c.namespace == namespace)).scalar()
            return None if value is None else bytes(value)

        return await self._db.run(txn)

    async def put(self, user: JID, namespace: str, value: bytes, updated_at: float) -> bool:
        return await self.update(user, {namespace: value}, updated_at)

    async def delete(self, user: JID, namespace: str) -> bool:
        host, username = _parts(user)
        _check_namespace(namespace)
        c = kv_items.c

        def txn(conn: Connection) -> bool:
            gone = conn.execute(delete(kv_items).where(
                c.host == host, c.username == username, c.namespace == namespace))
            return gone.rowcount > 0

        return await self._db.run(txn)

    async def update(self, user: JID, changes: Mapping[str, bytes | None],
                     updated_at: float) -> bool:
        host, username = _parts(user)
        for namespace in changes:
            _check_namespace(namespace)
        c = kv_items.c
        upserts = []
        for namespace, value in changes.items():
            if value is None:
                continue
            stmt = self._insert(kv_items).values(host=host, username=username,
                                                 namespace=namespace, value=bytes(value),
                                                 updated_at=updated_at)
            upserts.append(stmt.on_conflict_do_update(
                index_elements=[c.host, c.username, c.namespace],
                set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at}))
        removals = [ns for ns, value in changes.items() if value is None]

        def txn(conn: Connection) -> bool:
            try:
                # A savepoint, so a missing account (the foreign key) leaves the transaction
                # usable on PostgreSQL, and no half of the update is applied.
                with conn.begin_nested():
                    for stmt in upserts:
                        conn.execute(stmt)
                    if removals:
                        conn.execute(delete(kv_items).where(
                            c.host == host, c.username == username, c.namespace.in_(removals)))
            except IntegrityError:
                return False
            return True

        return await self._db.run(txn)


# Cache record: b"\x00" = no value; b"\x01" + value.
_ABSENT = b"\x00"
_PRESENT = b"\x01"


def _encode(value: bytes | None) -> bytes:
    return _ABSENT if value is None else _PRESENT + value


def _decode(data: bytes) -> bytes | None:
    if data == _ABSENT:
        return None
    if data[:1] == _PRESENT:
        return data[1:]
    raise ValueError("not a kv cache record")


class CachedKeyValueStore:
    """`KeyValueStore` with `get` served from a cache; writes go to `inner`, then invalidate.

    As `CachedAccountStore`: a `get` that overlapped a write on this node does not fill the
    cache (a write counter), other nodes are bounded by `ttl` (use Redis with several nodes),
    a failing cache is read around, and a write whose invalidation fails raises `StorageError`
    after the database write went through (a retry is safe). Absence is cached for
    `absent_ttl`. Values longer than `max_cached_size` bytes are not cached, so a cache
    bounded by entry count is not filled with photos.
    """

    def __init__(self, inner: KeyValueStore, cache: Cache, *, ttl: float = 3600.0,
                 absent_ttl: float = 300.0, max_cached_size: int = 16384) -> None:
        self._inner = inner

        def lifetime(value: bytes | None) -> float | None:
            if value is None:
                return absent_ttl
            return ttl if len(value) <= max_cached_size else None     # not cached
        self._cache: ReadThrough[bytes | None] = ReadThrough(
            cache, encode=_encode, decode=_decode, ttl=lifetime, what="kv")

    @staticmethod
    def _key(user: JID, namespace: str) -> str:
        host, username = _parts(user)
        return f"kv/{host}/{username}/{namespace}"   # '/' is in neither localpart nor domain

    async def get(self, user: JID, namespace: str) -> bytes | None:
        _check_namespace(namespace)
        return await self._cache.get(self._key(user, namespace),
                                     lambda: self._inner.get(user, namespace))

    async def put(self, user: JID, namespace: str, value: bytes, updated_at: float) -> bool:
        return await self.update(user, {namespace: value}, updated_at)

    async def delete(self, user: JID, namespace: str) -> bool:
        _check_namespace(namespace)
        return await self._cache.invalidating(self._key(user, namespace),
                                              lambda: self._inner.delete(user, namespace))

    async def update(self, user: JID, changes: Mapping[str, bytes | None],
                     updated_at: float) -> bool:
        for namespace in changes:
            _check_namespace(namespace)
        return await self._cache.invalidating([self._key(user, n) for n in changes],
                                              lambda: self._inner.update(user, changes, updated_at))
