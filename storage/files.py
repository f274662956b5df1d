# tests: tests/storage/test_upload_store.py, tests/modules/test_http_upload.py
"""XEP-0363 uploads: where the bytes go (`FileStorage`) and what is known about each slot
(`UploadStore`).

- `FileStorage` is the interface an object store can implement later; `DiskFileStorage` keeps
  each file as `<directory>/<token[:2]>/<token>`, written to a temporary name and renamed, so
  a reader never sees a half-written file. Its blocking I/O runs on the storage thread pool.
- `UploadStore` keeps slots in the `upload_slots` table (schema 0006), so files and their
  metadata survive restarts: the owner (for quotas), the announced size and content type (a
  PUT must match), the slot's deadline for the PUT, and the file's expiry. `claim` is the
  single-use check: one atomic UPDATE, so of two PUTs on a slot exactly one wins.
Not here: the rules (modules/http_upload.py), HTTP (xmppd/listeners/http.py).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy import Connection, delete, func, insert, or_, select, update
from twisted.internet.defer import Deferred

from storage.db import Database
from storage.models import upload_slots
from storage.runner import Runner

_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Slot:
    token: str              # >= 128 random bits, URL-safe; the file's name everywhere
    host: str
    username: str
    filename: str
    size: int
    content_type: str
    created_at: float
    slot_expires_at: float  # PUT after this: refused
    expires_at: float | None  # the file's end (None: kept until deleted)
    uploaded: bool = False


class UploadStore(Protocol):
    async def create(self, slot: Slot) -> None: ...

    async def get(self, token: str) -> Slot | None: ...

    async def claim(self, token: str, now: float) -> bool:
        """Mark an unused, unexpired slot used; False if it was used or expired (single use)."""
        ...

    async def usage(self, host: str, username: str, now: float) -> int:
        """Bytes a user holds: uploaded files and slots still open for a PUT."""
        ...

    async def expired(self, now: float, limit: int = 500) -> list[Slot]:
        """Files past their expiry and slots never used by their deadline."""
        ...

    async def delete(self, tokens: list[str]) -> None: ...


class SqlUploadStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, slot: Slot) -> None:
        def txn(conn: Connection) -> None:
            conn.execute(insert(upload_slots).values(
                token=slot.token, host=slot.host, username=slot.username,
                filename=slot.filename, size=slot.size, content_type=slot.content_type,
                created_at=slot.created_at, slot_expires_at=slot.slot_expires_at,
                expires_at=slot.expires_at, uploaded=slot.uploaded))
        await self._db.run(txn)

    async def get(self, token: str) -> Slot | None:
        def txn(conn: Connection) -> Slot | None:
            row = conn.execute(select(upload_slots).where(upload_slots.c.token == token)).first()
            return _slot(row) if row is not None else None
        return await self._db.run(txn)

    async def claim(self, token: str, now: float) -> bool:
        def txn(conn: Connection) -> bool:
            result = conn.execute(
                update(upload_slots)
                .where(upload_slots.c.token == token, upload_slots.c.uploaded.is_(False),
                       upload_slots.c.slot_expires_at > now)
                .values(uploaded=True))
            return bool(result.rowcount == 1)
        return await self._db.run(txn)

    async def usage(self, host: str, username: str, now: float) -> int:
        def txn(conn: Connection) -> int:
            c = upload_slots.c
            total = conn.execute(
                select(func.coalesce(func.sum(c.size), 0))
                .where(c.host == host, c.username == username,
                       or_(c.uploaded.is_(True), c.slot_expires_at > now))).scalar_one()
            return int(total)
        return await self._db.run(txn)

    async def expired(self, now: float, limit: int = 500) -> list[Slot]:
        def txn(conn: Connection) -> list[Slot]:
            c = upload_slots.c
            rows = conn.execute(
                select(upload_slots)
                .where(or_(c.expires_at <= now,
                           (c.uploaded.is_(False)) & (c.slot_expires_at <= now)))
                .order_by(c.created_at).limit(limit)).all()
            return [_slot(r) for r in rows]
        return await self._db.run(txn)

    async def delete(self, tokens: list[str]) -> None:
        if not tokens:
            return

        def txn(conn: Connection) -> None:
            conn.execute(delete(upload_slots).where(upload_slots.c.token.in_(tokens)))
        await self._db.run(txn)


def _slot(row: object) -> Slot:
    r = row._mapping  # type: ignore[attr-defined]
    return Slot(token=r["token"], host=r["host"], username=r["username"],
                filename=r["filename"], size=int(r["size"]), content_type=r["content_type"],
                created_at=float(r["created_at"]), slot_expires_at=float(r["slot_expires_at"]),
                expires_at=None if r["expires_at"] is None else float(r["expires_at"]),
                uploaded=bool(r["uploaded"]))


class FileStorage(Protocol):
    """Where uploaded bytes live. Every call may block, so each returns a Deferred."""

    def put(self, token: str, source: BinaryIO, size: int) -> Deferred[bool]:
        """Copy exactly `size` bytes from `source`; False (nothing kept) if it held another
        amount."""
        ...

    def open(self, token: str) -> Deferred[BinaryIO | None]:
        """The file for reading, or None if there is none."""
        ...

    def delete(self, token: str) -> Deferred[None]: ...


class DiskFileStorage:
    """Files under one directory, two levels: `<dir>/<token[:2]>/<token>`."""

    def __init__(self, directory: str | Path, runner: Runner) -> None:
        self.root = Path(directory)
        self._runner = runner

    def path(self, token: str) -> Path:
        if not token or "/" in token or token.startswith("."):
            raise ValueError("bad token")
        return self.root / token[:2] / token

    def put(self, token: str, source: BinaryIO, size: int) -> Deferred[bool]:
        return self._runner.run(self._put, token, source, size)

    def _put(self, token: str, source: BinaryIO, size: int) -> bool:
        final = self.path(token)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(final.name + ".part")
        written = 0
        with open(tmp, "wb") as out:
            while True:
                chunk = source.read(_CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > size:
                    break
                out.write(chunk)
        if written != size:
            tmp.unlink(missing_ok=True)
            return False
        os.replace(tmp, final)
        return True

    def open(self, token: str) -> Deferred[BinaryIO | None]:
        return self._runner.run(self._open, token)

    def _open(self, token: str) -> BinaryIO | None:
        try:
            return open(self.path(token), "rb")
        except (FileNotFoundError, ValueError):
            return None

    def delete(self, token: str) -> Deferred[None]:
        return self._runner.run(self._delete, token)

    def _delete(self, token: str) -> None:
        try:
            path = self.path(token)
        except ValueError:
            return
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".part").unlink(missing_ok=True)
        try:
            path.parent.rmdir()         # only if empty
        except OSError:
            pass

    def wipe(self) -> None:
        """Remove every file (tests)."""
        shutil.rmtree(self.root, ignore_errors=True)
