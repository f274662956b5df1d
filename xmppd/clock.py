# tests: tests/core/test_module.py
"""The only clock modules see (STYLE §1.5): `now()`, `call_later()`, `looping_call()`.

Wraps any Twisted IReactorTime (the real reactor, or `task.Clock` in tests). A `ScopedClock`
remembers what it scheduled and cancels it all on `close()`, so a module's timers die with it.
"""
from __future__ import annotations

from typing import Any, Callable

from twisted.internet import task
from twisted.internet.interfaces import IDelayedCall, IReactorTime


class Clock:
    def __init__(self, reactor: IReactorTime) -> None:
        self.reactor = reactor

    def now(self) -> float:
        return self.reactor.seconds()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> IDelayedCall:
        return self.reactor.callLater(max(0.0, delay), fn, *args)

    def looping_call(self, interval: float, fn: Callable[[], Any]) -> task.LoopingCall:
        lc = task.LoopingCall(fn)
        lc.clock = self.reactor
        lc.start(interval, now=False)
        return lc

    def scoped(self) -> ScopedClock:
        return ScopedClock(self.reactor)


class ScopedClock(Clock):
    def __init__(self, reactor: IReactorTime) -> None:
        super().__init__(reactor)
        self._calls: list[IDelayedCall] = []
        self._loops: list[task.LoopingCall] = []

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> IDelayedCall:
        self._calls = [c for c in self._calls if c.active()]
        call = super().call_later(delay, fn, *args)
        self._calls.append(call)
        return call

    def looping_call(self, interval: float, fn: Callable[[], Any]) -> task.LoopingCall:
        lc = super().looping_call(interval, fn)
        self._loops.append(lc)
        return lc

    def close(self) -> None:
        for c in self._calls:
            if c.active():
                c.cancel()
        for lc in self._loops:
            if lc.running:
                lc.stop()
        self._calls.clear()
        self._loops.clear()
