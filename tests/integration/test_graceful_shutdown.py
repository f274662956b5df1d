# tests: xmppd/runtime.py, xmppd/server.py, modules/stream_mgmt.py, modules/offline.py
"""SIGTERM under load, on both backend pairs: slixmpp senders with XEP-0198 keep sending to an
online and an offline recipient while the server is told to stop. The server stops accepting,
closes every stream with <system-shutdown/>, flushes its group commits and exits within the
bound; after a restart every message a sender saw acknowledged is delivered, in offline
storage or in the recipient's archive (MAM)."""
from __future__ import annotations

import asyncio
import signal
import socket
import time
from typing import Any

import pytest

from tests.harness.server_proc import RunningServer, ServerFactory
from tests.integration.test_messaging_slixmpp import Client

NODE_LOCAL = "SIGTERM of one process (a cluster node's drain: tests/cluster/)"

D = "localhost"
SHUTDOWN_TIMEOUT = 10.0


@pytest.fixture
def srv(server_factory: ServerFactory) -> RunningServer:
    """A server of this test's own (each test stops it), on each backend pair."""
    return server_factory(users=("ann", "ben", "cal", "dee"),
                          server={"shutdown_timeout": f"{SHUTDOWN_TIMEOUT} s"})


def bodies_in_archive(page: Any) -> list[str]:
    return [m["mam_result"]["forwarded"]["stanza"]["body"] for m in page["mam"]["results"]]


async def archive_of(client: Client) -> set[str]:
    found: set[str] = set()
    async for page in client.plugin["xep_0313"].retrieve(rsm={"max": 200}, iterator=True):
        found.update(bodies_in_archive(page))
    return found


async def drain(client: Client, quiet: float = 1.5) -> set[str]:
    """Everything the client receives until it has been quiet for `quiet` seconds."""
    got: set[str] = set()
    while True:
        try:
            msg = await client.next_message(timeout=quiet)
        except asyncio.TimeoutError:
            return got
        if msg["body"]:
            got.add(msg["body"])


def test_sigterm_under_load_loses_no_acknowledged_message(srv: RunningServer) -> None:
    acked: set[str] = set()
    live: set[str] = set()
    errors: dict[str, list[str]] = {}

    async def before() -> float:
        senders = [Client("ann"), Client("ben")]
        cal = Client("cal")
        for c in (*senders, cal):
            assert await c.start(srv.port)
            c.add_event_handler("stanza_acked",
                                lambda s: acked.add(s["body"]) if s.name == "message" and
                                s["body"] else None)
        cal.add_event_handler("message", lambda m: live.add(m["body"]) if m["body"] else None)

        async def send(c: Client) -> None:
            i = 0
            while not c.gone.is_set():
                to = "cal" if i % 2 else "dee"
                c.send_message(mto=f"{to}@{D}", mbody=f"{c.boundjid.user}-{to}-{i}",
                               mtype="chat")
                i += 1
                if i % 25 == 0:
                    await asyncio.sleep(0.005)
        tasks = [asyncio.create_task(send(c)) for c in senders]
        deadline = time.monotonic() + 30                    # load: a few hundred acked
        while len(acked) < 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(acked) >= 200
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        for c in (*senders, cal):
            await asyncio.wait_for(c.gone.wait(), 20)
            errors[c.boundjid.user] = c.stream_errors
        for t in tasks:
            await asyncio.wait_for(t, 10)
        return began

    began = asyncio.run(asyncio.wait_for(before(), 120))
    assert srv.proc is not None
    srv.proc.wait(SHUTDOWN_TIMEOUT + 15)
    took = time.monotonic() - began
    assert srv.proc.returncode == 0, srv.log()
    assert took < SHUTDOWN_TIMEOUT, f"exit took {took:.1f} s"
    # The senders read the stream error. A receiver flooded with thousands of messages may
    # see only the end of the connection: slixmpp reads what is in flight no further once
    # the TLS layer closes. The server closed its stream with the error all the same:
    assert errors["ann"] == errors["ben"] == ["system-shutdown"]
    assert errors["cal"] in (["system-shutdown"], [])
    log = (srv.tmp / "xmppd.log").read_text()
    assert log.count("stream closed: system-shutdown") == 3, log[-3000:]
    assert "clients told, queues flushed" in log
    with pytest.raises(OSError):                            # not accepting any more
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()

    srv.start()

    async def after() -> tuple[set[str], set[str]]:
        cal, dee = Client("cal", "again"), Client("dee")
        for c in (cal, dee):
            assert await c.start(srv.port)
        got = await drain(cal) | await drain(dee)
        archived = await archive_of(cal) | await archive_of(dee)
        for c in (cal, dee):
            await c.stop()
        return got, archived

    got, archived = asyncio.run(asyncio.wait_for(after(), 120))
    lost = acked - (live | got | archived)
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged messages lost: {sorted(lost)[:10]}"
    # the offline recipient's messages really went to storage (not only to the archive)
    assert any(b.endswith(tuple(f"-dee-{i}" for i in range(0, 50, 2))) for b in got)


def test_idle_clients_all_read_system_shutdown(srv: RunningServer) -> None:
    async def go() -> None:
        clients = [Client("ann"), Client("ben", resume=False), Client("cal", "x")]
        for c in clients:
            assert await c.start(srv.port)
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        for c in clients:
            await asyncio.wait_for(c.gone.wait(), 20)
            assert c.stream_errors == ["system-shutdown"], c.boundjid
    asyncio.run(asyncio.wait_for(go(), 60))
    assert srv.proc is not None
    assert srv.proc.wait(SHUTDOWN_TIMEOUT + 5) == 0
