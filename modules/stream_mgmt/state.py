# tests: tests/modules/test_stream_mgmt.py
"""One stream's XEP-0198 state: counters, the handled prefix, unacknowledged stanzas, and the
resumption timer (the module in __init__.py decides what the nonzas mean).

Counters are absolute; the wire carries them mod 2^32 (§4). The server's h covers only the
*handled prefix* of what the client sent (`Router.from_client`: delivered or committed), and
an <r/> is answered once everything received before it is handled.
"""
from __future__ import annotations

import secrets
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall

from stanzas import ns
from stanzas.errors import StreamError
from xmppd.module import SessionKey

if TYPE_CHECKING:
    from modules.stream_mgmt import StreamManagement

NS = ns.SM
MOD = 2 ** 32
REQUEST = b"<r xmlns='urn:xmpp:sm:3'/>"
Done = Callable[[bool], None]


class HandledCountTooHigh(StreamError):
    """§6: undefined-condition with <handled-count-too-high h send-count/>."""

    def __init__(self, h: int, sent: int) -> None:
        super().__init__("undefined-condition",
                         f"You acknowledged {h} stanzas, but I only sent you {sent} so far.")
        self.h, self.sent = h, sent

    def to_bytes(self) -> bytes:
        return super().to_bytes().replace(
            b"</stream:error>", b"<handled-count-too-high xmlns='%s' h='%d' send-count='%d'/>"
            b"</stream:error>" % (NS.encode(), self.h, self.sent))


class Out:
    """An unacknowledged stanza: its bytes, who waits for its ack, when it was first sent."""
    __slots__ = ("data", "done", "at")

    def __init__(self, data: bytes, done: Done | None, at: float) -> None:
        self.data, self.done, self.at = data, done, at


class SmState:
    """One session's stream management, in its `STATE` slot. Counters are absolute; the wire
    carries them mod 2^32."""

    def __init__(self, module: StreamManagement, session: Any, resumable: bool,
                 timeout: float) -> None:
        self.m = module
        self.session = session
        # On a cluster the id names this node (modules/stream_mgmt/handover.py).
        self.id = module.id_prefix + secrets.token_urlsafe(24) if resumable else None
        self.timeout = timeout
        self.received = 0           # stanzas from the client
        self.handled = 0            # ... of which the handled prefix
        self.pending: deque[list[Any]] = deque()     # [number, handled?] past the prefix
        self.answers: list[int] = []                 # <r/> waiting for the prefix to reach n
        self.settle_waiters: list[defer.Deferred[None]] = []
        self.sent = 0               # stanzas to the client
        self.acked = 0
        self.queue: deque[Out] = deque()
        self.queued_bytes = 0       # of what is in `queue`
        self.requested = False      # an <r/> of ours is unanswered
        self.detached = False
        self.resuming = False
        self.timer: IDelayedCall | None = None

    # -- the session's traffic -------------------------------------------------------------
    def outgoing(self, data: bytes, done: Done | None = None) -> None:
        """Count a stanza for the client, keep it until acknowledged, and write it (with an
        ack request when due)."""
        self._count(data, done)
        units = [data]
        if not self.requested and not self.detached:
            self.requested = True
            units.append(REQUEST)
        self.session.write(units)

    def incoming(self, handled: defer.Deferred[None] | None) -> None:
        self.received += 1
        if handled is None and not self.pending:
            self.handled = self.received
            if self.answers:
                self._answer()
            return
        entry = [self.received, handled is None]
        self.pending.append(entry)
        if handled is not None:
            handled.addBoth(self._one_handled, entry)

    def hold(self, clean: bool) -> bool:
        """The connection is gone: True keeps the session bound for resumption (§5)."""
        if clean or self.id is None or self.m.stopping:
            return False
        self.detached = True
        self.requested = False
        self.answers.clear()
        self.timer = self.m.ctx.clock.call_later(self.timeout, self._expire)
        return True

    def ended(self) -> None:
        """The session is over; no resumption: what is unacknowledged goes elsewhere (§4)."""
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        self.m.forget(self)
        queue, self.queue = self.queue, deque()
        self.queued_bytes = 0
        for out in queue:
            if out.done is not None:
                out.done(False)
            else:
                self.m.undelivered(self.session, out)

    # -- internals ---------------------------------------------------------------------------
    def _count(self, data: bytes, done: Done | None) -> None:
        self.sent += 1
        self.queue.append(Out(data, done, self.m.ctx.clock.now()))
        self.queued_bytes += len(data)
        if len(self.queue) > self.m.max_unacked or self.queued_bytes > self.m.max_unacked_size:
            self.session.close(StreamError.policy_violation(
                "too many unacknowledged stanzas (XEP-0198)"))

    def _one_handled(self, _: object, entry: list[Any]) -> None:
        entry[1] = True
        while self.pending and self.pending[0][1]:
            self.handled = self.pending.popleft()[0]
        if self.answers:
            self._answer()
        if not self.pending and self.settle_waiters:
            waiters, self.settle_waiters = self.settle_waiters, []
            for d in waiters:
                d.callback(None)

    def request_answered(self) -> None:
        """<r/>: answer once what came before it is handled (§4)."""
        self.answers.append(self.received)
        self._answer()

    def _answer(self) -> None:
        if self.answers and self.handled >= self.answers[0]:
            self.answers = [n for n in self.answers if n > self.handled]
            self.session.write([b"<a xmlns='%s' h='%d'/>" % (NS.encode(), self.handled % MOD)])

    def settled(self) -> defer.Deferred[None]:
        """Fires once every stanza received so far is handled."""
        if not self.pending:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self.settle_waiters.append(d)
        return d

    def too_high(self, h: int) -> bool:
        """More than was sent (§6). An h behind an earlier one acknowledges nothing new."""
        return (h - self.acked) % MOD > len(self.queue) and not self._behind(h)

    def _behind(self, h: int) -> bool:
        return 0 < (self.acked - h) % MOD <= self.acked

    def acknowledged(self, h: int) -> int:
        """The client handled our stanzas up to h (mod 2^32); returns how many were new."""
        if self._behind(h):
            return 0
        n = (h - self.acked) % MOD
        for _ in range(n):
            out = self.queue.popleft()
            self.queued_bytes -= len(out.data)
            if out.done is not None:
                out.done(True)
        self.acked += n
        return n

    def _expire(self) -> None:
        self.timer = None
        self.session.end()


# The session's stream management, once enabled; moves with the session on resumption.
STATE: SessionKey[SmState] = SessionKey("stream_mgmt.state")


def parse_h(value: str | None) -> int | None:
    """An xs:unsignedInt attribute (§4: 'h'), or None."""
    if value is None or not value.strip().isdigit():
        return None
    n = int(value)
    return n if n < MOD else None
