# tests: modules/mam/archiving.py, storage/archive.py
"""Issue 13 §6: a sender whose message was delivered but not yet acknowledged when the server
stopped sends it again after the restart; the recipient sees it once (XEP-0359 origin-id),
against a real server restarted in between, on both backend pairs."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.backends import backend_urls
from tests.harness.clients import XmppClient
from tests.harness.raw import RawClient
from tests.harness.server_proc import RunningServer, make_server


@pytest.fixture(params=["sqlite+memory", "postgresql+redis"])
def server(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[RunningServer]:
    storage_url, cache_url, cleanups = backend_urls(request.param, tmp_path)
    srv = make_server(tmp_path, storage_url, cache_url)
    try:
        for user in ("alice", "bob"):
            assert srv.ctl("register", user, "localhost", f"{user}-pw").returncode == 0
        srv.start()
        yield srv
    finally:
        srv.stop()
        for c in cleanups:
            c()


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
