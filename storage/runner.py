# tests: tests/storage/test_db.py, tests/storage/test_cache.py
"""Where blocking storage I/O runs, so the reactor thread never waits on a database or Redis.

- `ThreadRunner`: a bounded `twisted.python.threadpool.ThreadPool`; calls go through
  `deferToThreadPool` and their Deferreds fire back on the reactor thread. The pool starts when the
  reactor runs (or on `start()`) and is stopped, after in-flight calls finish, at reactor shutdown
  (or on `stop()`), the way `twisted.enterprise.adbapi.ConnectionPool` manages its pool.
- `ImmediateRunner`: runs the call inline and returns an already-fired Deferred. For unit tests
  (deterministic, no threads) and for the command line, where blocking is fine.
"""
from __future__ import annotations

from typing import Any, Callable, ParamSpec, Protocol, TypeVar, cast

from twisted.internet import defer, threads
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.threadpool import ThreadPool

from storage.errors import StorageError

P = ParamSpec("P")
T = TypeVar("T")


class Runner(Protocol):
    """Runs blocking callables somewhere that is not the reactor thread's critical path."""

    @property
    def size(self) -> int:
        """How many calls may run at once (connection pools are sized from this)."""
        ...

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class ThreadReactor(Protocol):
    """The parts of the reactor a ThreadRunner needs (IReactorCore + IReactorFromThreads)."""

    def callFromThread(self, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> None: ...

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def addSystemEventTrigger(
        self, phase: str, eventType: str, callable: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any: ...

    def removeSystemEventTrigger(self, triggerID: Any) -> None: ...


class ThreadRunner:
    """A bounded thread pool tied to the reactor's life cycle.

    Args:
        reactor: the running (or soon running) reactor; results fire on its thread.
        max_threads: the bound; also the size of the connection pool a Database builds on it.
        name: thread name prefix, shown in stack dumps.
    """

    def __init__(self, reactor: ThreadReactor, *, max_threads: int = 10, name: str = "xmppd-storage") -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self._reactor = reactor
        self._max_threads = max_threads
        self._pool = ThreadPool(minthreads=0, maxthreads=max_threads, name=name)
        self._started = False
        self._stopped = False
        self._shutdown_id: Any = None
        # If the reactor already runs this starts the pool now and returns None.
        self._start_id: Any = reactor.callWhenRunning(self._start_when_running)

    @property
    def size(self) -> int:
        return self._max_threads

    def _start_when_running(self) -> None:
        self._start_id = None
        self.start()

    def start(self) -> None:
        """Start the pool now (idempotent). Calls made before this are queued, not lost."""
        if self._started or self._stopped:
            return
        self._started = True
        self._pool.start()
        self._shutdown_id = self._reactor.addSystemEventTrigger("during", "shutdown", self._stop_at_shutdown)

    def _stop_at_shutdown(self) -> None:
        self._shutdown_id = None
        self.stop()

    def stop(self) -> None:
        """Wait for in-flight calls, then end the threads (idempotent). Later calls fail."""
        if self._stopped:
            return
        self._stopped = True
        for trigger in (self._start_id, self._shutdown_id):
            if trigger is not None:
                self._reactor.removeSystemEventTrigger(trigger)
        self._start_id = self._shutdown_id = None
        if not self._started:
            # Calls queued before the reactor ran still run (and their Deferreds fire); with
            # nothing queued, starting creates no thread.
            self._started = True
            self._pool.start()
        self._pool.stop()

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        if self._stopped:
            return defer.fail(StorageError("storage runner is stopped"))
        return threads.deferToThreadPool(cast(IReactorFromThreads, self._reactor), self._pool, fn, *args, **kwargs)


class ImmediateRunner:
    """Runs each call inline on the caller's thread; the Deferred has fired when `run` returns."""

    @property
    def size(self) -> int:
        return 1

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        return defer.execute(fn, *args, **kwargs)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
