"""The cluster's own Redis client (xmppd/cluster/resp.py, redis.py): RESP framing, slots,
and a real Redis for pipelining, pub/sub and reconnection."""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from tests.harness.backends import REDIS_URL, redis_url, require
from xmppd.cluster.redis import RedisClient, command_key, key_slot
from xmppd.cluster.resp import ConnectionLost, Parser, ReplyError, encode


def test_commands_are_encoded_as_resp_arrays() -> None:
    assert encode(("SET", b"k", 12)) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"


def test_parser_reads_every_reply_type_across_chunks() -> None:
    wire = (b"+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:7\r\n"
            b"-ERR wrong\r\n*-1\r\n$0\r\n\r\n")
    p = Parser()
    got: list[object] = []
    for i in range(len(wire)):          # one byte at a time: every split point
        p.feed(wire[i:i + 1])
        got.extend(p.replies())
    assert got[:6] == [b"OK", 42, b"hello", None, [b"a", [7]], got[5]]
    assert isinstance(got[5], ReplyError) and got[5].kind == "ERR"
    assert got[6:] == [None, b""]


def test_parser_refuses_what_is_not_resp() -> None:
    p = Parser()
    p.feed(b"?what\r\n")
    with pytest.raises(ValueError):
        p.replies()


def test_key_slots_match_redis_cluster() -> None:
    # Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    assert key_slot("123456789") == 0x31C3
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers") == 3443
    assert key_slot("foo{}{bar}") == key_slot("foo{}{bar}".encode())
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")


def test_the_key_of_a_command_is_found() -> None:
    assert command_key(("HSET", "k", "f", "v")) == "k"
    assert command_key(("XREADGROUP", "GROUP", "g", "c", "COUNT", 5, "STREAMS", "s", ">")) == "s"
    assert command_key(("EVAL", "return 1", 1, "k", "a")) == "k"
    assert command_key(("EVAL", "return 1", 0)) is None
    assert command_key(("PUBLISH", "ch", "x")) is None


@pytest_twisted.ensureDeferred
async def test_pipelined_commands_subscriptions_and_dedicated_connections() -> None:
    require("redis")
    space = redis_url()
    client = RedisClient(reactor, REDIS_URL)
    try:
        await client.start()
        key = f"{space.prefix}{{t}}:k"
        ds = client.pipeline([("SET", key, "1"), ("INCR", key), ("GET", key),
                              ("HGET", key, "x")])
        assert [await d for d in ds[:3]] == [b"OK", 2, b"2"]
        with pytest.raises(ReplyError) as e:
            await ds[3]
        assert e.value.kind == "WRONGTYPE"
        heard: list[tuple[bytes, bytes]] = []
        subscribed: defer.Deferred[None] = defer.Deferred()
        client.subscribe([space.prefix + "ch"], lambda c, d: heard.append((c, d)),
                         lambda: subscribed.called or subscribed.callback(None))
        await subscribed
        assert await client.execute("PUBLISH", space.prefix + "ch", "hi") == 1
        blocking = client.dedicated(key)
        await blocking.start()
        got = await blocking.execute("BLPOP", f"{space.prefix}{{t}}:list", 0.01)
        assert got is None
        while not heard:
            await _tick()
        assert heard == [((space.prefix + "ch").encode(), b"hi")]
    finally:
        client.close()
        space.cleanup()


@pytest_twisted.ensureDeferred
async def test_commands_fail_fast_while_disconnected_and_work_again_after() -> None:
    require("redis")
    client = RedisClient(reactor, REDIS_URL)
    try:
        await client.start()
        conn = client._conn(client.seed)
        assert conn.proto is not None
        conn.proto.transport.abortConnection()       # the connection drops
        await _tick()
        with pytest.raises(ConnectionLost):
            await conn.execute("PING")
        await conn.start()
        assert await client.execute("PING") == b"PONG"
    finally:
        client.close()


async def _tick() -> None:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(0.01, d.callback, None)
    await d
