"""Inter-node delivery on a real Redis (xmppd/cluster/transport.py): items reach their node,
answers come back once they are handled, a dead node's stream is claimed, and nothing is
acknowledged to its sender without an answer or a fallback."""
from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import defer, reactor

from tests.harness.backends import REDIS_URL, redis_url, require
from xmppd.cluster.redis import RedisClient
from xmppd.cluster.transport import Transport


class Node:
    def __init__(self, client: RedisClient, prefix: str, name: str, **kw: Any) -> None:
        self.got: list[tuple[str, list[Any]]] = []
        self.fell_back: list[tuple[str, list[Any]]] = []
        self.results: dict[str, Any] = {}
        self.t = Transport(client, reactor, prefix, name, handle=self.handle,
                           fallback=self.fallback, **kw)

    def handle(self, origin: str, item: list[Any]) -> Any:
        self.got.append((origin, item))
        return self.results.get(item[2])

    def fallback(self, node: str, item: list[Any]) -> Any:
        self.fell_back.append((node, item))
        return None


async def until(check: Any, timeout: float = 5.0) -> None:
    waited = 0.0
    while not check():
        assert waited < timeout, "timed out"
        d: defer.Deferred[None] = defer.Deferred()
        reactor.callLater(0.01, d.callback, None)
        await d
        waited += 0.01


@pytest_twisted.ensureDeferred
async def test_items_are_answered_once_handled_and_acknowledged_in_the_stream() -> None:
    require("redis")
    space = redis_url()
    client = RedisClient(reactor, REDIS_URL)
    a = b = None
    try:
        await client.start()
        a, b = Node(client, space.prefix, "a"), Node(client, space.prefix, "b")
        await a.t.start()
        await b.t.start()
        later: defer.Deferred[Any] = defer.Deferred()
        b.results = {"now": "done", "later": later}
        first = a.t.send("b", ["x", 0, "now"])
        second = a.t.send("b", ["x", 0, "later"])
        quiet = a.t.send("b", ["x", 0, "quiet"], reply=False)
        assert quiet is None and first is not None and second is not None
        assert await first == "done"
        await until(lambda: len(b.got) == 3)
        assert [i[2] for _, i in b.got] == ["now", "later", "quiet"]
        assert not second.called            # not handled yet: no answer, entry pending
        pending = await client.execute("XPENDING", b.t.key, "xmppd")
        assert pending[0] == 1
        later.callback("stored")
        assert await second == "stored"
        for _ in range(500):        # acknowledged and deleted: the stream is empty
            if await client.execute("XLEN", b.t.key) == 0:
                break
            await _sleep(0.01)
        assert await client.execute("XLEN", b.t.key) == 0
    finally:
        for n in (a, b):
            if n is not None:
                n.t.stop()
        client.close()
        space.cleanup()


async def _sleep(s: float) -> None:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(s, d.callback, None)
    await d


@pytest_twisted.ensureDeferred
async def test_a_dead_nodes_stream_is_claimed_and_its_senders_answered() -> None:
    require("redis")
    space = redis_url()
    client = RedisClient(reactor, REDIS_URL)
    a = leader = None
    try:
        await client.start()
        a, leader = Node(client, space.prefix, "a"), Node(client, space.prefix, "leader")
        await a.t.start()
        await leader.t.start()
        answers = [a.t.send("dead", ["x", 0, f"m{i}"]) for i in range(3)]
        await until(lambda: a.t.sent_entries == 1)
        leader.results = {"m1": "stored"}
        assert await leader.t.claim("dead") is True
        got = await defer.gatherResults(answers)
        assert got == [None, "stored", None]
        assert [i[2] for o, i in leader.got] == ["m0", "m1", "m2"]
        assert all(o == "a" for o, _ in leader.got)
    finally:
        for n in (a, leader):
            if n is not None:
                n.t.stop()
        client.close()
        space.cleanup()


@pytest_twisted.ensureDeferred
async def test_without_an_answer_the_sender_falls_back_in_time() -> None:
    require("redis")
    space = redis_url()
    client = RedisClient(reactor, REDIS_URL)
    a = None
    try:
        await client.start()
        a = Node(client, space.prefix, "a", reply_timeout=0.2)
        await a.t.start()
        d = a.t.send("nobody", ["x", 0, "m"])
        assert d is not None
        assert await d is None
        assert a.fell_back == [("nobody", ["x", 1, "m"])]
        assert a.t.waiting == 0
    finally:
        if a is not None:
            a.t.stop()
        client.close()
        space.cleanup()


@pytest_twisted.ensureDeferred
async def test_a_node_started_again_reads_what_its_last_run_left_then_new_items() -> None:
    require("redis")
    space = redis_url()
    client = RedisClient(reactor, REDIS_URL)
    a = b = again = None
    try:
        await client.start()
        a, b = Node(client, space.prefix, "a"), Node(client, space.prefix, "b")
        await a.t.start()
        await b.t.start()
        b.results = {"left": defer.Deferred()}          # read, never handled: pending
        left = a.t.send("b", ["x", 0, "left"])
        await until(lambda: len(b.got) == 1)
        b.t.stop()                                       # its run ends with it pending
        await b.t.stopped
        again = Node(client, space.prefix, "b")          # the same node, started again
        again.results = {"left": "stored", "new": "delivered"}
        await again.t.start()
        assert await left == "stored"
        # past the pending entries it reads new ones (it used to page the empty rest forever)
        assert await a.t.send("b", ["x", 0, "new"]) == "delivered"
        assert [i[2] for _, i in again.got] == ["left", "new"]
    finally:
        for n in (a, b, again):
            if n is not None:
                n.t.stop()
        client.close()
        space.cleanup()
