# tests: tests/storage/test_batch.py
"""Group commit: many small writes, few transactions (DESIGN.md "Hot path").

`GroupCommit(write)` queues items and hands them to `write(items)` (one transaction) in batches.
At most one batch is in flight: while it runs on the storage thread, new items queue, and the
next transaction takes all of them (up to `max_batch`). So an idle server writes each item at
once (no timer, no added latency), and a busy one writes as many per transaction as arrived
during the previous one; batches are written in the order their items arrived, one after the
other, which keeps arrival order without relying on the database.

`add(item)` returns a Deferred for that item's result, fired after the commit (or failed with
the batch's error: every item of a failed batch fails). `flushed()` fires once everything added
so far is written. On the inline runner of the tests and the CLI every write completes inside
`add`.

Metrics (storage/metrics.py reads them at scrape time): each instance counts its transactions,
items written and failed, and batch sizes in fixed buckets, as plain ints; `live()` are the
instances of this process not yet garbage (their queue depths).
"""
from __future__ import annotations

import logging
import weakref
from bisect import bisect_left
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar, Union

from twisted.internet import defer
from twisted.python.failure import Failure

log = logging.getLogger(__name__)
I = TypeVar("I")
R = TypeVar("R")
Write = Callable[[list[I]], Union["defer.Deferred[Sequence[R]]",
                                  Coroutine[Any, Any, Sequence[R]]]]

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)   # items per transaction (le)
_LIVE: weakref.WeakSet[GroupCommit[Any, Any]] = weakref.WeakSet()


def live() -> list[GroupCommit[Any, Any]]:
    """The group commits of this process that still exist (for queue-depth metrics)."""
    return list(_LIVE)


class GroupCommit(Generic[I, R]):
    """Batches of `I` written by `write(items) -> results` (one result per item, in order)."""

    def __init__(self, write: Write[I, R], *,
                 max_batch: int = 500, name: str = "batch") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._max = max_batch
        self._name = name
        self._queue: list[tuple[I, defer.Deferred[R]]] = []
        self._busy = False
        self._added = 0
        self._written_count = 0
        self._waiters: list[tuple[int, defer.Deferred[None]]] = []
        self.transactions = 0               # for tests and metrics
        self.items_batched = 0              # handed to a transaction
        self.items_written = 0
        self.items_failed = 0
        self.batch_sizes = [0] * (len(BATCH_BUCKETS) + 1)     # last: more than the top bound
        _LIVE.add(self)

    @property
    def name(self) -> str:
        return self._name

    @property
    def in_flight(self) -> bool:
        """A transaction is running."""
        return self._busy

    def __len__(self) -> int:
        """Items waiting for a transaction (not counting the batch in flight)."""
        return len(self._queue)

    def add(self, item: I) -> defer.Deferred[R]:
        d: defer.Deferred[R] = defer.Deferred()
        self._queue.append((item, d))
        self._added += 1
        if not self._busy:
            self._next()
        return d

    def flushed(self) -> defer.Deferred[None]:
        """Fires once every item added before this call is written (or failed)."""
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
        # Items added by these callbacks queue (still busy), so results fire in order.
        if isinstance(result, Failure):
            log.warning("%s: a batch of %d failed: %s", self._name, len(batch), result.value)
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
        self._next()
