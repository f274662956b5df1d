# tests: tests/storage/test_invite_store.py
"""XEP-0401 / XEP-0445 invitations: single-use, expiring tokens that let someone register.

- `redeem(token, username, now)` marks an unused, unexpired token used by `username`,
  atomically (one UPDATE ... WHERE used_at IS NULL AND expires_at > now): of two sign-ups with
  one token exactly one wins. A sign-up that then fails (the name was taken) calls `release`,
  so the token is not spent by a failed registration (XEP-0445 §4: "single-use tokens MUST NOT
  be considered used until the actual registration has succeeded").
- `reserved(host, username, now)`: an unexpired, unused account invitation for that name
  (XEP-0401 §5, XEP-0445 §5: "the server MUST reserve the username at least until the
  corresponding token expires").
- `purge(before)` deletes invitations that expired, or were used, before `before` (the module
  keeps them a while, so a used link says "already used" rather than "unknown").
Not here: who may invite, the web page, in-band registration (modules/invites.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy import Connection, delete, insert, or_, select, update

from storage.db import Database
from storage.models import invites

Kind = Literal["roster", "account"]


@dataclass(frozen=True, slots=True)
class Invite:
    token: str
    host: str
    kind: str               # "roster" (a user's invitation) or "account" (an admin's)
    inviter: str            # bare JID; "" for the server's admin
    username: str           # reserved name for "account" invitations; "" = the invitee picks
    created_at: float
    expires_at: float
    used_at: float | None = None
    used_by: str | None = None

    def usable(self, now: float) -> bool:
        return self.used_at is None and self.expires_at > now


class InviteStore(Protocol):
    async def create(self, invite: Invite) -> None: ...
    async def get(self, token: str) -> Invite | None: ...
    async def redeem(self, token: str, username: str, now: float) -> bool: ...
    async def release(self, token: str) -> None: ...
    async def reserved(self, host: str, username: str, now: float) -> str | None: ...
    async def list(self, host: str, inviter: str | None = None) -> list[Invite]: ...
    async def delete(self, token: str) -> bool: ...
    async def purge(self, before: float) -> int: ...


_COLUMNS = ("token", "host", "kind", "inviter", "username", "created_at", "expires_at",
            "used_at", "used_by")


def _invite(row: object) -> Invite:
    values = {name: getattr(row, name) for name in _COLUMNS}
    return Invite(**values)


class SqlInviteStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, invite: Invite) -> None:
        values = {name: getattr(invite, name) for name in _COLUMNS}
        await self._db.run(lambda conn: conn.execute(insert(invites).values(**values)))

    async def get(self, token: str) -> Invite | None:
        def txn(conn: Connection) -> Invite | None:
            row = conn.execute(select(*invites.c).where(invites.c.token == token)).first()
            return None if row is None else _invite(row)

        return await self._db.run(txn)

    async def redeem(self, token: str, username: str, now: float) -> bool:
        def txn(conn: Connection) -> bool:
            c = invites.c
            done = conn.execute(update(invites).where(
                c.token == token, c.used_at.is_(None), c.expires_at > now).values(
                used_at=now, used_by=username))
            return bool(done.rowcount == 1)

        return await self._db.run(txn)

    async def release(self, token: str) -> None:
        await self._db.run(lambda conn: conn.execute(update(invites).where(
            invites.c.token == token).values(used_at=None, used_by=None)))

    async def reserved(self, host: str, username: str, now: float) -> str | None:
        def txn(conn: Connection) -> str | None:
            c = invites.c
            return conn.execute(select(c.token).where(
                c.host == host, c.username == username, c.kind == "account",
                c.used_at.is_(None), c.expires_at > now).limit(1)).scalar()

        return await self._db.run(txn)

    async def list(self, host: str, inviter: str | None = None) -> list[Invite]:
        def txn(conn: Connection) -> list[Invite]:
            c = invites.c
            q = select(*invites.c).where(c.host == host)
            if inviter is not None:
                q = q.where(c.inviter == inviter)
            return [_invite(r) for r in conn.execute(q.order_by(c.created_at, c.token))]

        return await self._db.run(txn)

    async def delete(self, token: str) -> bool:
        def txn(conn: Connection) -> bool:
            return bool(conn.execute(delete(invites).where(invites.c.token == token))
                        .rowcount == 1)

        return await self._db.run(txn)

    async def purge(self, before: float) -> int:
        def txn(conn: Connection) -> int:
            c = invites.c
            return int(conn.execute(delete(invites).where(
                or_(c.expires_at <= before, c.used_at <= before))).rowcount)

        return await self._db.run(txn)
