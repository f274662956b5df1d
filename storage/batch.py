# tests: tests/storage/test_batch.py, tests/integration/test_storage_faults.py
"""Group commit: many small writes, few transactions (DESIGN.md "Hot path").

`GroupCommit(write)` queues items and hands them to `write(items)` (one transaction) in batches.
At most one batch is in flight: while it runs on the storage thread, new items queue, and the
next transaction takes all of them (up to `max_batch`). So an idle server writes each item at
once (no timer, no added latency), and a busy one writes as many per transaction as arrived
during the previous one; batches are written in the order their items arrived, one after the
other, which keeps arrival order without relying on the database.

`add(item)` returns a Deferred for that item's result, fired after the commit. `flushed()` fires
once everything added so far is written. On the inline runner of the tests and the CLI every
write completes inside `add`.

Outages (DESIGN.md "Storage down": a write the server promised is never dropped): a batch that
fails with a *transient* `StorageError` (the database is down, restarting, locked) is written
again after a growing delay (0.25 s doubling to 5 s) until it succeeds, its items' Deferreds
still waiting — so whoever holds an acknowledgement for them keeps holding it. Memory stays
bounded: with `max_pending` items waiting, `add` fails at once with `Backlogged` (a transient
StorageError: the caller answers `<resource-constraint/>`, type wait) and `full` says so
beforehand. A batch that fails for good (a constraint, a bad value) fails its items.
Retrying needs a `clock`; without one every failure fails its items.

Metrics (storage/metrics.py reads them at scrape time): each instance counts its transactions,
items written and failed, and batch sizes in fixed buckets, as plain ints; `live()` are the
instances of this process not yet garbage (their queue depths).
"""
from __future__ import annotations

import logging
import weakref
from bisect import bisect_left
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, Protocol, TypeVar, Union

from twisted.internet import defer
from twisted.python.failure import Failure

from storage.errors import StorageError

log = logging.getLogger(__name__)
I = TypeVar("I")
R = TypeVar("R")
Write = Callable[[list[I]], Union["defer.Deferred[Sequence[R]]",
                                  Coroutine[Any, Any, Sequence[R]]]]
_RETRY_FIRST, _RETRY_MAX = 0.25, 5.0
MAX_PENDING = 100_000
"""Writes of one kind that may wait for storage during an outage (about 50 MB of messages)."""


class Timer(Protocol):
    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Any: ...


class Backlogged(StorageError):
    """Too many writes wait for storage (it is down or too slow): refused, try later."""

    def __init__(self, name: str, pending: int) -> None:
        super().__init__(f"{name}: {pending} writes are waiting for storage", transient=True)

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)   # items per transaction (le)
_LIVE: weakref.WeakSet[GroupCommit[Any, Any]] = weakref.WeakSet()


def live() -> list[GroupCommit[Any, Any]]:
    """The group commits of this process that still exist (for queue-depth metrics)."""
    return list(_LIVE)


class GroupCommit(Generic[I, R]):
    """Batches of `I` written by `write(items) -> results` (one result per item, in order)."""

    def __init__(self, write: Write[I, R], *, max_batch: int = 500, name: str = "batch",
                 clock: Timer | None = None, max_pending: int | None = None) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._max = max_batch
        self._name = name
        self._clock = clock
        self._max_pending = max_pending
        self._queue: list[tuple[I, defer.Deferred[R]]] = []
        self._in_flight = 0
        self._busy = False
        self._added = 0
        self._written_count = 0
        self._waiters: list[tuple[int, defer.Deferred[None]]] = []
        self._retry_delay = 0.0
        self.transactions = 0               # for tests and metrics
        self.retries = 0                    # batches written again after a transient failure
        self.refused = 0                    # items refused because too many were waiting
        self.items_batched = 0              # handed to a transaction (retries count again)
        self.items_written = 0
        self.items_failed = 0
        self.batch_sizes = [0] * (len(BATCH_BUCKETS) + 1)     # last: more than the top bound
        _LIVE.add(self)

    @property
    def name(self) -> str:
        return self._name

    @property
    def in_flight(self) -> bool:
        """A transaction is running (or waits to be retried)."""
        return self._busy

    def __len__(self) -> int:
        """Items waiting for a transaction (not counting the batch in flight)."""
        return len(self._queue)

    @property
    def pending(self) -> int:
        """Items not written yet, the batch in flight included."""
        return len(self._queue) + self._in_flight

    @property
    def full(self) -> bool:
        """`add` would refuse: `max_pending` items wait for storage."""
        return self._max_pending is not None and self.pending >= self._max_pending

    @property
    def retrying(self) -> bool:
        """A batch waits to be written again (storage is down)."""
        return self._retry_delay > 0

    def add(self, item: I) -> defer.Deferred[R]:
        if self.full:
            self.refused += 1
            return defer.fail(Backlogged(self._name, self.pending))
        d: defer.Deferred[R] = defer.Deferred()
        self._queue.append((item, d))
        self._added += 1
        if not self._busy:
            self._next()
        return d

    def flushed(self) -> defer.Deferred[None]:
        """Fires once every item added before this call is written (or failed for good)."""
        if self._written_count >= self._added:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._waiters.append((self._added, d))
        return d

    def _next(self) -> None:
        if self._busy or not self._queue:
            return
        batch, self._queue = self._queue[:self._max], self._queue[self._max:]
        self._busy = True
        self._in_flight = len(batch)
        self._run(batch)

    def _run(self, batch: list[tuple[I, defer.Deferred[R]]]) -> None:
        self.transactions += 1
        self.batch_sizes[bisect_left(BATCH_BUCKETS, len(batch))] += 1
        self.items_batched += len(batch)
        d: defer.Deferred[Sequence[R]]
        try:
            written = self._write([item for item, _ in batch])
            d = written if isinstance(written, defer.Deferred) else \
                defer.Deferred.fromCoroutine(written)
        except Exception as e:          # the write function itself broke, not the database
            d = defer.fail(e)
        d.addBoth(self._written, batch)

    def _written(self, result: Sequence[R] | Failure,
                 batch: list[tuple[I, defer.Deferred[R]]]) -> None:
        if isinstance(result, Failure):
            error = result.value
            if isinstance(error, StorageError) and error.transient and self._clock is not None:
                self._retry_later(batch, error)
                return
            log.error("%s: a batch of %d failed for good: %s", self._name, len(batch), error)
            self._retry_delay = 0.0
        elif self._retry_delay:
            log.warning("%s: storage is back; %d writes went through after %d retries",
                        self._name, len(batch), self.retries)
            self._retry_delay = 0.0
        # Items added by these callbacks queue (still busy), so results fire in order.
        if isinstance(result, Failure):
            self.items_failed += len(batch)
            for _, d in batch:
                d.errback(result)
        else:
            self.items_written += len(batch)
            for (_, d), r in zip(batch, result, strict=True):
                d.callback(r)
        self._written_count += len(batch)
        if self._waiters:
            ready = [d for n, d in self._waiters if n <= self._written_count]
            self._waiters = [(n, d) for n, d in self._waiters if n > self._written_count]
            for w in ready:
                w.callback(None)
        self._busy = False
        self._in_flight = 0
        self._next()

    def _retry_later(self, batch: list[tuple[I, defer.Deferred[R]]],
                     error: StorageError) -> None:
        if not self._retry_delay:
            log.warning("%s: storage failed (%s); %d writes kept and retried until it is back",
                        self._name, error, len(batch) + len(self._queue))
            self._retry_delay = _RETRY_FIRST
        else:
            self._retry_delay = min(_RETRY_MAX, self._retry_delay * 2)
        self.retries += 1
        assert self._clock is not None
        self._clock.call_later(self._retry_delay, self._run, batch)
