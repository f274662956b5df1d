# tests: tests/core/test_client_session.py
"""Free the XML parser state of client streams that went quiet (memory per idle connection,
docs/PERFORMANCE.md "Memory per connection").

libxml2's push parser of an open stream holds about 10 KiB; most client connections are idle
most of the time. A stream that read nothing for `IDLE_AFTER` seconds has its parser compacted
(`XmlStreamParser.compact()`: freed, rebuilt from a synthetic header on the next byte, about
10 µs). Freed soon after a login, the memory is reused by the next logins' TLS and parser
state, so the process does not grow by it (freed late, it stays as holes in the heap: glibc
cannot return pages that live objects share).

Only streams that read something since their last compaction are visited (`touch` on each
read): one timer per server, running while such streams exist, so the cost follows activity,
not the number of connections. Each session is one `ClientSession` (TCP, WebSocket).
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall

if TYPE_CHECKING:
    from xmppd.listeners.session import ClientSession
    from xmppd.server import Server

IDLE_AFTER = 2.0        # seconds without a byte before a stream's parser is freed
SWEEP_EVERY = 1.0       # so it is freed 2 to 3 s after the last byte


class IdleParsers:
    def __init__(self, server: Server) -> None:
        self.clock = server.clock
        self.live: set[ClientSession] = set()       # streams whose parser may be built
        self._call: IDelayedCall | None = None

    def touch(self, session: ClientSession) -> None:
        self.live.add(session)
        if self._call is None:
            self._call = self.clock.call_later(SWEEP_EVERY, self.sweep)

    def sweep(self) -> None:
        self._call = None
        now = self.clock.now()
        done = []
        for session in self.live:
            stream = session.stream
            if session.transport is None or stream.closed:
                done.append(session)
            elif now - stream.last_activity >= IDLE_AFTER:
                # Not at a clean stanza boundary (a stanza cut by the read): next time.
                if stream.parser.compact() or stream.parser.compacted:
                    compact = getattr(session.transport, "compact", None)
                    if compact is not None:
                        compact()       # TLS buffers (xmppd/listeners/tlsbuffers.py)
                    done.append(session)
        for session in done:
            self.live.discard(session)
        if self.live:
            self._call = self.clock.call_later(SWEEP_EVERY, self.sweep)

    def forget(self, session: ClientSession) -> None:
        """The stream ended: nothing more to free (and no timer while none is left)."""
        self.live.discard(session)
        if not self.live and self._call is not None:
            self._call.cancel()
            self._call = None


_BY_SERVER: weakref.WeakKeyDictionary[Server, IdleParsers] = weakref.WeakKeyDictionary()


def idle_parsers(server: Server) -> IdleParsers:
    found = _BY_SERVER.get(server)
    if found is None:
        found = _BY_SERVER[server] = IdleParsers(server)
    return found
