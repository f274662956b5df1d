# tests: tests/modules/, tests/core/test_router.py
"""The in-memory harness (STYLE §9.3): a real Server — router, session manager, hooks, the
modules under test — on MemoryReactorClock, with SQLite :memory: on the immediate runner and
the in-process cache. Clients are real `ClientSession`s on a memory transport
(tests/harness/stream.py): they log in, send and expect XML; time moves only by
`clock.advance`. Teardown asserts that no delayed call and no IQ tracker is left behind.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from storage.cache import MemoryCache
from storage.db import Database, ImmediateRunner
from stanzas.jid import JID
from tests.harness.match import ANY, CLIENT_NS, matches, parse
from tests.harness.stream import StreamClient
from xmppd.config import from_dict
from xmppd.server import Server

__all__ = ["ANY", "CLIENT_NS", "Harness", "HarnessClient", "matches", "parse", "resolve"]
HarnessClient = StreamClient


def resolve(x: Any) -> Any:
    """The value of an already-fired Deferred or a coroutine that completes inline."""
    if not isinstance(x, defer.Deferred):
        if hasattr(x, "__await__"):
            x = defer.Deferred.fromCoroutine(x)
        else:
            return x
    out: list[Any] = []
    x.addBoth(out.append)
    assert out, "operation did not complete inline"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


class Harness:
    def __init__(self, modules: dict[str, dict[str, Any]] | None = None,
                 hosts: tuple[str, ...] = ("example.org",), **sections: Any) -> None:
        raw: dict[str, Any] = {"server": {"hosts": list(hosts)}, **sections}
        raw["modules"] = modules if modules is not None else {"disco": {}, "ping": {}}
        self.config = from_dict(raw)
        self.clock = MemoryReactorClock()
        self.clock.advance(1_000_000)
        self.db = Database("sqlite://", runner=ImmediateRunner())
        self.db.migrate()
        self.cache = MemoryCache(clock=self.clock.seconds)
        self.server = Server(self.config, reactor=self.clock, db=self.db, cache=self.cache)
        self.server.load_modules()
        self.sessions: list[StreamClient] = []
        self.streams: list[Any] = []        # tests/harness/stream.py clients on real sessions

    def user(self, jid: str, password: str = "pw") -> JID:
        """Make sure the account exists; returns its bare JID."""
        bare = JID.parse(jid).bare
        assert bare.local is not None
        resolve(self.server.accounts.register(bare.local, bare.domain, password))
        return bare

    def login(self, jid: str, *, available: bool = True) -> StreamClient:
        """A client logged in as `jid` (full), bound, and available unless told otherwise;
        its connection goes when the server closes its stream."""
        client = StreamClient(self, jid, available=available, lose_on_close=True)
        self.sessions.append(client)
        return client

    def disconnect(self, client: StreamClient) -> None:
        """The client's connection is lost without a goodbye."""
        client.drop()

    def close(self) -> None:
        resolve(self.server.stop())
        for c in self.streams:
            c.lost()
        self.db.close()
        left = [c for c in self.clock.getDelayedCalls() if c.active()]
        assert not left, f"delayed calls left behind: {left}"
        for host in self.server.hosts.values():
            assert not host.pending_iqs, f"IQ trackers left: {list(host.pending_iqs)}"
