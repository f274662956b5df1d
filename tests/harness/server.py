# tests: tests/modules/, tests/core/test_router.py
"""The in-memory harness (STYLE §9.3): a real Server — router, session manager, hooks, the
modules under test — on MemoryReactorClock, with SQLite :memory: on the immediate runner and
the in-process cache. Fake sessions send and expect XML; time moves only by `clock.advance`.
"""
from __future__ import annotations

from typing import Any

from lxml import etree
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from stanzas.errors import StreamError
from storage.cache import MemoryCache
from storage.db import Database, ImmediateRunner
from xmppd import hooks
from xmppd.config import from_dict
from xmppd.hooks import SessionEvent
from stanzas.jid import JID
from xmppd.server import Server

ANY = "{any}"
CLIENT_NS = "jabber:client"


def parse(xml: str) -> etree._Element:
    """Parse a stanza written without xmlns as jabber:client (what a client stream means)."""
    wrapped = f"<wrap xmlns='{CLIENT_NS}'>{xml}</wrap>"
    el = etree.fromstring(wrapped)[0]
    el.tail = None
    return etree.fromstring(etree.tostring(el))


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


def matches(expected: etree._Element, actual: etree._Element) -> str | None:
    """None if `actual` matches `expected` ({any} wildcards in attributes and text)."""
    if expected.tag != actual.tag:
        return f"tag {actual.tag} != {expected.tag}"
    for k, v in expected.attrib.items():
        if k not in actual.attrib:
            return f"<{etree.QName(actual).localname}> lacks {k}"
        if v != ANY and actual.get(k) != v:
            return f"<{etree.QName(actual).localname} {k}={actual.get(k)!r}> != {v!r}"
    extra = set(actual.attrib) - set(expected.attrib)
    if extra:
        return f"<{etree.QName(actual).localname}> has unexpected {sorted(extra)}"
    et, at = (expected.text or "").strip(), (actual.text or "").strip()
    if et != ANY and et != at:
        return f"text {at!r} != {et!r}"
    ek = [c for c in expected if isinstance(c.tag, str)]
    ak = [c for c in actual if isinstance(c.tag, str)]
    if len(ek) != len(ak):
        return (f"<{etree.QName(actual).localname}> has {len(ak)} children, "
                f"expected {len(ek)}: {etree.tostring(actual)!r}")
    for e, a in zip(ek, ak):
        why = matches(e, a)
        if why:
            return why
    return None


class FakeStream:
    """The part of the C2S stream the idle timer and the ping module read."""

    def __init__(self, now: float) -> None:
        self.last_activity = now


class FakeSession:
    """A bound client session as the router sees it (xmppd.sessions.Session)."""

    def __init__(self, harness: Harness, jid: JID) -> None:
        self.h = harness
        self.jid = jid
        self.priority = 0
        self.available = False
        self.presence: etree._Element | None = None
        self.outbox: list[etree._Element] = []
        self.closed_with: str | None = None
        self.closed = False
        self.extra: dict[str, Any] = {}
        self.stream = FakeStream(harness.clock.seconds())
        self.idle_timer: Any = None

    # Session protocol
    def send_bytes(self, data: bytes) -> None:
        if not self.closed:
            self.outbox.append(etree.fromstring(data))

    def send_element(self, el: etree._Element) -> None:
        self.send_bytes(etree.tostring(el))

    def close(self, error: StreamError | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.closed_with = error.condition if error else None
        self.h.disconnect(self)

    # test API
    def send(self, xml: str) -> None:
        el = parse(xml)
        el.set("from", str(self.jid))           # what the C2S stream stamps
        self.stream.last_activity = self.h.clock.seconds()
        self.h.server.router.from_client(self, el)

    def whitespace(self) -> None:
        """A whitespace keepalive (RFC 6120 §4.6.1): traffic, but no stanza."""
        self.stream.last_activity = self.h.clock.seconds()

    def received(self) -> list[etree._Element]:
        out, self.outbox = self.outbox, []
        return out

    def expect(self, xml: str) -> etree._Element:
        assert self.outbox, f"{self.jid} received nothing; expected {xml}"
        got = self.outbox.pop(0)
        why = matches(parse(xml), got)
        assert why is None, f"{self.jid}: {why}\n  got: {etree.tostring(got).decode()}"
        return got

    def expect_nothing(self) -> None:
        assert not self.outbox, f"{self.jid} got {[etree.tostring(e) for e in self.outbox]}"


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
        self.sessions: list[FakeSession] = []
        self.streams: list[Any] = []        # tests/harness/stream.py clients on real sessions

    def user(self, jid: str, password: str = "pw") -> JID:
        """Make sure the account exists; returns its bare JID."""
        bare = JID.parse(jid).bare
        assert bare.local is not None
        resolve(self.server.register_user(bare.local, bare.domain, password))
        return bare

    def login(self, jid: str, *, available: bool = True) -> FakeSession:
        full = JID.parse(jid)
        self.user(jid)
        session = FakeSession(self, full)
        assert full.resource is not None
        session.jid = self.server.sessions.bind(full.bare, full.resource, session)
        self.sessions.append(session)
        self._arm_idle(session, self.server.hosts[full.domain].idle_interval)
        resolve(self.server.hosts[full.domain].hooks.run(hooks.session_bound,
                                                         SessionEvent(session)))
        if available:
            session.send("<presence/>")
            session.received()
        return session

    def _arm_idle(self, session: FakeSession, delay: float | None) -> None:
        if delay is not None:
            session.idle_timer = self.clock.callLater(delay, self._idle_check, session)

    def _idle_check(self, session: FakeSession) -> None:
        """What the C2S shell's lazy idle timer does (xmppd/listeners/c2s.py `_idle_check`):
        fire c2s_idle after `idle_interval` without traffic, else re-arm for the remainder."""
        host = self.server.hosts[session.jid.domain]
        interval = host.idle_interval
        if session.closed or interval is None:
            return
        idle = self.clock.seconds() - session.stream.last_activity
        if idle >= interval:
            host.hooks.run(hooks.c2s_idle, hooks.IdleEvent(session, idle))
            self._arm_idle(session, None if session.closed else interval)
        else:
            self._arm_idle(session, interval - idle)

    def disconnect(self, session: FakeSession) -> None:
        session.closed = True
        session.available = False
        if session.idle_timer is not None and session.idle_timer.active():
            session.idle_timer.cancel()
        if self.server.sessions.unbind(session):
            resolve(self.server.hosts[session.jid.domain].hooks.run(
                hooks.session_closed, SessionEvent(session)))

    def close(self) -> None:
        resolve(self.server.stop())
        for c in self.streams:
            c.lost()
        for s in self.sessions:
            if not s.closed:
                self.disconnect(s)
        self.db.close()
        left = [c for c in self.clock.getDelayedCalls() if c.active()]
        assert not left, f"delayed calls left behind: {left}"
        for host in self.server.hosts.values():
            assert not host.pending_iqs, f"IQ trackers left: {list(host.pending_iqs)}"
