# tests: modules/ping.py, xmppd/listeners/c2s.py, modules/presence.py
"""The heartbeat against the real server (keepalive_interval 1 s, keepalive_timeout 1 s), on both
backend pairs: a client that goes silent is pinged and closed within interval + timeout, and
its contacts see it go offline; traffic of any kind, or answering pings, keeps a client on."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.harness.clients import XmppClient, run
from tests.harness.raw import RawClient
from tests.harness.server_proc import DEFAULT_MODULES, RunningServer, ServerFactory
from tests.integration.presence_helpers import Watcher, befriend

KEEPALIVE = {"keepalive_interval": "1 s", "keepalive_timeout": "1 s"}


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(modules=DEFAULT_MODULES | {"ping": KEEPALIVE},
                          users=("bob", "carol", "dave"))


def test_silent_client_is_pinged_and_closed_within_three_seconds(server: RunningServer) -> None:
    async def go() -> None:
        raw = await RawClient.connect(server.port)
        await raw.login("dave", "dave-pw", resource="silent")
        await raw.send("<presence/>")
        went_quiet = time.monotonic()
        # From here on the client answers nothing (reading does not show on the wire).
        data = await raw.read_to_close(timeout=5)
        elapsed = time.monotonic() - went_quiet
        assert b"urn:xmpp:ping" in data
        assert b"connection-timeout" in data and data.endswith(b"</stream:stream>")
        assert elapsed > 1.5 and elapsed < 3.0, elapsed   # interval + timeout = 2 s
        raw.close()
    run(go())


def test_whitespace_keepalives_keep_a_client_on(server: RunningServer) -> None:
    async def go() -> None:
        raw = await RawClient.connect(server.port)
        await raw.login("dave", "dave-pw", resource="spaces")
        await raw.send("<presence/>")
        for _ in range(5):                 # 2.5 s: past interval + timeout
            await raw.send(b" ")
            try:
                data = await raw.read_to_close(timeout=0.5)
            except asyncio.TimeoutError:
                continue
            raise AssertionError(f"closed despite whitespace keepalives: {data!r}")
        assert b"urn:xmpp:ping" not in raw.buf          # never idle, so never pinged
        await raw.send("</stream:stream>")
        raw.close()
    run(go())


def test_client_answering_pings_stays_connected(server: RunningServer) -> None:
    async def go() -> None:
        c = XmppClient("carol@localhost/answers", "carol-pw")      # slixmpp answers pings
        pinged = asyncio.Event()

        def watch(stanza: Any) -> Any:
            if stanza.xml.find("{urn:xmpp:ping}ping") is not None and stanza["type"] == "get":
                pinged.set()
            return stanza
        c.add_filter("in", watch)
        assert await c.start(server.port)
        await asyncio.wait_for(pinged.wait(), 5)
        with pytest.raises(asyncio.TimeoutError):      # past the timeout and the next ping
            await asyncio.wait_for(c.gone.wait(), 2.2)
        assert c.stream_errors == []
        await c.stop()
    run(go())


def test_contacts_see_a_silent_client_go_offline_and_its_last_seen(server: RunningServer) -> None:
    async def go() -> None:
        bob = XmppClient("bob@localhost/pc", "bob-pw", plugins=("xep_0012",))
        carol = XmppClient("carol@localhost/setup", "carol-pw")
        wb, wc = Watcher(bob), Watcher(carol)
        assert await bob.start(server.port) and await carol.start(server.port)
        await befriend(bob, wb, carol, wc)
        await carol.stop()
        await wb.wait_for("unavailable", "carol@localhost/setup")

        raw = await RawClient.connect(server.port)
        await raw.login("carol", "carol-pw", resource="raw")
        await raw.send("<presence/>")
        went_quiet = time.monotonic()
        await wb.wait_for("available", "carol@localhost/raw")
        # carol's network is gone: her client sends nothing and answers nothing
        await wb.wait_for("unavailable", "carol@localhost/raw", timeout=5)
        assert time.monotonic() - went_quiet < 3.0
        # her last seen is the time of the drop, not of her registration (XEP-0012)
        since_registration = time.monotonic() - server.registered_at
        assert since_registration > 4, "too little time passed to tell the two apart"
        last = await bob.plugin["xep_0012"].get_last_activity("carol@localhost", timeout=10)
        assert last["last_activity"]["seconds"] <= 2
        raw.close()
        await bob.stop()
    run(go())
