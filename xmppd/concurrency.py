# tests: tests/core/test_concurrency.py
"""Per-key coordination for modules, on Twisted Deferreds (no reactor, no clock):

- `KeyedLock`: one lock per key (a user, a room, a session's JID). Work for a key runs one
  piece at a time in the order it asked; other keys are not held up. The lock is released
  when the work fails too, and a key's lock is dropped once nobody holds or waits for it, so
  memory follows the keys in use, not every key ever seen. A free lock is taken at once: no
  Deferred is waited for on the uncontended path.
- `OneLoad`: one load in flight per key. Callers that ask while a load of their key runs get
  the same result (or the same failure), in the order they asked; the key is forgotten when
  the load is done. With `fallback`, a failed load gives every caller `fallback(key, failure)`
  instead (computed once: a module that would rather deliver than stall).
The read-through cache of the stores is `storage/cached.py` (storage does not import the core).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class KeyedLock(Generic[K]):
    """A lock per key, kept only while in use."""

    def __init__(self) -> None:
        self._locks: dict[K, defer.DeferredLock] = {}

    def __len__(self) -> int:
        """Keys whose lock is held or awaited."""
        return len(self._locks)

    def locked(self, key: K) -> bool:
        lock = self._locks.get(key)
        return lock is not None and bool(lock.locked)

    async def run(self, key: K, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work()` holding `key`'s lock; its result or exception is the caller's."""
        async with self.hold(key):
            return await work()

    def hold(self, key: K) -> _Held[K]:
        """`async with locks.hold(key): ...` holds `key`'s lock for the block."""
        return _Held(self, key)

    async def drained(self) -> None:
        """Wait until no key is held (what was started before this call has finished)."""
        while self._locks:
            async with self.hold(next(iter(self._locks))):
                pass

    def _acquire(self, key: K) -> defer.Deferred[defer.DeferredLock]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = defer.DeferredLock()
        return lock.acquire()

    def _release(self, key: K) -> None:
        self._locks[key].release()
        self._forget_if_idle(key)

    def _forget_if_idle(self, key: K) -> None:
        lock = self._locks.get(key)
        if lock is not None and not lock.locked and not lock.waiting:
            del self._locks[key]


class _Held(Generic[K]):
    __slots__ = ("_owner", "_key")

    def __init__(self, owner: KeyedLock[K], key: K) -> None:
        self._owner, self._key = owner, key

    async def __aenter__(self) -> None:
        try:
            await self._owner._acquire(self._key)
        except BaseException:           # cancelled while waiting: it never held the lock
            self._owner._forget_if_idle(self._key)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._owner._release(self._key)


class OneLoad(Generic[K, V]):
    """At most one load per key in flight; concurrent callers share it."""

    def __init__(self, fallback: Callable[[K, Failure], V] | None = None) -> None:
        self._fallback = fallback
        self._waiting: dict[K, list[defer.Deferred[V]]] = {}

    def __contains__(self, key: object) -> bool:
        """Is a load of `key` in flight?"""
        return key in self._waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def __call__(self, key: K, load: Callable[[], Awaitable[V]]) -> defer.Deferred[V]:
        """The result of `load()` for `key`: started now, or the one already in flight (then
        this caller's `load` is not called). Callers are answered in the order they asked."""
        d: defer.Deferred[V] = defer.Deferred()
        waiting = self._waiting.get(key)
        if waiting is not None:
            waiting.append(d)
            return d
        self._waiting[key] = [d]
        defer.Deferred.fromCoroutine(_awaited(load)).addBoth(self._done, key)
        return d

    def _done(self, result: Any, key: K) -> None:
        waiting = self._waiting.pop(key)
        if isinstance(result, Failure) and self._fallback is not None:
            try:
                result = self._fallback(key, result)
            except Exception as e:
                result = Failure(e)  # type: ignore[no-untyped-call]
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)


async def _awaited(load: Callable[[], Awaitable[V]]) -> V:
    return await load()
