# tests: xmppd/hooks.py
from __future__ import annotations

import logging

import pytest
from twisted.internet import defer

from tests.harness.server import resolve
from xmppd.hooks import EARLY, LATE, STOP, FoldHook, HookRegistry, RunHook, Stop

h_run: RunHook[list[str]] = RunHook("test_run")
h_fold: FoldHook[str, int] = FoldHook("test_fold")


def test_handlers_run_in_priority_then_registration_order() -> None:
    reg = HookRegistry()
    reg.add(h_run, lambda log: log.append("late"), LATE)
    reg.add(h_run, lambda log: log.append("normal-1"))
    reg.add(h_run, lambda log: log.append("early"), EARLY)
    reg.add(h_run, lambda log: log.append("normal-2"))
    log: list[str] = []
    assert reg.run(h_run, log) is False
    assert log == ["early", "normal-1", "normal-2", "late"]


def test_stop_ends_the_chain() -> None:
    reg = HookRegistry()
    reg.add(h_run, lambda log: STOP)
    reg.add(h_run, lambda log: log.append("never"), LATE)
    log: list[str] = []
    assert reg.run(h_run, log) is True
    assert log == []


def test_failing_handler_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    reg = HookRegistry()

    def boom(log: list[str]) -> None:
        raise RuntimeError("boom")
    reg.add(h_run, boom, EARLY)
    reg.add(h_run, lambda log: log.append("after"))
    log: list[str] = []
    with caplog.at_level(logging.ERROR):
        assert reg.run(h_run, log) is False
    assert log == ["after"] and reg.errors == 1
    assert "boom" in caplog.text


def test_async_handlers_keep_order_across_awaits() -> None:
    reg = HookRegistry()
    gate: defer.Deferred[None] = defer.Deferred()

    async def slow(log: list[str]) -> None:
        await gate
        log.append("slow")
    reg.add(h_run, slow, EARLY)
    reg.add(h_run, lambda log: log.append("fast"))
    log: list[str] = []
    result = reg.run(h_run, log)
    assert isinstance(result, defer.Deferred) and log == []
    gate.callback(None)
    assert resolve(result) is False
    assert log == ["slow", "fast"]


def test_async_stop() -> None:
    reg = HookRegistry()

    async def stopper(log: list[str]) -> object:
        return STOP
    reg.add(h_run, stopper)
    reg.add(h_run, lambda log: log.append("never"), LATE)
    log: list[str] = []
    assert resolve(reg.run(h_run, log)) is True and log == []


def test_fold_threads_the_accumulator_and_stop_value() -> None:
    reg = HookRegistry()
    reg.add(h_fold, lambda p, acc: acc + len(p))
    reg.add(h_fold, lambda p, acc: acc * 2, LATE)
    assert reg.fold(h_fold, "abc", 1) == 8
    reg.add(h_fold, lambda p, acc: Stop(-1), EARLY)
    assert reg.fold(h_fold, "abc", 1) == -1


def test_fold_with_async_handler() -> None:
    reg = HookRegistry()

    async def add(p: str, acc: int) -> int:
        return acc + 10
    reg.add(h_fold, add)
    reg.add(h_fold, lambda p, acc: acc + 1, LATE)
    assert resolve(reg.fold(h_fold, "x", 0)) == 11


def test_removal_undoes_registration() -> None:
    reg = HookRegistry()
    remove = reg.add(h_run, lambda log: log.append("x"))
    remove()
    log: list[str] = []
    reg.run(h_run, log)
    assert log == [] and not reg.has(h_run)
