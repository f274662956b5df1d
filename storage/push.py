# tests: tests/storage/test_push_store.py
"""XEP-0357 push registrations: which app servers (JID + node) notify a user's devices, with
the publish-options their app server wants back (the secret).

- `add` inserts or replaces the (service, node) registration (§5: enabling the same pair
  again updates it); `remove` deletes one node of a service, or all of the service's (§6:
  <disable/> without a node); `list` in creation order. Deleting the account removes them.
Not here: limits and notifications (modules/push.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Connection, and_, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.db import Database
from storage.models import push_registrations


@dataclass(frozen=True, slots=True)
class PushRegistration:
    service: str                                    # the app server's JID
    node: str
    options: dict[str, list[str]] = field(default_factory=dict)   # publish-options fields
    created_at: float = 0.0


class PushStore(Protocol):
    async def add(self, host: str, username: str, reg: PushRegistration) -> None: ...

    async def remove(self, host: str, username: str, service: str,
                     node: str | None = None) -> int:
        """Remove `node` of `service`, or every node of it; returns how many."""
        ...

    async def list(self, host: str, username: str) -> list[PushRegistration]: ...


class SqlPushStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    async def add(self, host: str, username: str, reg: PushRegistration) -> None:
        options = json.dumps(reg.options, ensure_ascii=False, sort_keys=True)

        def txn(conn: Connection) -> None:
            c = push_registrations.c
            stmt = self._insert(push_registrations).values(
                host=host, username=username, service=reg.service, node=reg.node,
                options=options, created_at=reg.created_at)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[c.host, c.username, c.service, c.node],
                set_={"options": options}))

        await self._db.run(txn)

    async def remove(self, host: str, username: str, service: str,
                     node: str | None = None) -> int:
        def txn(conn: Connection) -> int:
            c = push_registrations.c
            where = and_(c.host == host, c.username == username, c.service == service)
            if node is not None:
                where = and_(where, c.node == node)
            return int(conn.execute(delete(push_registrations).where(where)).rowcount)

        return await self._db.run(txn)

    async def list(self, host: str, username: str) -> list[PushRegistration]:
        def txn(conn: Connection) -> list[PushRegistration]:
            c = push_registrations.c
            rows = conn.execute(select(c.service, c.node, c.options, c.created_at).where(
                c.host == host, c.username == username).order_by(c.created_at, c.service,
                                                                 c.node)).all()
            return [PushRegistration(r.service, r.node, _options(r.options), float(r.created_at))
                    for r in rows]

        return await self._db.run(txn)


def _options(text: str) -> dict[str, list[str]]:
    try:
        found = json.loads(text)
    except json.JSONDecodeError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): [str(v) for v in vs] for k, vs in found.items() if isinstance(vs, list)}
