# tests: tests/core/test_hooks.py
"""The hook machinery, ejabberd-style: run (handlers in priority order, any may STOP) and fold.

The hooks themselves, with who fires them, when, and what STOP means (STYLE §3), are declared
in xmppd/hooks.py, which re-exports what modules need from here. Handlers may be plain
functions or `async def`; the registry calls them in ascending priority, awaiting each, so order is deterministic across awaits. A handler that
raises is logged with the stanza summary and skipped; the others still run (STYLE §1.4).
Synchronous handlers cost no Deferred: `run` only goes asynchronous when a handler does.
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from lxml import etree
from twisted.internet import defer


log = logging.getLogger(__name__)
P = TypeVar("P")
A = TypeVar("A")

FIRST, EARLY, NORMAL, LATE, LAST = 0, 25, 50, 75, 100


class _StopType:
    _instance: _StopType | None = None

    def __repr__(self) -> str:
        return "STOP"


STOP = _StopType()


@dataclass(frozen=True, slots=True)
class Stop(Generic[A]):
    """Fold result that ends the chain with `value`."""
    value: A


class RunHook(Generic[P]):
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"RunHook({self.name})"


class FoldHook(Generic[P, A]):
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"FoldHook({self.name})"


Handler = Callable[[Any], Any]


class HookRegistry:
    """The hooks of one virtual host."""

    def __init__(self) -> None:
        self._handlers: dict[object, list[tuple[int, int, Handler]]] = {}
        self._seq = 0
        self.errors = 0

    def add(self, hook: RunHook[Any] | FoldHook[Any, Any], handler: Handler,
            priority: int = NORMAL) -> Callable[[], None]:
        self._seq += 1
        entry = (priority, self._seq, handler)
        lst = self._handlers.setdefault(hook, [])
        lst.append(entry)
        lst.sort(key=lambda e: (e[0], e[1]))

        def remove() -> None:
            if entry in lst:
                lst.remove(entry)
        return remove

    def has(self, hook: object) -> bool:
        return bool(self._handlers.get(hook))

    def run(self, hook: RunHook[P], payload: P) -> bool | defer.Deferred[bool]:
        """Call handlers in order; True if one returned STOP. A Deferred if any handler is async."""
        handlers = self._handlers.get(hook)
        if not handlers:
            return False
        for i, (_, _, handler) in enumerate(handlers):
            result = self._call(hook, handler, payload)
            if result is None:          # most handlers: nothing to wait for, no ABC check
                continue
            if result is STOP:
                return True
            if isinstance(result, defer.Deferred) or inspect.isawaitable(result):
                return defer.Deferred.fromCoroutine(
                    self._run_async(hook, handlers[i + 1:], payload, result))
            if result is not None:
                self._bad_return(hook, handler, result)
        return False

    async def _run_async(self, hook: RunHook[P], rest: list[tuple[int, int, Handler]],
                         payload: P, pending: Any) -> bool:
        if await self._settle(hook, pending, payload) is STOP:
            return True
        for _, _, handler in list(rest):
            result = self._call(hook, handler, payload)
            if inspect.isawaitable(result) or isinstance(result, defer.Deferred):
                result = await self._settle(hook, result, payload)
            if result is STOP:
                return True
        return False

    def fold(self, hook: FoldHook[P, A], payload: P, initial: A) -> A | defer.Deferred[A]:
        """Thread an accumulator through the handlers: handler(payload, acc) -> acc | Stop(acc)."""
        handlers = self._handlers.get(hook)
        if not handlers:
            return initial
        acc: Any = initial
        for i, (_, _, handler) in enumerate(handlers):
            result = self._call(hook, handler, payload, acc)
            if inspect.isawaitable(result) or isinstance(result, defer.Deferred):
                return defer.Deferred.fromCoroutine(
                    self._fold_async(hook, handlers[i + 1:], payload, acc, result))
            if isinstance(result, Stop):
                return result.value  # type: ignore[no-any-return]
            if result is not _FAILED:
                acc = result
        return acc  # type: ignore[no-any-return]

    async def _fold_async(self, hook: FoldHook[P, A], rest: list[tuple[int, int, Handler]],
                          payload: P, acc: Any, pending: Any) -> A:
        result = await self._settle(hook, pending, payload)
        if isinstance(result, Stop):
            return result.value  # type: ignore[no-any-return]
        if result is not _FAILED:
            acc = result
        for _, _, handler in list(rest):
            result = self._call(hook, handler, payload, acc)
            if inspect.isawaitable(result) or isinstance(result, defer.Deferred):
                result = await self._settle(hook, result, payload)
            if isinstance(result, Stop):
                return result.value  # type: ignore[no-any-return]
            if result is not _FAILED:
                acc = result
        return acc  # type: ignore[no-any-return]

    def _call(self, hook: object, handler: Handler, *args: Any) -> Any:
        try:
            return handler(*args)
        except Exception:
            self.errors += 1
            log.exception("hook %s: handler %s failed on %s", hook, _name(handler),
                          summary(args[0]))
            return _FAILED

    async def _settle(self, hook: object, awaitable: Any, payload: Any) -> Any:
        try:
            return await awaitable
        except Exception:
            self.errors += 1
            log.exception("hook %s: async handler failed on %s", hook, summary(payload))
            return _FAILED

    def _bad_return(self, hook: object, handler: Handler, result: object) -> None:
        if result is not _FAILED:
            log.error("hook %s: handler %s returned %r; run hooks return None or STOP",
                      hook, _name(handler), result)


_FAILED = object()


def _name(fn: Handler) -> str:
    return getattr(fn, "__qualname__", repr(fn))


def summary(obj: object) -> str:
    """A log-safe description: element name, type, id, from, to, payload namespace; no body."""
    el = getattr(obj, "stanza", obj)
    if not isinstance(el, etree._Element):
        return type(obj).__name__
    child = next((c for c in el if isinstance(c.tag, str)), None)
    payload = etree.QName(child).namespace if child is not None else None
    return "<%s type=%s id=%s from=%s to=%s payload=%s>" % (
        etree.QName(el).localname, el.get("type"), el.get("id"), el.get("from"), el.get("to"),
        payload)
