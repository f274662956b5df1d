# tests: tests/storage/test_last_store.py
"""XEP-0012 last activity: when each user was last seen (logout) and with which status text.

- `LastActivityStore` is the contract; `SqlLastActivityStore` its SQL implementation (SQLite,
  PostgreSQL; one upsert, one select, one delete); `CachedLastActivityStore` wraps any store
  with a `Cache` (in-process or Redis), so "last seen" queries are cache reads.
- Written at logout, so it survives a restart; the cache is refreshed on every write.
Not here: who may read it (modules/last.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, delete, exists, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.cache import Cache
from storage.cached import ReadThrough
from storage.db import Database
from storage.errors import NoSuchAccount
from storage.models import accounts, last_activity
from stanzas.jid import JID

MAX_STATUS = 4096       # characters kept of the status text (the column's size)


@dataclass(frozen=True, slots=True)
class LastSeen:
    at: float           # POSIX seconds
    status: str         # text of the last unavailable presence; "" if none


class LastActivityStore(Protocol):
    async def get(self, user: JID) -> LastSeen | None: ...

    async def put(self, user: JID, seen: LastSeen) -> None:
        """Insert or replace; `NoSuchAccount` if the account is gone (a logout that ends
        with the account's deletion)."""
        ...

    async def delete(self, user: JID) -> None: ...


def _key(user: JID) -> tuple[str, str]:
    assert user.local is not None, "last activity belongs to accounts"
    return user.domain, user.local


class SqlLastActivityStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    async def get(self, user: JID) -> LastSeen | None:
        host, username = _key(user)

        def txn(conn: Connection) -> LastSeen | None:
            c = last_activity.c
            row = conn.execute(select(c.seen_at, c.status).where(
                c.host == host, c.username == username)).first()
            return None if row is None else LastSeen(float(row.seen_at), row.status)

        return await self._db.run(txn)

    async def put(self, user: JID, seen: LastSeen) -> None:
        host, username = _key(user)
        status = seen.status[:MAX_STATUS]

        def txn(conn: Connection) -> None:
            c, a = last_activity.c, accounts.c
            row = select(literal(host), literal(username), literal(seen.at), literal(status)
                         ).where(exists().where(a.host == host, a.username == username))
            stmt = self._insert(last_activity).from_select(
                [c.host, c.username, c.seen_at, c.status], row)
            done = conn.execute(stmt.on_conflict_do_update(
                index_elements=[c.host, c.username],
                set_={"seen_at": seen.at, "status": status}))
            if done.rowcount == 0:
                raise NoSuchAccount(f"no account {username}@{host}")

        await self._db.run(txn)

    async def delete(self, user: JID) -> None:
        host, username = _key(user)

        def txn(conn: Connection) -> None:
            c = last_activity.c
            conn.execute(delete(last_activity).where(c.host == host, c.username == username))

        await self._db.run(txn)


# Cache record: JSON [at, status], or b"-" for "nothing recorded".
_NONE = b"-"


def encode_last(seen: LastSeen | None) -> bytes:
    if seen is None:
        return _NONE
    return json.dumps([seen.at, seen.status], ensure_ascii=False).encode()


def decode_last(data: bytes) -> LastSeen | None:
    """Inverse of `encode_last`; ValueError for anything it did not write."""
    if data == _NONE:
        return None
    try:
        at, status = json.loads(data)
        if not isinstance(at, (int, float)) or not isinstance(status, str):
            raise ValueError("wrong types")
        return LastSeen(float(at), status)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"corrupt last-activity record: {e}") from e


class CachedLastActivityStore:
    """`LastActivityStore` with reads from a cache (storage/cached.py `ReadThrough`).

    `put` writes the database, then the cache (write-through); `delete` removes both. A `get`
    that overlapped a write on this node does not fill the cache. If the cache fails, reads
    go to the database and writes still reach it.

    Args:
        ttl: seconds an entry lives in the cache; bounds staleness across nodes.
    """

    def __init__(self, inner: LastActivityStore, cache: Cache, *, ttl: float = 86400.0) -> None:
        self._inner = inner
        self._cache: ReadThrough[LastSeen | None] = ReadThrough(
            cache, encode=encode_last, decode=decode_last, ttl=ttl, what="last-activity")

    @staticmethod
    def _key(user: JID) -> str:
        return f"last/{user}"

    async def get(self, user: JID) -> LastSeen | None:
        return await self._cache.get(self._key(user), lambda: self._inner.get(user))

    async def put(self, user: JID, seen: LastSeen) -> None:
        await self._cache.writing_through(self._key(user), lambda: self._inner.put(user, seen),
                                          LastSeen(seen.at, seen.status[:MAX_STATUS]))

    async def delete(self, user: JID) -> None:
        await self._cache.invalidating(self._key(user), lambda: self._inner.delete(user))
