# tests: xmppd/concurrency.py
"""Per-key locks and one-load-per-key (xmppd/concurrency.py), driven by hand-fired Deferreds:
order per key, independence across keys, release on error and on cancellation, shared
results and failures, and no key kept once idle."""
from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer
from twisted.python.failure import Failure

from xmppd.concurrency import KeyedLock, OneLoad


def run(coro: Any) -> defer.Deferred[Any]:
    return defer.Deferred.fromCoroutine(coro)


def test_work_for_one_key_runs_in_order_and_other_keys_do_not_wait() -> None:
    locks: KeyedLock[str] = KeyedLock()
    gates = {n: defer.Deferred[None]() for n in ("a1", "a2", "b1")}
    log: list[str] = []

    def work(name: str) -> Any:
        async def go() -> str:
            log.append(f"start {name}")
            await gates[name]
            log.append(f"end {name}")
            return name
        return go

    a1, a2 = run(locks.run("a", work("a1"))), run(locks.run("a", work("a2")))
    b1 = run(locks.run("b", work("b1")))
    assert log == ["start a1", "start b1"]          # a2 waits for a1; b is not held up
    assert locks.locked("a") and locks.locked("b") and len(locks) == 2
    gates["b1"].callback(None)
    assert b1.result == "b1" and not locks.locked("b") and len(locks) == 1
    gates["a2"].callback(None)                      # a2 may not start before a1 ends
    assert log[-1] == "end b1"
    gates["a1"].callback(None)
    assert log[-3:] == ["end a1", "start a2", "end a2"]
    assert (a1.result, a2.result) == ("a1", "a2")
    assert len(locks) == 0                          # idle keys are dropped


def test_a_free_lock_is_taken_at_once() -> None:
    locks: KeyedLock[str] = KeyedLock()

    async def now() -> int:
        return 7
    d = run(locks.run("k", now))
    assert d.called and d.result == 7 and len(locks) == 0


def test_the_lock_is_released_when_the_work_fails() -> None:
    locks: KeyedLock[str] = KeyedLock()
    gate: defer.Deferred[None] = defer.Deferred()

    async def boom() -> None:
        await gate
        raise ValueError("no")

    async def after() -> str:
        return "ran"
    failed = run(locks.run("k", boom))
    later = run(locks.run("k", after))
    gate.callback(None)
    assert isinstance(failed.result, Failure) and failed.result.check(ValueError)
    failed.addErrback(lambda f: None)
    assert later.result == "ran" and len(locks) == 0


def test_hold_as_a_context_and_cancelled_waiters_leave_nothing_behind() -> None:
    locks: KeyedLock[str] = KeyedLock()
    gate: defer.Deferred[None] = defer.Deferred()

    async def holder() -> None:
        async with locks.hold("k"):
            await gate

    async def waiter() -> None:
        async with locks.hold("k"):
            pytest.fail("a cancelled waiter must not get the lock")
    first = run(holder())
    second = run(waiter())
    second.cancel()
    second.addErrback(lambda f: f.trap(defer.CancelledError))
    gate.callback(None)
    assert first.called and len(locks) == 0


def test_drained_waits_for_every_key() -> None:
    locks: KeyedLock[int] = KeyedLock()
    gates = [defer.Deferred[None]() for _ in range(3)]

    def wait(g: defer.Deferred[None]) -> Any:
        async def go() -> None:
            await g
        return go
    for n, g in enumerate(gates):
        run(locks.run(n, wait(g)))
    drained = run(locks.drained())
    gates[1].callback(None)
    gates[0].callback(None)
    assert not drained.called
    gates[2].callback(None)
    assert drained.called and len(locks) == 0


def test_concurrent_loads_of_a_key_share_one_result_in_order() -> None:
    once: OneLoad[str, int] = OneLoad()
    calls: list[str] = []
    pending: dict[str, defer.Deferred[int]] = {}

    def load(key: str) -> Any:
        async def go() -> int:
            calls.append(key)
            pending[key] = defer.Deferred()
            return await pending[key]
        return go
    order: list[str] = []
    d1 = once("u", load("u"))
    d2 = once("u", load("u"))
    d3 = once("v", load("v"))
    d1.addCallback(lambda r: order.append(f"first {r}"))
    d2.addCallback(lambda r: order.append(f"second {r}"))
    assert calls == ["u", "v"] and "u" in once and len(once) == 2
    pending["u"].callback(5)
    assert order == ["first 5", "second 5"]
    assert "u" not in once and len(once) == 1       # done: the key is forgotten
    assert not d3.called
    pending["v"].callback(6)
    assert d3.result == 6 and len(once) == 0
    again = once("u", load("u"))                    # a later call loads again
    assert calls == ["u", "v", "u"] and not again.called


def test_a_failed_load_fails_every_waiter_with_the_same_failure() -> None:
    once: OneLoad[str, int] = OneLoad()
    gate: defer.Deferred[int] = defer.Deferred()

    async def load() -> int:
        return await gate
    waiters = [once("k", load) for _ in range(3)]
    gate.errback(KeyError("gone"))
    failures = []
    for d in waiters:
        d.addErrback(failures.append)
    assert len(failures) == 3 and all(f is failures[0] for f in failures)
    assert failures[0].check(KeyError) and len(once) == 0


def test_fallback_answers_everyone_once() -> None:
    seen: list[str] = []

    def fallback(key: str, failure: Failure) -> int:
        seen.append(f"{key}: {failure.value}")
        return -1
    once: OneLoad[str, int] = OneLoad(fallback)
    gate: defer.Deferred[int] = defer.Deferred()

    async def load() -> int:
        return await gate
    a, b = once("k", load), once("k", load)
    gate.errback(RuntimeError("down"))
    assert (a.result, b.result) == (-1, -1) and seen == ["k: down"]


def test_a_load_that_finishes_at_once_answers_at_once() -> None:
    once: OneLoad[str, str] = OneLoad()

    async def load() -> str:
        return "now"
    d = once("k", load)
    assert d.called and d.result == "now" and len(once) == 0

    def broken() -> Any:
        raise TypeError("not even a coroutine")
    failed = once("k", broken)
    assert isinstance(failed.result, Failure) and failed.result.check(TypeError)
    failed.addErrback(lambda f: None)
    assert len(once) == 0
