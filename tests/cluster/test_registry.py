"""The session registry and mirror (xmppd/cluster/registry.py, sessions.py, remote.py): the
session manager's view of local and remote sessions (plain data), and two registries on a real
Redis publishing to and mirroring each other."""
from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from stanzas.errors import StanzaError
from stanzas.jid import JID
from tests.harness.backends import REDIS_URL, redis_url, require
from xmppd.cluster.redis import RedisClient
from xmppd.cluster.registry import Entry, Registry
from xmppd.cluster.remote import RemoteSession
from xmppd.cluster.sessions import ClusterSessions
from xmppd.sessions import SessionKey, SessionState

FEATURES: SessionKey[frozenset[str]] = SessionKey("t.features", shared=True,
                                                   codec=(sorted, frozenset))
FLAG: SessionKey[bool] = SessionKey("t.flag", shared=True)
LOCAL: SessionKey[int] = SessionKey("t.local")


class Wire:
    """A transport that records what would go to other nodes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any], bool]] = []

    def send(self, node: str, item: list[Any], reply: bool = True) -> Any:
        self.sent.append((node, item, reply))
        return defer.Deferred() if reply else None


class Local(SessionState):
    def __init__(self, jid: str) -> None:
        self.jid = JID.parse(jid)
        self._state = {}
        self.priority, self.available, self.presence = 0, False, None
        self.bound = True
        self.closed: list[Any] = []

    def close(self, error: Any = None) -> None:
        self.closed.append(error)


def manager(node: str = "n1", limit: int = 16) -> tuple[ClusterSessions, Wire]:
    m = ClusterSessions(max_sessions_per_user=limit, node=node, epoch=1)
    wire = Wire()
    m.transport = wire  # type: ignore[assignment]
    return m, wire


def test_remote_sessions_route_beside_local_ones() -> None:
    m, wire = manager()
    alice = JID.parse("alice@x")
    m.put_remote(JID.parse("alice@x/phone"), Entry("n2", "s1", 5, True,
                                                   "<presence xmlns='jabber:client'/>",
                                                   {"t.features": ["b", "a"], "t.flag": True}))
    local = Local("alice@x/laptop")
    m.bind(alice, "laptop", local)
    local.available = True
    assert [s.jid.resource for s in m.available(alice)] == ["phone", "laptop"]   # priority
    proxy = m.get(JID.parse("alice@x/phone"))
    assert isinstance(proxy, RemoteSession) and proxy.node == "n2"
    assert proxy.get(FEATURES) == frozenset({"a", "b"}) and proxy.get(FLAG) is True
    assert proxy.get(LOCAL) is None and proxy.presence is not None
    assert proxy.pop(FLAG) is True and proxy.get(FLAG) is None     # popped here only
    proxy.send_bytes(b"<message/>")
    assert wire.sent[-1] == ("n2", ["d", 0, "alice@x/phone", "s1", "<message/>"], True)
    assert m.is_online(alice) and len(m) == 2


def test_a_local_bind_replaces_a_remote_session_and_a_remote_one_waits_behind_a_local() -> None:
    m, wire = manager()
    jid = JID.parse("bob@x/r")
    m.put_remote(jid, Entry("n2", "s1"))
    mine = Local("bob@x/r")
    m.bind(jid.bare, "r", mine)
    assert m.get(jid) is mine
    assert wire.sent[-1][0] == "n2" and wire.sent[-1][1][:5] == ["close", 0, "bob@x/r", "s1",
                                                                 "conflict"]
    m.drop_remote(jid, "s1")                       # the old one's unbind arrives
    m.put_remote(jid, Entry("n3", "s9"))            # a newer login elsewhere
    assert m.get(jid) is mine                       # waits until ours goes
    m.unbind(mine)
    proxy = m.get(jid)
    assert isinstance(proxy, RemoteSession) and proxy.node == "n3"


def test_a_late_update_of_a_replaced_session_is_ignored() -> None:
    m, _ = manager()
    jid = JID.parse("eve@x/r")
    m.put_remote(jid, Entry("n3", "new", 1))                        # the newer login
    m.put_remote(jid, Entry("n1", "old", 9), replace=False)          # the old one's update
    m.drop_remote(jid, "old")                                        # ... and its unbind
    proxy = m.get(jid)
    assert isinstance(proxy, RemoteSession) and (proxy.sid, proxy.priority) == ("new", 1)


def test_max_sessions_per_user_counts_every_node() -> None:
    m, _ = manager(limit=2)
    m.put_remote(JID.parse("carol@x/a"), Entry("n2", "s1"))
    m.put_remote(JID.parse("carol@x/b"), Entry("n3", "s2"))
    with pytest.raises(StanzaError) as e:
        m.bind(JID.parse("carol@x"), "c", Local("carol@x/c"))
    assert e.value.condition == "resource-constraint"


def test_the_last_session_of_a_user_leaving_the_view_is_announced() -> None:
    m, _ = manager()
    gone: list[JID] = []
    m.on_user_gone = gone.append
    m.put_remote(JID.parse("dave@x/a"), Entry("n2", "s1"))
    m.put_remote(JID.parse("dave@x/b"), Entry("n2", "s2"))
    m.drop_remote(JID.parse("dave@x/a"), "s-other")     # not that session: ignored
    m.drop_remote(JID.parse("dave@x/a"), "s1")
    assert gone == []
    m.replace_remote({})
    assert gone == [JID.parse("dave@x")] and not m.is_online(JID.parse("dave@x"))


def test_entries_survive_json() -> None:
    e = Entry("n1", "n1.1.2", -3, True, "<presence/>", {"k": [1, "x"]})
    assert Entry.from_json(e.to_json()) == e


async def until(check: Any, timeout: float = 5.0) -> None:
    waited = 0.0
    while not check():
        assert waited < timeout, "timed out"
        d: defer.Deferred[None] = defer.Deferred()
        reactor.callLater(0.01, d.callback, None)
        await d
        waited += 0.01


@pytest_twisted.ensureDeferred
async def test_two_nodes_mirror_each_others_sessions_through_redis() -> None:
    require("redis")
    space = redis_url()
    client = RedisClient(reactor, REDIS_URL)
    subs = []
    try:
        await client.start()
        nodes = {}
        for name in ("n1", "n2"):
            m, wire = manager(name)
            r = Registry(client, reactor, space.prefix, name, m)
            m.registry = r
            r.set_live(frozenset({"n1", "n2"}), frozenset())
            conflicts: list[Any] = []
            r.on_conflict = lambda *a, c=conflicts: c.append(a)
            ready: defer.Deferred[None] = defer.Deferred()
            subs.append(client.subscribe([r.channel], r.on_message,
                                         lambda d=ready: d.called or d.callback(None)))
            await ready
            nodes[name] = (m, r, conflicts)
        (m1, r1, _), (m2, r2, c2) = nodes["n1"], nodes["n2"]
        s = Local("erin@x/phone")
        m1.bind(JID.parse("erin@x"), "phone", s)
        await until(lambda: m2.get(s.jid) is not None)
        s.available, s.priority = True, 3
        s.set(FEATURES, frozenset({"urn:x"}))          # a shared slot: published
        m1.changed(s)
        await until(lambda: m2.get(s.jid).get(FEATURES) == frozenset({"urn:x"}))
        assert m2.available(s.jid.bare)[0].priority == 3
        # a fresh mirror learns the same from Redis alone
        m3, _ = manager("n3")
        r3 = Registry(client, reactor, space.prefix, "n3", m3)
        r3.set_live(frozenset({"n1", "n2", "n3"}), frozenset())
        await r3.resync()
        assert m3.get(s.jid).priority == 3 and m3.get(s.jid).node == "n1"
        # the same full JID bound on n2: n1 is told to close its session (via on_conflict)
        m2.bind(JID.parse("erin@x"), "phone", Local("erin@x/phone"))
        await until(lambda: bool(c2))
        assert c2[0][0] == "n1" and str(c2[0][1]) == "erin@x/phone"
        # n1's own unbind afterwards deletes nothing of n2's
        m1.unbind(s)
        await until(lambda: m1.get(s.jid) is not None and m1.get(s.jid).node == "n2")
        raw = await client.execute("HGET", r1.user_key("erin@x"), "phone")
        assert Entry.from_json(raw).node == "n2"
        # the leader drops a dead node's entries
        assert [str(j) for j, _ in await r1.drop_node("n2")] == ["erin@x/phone"]
        await until(lambda: m1.get(s.jid) is None)
    finally:
        for c in subs:
            client.release(c)
        client.close()
        space.cleanup()
