# tests: tests/storage/test_accounts_store.py
"""User accounts: who exists on which host, and the SCRAM credentials they log in with.

- `AccountStore` is the contract; `SqlAccountStore` its SQL implementation (SQLite, PostgreSQL);
  `CachedAccountStore` wraps any store with a `Cache` for the login path (`get`).
- A username is unique per host: the (host, username) primary key decides a sign-up race, and
  `create` answers False to the loser.
- Only SCRAM credentials are kept, never passwords (RFC 5802 §3; keyed "SCRAM-SHA-1" /
  "SCRAM-SHA-256"). Usernames and hosts arrive normalised (nodeprep/nameprep).
- An account can be disabled (XEP-0133 §4.3): it keeps its data, `get` says `disabled`, and
  the server refuses its logins; `disabled_users` lists them.
Not here: SASL (xmppd/sasl.py), registration (modules/register.py), `xmppctl` (xmppd/ctl.py).
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from storage.cache import Cache
from storage.cached import ReadThrough
from storage.db import Database
from storage.models import account_credentials, accounts
from storage.credentials import ScramCredentials

# RFC 4422 §3.1: a mechanism name is 1 to 20 upper-case letters, digits, hyphens or underscores.
_MECHANISM = re.compile(r"[A-Z0-9_-]{1,20}")


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    host: str
    created_at: float  # POSIX seconds
    credentials: dict[str, ScramCredentials]  # by SASL mechanism name
    disabled: bool = False


class AccountStore(Protocol):
    async def create(
        self, username: str, host: str, credentials: dict[str, ScramCredentials], created_at: float
    ) -> bool:
        """Add an account; False (and no change) if the username is taken on that host."""
        ...

    async def get(self, username: str, host: str) -> Account | None: ...

    async def set_credentials(self, username: str, host: str, credentials: dict[str, ScramCredentials]) -> bool:
        """Replace all credentials (a password change); False if there is no such account."""
        ...

    async def delete(self, username: str, host: str) -> bool:
        """Remove the account and its credentials; False if there was none."""
        ...

    async def list_users(self, host: str) -> list[str]:
        """Usernames on `host`, in code point order."""
        ...

    async def count(self, host: str) -> int: ...

    async def set_disabled(self, username: str, host: str, disabled: bool) -> bool:
        """Disable or re-enable an account; False if there is no such account."""
        ...

    async def disabled_users(self, host: str) -> list[str]:
        """Usernames of the disabled accounts on `host`, in code point order."""
        ...


def _credential_rows(username: str, host: str, credentials: dict[str, ScramCredentials]) -> list[dict[str, object]]:
    for mechanism in credentials:
        if not _MECHANISM.fullmatch(mechanism):
            raise ValueError(f"not a SASL mechanism name: {mechanism!r}")
    return [
        {
            "host": host,
            "username": username,
            "mechanism": mechanism,
            "salt": c.salt,
            "iterations": c.iterations,
            "stored_key": c.stored_key,
            "server_key": c.server_key,
        }
        for mechanism, c in credentials.items()
    ]


class SqlAccountStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, username: str, host: str, credentials: dict[str, ScramCredentials], created_at: float
    ) -> bool:
        rows = _credential_rows(username, host, credentials)

        def txn(conn: Connection) -> bool:
            try:
                # A savepoint, so a lost race leaves the transaction usable (PostgreSQL aborts it).
                with conn.begin_nested():
                    conn.execute(insert(accounts).values(host=host, username=username, created_at=created_at))
            except IntegrityError:
                return False  # (host, username) exists: someone else has this name
            if rows:
                conn.execute(insert(account_credentials), rows)
            return True

        return await self._db.run(txn)

    async def get(self, username: str, host: str) -> Account | None:
        def txn(conn: Connection) -> Account | None:
            # Every login runs this (the accounts are not cached in memory: `xmppctl` may
            # change them behind a server without an admin socket): driver SQL, which costs
            # a fraction of the CPU of building and compiling the SQLAlchemy form (issue 18).
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            rows = conn.exec_driver_sql(
                "SELECT a.created_at, a.disabled, c.mechanism, c.salt, c.iterations,"
                " c.stored_key, c.server_key FROM accounts a LEFT OUTER JOIN"
                " account_credentials c ON c.host = a.host AND c.username = a.username"
                f" WHERE a.host = {mark} AND a.username = {mark}", (host, username)).all()
            if not rows:
                return None
            creds = {
                r[2]: ScramCredentials(salt=bytes(r[3]), iterations=int(r[4]),
                                       stored_key=bytes(r[5]), server_key=bytes(r[6]))
                for r in rows
                if r[2] is not None
            }
            return Account(username=username, host=host, created_at=float(rows[0][0]),
                           credentials=creds, disabled=bool(rows[0][1]))

        return await self._db.run(txn)

    async def set_credentials(self, username: str, host: str, credentials: dict[str, ScramCredentials]) -> bool:
        rows = _credential_rows(username, host, credentials)

        def txn(conn: Connection) -> bool:
            # FOR UPDATE (PostgreSQL): a concurrent delete waits for us instead of racing the insert.
            found = conn.execute(
                select(accounts.c.username).where(accounts.c.host == host, accounts.c.username == username)
                .with_for_update()
            ).first()
            if found is None:
                return False
            c = account_credentials.c
            conn.execute(delete(account_credentials).where(c.host == host, c.username == username))
            if rows:
                conn.execute(insert(account_credentials), rows)
            return True

        return await self._db.run(txn)

    async def delete(self, username: str, host: str) -> bool:
        def txn(conn: Connection) -> bool:
            c = account_credentials.c
            # The foreign key cascades too; deleting explicitly keeps us correct without it.
            conn.execute(delete(account_credentials).where(c.host == host, c.username == username))
            gone = conn.execute(delete(accounts).where(accounts.c.host == host, accounts.c.username == username))
            return gone.rowcount > 0

        return await self._db.run(txn)

    async def list_users(self, host: str) -> list[str]:
        def txn(conn: Connection) -> list[str]:
            names = conn.execute(select(accounts.c.username).where(accounts.c.host == host)).scalars().all()
            # Sorted here, not by ORDER BY: PostgreSQL would sort by the database's collation.
            return sorted(names)

        return await self._db.run(txn)

    async def count(self, host: str) -> int:
        def txn(conn: Connection) -> int:
            n = conn.execute(select(func.count()).select_from(accounts).where(accounts.c.host == host)).scalar_one()
            return int(n)

        return await self._db.run(txn)

    async def set_disabled(self, username: str, host: str, disabled: bool) -> bool:
        def txn(conn: Connection) -> bool:
            done = conn.execute(update(accounts).where(
                accounts.c.host == host, accounts.c.username == username).values(disabled=disabled))
            return done.rowcount > 0

        return await self._db.run(txn)

    async def disabled_users(self, host: str) -> list[str]:
        def txn(conn: Connection) -> list[str]:
            return sorted(conn.execute(select(accounts.c.username).where(
                accounts.c.host == host, accounts.c.disabled.is_(True))).scalars())

        return await self._db.run(txn)


# Cache record format, version 2 (compact, no pickle):
#   b"\x00"                                   no such account
#   b"\x02" created_at:f64 n:u8 then n times  mechanism:u8-len str, iterations:u32,
#                                             salt, stored_key, server_key: u16-len bytes each,
#                                             then flags:u8 (1: disabled)
# Version 1 records (no flags byte, never disabled) are still read.
_ABSENT = b"\x00"
_V1 = 1
_V2 = 2


def encode_account(account: Account | None) -> bytes:
    if account is None:
        return _ABSENT
    out = [struct.pack("!BdB", _V2, account.created_at, len(account.credentials))]
    for mechanism, c in account.credentials.items():
        name = mechanism.encode("ascii")
        out.append(struct.pack("!B", len(name)) + name + struct.pack("!I", c.iterations))
        for blob in (c.salt, c.stored_key, c.server_key):
            out.append(struct.pack("!H", len(blob)) + blob)
    out.append(struct.pack("!B", 1 if account.disabled else 0))
    return b"".join(out)


def decode_account(data: bytes, username: str, host: str) -> Account | None:
    """Inverse of `encode_account`. Raises ValueError for anything it did not write."""
    if data == _ABSENT:
        return None
    reader = _Reader(data)
    version = reader.unpack("!B")[0]
    if version not in (_V1, _V2):
        raise ValueError("corrupt account record: unknown version")
    created_at, n = reader.unpack("!dB")
    creds: dict[str, ScramCredentials] = {}
    for _ in range(n):
        mechanism = reader.blob("!B").decode("ascii", errors="strict")
        (iterations,) = reader.unpack("!I")
        salt, stored_key, server_key = reader.blob("!H"), reader.blob("!H"), reader.blob("!H")
        creds[mechanism] = ScramCredentials(
            salt=salt, iterations=iterations, stored_key=stored_key, server_key=server_key
        )
    disabled = version == _V2 and bool(reader.unpack("!B")[0] & 1)
    if reader.pos != len(data):
        raise ValueError("corrupt account record: trailing bytes")
    return Account(username=username, host=host, created_at=float(created_at), credentials=creds,
                   disabled=disabled)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        try:
            values = struct.unpack_from(fmt, self.data, self.pos)
        except struct.error as e:
            raise ValueError(f"corrupt account record: {e}") from e
        self.pos += struct.calcsize(fmt)
        return values

    def blob(self, length_fmt: str) -> bytes:
        (size,) = self.unpack(length_fmt)
        if self.pos + size > len(self.data):
            raise ValueError("corrupt account record: truncated")
        self.pos += size
        return self.data[self.pos - size : self.pos]


class CachedAccountStore:
    """`AccountStore` with `get` (the login path) served from a cache.

    Writes go to `inner` first, then delete the cache entry. A `get` that overlapped a write on
    this node does not leave its result in the cache (a write counter, checked before and after
    the fill), so it cannot re-insert what the write replaced; across nodes sharing a Redis the
    same race is bounded by `ttl`. Other nodes' memory caches are not invalidated: use Redis
    when running several nodes. If the cache fails, `get` reads the database instead; a write
    whose invalidation fails raises `StorageError` after the database write went through (a
    retry is safe), since an unremoved entry could keep an old password working for `ttl`. Absence is cached
    too (shorter TTL), so guessing usernames does not reach the database.

    Args:
        ttl: seconds a cached account lives; also bounds staleness after another node's write.
        absent_ttl: seconds a cached "no such account" lives.
    """

    def __init__(self, inner: AccountStore, cache: Cache, *, ttl: float = 300.0, absent_ttl: float = 30.0) -> None:
        self._inner = inner
        self._cache: ReadThrough[Account | None] = ReadThrough(
            cache, encode=encode_account,
            ttl=lambda account: ttl if account else absent_ttl, what="account")

    @staticmethod
    def _key(username: str, host: str) -> str:
        return f"account/{host}/{username}"  # '/' is not allowed in a localpart or domainpart

    async def get(self, username: str, host: str) -> Account | None:
        # Logins keep working from the database while the cache is down.
        return await self._cache.get(self._key(username, host),
                                     lambda: self._inner.get(username, host),
                                     decode=lambda data: decode_account(data, username, host))

    async def create(
        self, username: str, host: str, credentials: dict[str, ScramCredentials], created_at: float
    ) -> bool:
        return await self._cache.invalidating(
            self._key(username, host),
            lambda: self._inner.create(username, host, credentials, created_at))

    async def set_credentials(self, username: str, host: str, credentials: dict[str, ScramCredentials]) -> bool:
        return await self._cache.invalidating(
            self._key(username, host), lambda: self._inner.set_credentials(username, host, credentials))

    async def delete(self, username: str, host: str) -> bool:
        return await self._cache.invalidating(
            self._key(username, host), lambda: self._inner.delete(username, host))

    async def list_users(self, host: str) -> list[str]:
        return await self._inner.list_users(host)

    async def count(self, host: str) -> int:
        return await self._inner.count(host)

    async def set_disabled(self, username: str, host: str, disabled: bool) -> bool:
        return await self._cache.invalidating(
            self._key(username, host), lambda: self._inner.set_disabled(username, host, disabled))

    async def disabled_users(self, host: str) -> list[str]:
        return await self._inner.disabled_users(host)
