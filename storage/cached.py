# tests: tests/storage/test_read_through.py
"""The read-through half of every `Cached…Store` (accounts, key-value, last activity, roster):
reads come from the `Cache`, misses from the store of record, and writes keep the two
consistent. One implementation, so the races are handled once:

- A read that overlapped a write on this node does not fill the cache (a write counter,
  checked before and after the fill: with a threaded cache runner the write's delete may
  reach the cache before our set, so the set is undone). Across nodes sharing Redis the same
  race is bounded by the TTL.
- If the cache fails, reads go to the store and are not cached; a value the cache holds that
  `decode` refuses (ValueError: written by another version) is read through and overwritten.
- `invalidating(keys, write)` runs a write and then deletes the entries (also when the write
  failed). `writing_through(key, write, value)` runs a write and then caches its new value.
- The cache down (issue 13 §2): a write that could not delete or refresh its entry still
  succeeds; the key is remembered (at most `MAX_STALE` keys; past that the oldest are
  forgotten and bounded by the TTL) and read from the store, not the cache, until a later
  delete of it succeeds — so an entry that survived the outage is never served stale.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

from storage.cache import Cache
from storage.errors import StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_STALE = 100_000
R = TypeVar("R")


class ReadThrough(Generic[T]):
    """Cache entries of one kind of record.

    Args:
        encode, decode: the record as cache bytes and back (`decode` raises ValueError for
            bytes it did not write; without one, each `get` names its own).
        ttl: seconds an entry lives, a function of the value (None: do not cache this one).
        what: names the records in log lines.
    """

    def __init__(self, cache: Cache, *, encode: Callable[[T], bytes],
                 decode: Callable[[bytes], T] | None = None,
                 ttl: float | Callable[[T], float | None], what: str) -> None:
        self._cache = cache
        self._encode = encode
        self._decode = decode
        if callable(ttl):
            self._ttl = ttl
        else:
            seconds = float(ttl)
            self._ttl = lambda _: seconds
        self._what = what
        self._writes = 0
        self._stale: dict[str, None] = {}     # keys whose entry may be stale (ordered)

    async def get(self, key: str, load: Callable[[], Awaitable[T]], *,
                  decode: Callable[[bytes], T] | None = None) -> T:
        """The cached value of `key`, else `load()` (then cached). `decode` replaces the
        constructor's for this key (a record that does not hold its own key)."""
        if self._stale and key in self._stale and not await self._forget(key):
            return await load()
        try:
            cached = await self._cache.get(key)
        except StorageError as e:
            log.warning("%s cache unavailable, reading the database: %s", self._what, e)
            return await load()
        if cached is not None:
            try:
                return _pick(decode, self._decode)(cached)
            except ValueError:
                pass        # written by another version of us: read through and overwrite
        writes = self._writes
        value = await load()
        try:
            await self._fill(key, value, writes)
        except StorageError as e:
            log.warning("%s cache unavailable, not caching: %s", self._what, e)
        return value

    async def _fill(self, key: str, value: T, writes: int) -> None:
        if writes != self._writes:
            return          # a write overlapped our read: what we read may be what it replaced
        ttl = self._ttl(value)
        if ttl is None:
            return
        await self._cache.set(key, self._encode(value), ttl)
        if writes != self._writes:
            await self._cache.delete(key)   # a write finished while our set was in flight

    async def invalidating(self, keys: str | Iterable[str], write: Callable[[], Awaitable[R]]) -> R:
        """Run `write()` on the store of record, then delete the cached `keys`."""
        self._writes += 1
        try:
            return await write()
        finally:
            self._writes += 1
            for key in [keys] if isinstance(keys, str) else keys:
                await self._forget(key)

    async def _forget(self, key: str) -> bool:
        """Delete `key`'s entry; if the cache is down, remember that it may be stale."""
        try:
            await self._cache.delete(key)
        except StorageError as e:
            if key not in self._stale:
                log.warning("%s cache unavailable, %s may be stale there: %s", self._what,
                            key, e)
            self._stale[key] = None
            while len(self._stale) > MAX_STALE:
                del self._stale[next(iter(self._stale))]
            return False
        self._stale.pop(key, None)
        return True

    async def writing_through(self, key: str, write: Callable[[], Awaitable[None]],
                              value: T) -> None:
        """Run `write()`, then cache `value` (what the store now holds); if the write fails,
        the entry is deleted instead."""
        self._writes += 1
        try:
            await write()
        except BaseException:
            await self._forget(key)
            raise
        self._writes += 1
        ttl = self._ttl(value)
        if ttl is None or (self._stale and key in self._stale):
            await self._forget(key)
            return
        try:
            await self._cache.set(key, self._encode(value), ttl)
        except StorageError:
            await self._forget(key)


def _pick(decode: Callable[[bytes], T] | None, default: Callable[[bytes], T] | None
          ) -> Callable[[bytes], T]:
    found = decode or default
    if found is None:
        raise TypeError("ReadThrough.get needs a decode function")
    return found
