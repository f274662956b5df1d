# tests: tests/storage/test_roster_store.py
"""Rosters (RFC 6121 §2) with their subscription states (§3, Appendix A) and versions (§2.6).

- `RosterStore` is the contract; `SqlRosterStore` its SQL implementation (SQLite, PostgreSQL);
  `CachedRosterStore` wraps any store with a `Cache`, so reading a roster (login, a subscription
  request to an offline user) is one cache lookup after the first.
- A roster is read whole (`get`) and written one item at a time (`put`, `remove`), each write
  in one transaction with its version bump, so the version a client sees always matches the
  items it got. `bump=False` writes state the user's clients never see (a pending request from
  someone not in the roster): XEP-0237 §5 "internal states ... do not necessitate a change to
  the version".
- Users and contacts are bare JIDs, already prepared.
Not here: the rules deciding what to write (modules/roster/).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.cache import Cache
from storage.cached import ReadThrough
from storage.db import Database
from storage.models import roster_items, roster_versions
from stanzas.jid import JID

Subscription = Literal["none", "to", "from", "both"]
SUBSCRIPTIONS: tuple[Subscription, ...] = ("none", "to", "from", "both")


@dataclass(frozen=True, slots=True)
class RosterItem:
    contact: JID                        # bare JID
    name: str = ""                      # "" = none
    groups: tuple[str, ...] = ()
    subscription: Subscription = "none"
    ask: bool = False                   # pending out: the user asked the contact (ask='subscribe')
    pending_in: bool = False            # the contact asked the user, no answer yet
    approved: bool = False              # pre-approved (RFC 6121 §3.4)
    listed: bool = True                 # False: only a pending request, not in the user's roster


@dataclass(frozen=True, slots=True)
class Roster:
    version: int                        # 0 before the first change
    items: dict[JID, RosterItem]        # by contact; includes unlisted rows


class RosterStore(Protocol):
    async def get(self, user: JID) -> Roster: ...

    async def put(self, user: JID, item: RosterItem, *, bump: bool = True) -> int:
        """Insert or replace the item for `item.contact`; returns the roster version after it."""
        ...

    async def remove(self, user: JID, contact: JID, *, bump: bool = True) -> int:
        """Delete the item (absent is fine); returns the roster version after it."""
        ...

    async def delete_user(self, user: JID) -> None:
        """Forget the user's roster and version (account deletion)."""
        ...

    async def holders(self, contact: JID) -> list[JID]:
        """The users (bare JIDs, in code point order) whose rosters hold a row for `contact`."""
        ...


def _key(user: JID) -> tuple[str, str]:
    assert user.local is not None, "rosters belong to accounts"
    return user.domain, user.local


def _jid(text: str) -> JID:
    """A stored (already prepared) bare JID, rebuilt without preparing it again."""
    local, at, domain = text.partition("@")
    return JID(local, domain) if at else JID(None, text)


def _row(item: RosterItem) -> dict[str, Any]:
    return {"contact": str(item.contact), "name": item.name,
            "groups": json.dumps(list(item.groups), ensure_ascii=False),
            "subscription": item.subscription, "ask": item.ask, "pending_in": item.pending_in,
            "approved": item.approved, "listed": item.listed}


class SqlRosterStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    async def get(self, user: JID) -> Roster:
        host, username = _key(user)

        def txn(conn: Connection) -> Roster:
            c = roster_items.c
            rows = conn.execute(select(c.contact, c.name, c.groups, c.subscription, c.ask,
                                       c.pending_in, c.approved, c.listed)
                                .where(c.host == host, c.username == username)).all()
            version = conn.execute(select(roster_versions.c.version).where(
                roster_versions.c.host == host, roster_versions.c.username == username)
            ).scalar()
            items = {}
            for r in rows:
                contact = _jid(r.contact)
                items[contact] = RosterItem(
                    contact, r.name, tuple(json.loads(r.groups)), r.subscription, bool(r.ask),
                    bool(r.pending_in), bool(r.approved), bool(r.listed))
            return Roster(int(version or 0), items)

        return await self._db.run(txn)

    def _version(self, conn: Connection, host: str, username: str, bump: bool) -> int:
        v = roster_versions.c
        if not bump:
            found = conn.execute(select(v.version).where(v.host == host,
                                                         v.username == username)).scalar()
            return int(found or 0)
        stmt = self._insert(roster_versions).values(host=host, username=username, version=1)
        stmt = stmt.on_conflict_do_update(index_elements=[v.host, v.username],
                                          set_={"version": roster_versions.c.version + 1})
        return int(conn.execute(stmt.returning(v.version)).scalar_one())

    async def put(self, user: JID, item: RosterItem, *, bump: bool = True) -> int:
        host, username = _key(user)
        row = _row(item)

        def txn(conn: Connection) -> int:
            stmt = self._insert(roster_items).values(host=host, username=username, **row)
            c = roster_items.c
            stmt = stmt.on_conflict_do_update(
                index_elements=[c.host, c.username, c.contact],
                set_={k: v for k, v in row.items() if k != "contact"})
            conn.execute(stmt)
            return self._version(conn, host, username, bump)

        return await self._db.run(txn)

    async def remove(self, user: JID, contact: JID, *, bump: bool = True) -> int:
        host, username = _key(user)

        def txn(conn: Connection) -> int:
            c = roster_items.c
            conn.execute(delete(roster_items).where(c.host == host, c.username == username,
                                                    c.contact == str(contact)))
            return self._version(conn, host, username, bump)

        return await self._db.run(txn)

    async def delete_user(self, user: JID) -> None:
        host, username = _key(user)

        def txn(conn: Connection) -> None:
            c, v = roster_items.c, roster_versions.c
            conn.execute(delete(roster_items).where(c.host == host, c.username == username))
            conn.execute(delete(roster_versions).where(v.host == host, v.username == username))

        await self._db.run(txn)

    async def holders(self, contact: JID) -> list[JID]:
        def txn(conn: Connection) -> list[JID]:
            c = roster_items.c
            rows = conn.execute(select(c.host, c.username).where(c.contact == str(contact))).all()
            return sorted((JID(r.username, r.host) for r in rows), key=str)

        return await self._db.run(txn)


# Cache record, version 1: JSON {"f": 1, "v": version, "i": [[contact, name, [groups],
# subscription, ask, pending_in, approved, listed], ...]}.
_FORMAT = 1


def encode_roster(roster: Roster) -> bytes:
    return json.dumps({"f": _FORMAT, "v": roster.version, "i": [
        [str(i.contact), i.name, list(i.groups), i.subscription, i.ask, i.pending_in,
         i.approved, i.listed] for i in roster.items.values()]},
        ensure_ascii=False, separators=(",", ":")).encode()


def decode_roster(data: bytes) -> Roster:
    """Inverse of `encode_roster`; ValueError for anything it did not write."""
    try:
        doc = json.loads(data)
        if doc["f"] != _FORMAT:
            raise ValueError("unknown roster record format")
        items = {}
        for contact, name, groups, sub, ask, pin, approved, listed in doc["i"]:
            if sub not in SUBSCRIPTIONS:
                raise ValueError(f"bad subscription {sub!r}")
            jid = _jid(contact)
            items[jid] = RosterItem(jid, name, tuple(groups), sub, bool(ask), bool(pin),
                                    bool(approved), bool(listed))
        return Roster(int(doc["v"]), items)
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"corrupt roster record: {e}") from e


class CachedRosterStore:
    """`RosterStore` with `get` served from a cache (storage/cached.py `ReadThrough`).

    Writes go to `inner` first, then delete the cache entry; a `get` that overlapped a write on
    this node does not fill the cache, so it cannot put back what the write replaced. Across
    nodes sharing Redis the same race is bounded by `ttl`. If the cache fails, reads go to the
    database.

    Args:
        ttl: seconds a cached roster lives.
    """

    def __init__(self, inner: RosterStore, cache: Cache, *, ttl: float = 3600.0) -> None:
        self._inner = inner
        self._cache: ReadThrough[Roster] = ReadThrough(
            cache, encode=encode_roster, decode=decode_roster, ttl=ttl, what="roster")

    @staticmethod
    def _key(user: JID) -> str:
        return f"roster/{user}"

    async def get(self, user: JID) -> Roster:
        return await self._cache.get(self._key(user), lambda: self._inner.get(user))

    async def put(self, user: JID, item: RosterItem, *, bump: bool = True) -> int:
        return await self._cache.invalidating(
            self._key(user), lambda: self._inner.put(user, item, bump=bump))

    async def remove(self, user: JID, contact: JID, *, bump: bool = True) -> int:
        return await self._cache.invalidating(
            self._key(user), lambda: self._inner.remove(user, contact, bump=bump))

    async def delete_user(self, user: JID) -> None:
        await self._cache.invalidating(self._key(user), lambda: self._inner.delete_user(user))

    async def holders(self, contact: JID) -> list[JID]:
        return await self._inner.holders(contact)
