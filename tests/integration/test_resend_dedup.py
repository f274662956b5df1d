# tests: modules/mam/archiving.py, storage/archive.py
"""Issue 13 §6: a sender whose message was delivered but not yet acknowledged when the server
stopped sends it again after the restart; the recipient sees it once (XEP-0359 origin-id),
against a real server restarted in between, on both backend pairs."""
from __future__ import annotations

import asyncio
import pytest

from tests.harness.clients import XmppClient
from tests.harness.raw import RawClient
from tests.harness.server_proc import RunningServer, ServerFactory


@pytest.fixture
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(users=("alice", "bob"))     # its own: the test restarts it


MESSAGE = ("<message to='bob@localhost' type='chat' id='{id}'><body>{body}</body>"
           "<origin-id xmlns='urn:xmpp:sid:0' id='{id}'/></message>")


async def bodies(bob: XmppClient, n: int) -> list[str]:
    return [str((await bob.next_message(10))["body"]) for _ in range(n)]


def test_a_message_sent_again_after_a_restart_reaches_its_recipient_once(
        server: RunningServer) -> None:
    async def before() -> list[str]:
        bob = XmppClient("bob@localhost/pc", "bob-pw")
        assert await bob.start(server.port)
        alice = await RawClient.connect(server.port)
        await alice.login("alice", "alice-pw")
        await alice.send(MESSAGE.format(id="o-1", body="hello"))
        got = await bodies(bob, 1)
        alice.close()
        await bob.stop()
        return got

    async def after() -> list[str]:
        bob = XmppClient("bob@localhost/pc", "bob-pw")
        assert await bob.start(server.port)
        alice = await RawClient.connect(server.port)
        await alice.login("alice", "alice-pw")
        await alice.send("<presence/>")
        await alice.send(MESSAGE.format(id="o-1", body="hello"))     # the unacked one again
        await alice.send(MESSAGE.format(id="o-2", body="and now"))
        got = await bodies(bob, 1)
        with pytest.raises(asyncio.TimeoutError):
            await bob.next_message(2)                                # nothing more
        alice.close()
        await bob.stop()
        return got

    assert asyncio.run(before()) == ["hello"]
    server.restart()
    assert asyncio.run(after()) == ["and now"]
