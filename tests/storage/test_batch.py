"""GroupCommit: one transaction in flight, the next takes what arrived meanwhile, in order."""
from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer

from storage.batch import GroupCommit
from storage.errors import StorageError


class SlowWriter:
    """A write function whose transactions finish when the test says so."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], defer.Deferred[list[int]]]] = []

    def __call__(self, items: list[int]) -> defer.Deferred[list[int]]:
        d: defer.Deferred[list[int]] = defer.Deferred()
        self.calls.append((items, d))
        return d

    def finish(self, i: int = -1) -> None:
        items, d = self.calls[i]
        d.callback([x * 10 for x in items])


def results(ds: list[defer.Deferred[Any]]) -> list[Any]:
    out: list[Any] = []
    for d in ds:
        d.addBoth(out.append)
    return out


def test_an_idle_writer_writes_at_once_and_the_rest_waits_for_one_transaction() -> None:
    w = SlowWriter()
    gc: GroupCommit[int, int] = GroupCommit(w)
    first = gc.add(1)
    assert [c[0] for c in w.calls] == [[1]]         # no timer: straight away
    rest = [gc.add(n) for n in (2, 3, 4)]
    assert len(w.calls) == 1 and len(gc) == 3        # waiting for the one in flight
    w.finish(0)
    assert results([first]) == [10]
    assert [c[0] for c in w.calls] == [[1], [2, 3, 4]]
    w.finish(1)
    assert results(rest) == [20, 30, 40]
    assert gc.transactions == 2


def test_batches_are_capped() -> None:
    w = SlowWriter()
    gc: GroupCommit[int, int] = GroupCommit(w, max_batch=2)
    ds = [gc.add(n) for n in range(5)]
    w.finish(0)
    w.finish(1)
    w.finish(2)
    assert [c[0] for c in w.calls] == [[0], [1, 2], [3, 4]]
    assert results(ds) == [0, 10, 20, 30, 40]


def test_results_fire_in_order_even_when_a_callback_adds_more() -> None:
    w = SlowWriter()
    gc: GroupCommit[int, int] = GroupCommit(w)
    fired: list[int] = []

    def then(r: int) -> None:
        fired.append(r)
        if r == 20:                     # item 2's callback adds 5 while 3 has not fired yet
            gc.add(5).addCallback(fired.append)
    for n in (1, 2, 3):
        gc.add(n).addCallback(then)
    w.finish(0)
    w.finish(1)                         # [2, 3]
    assert fired == [10, 20, 30]
    w.finish(2)                         # [5]
    assert fired == [10, 20, 30, 50]


def test_a_failed_batch_fails_each_item_and_the_next_batch_runs() -> None:
    w = SlowWriter()
    gc: GroupCommit[int, int] = GroupCommit(w)
    a = gc.add(1)
    b = gc.add(2)
    _, d = w.calls[0]
    d.errback(StorageError("database is locked"))
    failures = results([a])
    assert isinstance(failures[0].value, StorageError)
    w.finish(1)
    assert results([b]) == [20]


def test_flushed_waits_for_what_was_added_before() -> None:
    w = SlowWriter()
    gc: GroupCommit[int, int] = GroupCommit(w)
    assert results([gc.flushed()]) == [None]
    gc.add(1)
    gc.add(2)
    f = gc.flushed()
    gc.add(3)                           # later: not waited for
    w.finish(0)
    assert results([f]) == []
    w.finish(1)                         # [2, 3]
    assert results([f]) == [None]


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError):
        GroupCommit(lambda items: defer.succeed(items), max_batch=0)


class Timer:
    """call_later on a list the test runs by hand."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, Any, tuple[Any, ...]]] = []

    def call_later(self, delay: float, fn: Any, *args: Any) -> None:
        self.calls.append((delay, fn, args))

    def run(self) -> float:
        delay, fn, args = self.calls.pop(0)
        fn(*args)
        return delay


def test_a_transient_failure_is_retried_with_growing_delays_and_nothing_is_lost() -> None:
    # Issue 13 §2: storage down is never a lost write nor a permanent error.
    w, timer = SlowWriter(), Timer()
    gc: GroupCommit[int, int] = GroupCommit(w, clock=timer)
    got = results([gc.add(1), gc.add(2)])
    w.calls[0][1].errback(StorageError("connection refused"))          # [1] failed
    assert got == [] and gc.retrying
    later = results([gc.add(3)])
    assert timer.run() == 0.25 and [c[0] for c in w.calls] == [[1], [1]]
    w.calls[1][1].errback(StorageError("connection refused"))
    assert timer.run() == 0.5
    w.finish()                                                          # back: [1] written
    assert got[:1] == [10]
    w.finish()                                                          # then [2, 3]
    assert got == [10, 20] and later == [30] and not gc.retrying


def test_a_permanent_failure_fails_its_items_and_the_rest_goes_on() -> None:
    w, timer = SlowWriter(), Timer()
    gc: GroupCommit[int, int] = GroupCommit(w, clock=timer)
    got = results([gc.add(1)])
    w.calls[0][1].errback(StorageError("check constraint", transient=False))
    assert len(got) == 1 and isinstance(got[0].value, StorageError) and timer.calls == []
    assert results([gc.add(2)]) == [] and [c[0] for c in w.calls] == [[1], [2]]


def test_past_max_pending_adds_are_refused_as_backlogged() -> None:
    from storage.batch import Backlogged
    w, timer = SlowWriter(), Timer()
    gc: GroupCommit[int, int] = GroupCommit(w, clock=timer, max_pending=3)
    results([gc.add(i) for i in range(3)])
    assert gc.full
    refused = results([gc.add(9)])
    assert isinstance(refused[0].value, Backlogged) and refused[0].value.transient
    assert gc.refused == 1
