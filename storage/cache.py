# tests: tests/storage/test_cache.py
"""Caches: str keys, bytes values, optional TTL, plus hashes for the session registry.

- `Cache` is the contract; every method is `async def` and never blocks the reactor thread.
- `MemoryCache`: in-process, bounded LRU with per-key TTL on an injected clock; no reactor.
  Eviction may drop any key, hashes included: it is a cache, not a store of record.
- `RedisCache`: redis-py (blocking client) driven through a runner (storage/runner.py), so Redis
  I/O runs on a thread pool in the server. Every key gets a prefix (default `xmppd:`), so
  deployments (and tests) can share one Redis. Redis errors become `StorageError`.
  `instrument(metrics)` reports each call's latency by command (storage/metrics.py).
- Keys live in one namespace per cache: using a string operation on a hash key (or the reverse)
  raises `StorageError`, as Redis answers WRONGTYPE.
Not here: what is cached and how it is invalidated (the `Cached…Store` wrappers).
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar

import redis
from redis.exceptions import RedisError, ResponseError

from storage.errors import StorageError
from storage.runner import ImmediateRunner, Runner, ThreadReactor, ThreadRunner

if TYPE_CHECKING:
    from storage.metrics import StorageMetrics

T = TypeVar("T")


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value`; with `ttl` (seconds, > 0) it expires, without it any old TTL is cleared."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove a key of either kind; True if it existed."""
        ...

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of those keys that exist (missing and expired keys are absent)."""
        ...

    async def hset(self, key: str, field: str, value: bytes) -> None: ...

    async def hget(self, key: str, field: str) -> bytes | None: ...

    async def hdel(self, key: str, field: str) -> bool:
        """Remove one field (the hash goes when its last field goes); True if it existed."""
        ...

    async def hgetall(self, key: str) -> dict[str, bytes]: ...

    def close(self) -> None: ...


def _check_ttl(ttl: float | None) -> None:
    if ttl is not None and not ttl > 0:
        raise ValueError(f"ttl must be positive seconds, not {ttl!r}")


def _wrong_type(key: str) -> StorageError:
    return StorageError(f"WRONGTYPE: key {key!r} holds a different kind of value",
                        transient=False)


class MemoryCache:
    """Bounded in-process LRU with TTL. All methods complete without suspending.

    Args:
        max_entries: keys kept at most (a hash counts as one key); the least recently used goes.
        clock: seconds, monotonic; inject the reactor's `seconds` or a test clock.
    """

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._clock = clock
        # key -> (value, expires_at or None); value is bytes, or dict for a hash.
        self._entries: OrderedDict[str, tuple[bytes | dict[str, bytes], float | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _lookup(self, key: str) -> bytes | dict[str, bytes] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def _store(self, key: str, value: bytes | dict[str, bytes], expires: float | None) -> None:
        self._entries[key] = (value, expires)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def _string(self, key: str) -> bytes | None:
        value = self._lookup(key)
        if isinstance(value, dict):
            raise _wrong_type(key)
        return value

    def _hash(self, key: str) -> dict[str, bytes] | None:
        value = self._lookup(key)
        if isinstance(value, bytes):
            raise _wrong_type(key)
        return value

    async def get(self, key: str) -> bytes | None:
        return self._string(key)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        _check_ttl(ttl)
        self._store(key, bytes(value), None if ttl is None else self._clock() + ttl)

    async def delete(self, key: str) -> bool:
        present = self._lookup(key) is not None
        self._entries.pop(key, None)
        return present

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for key in keys:
            value = self._lookup(key)
            if isinstance(value, bytes):  # as Redis MGET: a hash reads as missing
                found[key] = value
        return found

    async def hset(self, key: str, field: str, value: bytes) -> None:
        fields = self._hash(key)
        if fields is None:
            self._store(key, {field: bytes(value)}, None)
        else:
            fields[field] = bytes(value)

    async def hget(self, key: str, field: str) -> bytes | None:
        fields = self._hash(key)
        return None if fields is None else fields.get(field)

    async def hdel(self, key: str, field: str) -> bool:
        fields = self._hash(key)
        if fields is None or field not in fields:
            return False
        del fields[field]
        if not fields:
            del self._entries[key]
        return True

    async def hgetall(self, key: str) -> dict[str, bytes]:
        fields = self._hash(key)
        return {} if fields is None else dict(fields)

    def close(self) -> None:
        self._entries.clear()


class RedisCache:
    """Redis through a runner; keys are stored as `prefix + key`.

    Args:
        url: `redis://[:password@]host:port/db` (or `rediss://`, `unix://`), or
            `redis+cluster://host:port` for a Redis Cluster (any node; keys spread over slots,
            so `get_many` reads them slot by slot).
        runner: ThreadRunner in the server, ImmediateRunner in tests and the command line.
        prefix: namespace for every key this cache touches.
    """

    def __init__(self, url: str, *, runner: Runner, prefix: str = "xmppd:") -> None:
        self._runner = runner
        self._prefix = prefix
        self._metrics: StorageMetrics | None = None
        self._cluster = url.startswith("redis+cluster://")
        if self._cluster:
            self._redis: redis.Redis = redis.RedisCluster.from_url(  # type: ignore[assignment]
                "redis://" + url[len("redis+cluster://"):], decode_responses=False,
                socket_timeout=5.0, socket_connect_timeout=5.0)
            return
        self._redis = redis.Redis.from_url(
            url,
            decode_responses=False,
            socket_timeout=5.0,
            socket_connect_timeout=5.0,
            health_check_interval=30,
            max_connections=max(1, runner.size),
        )

    @property
    def prefix(self) -> str:
        return self._prefix

    def _k(self, key: str) -> str:
        return self._prefix + key

    def instrument(self, metrics: StorageMetrics) -> None:
        """Report each call's latency (and failures) to `metrics` from now on."""
        self._metrics = metrics

    async def _call(self, command: str, fn: Callable[[redis.Redis], T]) -> T:
        if self._metrics is None:
            return await self._runner.run(self._blocking, fn)
        return await self._runner.run(self._timed, command, fn)

    def _timed(self, command: str, fn: Callable[[redis.Redis], T]) -> T:
        metrics = self._metrics
        assert metrics is not None
        start, ok = time.perf_counter(), False
        try:
            result = self._blocking(fn)
            ok = True
            return result
        finally:
            metrics.redis_done(command, time.perf_counter() - start, ok)

    def _blocking(self, fn: Callable[[redis.Redis], T]) -> T:
        try:
            return fn(self._redis)
        except ResponseError as e:
            if str(e).startswith("WRONGTYPE"):
                raise StorageError(f"WRONGTYPE: {e}", transient=False) from e
            raise StorageError(f"Redis: {e}") from e
        except RedisError as e:
            raise StorageError(f"Redis: {type(e).__name__}: {e}") from e

    async def get(self, key: str) -> bytes | None:
        k = self._k(key)
        return await self._call("get", lambda r: _opt_bytes(r.get(k)))

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        _check_ttl(ttl)
        k, v = self._k(key), bytes(value)
        # Round up: a TTL shorter than 1 ms must not mean "never expires" (PX 0 is an error).
        px = None if ttl is None else max(1, math.ceil(ttl * 1000))
        await self._call("set", lambda r: r.set(k, v, px=px))

    async def delete(self, key: str) -> bool:
        k = self._k(key)
        return await self._call("del", lambda r: int(r.delete(k)) > 0)

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        full = [self._k(k) for k in wanted]
        if self._cluster:       # keys of several slots: redis-py splits the MGET per slot
            values: list[Any] = await self._call(
                "mget", lambda r: list(r.mget_nonatomic(full)))  # type: ignore[attr-defined]
        else:
            values = await self._call("mget", lambda r: list(r.mget(full)))
        return {k: bytes(v) for k, v in zip(wanted, values) if v is not None}

    async def hset(self, key: str, field: str, value: bytes) -> None:
        k, v = self._k(key), bytes(value)
        await self._call("hset", lambda r: r.hset(k, field, v))

    async def hget(self, key: str, field: str) -> bytes | None:
        k = self._k(key)
        return await self._call("hget", lambda r: _opt_bytes(r.hget(k, field)))

    async def hdel(self, key: str, field: str) -> bool:
        k = self._k(key)
        return await self._call("hdel", lambda r: int(r.hdel(k, field)) > 0)

    async def hgetall(self, key: str) -> dict[str, bytes]:
        k = self._k(key)
        raw: dict[Any, Any] = await self._call("hgetall", lambda r: dict(r.hgetall(k)))
        return {f.decode() if isinstance(f, bytes) else str(f): bytes(v) for f, v in raw.items()}

    def close(self) -> None:
        """Stop the runner (in-flight calls finish), then close the connections."""
        self._runner.stop()
        self._redis.close()


def _opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def open_cache(
    url: str | None,
    reactor: ThreadReactor | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    max_entries: int = 10_000,
    prefix: str = "xmppd:",
    max_threads: int = 4,
) -> Cache:
    """The cache a config names: None or "memory" → MemoryCache, "redis://…" → RedisCache.

    With a reactor, Redis calls run on a thread pool (ThreadRunner), otherwise inline.

    Raises:
        ValueError: for any other URL.
    """
    if url is None or url == "memory":
        return MemoryCache(max_entries=max_entries, clock=clock)
    scheme = url.partition("://")[0]
    if scheme in ("redis", "rediss", "unix", "redis+cluster"):
        runner: Runner = (
            ImmediateRunner() if reactor is None
            else ThreadRunner(reactor, max_threads=max_threads, name="xmppd-cache")
        )
        return RedisCache(url, runner=runner, prefix=prefix)
    raise ValueError(f"unsupported cache URL scheme {scheme!r}: use \"memory\" or redis://...")
