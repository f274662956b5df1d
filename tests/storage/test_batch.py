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
