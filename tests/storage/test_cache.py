"""Cache contract on the in-process LRU and on Redis, plus what is specific to each."""
from __future__ import annotations

import pytest
import pytest_twisted
import redis

from storage.cache import Cache, MemoryCache, RedisCache, open_cache
from storage.errors import StorageError
from storage.runner import ImmediateRunner
from tests.harness.backends import CacheEnv, FakeClock, redis_url, require, resolve


def test_missing_key_reads_as_none(cache: Cache) -> None:
    assert resolve(cache.get("nothing")) is None


def test_set_get_overwrite_delete(cache: Cache) -> None:
    resolve(cache.set("k", b"one"))
    assert resolve(cache.get("k")) == b"one"
    resolve(cache.set("k", b"two"))
    assert resolve(cache.get("k")) == b"two"
    assert resolve(cache.delete("k")) is True
    assert resolve(cache.get("k")) is None
    assert resolve(cache.delete("k")) is False


def test_any_bytes_and_unicode_keys_round_trip(cache: Cache) -> None:
    value = bytes(range(256)) + b"\x00"
    resolve(cache.set("presence/émile@example.org/📱", value))
    assert resolve(cache.get("presence/émile@example.org/📱")) == value
    resolve(cache.set("empty", b""))
    assert resolve(cache.get("empty")) == b""


def test_value_expires_after_its_ttl(cache_env: CacheEnv) -> None:
    cache = cache_env.cache
    resolve(cache.set("short", b"v", ttl=0.5))
    resolve(cache.set("forever", b"v"))
    cache_env.advance(0.05)
    assert resolve(cache.get("short")) == b"v"
    cache_env.advance(0.5)
    assert resolve(cache.get("short")) is None
    assert resolve(cache.get("forever")) == b"v"
    assert resolve(cache.delete("short")) is False


def test_set_without_ttl_clears_an_earlier_ttl(cache_env: CacheEnv) -> None:
    cache = cache_env.cache
    resolve(cache.set("k", b"old", ttl=0.1))
    resolve(cache.set("k", b"new"))
    cache_env.advance(0.2)
    assert resolve(cache.get("k")) == b"new"


@pytest.mark.parametrize("ttl", [0, -1.0])
def test_ttl_must_be_positive(cache: Cache, ttl: float) -> None:
    with pytest.raises(ValueError):
        resolve(cache.set("k", b"v", ttl=ttl))


def test_get_many_returns_only_present_keys(cache_env: CacheEnv) -> None:
    cache = cache_env.cache
    resolve(cache.set("a", b"1"))
    resolve(cache.set("b", b"2"))
    resolve(cache.set("gone", b"3", ttl=0.05))
    resolve(cache.hset("h", "f", b"x"))
    cache_env.advance(0.1)
    assert resolve(cache.get_many(["a", "b", "a", "missing", "gone", "h"])) == {"a": b"1", "b": b"2"}
    assert resolve(cache.get_many([])) == {}


def test_hash_fields_set_get_all_and_delete(cache: Cache) -> None:
    assert resolve(cache.hgetall("sessions/alice")) == {}
    assert resolve(cache.hget("sessions/alice", "phone")) is None
    resolve(cache.hset("sessions/alice", "phone", b"node1"))
    resolve(cache.hset("sessions/alice", "laptop", b"node2"))
    resolve(cache.hset("sessions/alice", "phone", b"node3"))
    assert resolve(cache.hget("sessions/alice", "phone")) == b"node3"
    assert resolve(cache.hgetall("sessions/alice")) == {"phone": b"node3", "laptop": b"node2"}
    assert resolve(cache.hdel("sessions/alice", "phone")) is True
    assert resolve(cache.hdel("sessions/alice", "phone")) is False
    assert resolve(cache.hgetall("sessions/alice")) == {"laptop": b"node2"}


def test_hash_disappears_with_its_last_field(cache: Cache) -> None:
    resolve(cache.hset("h", "only", b"x"))
    assert resolve(cache.hdel("h", "only")) is True
    assert resolve(cache.delete("h")) is False
    resolve(cache.set("h", b"now a string"))  # no WRONGTYPE: the hash is gone
    assert resolve(cache.get("h")) == b"now a string"


def test_delete_removes_a_whole_hash(cache: Cache) -> None:
    resolve(cache.hset("h", "a", b"1"))
    resolve(cache.hset("h", "b", b"2"))
    assert resolve(cache.delete("h")) is True
    assert resolve(cache.hgetall("h")) == {}


def test_string_and_hash_operations_do_not_mix(cache: Cache) -> None:
    resolve(cache.set("s", b"v"))
    resolve(cache.hset("h", "f", b"v"))
    with pytest.raises(StorageError):
        resolve(cache.hset("s", "f", b"v"))
    with pytest.raises(StorageError):
        resolve(cache.hget("s", "f"))
    with pytest.raises(StorageError):
        resolve(cache.get("h"))
    assert resolve(cache.get("s")) == b"v"


# ---- MemoryCache only


def test_memory_cache_drops_least_recently_used_beyond_its_bound() -> None:
    cache = MemoryCache(max_entries=3, clock=FakeClock())
    for key in ("a", "b", "c"):
        resolve(cache.set(key, key.encode()))
    assert resolve(cache.get("a")) == b"a"  # "b" is now the least recently used
    resolve(cache.hset("d", "f", b"d"))  # a hash counts as one entry
    assert len(cache) == 3
    assert resolve(cache.get_many(["a", "b", "c"])) == {"a": b"a", "c": b"c"}
    assert resolve(cache.hgetall("d")) == {"f": b"d"}


def test_memory_cache_expiry_follows_the_injected_clock_exactly() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    resolve(cache.set("k", b"v", ttl=10))
    clock.now += 9.999
    assert resolve(cache.get("k")) == b"v"
    clock.now += 0.001
    assert resolve(cache.get("k")) is None
    assert len(cache) == 0


def test_memory_cache_never_suspends() -> None:
    cache = MemoryCache(clock=FakeClock())
    coro = cache.set("k", b"v")
    with pytest.raises(StopIteration):
        coro.send(None)


# ---- RedisCache only


def test_redis_keys_carry_the_prefix_and_the_ttl() -> None:
    require("redis")
    space = redis_url()
    cache = RedisCache(space.url, runner=ImmediateRunner(), prefix=space.prefix)
    raw = redis.Redis.from_url(space.url)
    try:
        resolve(cache.set("k", b"v", ttl=10))
        resolve(cache.hset("h", "f", b"v"))
        assert sorted(raw.scan_iter(match=space.prefix + "*")) == [
            (space.prefix + "h").encode(), (space.prefix + "k").encode()
        ]
        assert 9_000 < int(raw.pttl(space.prefix + "k")) <= 10_000
        assert int(raw.pttl(space.prefix + "h")) == -1
        resolve(cache.set("sub-ms", b"v", ttl=0.0001))  # rounds up to 1 ms, never "no TTL"
        assert int(raw.pttl(space.prefix + "sub-ms")) in (-2, 0, 1)
    finally:
        raw.close()
        cache.close()
        space.cleanup()


def test_redis_prefixes_isolate_caches_and_cleanup_leaves_nothing() -> None:
    require("redis")
    one, two = redis_url(), redis_url()
    first = RedisCache(one.url, runner=ImmediateRunner(), prefix=one.prefix)
    second = RedisCache(two.url, runner=ImmediateRunner(), prefix=two.prefix)
    raw = redis.Redis.from_url(one.url)
    try:
        resolve(first.set("k", b"first"))
        resolve(second.set("k", b"second"))
        resolve(first.hset("h", "f", b"1"))
        assert resolve(first.get("k")) == b"first"
        assert resolve(second.get("k")) == b"second"
        assert resolve(second.hgetall("h")) == {}
        assert resolve(second.delete("k")) is True
        assert resolve(first.get("k")) == b"first"
        one.cleanup()
        assert list(raw.scan_iter(match=one.prefix + "*")) == []
    finally:
        raw.close()
        first.close()
        second.close()
        one.cleanup()
        two.cleanup()


def test_unreachable_redis_is_storage_error() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", runner=ImmediateRunner())
    try:
        with pytest.raises(StorageError):
            resolve(cache.get("k"))
    finally:
        cache.close()


def test_open_cache_picks_the_implementation_from_the_url() -> None:
    assert isinstance(open_cache(None), MemoryCache)
    assert isinstance(open_cache("memory"), MemoryCache)
    remote = open_cache("redis://127.0.0.1:6379/9")
    assert isinstance(remote, RedisCache)
    remote.close()
    with pytest.raises(ValueError):
        open_cache("memcached://127.0.0.1")


@pytest_twisted.ensureDeferred
async def test_redis_cache_on_threads_fires_on_the_reactor() -> None:
    require("redis")
    from twisted.internet import reactor

    space = redis_url()
    cache = open_cache(space.url, reactor, prefix=space.prefix)
    try:
        await cache.set("k", b"v", ttl=5)
        assert await cache.get_many(["k", "x"]) == {"k": b"v"}
        await cache.hset("h", "f", b"1")
        assert await cache.hgetall("h") == {"f": b"1"}
    finally:
        cache.close()
        space.cleanup()
