# tests: storage/cached.py
"""The read-through cache shared by the Cached…Store wrappers (storage/cached.py): hits,
misses, records it cannot read, writes racing reads, a failing cache, TTLs by value."""
from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer

from storage.cache import MemoryCache
from storage.cached import ReadThrough
from storage.errors import StorageError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(coro: Any) -> defer.Deferred[Any]:
    return defer.Deferred.fromCoroutine(coro)


def value(d: defer.Deferred[Any]) -> Any:
    assert d.called, "still waiting"
    out: list[Any] = []
    d.addBoth(out.append)
    if isinstance(out[0], Exception) or hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


class Store:
    """The store of record: a dict, optionally paused."""

    def __init__(self) -> None:
        self.rows: dict[str, str | None] = {}
        self.reads = 0
        self.gate: defer.Deferred[None] | None = None

    async def get(self, key: str) -> str | None:
        self.reads += 1
        found = self.rows.get(key)
        if self.gate is not None:
            await self.gate
        return found

    async def put(self, key: str, v: str | None) -> None:
        self.rows[key] = v


def through(cache: Any, ttl: Any = 60.0) -> ReadThrough[str | None]:
    return ReadThrough(cache, encode=lambda v: b"-" if v is None else b"=" + v.encode(),
                       decode=_decode, ttl=ttl, what="test")


def _decode(data: bytes) -> str | None:
    if data == b"-":
        return None
    if data[:1] != b"=":
        raise ValueError("not ours")
    return data[1:].decode()


def test_a_miss_is_loaded_once_then_served_from_the_cache() -> None:
    cache, store = MemoryCache(clock=Clock()), Store()
    rt = through(cache)
    store.rows["k"] = "v1"
    assert value(run(rt.get("k", lambda: store.get("k")))) == "v1"
    store.rows["k"] = "v2"                                          # behind its back
    assert value(run(rt.get("k", lambda: store.get("k")))) == "v1"
    assert store.reads == 1
    assert value(run(rt.get("none", lambda: store.get("none")))) is None   # absence too
    assert value(run(cache.get("none"))) == b"-"


def test_a_record_it_cannot_read_is_read_through_and_overwritten() -> None:
    cache, store = MemoryCache(clock=Clock()), Store()
    rt = through(cache)
    run(cache.set("k", b"?old format"))
    store.rows["k"] = "v"
    assert value(run(rt.get("k", lambda: store.get("k")))) == "v"
    assert value(run(cache.get("k"))) == b"=v"


def test_ttl_by_value_and_values_not_cached() -> None:
    clock = Clock()
    cache, store = MemoryCache(clock=clock), Store()
    rt = through(cache, ttl=lambda v: None if v == "big" else (5.0 if v is None else 50.0))
    store.rows.update(a="small", b="big")
    for key in ("a", "b", "c"):
        run(rt.get(key, lambda key=key: store.get(key)))
    assert value(run(cache.get("b"))) is None                       # not cached
    clock.now = 10.0
    assert value(run(cache.get("c"))) is None                       # absence: 5 s
    assert value(run(cache.get("a"))) == b"=small"


def test_a_read_that_overlapped_a_write_does_not_fill_the_cache() -> None:
    cache, store = MemoryCache(clock=Clock()), Store()
    rt = through(cache)
    store.rows["k"] = "old"
    store.gate = defer.Deferred()
    read = run(rt.get("k", lambda: store.get("k")))                 # reads "old", paused
    value(run(rt.invalidating("k", lambda: store.put("k", "new"))))
    store.gate.callback(None)
    assert value(read) == "old"                                     # what it read ...
    assert value(run(cache.get("k"))) is None                       # ... is not cached
    store.gate = None
    assert value(run(rt.get("k", lambda: store.get("k")))) == "new"


class SlowSetCache(MemoryCache):
    """A cache whose next `set` waits (a threaded runner: the set lands late)."""
    pause: defer.Deferred[None] | None = None

    async def set(self, key: str, v: bytes, ttl: float | None = None) -> None:
        if self.pause is not None:
            gate, self.pause = self.pause, None
            await gate
        await super().set(key, v, ttl)


def test_a_write_finishing_during_the_fill_undoes_it() -> None:
    cache, store = SlowSetCache(clock=Clock()), Store()
    rt = through(cache)
    store.rows["k"] = "old"
    gate: defer.Deferred[None] = defer.Deferred()
    cache.pause = gate
    read = run(rt.get("k", lambda: store.get("k")))                 # loaded; its set waits
    value(run(rt.invalidating("k", lambda: store.put("k", "new"))))  # delete lands first
    gate.callback(None)                                             # then the late set
    assert value(read) == "old"
    assert value(run(cache.get("k"))) is None                       # undone, not stale


def test_a_failing_cache_is_read_around_and_not_filled() -> None:
    class Down(MemoryCache):
        async def get(self, key: str) -> bytes | None:
            raise StorageError("down")
    store = Store()
    store.rows["k"] = "v"
    rt = through(Down(clock=Clock()))
    assert value(run(rt.get("k", lambda: store.get("k")))) == "v"
    assert value(run(rt.get("k", lambda: store.get("k")))) == "v"
    assert store.reads == 2

    class NoSet(MemoryCache):
        async def set(self, key: str, v: bytes, ttl: float | None = None) -> None:
            raise StorageError("full")
    assert value(run(through(NoSet(clock=Clock())).get("k", lambda: store.get("k")))) == "v"


def test_writes_keep_the_cache_consistent_even_when_they_fail() -> None:
    cache, store = MemoryCache(clock=Clock()), Store()
    rt = through(cache)
    store.rows["k"] = "v"
    run(rt.get("k", lambda: store.get("k")))
    value(run(rt.writing_through("k", lambda: store.put("k", "w"), "w")))
    assert value(run(cache.get("k"))) == b"=w"                      # write-through

    async def broken() -> None:
        raise RuntimeError("database down")
    with pytest.raises(RuntimeError):
        value(run(rt.writing_through("k", broken, "x")))
    assert value(run(cache.get("k"))) is None                       # dropped, not stale
    run(rt.get("k", lambda: store.get("k")))
    with pytest.raises(RuntimeError):
        value(run(rt.invalidating(["k", "other"], broken)))
    assert value(run(cache.get("k"))) is None
    assert value(run(rt.invalidating("k", lambda: store.put("k", "z")))) is None


def test_a_get_may_bring_its_own_decoder() -> None:
    cache, store = MemoryCache(clock=Clock()), Store()
    rt: ReadThrough[str | None] = ReadThrough(cache, encode=lambda v: (v or "").encode(),
                                              ttl=60.0, what="test")
    store.rows["k"] = "v"
    run(rt.get("k", lambda: store.get("k"), decode=lambda b: b.decode()))
    assert value(run(rt.get("k", lambda: store.get("k"),
                            decode=lambda b: "decoded " + b.decode()))) == "decoded v"
    with pytest.raises(TypeError):
        value(run(rt.get("k", lambda: store.get("k"))))


class Switchable(MemoryCache):
    """A cache that can go down and come back with what it held (a network partition)."""

    def __init__(self) -> None:
        super().__init__(clock=Clock())
        self.down = False

    async def get(self, key: str) -> bytes | None:
        if self.down:
            raise StorageError("Redis: ConnectionError")
        return await super().get(key)

    async def set(self, key: str, v: bytes, ttl: float | None = None) -> None:
        if self.down:
            raise StorageError("Redis: ConnectionError")
        await super().set(key, v, ttl)

    async def delete(self, key: str) -> bool:
        if self.down:
            raise StorageError("Redis: ConnectionError")
        return await super().delete(key)


def test_writes_succeed_while_the_cache_is_down_and_nothing_stale_is_served_after() -> None:
    # Issue 13 §2: the cache down is no error for a write, and the entry it could not delete
    # is never served once the cache is back.
    cache, store = Switchable(), Store()
    rt = through(cache)
    store.rows["k"] = "old"
    assert value(run(rt.get("k", lambda: store.get("k")))) == "old"      # cached
    cache.down = True
    assert value(run(rt.invalidating("k", lambda: store.put("k", "new")))) is None
    value(run(rt.writing_through("j", lambda: store.put("j", "J"), "J")))
    assert value(run(rt.get("k", lambda: store.get("k")))) == "new"      # read around
    cache.down = False                          # back, still holding k = "old"
    assert value(run(rt.get("k", lambda: store.get("k")))) == "new"      # not "old"
    assert value(run(cache.get("k"))) in (None, b"=new")
    reads = store.reads
    assert value(run(rt.get("k", lambda: store.get("k")))) == "new"
    assert store.reads == reads                 # cached normally again
