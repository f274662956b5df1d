"""Three real nodes: users on different nodes reach each other (slixmpp), none lost or
doubled, and the sender's XEP-0198 ack means the message is handled on the other node."""
from __future__ import annotations

import asyncio
from typing import Any

from tests.harness.clients import XmppClient
from tests.harness.cluster_proc import RunningCluster


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


async def login(user: str, port: int, resource: str = "r") -> XmppClient:
    c = XmppClient(f"{user}@localhost/{resource}", f"{user}-pw")
    assert await c.start(port)
    return c


def test_users_on_different_nodes_exchange_messages(cluster: RunningCluster) -> None:
    async def go() -> None:
        alice = await login("alice", cluster.nodes[0].port)
        bob = await login("bob", cluster.nodes[1].port)
        try:
            alice.send_message(mto="bob@localhost", mbody="hi bob", mtype="chat")
            got = await bob.next_message()
            assert got["body"] == "hi bob" and str(got["from"]) == "alice@localhost/r"
            bob.send_message(mto="alice@localhost/r", mbody="hi alice", mtype="chat")
            got = await alice.next_message()
            assert got["body"] == "hi alice"
        finally:
            await alice.stop()
            await bob.stop()
    run(go())
