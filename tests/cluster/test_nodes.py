"""The live set (xmppd/cluster/nodes.py): heartbeats on a real Redis, the leader's cleanup
after a death, and draining out of the set."""
from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import defer, reactor

from tests.harness.backends import REDIS_URL, redis_url, require
from xmppd.cluster.nodes import Nodes, live_set
from xmppd.cluster.redis import RedisClient


def test_live_means_a_heartbeat_within_the_timeout() -> None:
    assert live_set({"a": 100.0, "b": 96.5, "c": 94.9}, now=100.0, timeout=5.0) == \
        frozenset({"a", "b"})


async def sleep(s: float) -> None:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(s, d.callback, None)
    await d


def nodes(client: RedisClient, prefix: str, name: str) -> Nodes:
    return Nodes(client, reactor, prefix, name, heartbeat=0.05, timeout=0.4,
                 info=lambda: {"sessions": 0})


@pytest_twisted.ensureDeferred
async def test_nodes_see_each_other_and_the_leader_cleans_up_once() -> None:
    require("redis")
    space = redis_url()
    client = RedisClient(reactor, REDIS_URL)
    started: list[Nodes] = []
    try:
        await client.start()
        a, b, c = (nodes(client, space.prefix, n) for n in ("a", "b", "c"))
        changes: list[tuple[frozenset[str], frozenset[str]]] = []
        a.listeners.append(lambda live, gone: changes.append((live, gone)))
        cleaned: list[str] = []
        a.on_dead = lambda node: cleaned.append(node)
        b.on_dead = lambda node: cleaned.append("b saw " + node)
        for n in (a, b, c):
            await n.start()
            started.append(n)
        await sleep(0.2)
        assert a.live == b.live == c.live == frozenset({"a", "b", "c"})
        assert a.leader and not b.leader
        info: Any = await client.execute("HGETALL", a.info_key("b"))
        assert b"heartbeat" in info and b"sessions" in info
        c.stop()                                 # c stops beating: it dies
        await sleep(0.8)
        assert a.live == b.live == frozenset({"a", "b"})
        assert changes[-1] == (frozenset({"a", "b"}), frozenset({"c"}))
        # by the leader alone; it looks again for ten node timeouts (what was sent to the dead
        # node meanwhile), so possibly more than once
        assert cleaned and set(cleaned) == {"c"}
        await b.leave()                          # a drain: no more rooms, still reachable
        assert b.placeable == frozenset({"a"}) and b.live == frozenset({"a", "b"})
        await sleep(0.2)
        assert a.placeable == frozenset({"a"}) and a.draining == frozenset({"b"})
        assert changes[-1] == (frozenset({"a", "b"}), frozenset())   # listeners heard it
        b.stop()                                 # then it stops: dead the ordinary way
        await sleep(0.8)
        assert a.live == a.placeable == frozenset({"a"}) and set(cleaned) == {"c", "b"}
    finally:
        for n in started:
            n.stop()
        client.close()
        space.cleanup()
