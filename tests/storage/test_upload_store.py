# tests: storage/files.py
"""UploadStore contract on SQLite and PostgreSQL, and the disk FileStorage."""
from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from storage.db import Database
from storage.files import DiskFileStorage, Slot, SqlUploadStore
from storage.runner import ImmediateRunner
from tests.harness.backends import resolve


def slot(token: str, *, user: str = "alice", size: int = 100, at: float = 1000.0,
         ttl: float = 60.0, expires: float | None = 5000.0) -> Slot:
    return Slot(token=token, host="example.org", username=user, filename="a b.jpg", size=size,
                content_type="image/jpeg", created_at=at, slot_expires_at=at + ttl,
                expires_at=expires)


def test_slot_round_trips(db: Database) -> None:
    store = SqlUploadStore(db)
    resolve(store.create(slot("t1")))
    assert resolve(store.get("t1")) == slot("t1")
    assert resolve(store.get("nope")) is None


def test_claim_is_single_use_and_refused_after_the_deadline(db: Database) -> None:
    store = SqlUploadStore(db)
    resolve(store.create(slot("t1")))
    resolve(store.create(slot("t2")))
    assert resolve(store.claim("t1", 1001.0)) is True
    assert resolve(store.claim("t1", 1002.0)) is False        # used
    assert resolve(store.get("t1")).uploaded is True
    assert resolve(store.claim("t2", 1060.0)) is False        # past slot_expires_at
    assert resolve(store.claim("nope", 1001.0)) is False


def test_usage_counts_files_and_open_slots_of_one_user(db: Database) -> None:
    store = SqlUploadStore(db)
    resolve(store.create(slot("a1", size=100)))
    resolve(store.create(slot("a2", size=50)))
    resolve(store.create(slot("b1", user="bob", size=7)))
    resolve(store.claim("a1", 1001.0))
    assert resolve(store.usage("example.org", "alice", 1001.0)) == 150
    assert resolve(store.usage("example.org", "alice", 1061.0)) == 100   # a2's slot lapsed
    assert resolve(store.usage("example.org", "carol", 1001.0)) == 0


def test_expired_lists_old_files_and_unused_slots_then_delete(db: Database) -> None:
    store = SqlUploadStore(db)
    resolve(store.create(slot("kept", expires=None)))
    resolve(store.create(slot("file", expires=2000.0)))
    resolve(store.create(slot("unused", expires=9000.0)))
    resolve(store.claim("kept", 1001.0))
    resolve(store.claim("file", 1001.0))
    assert {s.token for s in resolve(store.expired(1500.0))} == {"unused"}
    gone = resolve(store.expired(2000.0))
    assert {s.token for s in gone} == {"file", "unused"}
    resolve(store.delete([s.token for s in gone]))
    assert resolve(store.get("file")) is None and resolve(store.get("kept")) is not None


def test_disk_storage_keeps_exactly_the_announced_bytes(tmp_path: Path) -> None:
    files = DiskFileStorage(tmp_path / "up", ImmediateRunner())
    data = bytes(range(256)) * 1000
    assert resolve(files.put("tok123", io.BytesIO(data), len(data))) is True
    f = resolve(files.open("tok123"))
    assert f is not None and f.read() == data
    f.close()
    # too short or too long: nothing is kept
    assert resolve(files.put("short", io.BytesIO(b"abc"), 4)) is False
    assert resolve(files.put("long", io.BytesIO(b"abcde"), 4)) is False
    assert resolve(files.open("short")) is None and resolve(files.open("long")) is None
    resolve(files.delete("tok123"))
    assert resolve(files.open("tok123")) is None
    with pytest.raises(ValueError):
        files.path("../etc")


def test_a_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    files = DiskFileStorage(tmp_path, ImmediateRunner())
    started, release = threading.Event(), threading.Event()

    class Slow(io.BytesIO):
        def read(self, n: int = -1) -> bytes:
            started.set()
            release.wait(5)
            return super().read(n)
    t = threading.Thread(target=files._put, args=("tok", Slow(b"x" * 10), 10))
    t.start()
    started.wait(5)
    assert resolve(files.open("tok")) is None
    release.set()
    t.join(5)
    f = resolve(files.open("tok"))
    assert f is not None and f.read() == b"x" * 10
    f.close()
