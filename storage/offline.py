# tests: tests/storage/test_offline_store.py
"""XEP-0160 offline messages: what a user missed while no resource was available.

- `OfflineStore` is the contract, `SqlOfflineStore` its implementation (SQLite, PostgreSQL).
- `add` writes a batch in one transaction (the offline module's group commit) and enforces the
  per-user limit inside it: an item for a user whose queue is full, or for an account that does
  not exist, is refused (False) and nothing stored is dropped (XEP-0160 §3).
- Messages come back in arrival order (`seq`); `delete` removes the ones the client has
  acknowledged (XEP-0198), never more.
Not here: which messages are stored, delay stamps, delivery (modules/offline.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, delete, func, select

from storage.archive import _existing, users_in
from storage.bulk import insert_rows
from storage.db import Database
from storage.models import offline_messages
from stanzas.jid import JID


@dataclass(frozen=True, slots=True)
class NewOffline:
    user: JID                 # bare JID of the recipient
    stored_at: float          # POSIX seconds
    stanza: bytes             # the serialized <message/>


@dataclass(frozen=True, slots=True)
class OfflineMessage:
    seq: int                  # arrival order, unique
    stored_at: float
    stanza: bytes


class OfflineStore(Protocol):
    async def add(self, items: Sequence[NewOffline], limit: int) -> list[bool]:
        """Store `items` in order in one transaction; per item True if stored, False if its
        user already has `limit` messages or has no account."""
        ...

    async def list(self, user: JID, limit: int | None = None) -> list[OfflineMessage]:
        """The user's messages, oldest first (at most `limit`)."""
        ...

    async def delete(self, items: Sequence[tuple[JID, int]]) -> int:
        """Remove these (user, seq) messages in one transaction; returns how many were
        there (a message deleted twice counts once)."""
        ...

    async def count(self, user: JID) -> int: ...


def _key(user: JID) -> tuple[str, str]:
    assert user.local is not None, "offline messages belong to accounts"
    return user.domain, user.local


class SqlOfflineStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, items: Sequence[NewOffline], limit: int) -> list[bool]:
        keys = [_key(i.user) for i in items]

        def txn(conn: Connection) -> list[bool]:
            users = list(dict.fromkeys(keys))
            exists = _existing(conn, users)
            stored = {(r[0], r[1]): int(r[2]) for r in users_in(   # one count query per batch
                conn, "SELECT host, username, count(*) FROM offline_messages", users,
                " GROUP BY host, username")}
            room = {key: max(0, limit - stored.get(key, 0)) if key in exists else 0
                    for key in users}
            accepted: list[bool] = []
            rows = []
            for item, key in zip(items, keys):
                ok = room[key] > 0
                if ok:
                    room[key] -= 1
                    rows.append({"host": key[0], "username": key[1],
                                 "stored_at": item.stored_at, "stanza": item.stanza})
                accepted.append(ok)
            if rows:
                # Executemany in statements of about 1 MiB (storage/bulk.py: libpq keeps a
                # buffer as large as the largest statement per pooled connection): SQLite runs
                # the rows in order, PostgreSQL gets each run as one multi-row VALUES
                # (SQLAlchemy's insertmanyvalues), whose serial values are drawn row by row,
                # so `seq` follows the order of the batch either way.
                insert_rows(conn, offline_messages, rows)
            return accepted

        return await self._db.run(txn)

    async def list(self, user: JID, limit: int | None = None) -> list[OfflineMessage]:
        host, username = _key(user)

        def txn(conn: Connection) -> list[OfflineMessage]:
            c = offline_messages.c
            q = select(c.seq, c.stored_at, c.stanza).where(
                c.host == host, c.username == username).order_by(c.seq)
            if limit is not None:
                q = q.limit(limit)
            return [OfflineMessage(int(r.seq), float(r.stored_at), bytes(r.stanza))
                    for r in conn.execute(q)]

        return await self._db.run(txn)

    async def delete(self, items: Sequence[tuple[JID, int]]) -> int:
        by_user: dict[tuple[str, str], list[int]] = {}
        for user, seq in items:
            by_user.setdefault(_key(user), []).append(seq)
        if not by_user:
            return 0

        def txn(conn: Connection) -> int:
            c = offline_messages.c
            gone = 0
            for (host, username), seqs in by_user.items():
                wanted = sorted(set(seqs))
                for i in range(0, len(wanted), 500):
                    gone += conn.execute(delete(offline_messages).where(
                        c.host == host, c.username == username,
                        c.seq.in_(wanted[i:i + 500]))).rowcount
            return gone

        return await self._db.run(txn)

    async def count(self, user: JID) -> int:
        host, username = _key(user)

        def txn(conn: Connection) -> int:
            c = offline_messages.c
            return int(conn.execute(select(func.count()).select_from(offline_messages).where(
                c.host == host, c.username == username)).scalar_one())

        return await self._db.run(txn)
