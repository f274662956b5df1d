"""LastActivityStore contract on SQLite and PostgreSQL, bare and behind each cache."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete, insert

from storage.cache import MemoryCache, RedisCache
from storage.db import Database
from storage.errors import NoSuchAccount, StorageError
from storage.last import (
    CachedLastActivityStore,
    LastActivityStore,
    LastSeen,
    SqlLastActivityStore,
    decode_last,
    encode_last,
)
from storage.models import accounts
from storage.runner import ImmediateRunner
from tests.harness.backends import FakeClock, redis_url, require, resolve
from stanzas.jid import JID

ALICE = JID.parse("alice@example.org")
BOB = JID.parse("bob@example.org")


def _accounts(db: Database) -> None:
    def txn(conn):  # type: ignore[no-untyped-def]
        for user in ("alice", "bob"):
            conn.execute(insert(accounts).values(host="example.org", username=user,
                                                 created_at=1.0))
    resolve(db.run(txn))


@pytest.fixture(params=["sql", "cached-memory", "cached-redis"])
def store(request: pytest.FixtureRequest, db: Database) -> Iterator[LastActivityStore]:
    _accounts(db)
    sql = SqlLastActivityStore(db)
    if request.param == "sql":
        yield sql
    elif request.param == "cached-memory":
        yield CachedLastActivityStore(sql, MemoryCache(clock=FakeClock()))
    else:
        require("redis")
        space = redis_url()
        cache = RedisCache(space.url, runner=ImmediateRunner(), prefix=space.prefix)
        try:
            yield CachedLastActivityStore(sql, cache)
        finally:
            cache.close()
            space.cleanup()


def test_nothing_recorded_is_none(store: LastActivityStore) -> None:
    assert resolve(store.get(ALICE)) is None
    assert resolve(store.get(ALICE)) is None        # again, from a cache if any


def test_put_reads_back(store: LastActivityStore) -> None:
    resolve(store.put(ALICE, LastSeen(1_700_000_000.5, "Heading home ☂")))
    assert resolve(store.get(ALICE)) == LastSeen(1_700_000_000.5, "Heading home ☂")


def test_put_after_a_cached_miss_is_visible(store: LastActivityStore) -> None:
    assert resolve(store.get(ALICE)) is None
    resolve(store.put(ALICE, LastSeen(5.0, "")))
    assert resolve(store.get(ALICE)) == LastSeen(5.0, "")


def test_put_is_an_upsert(store: LastActivityStore) -> None:
    resolve(store.put(ALICE, LastSeen(1.0, "first")))
    resolve(store.get(ALICE))
    resolve(store.put(ALICE, LastSeen(2.0, "second")))
    assert resolve(store.get(ALICE)) == LastSeen(2.0, "second")


def test_users_are_isolated(store: LastActivityStore) -> None:
    resolve(store.put(ALICE, LastSeen(1.0, "a")))
    resolve(store.put(BOB, LastSeen(2.0, "b")))
    assert resolve(store.get(ALICE)) == LastSeen(1.0, "a")
    resolve(store.delete(BOB))
    assert resolve(store.get(BOB)) is None
    assert resolve(store.get(ALICE)) == LastSeen(1.0, "a")


def test_delete_forgets(store: LastActivityStore) -> None:
    resolve(store.put(ALICE, LastSeen(1.0, "x")))
    resolve(store.get(ALICE))
    resolve(store.delete(ALICE))
    assert resolve(store.get(ALICE)) is None
    resolve(store.delete(ALICE))                    # absent: fine


def test_long_status_is_cut_to_the_column(store: LastActivityStore) -> None:
    resolve(store.put(ALICE, LastSeen(1.0, "x" * 5000)))
    assert resolve(store.get(ALICE)) == LastSeen(1.0, "x" * 4096)


def test_unknown_account_is_refused(store: LastActivityStore) -> None:
    ghost = JID.parse("ghost@example.org")
    with pytest.raises(NoSuchAccount) as e:
        resolve(store.put(ghost, LastSeen(1.0, "")))
    assert isinstance(e.value, StorageError) and not e.value.transient
    assert resolve(store.get(ghost)) is None        # nothing cached for it either


def test_cache_record_round_trips_and_rejects_garbage() -> None:
    for seen in (None, LastSeen(0.0, ""), LastSeen(3.25, "ok")):
        assert decode_last(encode_last(seen)) == seen
    for bad in (b"", b"{}", b'["a", "b"]', b"[1]"):
        with pytest.raises(ValueError):
            decode_last(bad)


def test_cached_store_reads_from_the_cache_and_survives_in_the_database(db: Database) -> None:
    _accounts(db)
    sql = SqlLastActivityStore(db)
    cached = CachedLastActivityStore(sql, MemoryCache(clock=FakeClock()))
    resolve(cached.put(ALICE, LastSeen(10.0, "bye")))
    resolve(db.run(lambda conn: conn.execute(delete(accounts).where(
        accounts.c.username == "bob"))))
    resolve(sql.put(ALICE, LastSeen(20.0, "behind the cache")))
    assert resolve(cached.get(ALICE)) == LastSeen(10.0, "bye")     # the cache answers
    fresh = CachedLastActivityStore(sql, MemoryCache(clock=FakeClock()))  # a restart
    assert resolve(fresh.get(ALICE)) == LastSeen(20.0, "behind the cache")
