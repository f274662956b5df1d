# tests: tests/core/test_client_session.py, tests/modules/test_stream_mgmt.py
"""What a client session writes (xmppd/listeners/session.py `ClientSession` mixes this in):
stanzas through the host's output filters, the stream's own output, and flow control.

- Every stanza for a bound client — routed to it, or answered by the stream itself — passes
  the host's output filters in priority order (`ModuleContext.output_filter`: XEP-0352 holds
  some back, XEP-0198 counts and keeps what it writes); a filter that takes a stanza writes it
  itself or hands it on later with `pass_on`. The stream's own pending output goes first, so
  order is kept. Nonzas (XEP-0198 `<a/>`) are written uncounted with `write`.
- Flow control (DESIGN.md "the delivery promise"): while the transport is full
  (`pause_writing`) output waits here, up to `limits.max_output_buffer` bytes; past that the
  client counts as gone, as for a dead link: the connection is cut and the session leaves
  routing (`_overflow`).
"""
from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from lxml import etree

from stanzas.wire import serialize
from xmppd.logs import session_fields

if TYPE_CHECKING:
    from xmppd import c2s
    from xmppd.listeners.session import ClientSession, Transport

log = logging.getLogger("xmppd.listeners.session")
_STANZA_STARTS = (b"<message", b"<presence", b"<iq")     # units of serialised stanzas

OutputFilter = Callable[["ClientSession", bytes], bool]
"""`filter(session, data) -> True` if it took the stanza (it writes it, now or later)."""


class SessionOutput:
    """Mixed into ClientSession; the attributes are the session's."""

    transport: Transport | None
    stream: c2s.C2SStream
    bound: bool
    _closing: bool
    _clean_end: bool
    _count: Any                     # the server's core metrics (xmppd/metrics.py)
    _filters: list[tuple[int, int, OutputFilter]]
    _paused: bool                   # the transport asked us to stop writing
    _backlog: deque[bytes] | None   # units waiting for the transport (None: none yet)
    _backlog_bytes: int
    _max_backlog: int
    _leave: Callable[[bool], None]

    @property
    def backlog_bytes(self) -> int:
        """Bytes waiting for the transport to drain (a slow reader)."""
        return self._backlog_bytes

    def pause_writing(self) -> None:
        """The transport is full: keep output here until `resume_writing`."""
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        transport = self.transport
        backlog = self._backlog
        while backlog and not self._paused and transport is not None:
            unit = backlog.popleft()
            self._backlog_bytes -= len(unit)
            transport.send([unit])
        if not backlog:
            self._backlog = None

    def discard_output(self) -> list[bytes]:
        """Take what was never handed to the transport (XEP-0198 accounts for it itself)."""
        units = list(self._backlog) if self._backlog else []
        self._backlog = None
        self._backlog_bytes = 0
        return units

    def send_bytes(self, data: bytes) -> None:
        """Session: one serialised stanza for this client, through the output filters."""
        self._count.out[data[1]] += 1          # metrics: stanzas out, by kind (xmppd/metrics.py)
        self._send_from(0, data)

    def send_element(self, el: etree._Element) -> None:
        data = serialize(el)
        self._count.out[data[1]] += 1
        self._send_from(0, data)

    def pass_on(self, after: OutputFilter, data: bytes) -> None:
        """Hand a stanza that filter `after` took on to the filters after it (XEP-0352 sends
        what it held; XEP-0198 then counts it)."""
        for i, (_, _, f) in enumerate(self._filters):
            if f == after:
                self._send_from(i + 1, data)
                return
        self._send_from(len(self._filters), data)

    def _send_from(self, start: int, data: bytes) -> None:
        filters = self._filters
        for i in range(start, len(filters)):
            if filters[i][2](self, data):  # type: ignore[arg-type]
                return
        self.write([data])

    def write(self, units: list[bytes]) -> None:
        """Write units after the stream's pending output, past every filter (XEP-0198
        nonzas, and the stanzas resent on resumption, which were counted when first sent)."""
        if self.transport is None or self._closing:
            return
        if self.stream.has_output():
            self._flush_stream()
            if self.transport is None or self._closing:
                return
        if units:
            self._emit(units)

    def _emit(self, units: list[bytes]) -> None:
        transport = self.transport
        if transport is None:
            return
        if not self._paused and not self._backlog:
            transport.send(units)
            return
        if self._backlog is None:
            self._backlog = deque()
        self._backlog.extend(units)
        self._backlog_bytes += sum(len(u) for u in units)
        if self._backlog_bytes > self._max_backlog:
            self._overflow()

    def _overflow(self) -> None:
        """More than `max_output_buffer` waits for a client that does not read: a dead link
        (DESIGN.md): cut the connection; the session leaves routing at once."""
        transport = self.transport
        log.info("reads nothing (%d bytes waiting): cut as a dead link", self._backlog_bytes,
                 extra=session_fields(self, "dead_link"))
        self._closing = True
        self._clean_end = False
        self.stream.connection_lost()
        self._leave(False)
        if transport is not None:
            transport.abort()

    def _flush_stream(self) -> None:
        """Write the stream's own output; once bound, its stanzas (the RFC 3921 session
        answer) pass the output filters like any other, in order."""
        units = self.stream.take_output()
        if self.transport is None or not units:
            return
        if not self.bound or not self._filters:
            self._emit(units)
            return
        plain: list[bytes] = []
        for unit in units:
            if unit.startswith(_STANZA_STARTS):
                if plain:
                    self._emit(plain)
                    plain = []
                self._count.out[unit[1]] += 1
                self._send_from(0, unit)
            else:
                plain.append(unit)
        if plain:
            self._emit(plain)
