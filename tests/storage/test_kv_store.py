"""KeyValueStore contract on SQLite and PostgreSQL, bare and behind each cache."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from twisted.internet import defer
from twisted.internet.defer import Deferred

from storage.accounts import SqlAccountStore
from storage.cache import MemoryCache, RedisCache
from storage.db import Database
from storage.kv import CachedKeyValueStore, KeyValueStore, SqlKeyValueStore
from storage.models import kv_items
from storage.runner import ImmediateRunner
from tests.harness.backends import FakeClock, redis_url, require, resolve
from stanzas.jid import JID

ALICE = JID.parse("alice@example.org")
BOB = JID.parse("bob@example.org")
ALICE_NET = JID.parse("alice@example.net")
NOBODY = JID.parse("nobody@example.org")
VCARD, BLOCKING = "vcard-temp", "urn:xmpp:blocking"


@pytest.fixture(params=["sql", "cached-memory", "cached-redis"])
def store(request: pytest.FixtureRequest, db: Database) -> Iterator[KeyValueStore]:
    accounts = SqlAccountStore(db)
    for user in (ALICE, BOB, ALICE_NET):
        assert user.local is not None
        resolve(accounts.create(user.local, user.domain, {}, 1.0))
    sql = SqlKeyValueStore(db)
    if request.param == "sql":
        yield sql
    elif request.param == "cached-memory":
        yield CachedKeyValueStore(sql, MemoryCache(clock=FakeClock()))
    else:
        require("redis")
        space = redis_url()
        cache = RedisCache(space.url, runner=ImmediateRunner(), prefix=space.prefix)
        try:
            yield CachedKeyValueStore(sql, cache)
        finally:
            cache.close()
            space.cleanup()


def rows(db: Database) -> int:
    return int(resolve(db.run(
        lambda conn: conn.execute(select(func.count()).select_from(kv_items)).scalar_one())))


def test_missing_value_is_none(store: KeyValueStore) -> None:
    assert resolve(store.get(ALICE, VCARD)) is None
    assert resolve(store.get(ALICE, VCARD)) is None      # and again, from a cache if any


def test_put_reads_back_and_replaces(store: KeyValueStore) -> None:
    assert resolve(store.put(ALICE, VCARD, b"<vCard/>", 10.0)) is True
    assert resolve(store.get(ALICE, VCARD)) == b"<vCard/>"
    assert resolve(store.put(ALICE, VCARD, b"<vCard><FN>A</FN></vCard>", 11.0)) is True
    assert resolve(store.get(ALICE, VCARD)) == b"<vCard><FN>A</FN></vCard>"


def test_binary_and_empty_values_round_trip(store: KeyValueStore) -> None:
    everything = bytes(range(256)) * 4
    resolve(store.put(ALICE, VCARD, everything, 1.0))
    resolve(store.put(ALICE, BLOCKING, b"", 1.0))
    assert resolve(store.get(ALICE, VCARD)) == everything
    assert resolve(store.get(ALICE, BLOCKING)) == b""     # empty is a value, not absence
    assert resolve(store.get(ALICE, BLOCKING)) == b""


def test_large_value_round_trips(store: KeyValueStore) -> None:
    big = b"x" * (200 * 1024)         # larger than the wrapper caches
    resolve(store.put(ALICE, VCARD, big, 1.0))
    assert resolve(store.get(ALICE, VCARD)) == big
    resolve(store.put(ALICE, VCARD, b"small", 2.0))
    assert resolve(store.get(ALICE, VCARD)) == b"small"


def test_users_namespaces_and_hosts_are_isolated(store: KeyValueStore) -> None:
    resolve(store.put(ALICE, VCARD, b"alice.org vcard", 1.0))
    resolve(store.put(ALICE, BLOCKING, b"alice.org blocks", 1.0))
    resolve(store.put(ALICE_NET, VCARD, b"alice.net vcard", 1.0))
    resolve(store.put(BOB, VCARD, b"bob vcard", 1.0))
    assert resolve(store.get(ALICE, VCARD)) == b"alice.org vcard"
    assert resolve(store.get(ALICE, BLOCKING)) == b"alice.org blocks"
    assert resolve(store.get(ALICE_NET, VCARD)) == b"alice.net vcard"
    assert resolve(store.get(ALICE_NET, BLOCKING)) is None
    assert resolve(store.delete(ALICE, VCARD)) is True
    assert resolve(store.get(BOB, VCARD)) == b"bob vcard"
    assert resolve(store.get(ALICE_NET, VCARD)) == b"alice.net vcard"
    assert resolve(store.get(ALICE, BLOCKING)) == b"alice.org blocks"


def test_delete_says_whether_there_was_a_value(store: KeyValueStore) -> None:
    assert resolve(store.delete(ALICE, VCARD)) is False
    resolve(store.put(ALICE, VCARD, b"v", 1.0))
    resolve(store.get(ALICE, VCARD))                     # a cache, if any, holds it now
    assert resolve(store.delete(ALICE, VCARD)) is True
    assert resolve(store.get(ALICE, VCARD)) is None
    assert resolve(store.delete(ALICE, VCARD)) is False


def test_put_after_a_cached_miss_is_visible(store: KeyValueStore) -> None:
    assert resolve(store.get(ALICE, VCARD)) is None
    resolve(store.put(ALICE, VCARD, b"new", 1.0))
    assert resolve(store.get(ALICE, VCARD)) == b"new"


def test_value_of_an_unknown_account_is_refused(store: KeyValueStore, db: Database) -> None:
    assert resolve(store.put(NOBODY, VCARD, b"v", 1.0)) is False
    assert resolve(store.get(NOBODY, VCARD)) is None
    assert rows(db) == 0


def test_update_applies_puts_and_deletes_together(store: KeyValueStore) -> None:
    resolve(store.put(ALICE, BLOCKING, b"old", 1.0))
    resolve(store.get(ALICE, BLOCKING))
    assert resolve(store.update(ALICE, {VCARD: b"card", "vcard-temp:x:update": b"hash",
                                        BLOCKING: None}, 2.0)) is True
    assert resolve(store.get(ALICE, VCARD)) == b"card"
    assert resolve(store.get(ALICE, "vcard-temp:x:update")) == b"hash"
    assert resolve(store.get(ALICE, BLOCKING)) is None


def test_update_of_an_unknown_account_changes_nothing(store: KeyValueStore, db: Database) -> None:
    assert resolve(store.update(NOBODY, {VCARD: b"a", BLOCKING: b"b"}, 1.0)) is False
    assert rows(db) == 0
    # and the transaction is still usable afterwards (PostgreSQL aborts on a failed statement)
    assert resolve(store.update(ALICE, {VCARD: b"a"}, 1.0)) is True
    assert rows(db) == 1


def test_updated_at_is_recorded(store: KeyValueStore, db: Database) -> None:
    resolve(store.put(ALICE, VCARD, b"v", 1700000000.5))
    resolve(store.put(ALICE, VCARD, b"w", 1700000001.25))
    at = resolve(db.run(lambda conn: conn.execute(select(kv_items.c.updated_at)).scalar_one()))
    assert at == 1700000001.25


def test_deleting_the_account_deletes_its_values(store: KeyValueStore, db: Database) -> None:
    resolve(store.put(ALICE, VCARD, b"v", 1.0))
    resolve(store.put(BOB, VCARD, b"b", 1.0))
    assert resolve(SqlAccountStore(db).delete("alice", "example.org")) is True
    assert rows(db) == 1
    resolve(store.delete(ALICE, VCARD))      # what a module does on user_deleted (cache)
    assert resolve(store.get(ALICE, VCARD)) is None


BAD_KEYS = [
    (JID.parse("alice@example.org/phone"), VCARD),     # a full JID is not an account
    (JID.parse("example.org"), VCARD),                 # neither is a domain
    (ALICE, ""),
    (ALICE, "x" * 256),
]


def test_bad_keys_are_refused(store: KeyValueStore) -> None:
    for user, namespace in BAD_KEYS:
        with pytest.raises(ValueError):
            resolve(store.put(user, namespace, b"v", 1.0))
        with pytest.raises(ValueError):
            resolve(store.get(user, namespace))
        with pytest.raises(ValueError):
            resolve(store.delete(user, namespace))


# ---- the cache wrapper

def test_cached_get_is_served_without_the_database() -> None:
    inner = ScriptedStore()
    cached = CachedKeyValueStore(inner, MemoryCache(clock=FakeClock()))
    inner.answers.append(defer.succeed(b"card"))
    assert resolve(cached.get(ALICE, VCARD)) == b"card"
    assert resolve(cached.get(ALICE, VCARD)) == b"card"
    inner.answers.append(defer.succeed(None))
    assert resolve(cached.get(BOB, VCARD)) is None
    assert resolve(cached.get(BOB, VCARD)) is None
    assert inner.gets == 2


def test_large_values_are_not_cached() -> None:
    inner = ScriptedStore()
    cached = CachedKeyValueStore(inner, MemoryCache(clock=FakeClock()), max_cached_size=10)
    inner.answers += [defer.succeed(b"x" * 11), defer.succeed(b"x" * 11)]
    assert resolve(cached.get(ALICE, VCARD)) == b"x" * 11
    assert resolve(cached.get(ALICE, VCARD)) == b"x" * 11
    assert inner.gets == 2


def test_read_overlapping_a_write_does_not_cache_the_old_value() -> None:
    inner = ScriptedStore()
    cached = CachedKeyValueStore(inner, MemoryCache(clock=FakeClock()))
    inner.answers.append(Deferred())
    slow_read = Deferred.fromCoroutine(cached.get(ALICE, BLOCKING))   # reads before the write
    assert resolve(cached.put(ALICE, BLOCKING, b"new", 1.0)) is True
    inner.answers[0].callback(b"old")                                 # ...returns after it
    assert resolve(slow_read) == b"old"
    inner.answers.append(Deferred())
    fresh = Deferred.fromCoroutine(cached.get(ALICE, BLOCKING))
    assert not fresh.called, "the old value was served from the cache"
    inner.answers[1].callback(b"new")
    assert resolve(fresh) == b"new"


def test_reads_go_to_the_database_while_the_cache_is_down() -> None:
    inner = ScriptedStore()
    down = RedisCache("redis://127.0.0.1:1/0", runner=ImmediateRunner())
    try:
        cached = CachedKeyValueStore(inner, down)
        inner.answers.append(defer.succeed(b"card"))
        assert resolve(cached.get(ALICE, VCARD)) == b"card"
        # Issue 13 §2: the cache down is no error for the write; the entry it could not
        # delete is remembered and read from the database until the cache is back.
        assert resolve(cached.put(ALICE, VCARD, b"new", 1.0)) is True
        assert inner.puts == [(ALICE, {VCARD: b"new"})]   # the database write went through
        inner.answers.append(defer.succeed(b"new"))
        assert resolve(cached.get(ALICE, VCARD)) == b"new" and inner.gets == 2
    finally:
        down.close()


class ScriptedStore:
    """A KeyValueStore whose `get` answers with Deferreds the test provides."""

    def __init__(self) -> None:
        self.answers: list[Deferred[bytes | None]] = []
        self.gets = 0
        self.puts: list[tuple[JID, dict[str, bytes | None]]] = []

    async def get(self, user: JID, namespace: str) -> bytes | None:
        self.gets += 1
        return await self.answers[self.gets - 1]

    async def put(self, user: JID, namespace: str, value: bytes, updated_at: float) -> bool:
        return await self.update(user, {namespace: value}, updated_at)

    async def delete(self, user: JID, namespace: str) -> bool:
        return True

    async def update(self, user: JID, changes: dict[str, bytes | None],  # type: ignore[override]
                     updated_at: float) -> bool:
        self.puts.append((user, dict(changes)))
        return True
