"""External components (XEP-0114) on a cluster (xmppd/cluster/components.py): the component's
stream reaches one node, clients on every node reach it, its answers reach them, and its
domain follows it when it reconnects to another node; with none connected, stanzas for it
are answered <service-unavailable/> on every node."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import slixmpp
from slixmpp.exceptions import IqError

from tests.cluster.clients import Client, online, run
from tests.harness.backends import backend_urls, redis_url, require
from tests.harness.cluster_proc import RunningCluster, make_cluster
from tests.harness.server_proc import DEFAULT_MODULES, register_accounts
from xmppd.cluster.status import _client

APP, SECRET = "app.localhost", "app-s3cret"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    require("postgresql")
    require("redis")
    tmp = tmp_path_factory.mktemp("cluster")
    storage_url, cache_url, cleanups = backend_urls("postgresql+redis", tmp)
    space = redis_url()
    c = make_cluster(tmp, storage_url, cache_url, space.prefix, DEFAULT_MODULES,
                     {"component": {"type": "component", "bind": "127.0.0.1"}},
                     tables={"components": [{"domain": APP, "secret": SECRET}]})
    try:
        register_accounts(c.nodes[0], {u: f"{u}-pw" for u in ("alice", "bob")})
        c.start()
        yield c
    finally:
        c.stop()
        space.cleanup()
        for f in cleanups:
            f()


class App(slixmpp.ComponentXMPP):  # type: ignore[misc]
    """Echoes messages back to their sender and answers every IQ get with a result."""

    def __init__(self) -> None:
        super().__init__(APP, SECRET)
        self.started = asyncio.Event()
        self.got: asyncio.Queue[Any] = asyncio.Queue()
        self.add_event_handler("session_start", lambda _: self.started.set())
        self.add_event_handler("message", self._message)

    def _message(self, msg: Any) -> None:
        self.got.put_nowait(msg)
        msg.reply(f"echo {msg['body']}").send()


async def connect(port: int) -> App:
    app = App()
    app.connect("127.0.0.1", port)
    await asyncio.wait_for(app.started.wait(), 15)
    return app


async def gone(node: Any) -> None:
    for _ in range(100):
        if f"component {APP} disconnected" in node.log():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{APP} still connected:\n{node.log()[-3000:]}")


async def recorded(cluster: RunningCluster, node: str) -> None:
    """Until the cluster's record of where the component is names `node`. A node answers the
    component's handshake before it records it (xmppd/cluster/components.py `connected`): a
    stanza sent from another node in between is answered <service-unavailable/>, as for a
    component not connected, and under load that gap is long enough for a client to fall in."""
    client = _client(cluster.redis_url)
    try:
        for _ in range(100):
            if await asyncio.to_thread(client.hget, f"{cluster.prefix}{{cluster}}:components",
                                       APP) == node.encode():
                return
            await asyncio.sleep(0.1)
    finally:
        client.close()
    raise AssertionError(f"{APP} is not recorded on {node}")


def test_clients_on_every_node_reach_a_component_on_one(cluster: RunningCluster) -> None:
    async def go() -> None:
        n1, n2, n3 = cluster.nodes
        app = await connect(n1.ports["component"])
        alice, bob = Client("alice"), Client("bob")
        await online(n2.port, alice)
        await online(n3.port, bob)
        for c, n in ((alice, 1), (bob, 2)):
            c.send_message(mto=f"{APP}", mbody=f"hi {n}", mtype="chat")
            got = await asyncio.wait_for(app.got.get(), 15)
            assert (got["from"].bare, got["body"]) == (f"{c.boundjid.bare}", f"hi {n}")
            [echo] = await c.messages(1)
            assert (echo["from"].full, echo["body"]) == (APP, f"echo hi {n}")
        # the component goes and comes back on n3: its domain follows it
        await asyncio.wait_for(app.disconnect(), 10)
        await gone(n1)      # a stanza n1 wrote to the closing stream before would be lost
        app = await connect(n3.ports["component"])
        await recorded(cluster, "n3")
        alice.send_message(mto=f"{APP}", mbody="again", mtype="chat")
        got = await asyncio.wait_for(app.got.get(), 15)
        assert got["body"] == "again"
        await asyncio.wait_for(app.disconnect(), 10)
        # nobody holds it: <service-unavailable/> from alice's node
        await asyncio.sleep(0.5)
        with pytest.raises(IqError) as e:
            await alice.make_iq_get(queryxmlns="jabber:iq:version", ito=APP).send(timeout=10)
        assert e.value.condition == "service-unavailable"
        for c in (alice, bob):
            await c.stop()
    run(go())

