# tests: tests/storage/test_settings_store.py
"""Host settings: small named values of a virtual host that admins change while the server
runs and that survive a restart — the message of the day and its version (XEP-0133 §4.23),
in-band registration allow/deny lists.

- `HostSettingsStore` is the contract, `SqlHostSettingsStore` its SQL implementation (table
  `host_settings`, SQLite and PostgreSQL). Values are opaque bytes; the module that names a
  setting owns its encoding. `put` inserts or replaces.
Not here: what a setting means (modules/admin_commands/, modules/register.py).
"""
from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.db import Database
from storage.models import host_settings

MAX_NAME = 64


class HostSettingsStore(Protocol):
    async def get(self, host: str, name: str) -> bytes | None: ...

    async def put(self, host: str, name: str, value: bytes, updated_at: float) -> None:
        """Insert or replace the value of `name` on `host`."""
        ...

    async def delete(self, host: str, name: str) -> bool:
        """Remove it; True if there was one."""
        ...


def _check(name: str) -> None:
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"a setting name has 1 to {MAX_NAME} characters: {name!r}")


class SqlHostSettingsStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert: Any = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    async def get(self, host: str, name: str) -> bytes | None:
        _check(name)
        c = host_settings.c

        def txn(conn: Connection) -> bytes | None:
            value = conn.execute(select(c.value).where(c.host == host, c.name == name)).scalar()
            return None if value is None else bytes(value)
        return await self._db.run(txn)

    async def put(self, host: str, name: str, value: bytes, updated_at: float) -> None:
        _check(name)
        stmt = self._insert(host_settings).values(host=host, name=name, value=bytes(value),
                                                  updated_at=updated_at)
        stmt = stmt.on_conflict_do_update(
            index_elements=["host", "name"],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at})

        def txn(conn: Connection) -> None:
            conn.execute(stmt)
        await self._db.run(txn)

    async def delete(self, host: str, name: str) -> bool:
        _check(name)
        c = host_settings.c

        def txn(conn: Connection) -> bool:
            return conn.execute(delete(host_settings).where(
                c.host == host, c.name == name)).rowcount > 0
        return await self._db.run(txn)
