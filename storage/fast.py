# tests: tests/storage/test_fast_store.py
"""XEP-0484 FAST tokens: per account and client (the XEP-0388 <user-agent id/>), two slots.

- `issue` puts a token into the client's 'new' slot, replacing an unused one there (§3.4:
  "upon providing a new token ... SHOULD invalidate any tokens previously generated that have
  not been used"); the 'current' slot keeps working until the new token is used, so a client
  that lost the <success/> carrying it can still log in (§3.4, §6).
- `tokens` returns both slots for verification; `used(slot)` after a successful login with
  the 'new' token moves it to 'current', dropping the old one (§6: "move the token from the
  'new' slot to the 'current' slot").
- `revoke` removes one client's tokens (log out that device) or all of an account's (a
  password change); `invalidate` one token (§3.5). Deleting the account removes them (FK).
- Stored hashed: the `key` column is SHA-256 of the token. FAST's HT-SHA-256-* mechanisms
  prove knowledge of the token with HMAC-SHA-256 keyed by the token; tokens are longer than
  the hash's 64-byte block, so HMAC hashes them first (RFC 2104 §2) and the stored SHA-256 is
  the HMAC key itself. The token string is therefore never stored (nor logged), but a copy of
  the database is enough to compute the proofs: tokens expire, are per device, revocable and
  rotated, and a password change revokes them all (docs/MOBILE.md).
Not here: the mechanisms (xmppd/fast.py), who gets a token (xmppd/sasl2.py and the session).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.db import Database
from storage.models import fast_tokens


@dataclass(frozen=True, slots=True)
class StoredToken:
    slot: str               # "new" or "current"
    key: bytes              # SHA-256 of the token
    mechanism: str          # the FAST mechanism it is bound to (§3.3)
    issued_at: float
    expires_at: float
    device: str = ""


@dataclass(frozen=True, slots=True)
class Device:
    client_id: str
    device: str
    expires_at: float       # of its newest token


class FastTokenStore(Protocol):
    async def issue(self, host: str, username: str, client_id: str, token: StoredToken) -> None:
        """Put `token` into the client's 'new' slot (replacing an unused one there)."""
        ...

    async def tokens(self, host: str, username: str, client_id: str) -> list[StoredToken]:
        """The client's tokens, 'new' first; expired ones included (the caller checks)."""
        ...

    async def used(self, host: str, username: str, client_id: str, key: bytes) -> None:
        """A login succeeded with the token `key`: if it is the 'new' one it becomes 'current'
        (the older 'current' is gone)."""
        ...

    async def invalidate(self, host: str, username: str, client_id: str, key: bytes) -> None: ...

    async def revoke(self, host: str, username: str, client_id: str | None = None) -> int:
        """Remove one client's tokens, or all of the account's; returns how many."""
        ...

    async def devices(self, host: str, username: str) -> list[Device]: ...

    async def purge_expired(self, now: float) -> int: ...


class SqlFastTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    async def issue(self, host: str, username: str, client_id: str, token: StoredToken) -> None:
        values = {"key": token.key, "mechanism": token.mechanism, "issued_at": token.issued_at,
                  "expires_at": token.expires_at, "device": token.device[:255]}

        def txn(conn: Connection) -> None:
            c = fast_tokens.c
            stmt = self._insert(fast_tokens).values(host=host, username=username,
                                                    client_id=client_id, slot="new", **values)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[c.host, c.username, c.client_id, c.slot], set_=values))

        await self._db.run(txn)

    async def tokens(self, host: str, username: str, client_id: str) -> list[StoredToken]:
        def txn(conn: Connection) -> list[StoredToken]:
            c = fast_tokens.c
            rows = conn.execute(select(c.slot, c.key, c.mechanism, c.issued_at, c.expires_at,
                                       c.device).where(c.host == host, c.username == username,
                                                       c.client_id == client_id)).all()
            found = [StoredToken(r.slot, bytes(r.key), r.mechanism, float(r.issued_at),
                                 float(r.expires_at), r.device) for r in rows]
            return sorted(found, key=lambda t: t.slot != "new")

        return await self._db.run(txn)

    async def used(self, host: str, username: str, client_id: str, key: bytes) -> None:
        def txn(conn: Connection) -> None:
            c = fast_tokens.c
            mine = and_(c.host == host, c.username == username, c.client_id == client_id)
            new = conn.execute(select(c.key).where(mine, c.slot == "new")).scalar()
            if new is None or bytes(new) != key:
                return
            conn.execute(delete(fast_tokens).where(mine, c.slot == "current"))
            conn.execute(update(fast_tokens).where(mine, c.slot == "new")
                         .values(slot="current"))

        await self._db.run(txn)

    async def invalidate(self, host: str, username: str, client_id: str, key: bytes) -> None:
        def txn(conn: Connection) -> None:
            c = fast_tokens.c
            conn.execute(delete(fast_tokens).where(c.host == host, c.username == username,
                                                   c.client_id == client_id, c.key == key))

        await self._db.run(txn)

    async def revoke(self, host: str, username: str, client_id: str | None = None) -> int:
        def txn(conn: Connection) -> int:
            c = fast_tokens.c
            where = and_(c.host == host, c.username == username)
            if client_id is not None:
                where = and_(where, c.client_id == client_id)
            return int(conn.execute(delete(fast_tokens).where(where)).rowcount)

        return await self._db.run(txn)

    async def devices(self, host: str, username: str) -> list[Device]:
        def txn(conn: Connection) -> list[Device]:
            c = fast_tokens.c
            rows = conn.execute(select(c.client_id, c.device, c.expires_at).where(
                c.host == host, c.username == username)).all()
            newest: dict[str, Device] = {}
            for r in rows:
                seen = newest.get(r.client_id)
                if seen is None or r.expires_at > seen.expires_at:
                    newest[r.client_id] = Device(r.client_id, r.device, float(r.expires_at))
            return sorted(newest.values(), key=lambda d: d.client_id)

        return await self._db.run(txn)

    async def purge_expired(self, now: float) -> int:
        def txn(conn: Connection) -> int:
            return int(conn.execute(delete(fast_tokens).where(
                fast_tokens.c.expires_at <= now)).rowcount)

        return await self._db.run(txn)
