# tests: storage/bulk.py, storage/archive.py
"""Issue 13 §3 (second half): large messages must not leave the server's memory high. A user
sends 200 messages of 200 KiB (40 MB) to an offline user (each stored offline and archived on
both sides); once all are acknowledged and the server has had a moment to trim its heap, its
RSS must be back near where it started, on SQLite as on PostgreSQL. Before the fix, every
pooled PostgreSQL connection kept a libpq buffer as large as the largest archive batch it had
written as one statement (tens to hundreds of MB each)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.backends import SERVER_BACKENDS
from tests.harness.raw import RawClient
from tests.harness.server_proc import DEFAULT_MODULES, RunningServer, ServerFactory

N = 200
BODY = "x" * (200 * 1024)
GROWTH_MB = 50          # allowed rest RSS above the start; before the fix: +100 MB and more on PostgreSQL


@pytest.fixture(params=SERVER_BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    # housekeeping (malloc_trim) every second instead of 30 s, so "at rest" comes quickly
    monkeypatch.setenv("XMPPD_HOUSEKEEPING_INTERVAL", "1")
    with ServerFactory(request.param, lambda: tmp_path_factory.mktemp("xmppd")) as factory:
        yield factory(users=("alice", "bob"),
                      modules=DEFAULT_MODULES | {"offline": {"max_messages": 10 * N}},
                      limits={"c2s_rate": "off", "stanza_rate": "off",
                              "max_stanza_size": "256 KiB"})


def rss_mb(srv: RunningServer) -> float:
    assert srv.proc is not None
    for line in Path(f"/proc/{srv.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def send_all(port: int) -> None:
    alice = await RawClient.connect(port)
    try:
        await alice.login("alice", "alice-pw")
        await alice.send("<enable xmlns='urn:xmpp:sm:3'/>")
        await alice.read_until(b"<enabled")
        for i in range(N):
            await alice.send(f"<message type='chat' to='bob@localhost' id='m{i}'>"
                             f"<body>{i} {BODY}</body></message>")
        await alice.send("<r xmlns='urn:xmpp:sm:3'/>")
        while True:         # acked = stored: every message is written by now
            await alice.read_until(b"<a ", timeout=60)
            tail = await alice.read_until(b"/>", timeout=10)
            if f"h='{N}'".encode() in tail or f'h="{N}"'.encode() in tail:
                break
            await alice.send("<r xmlns='urn:xmpp:sm:3'/>")
    finally:
        alice.close()


def test_rest_rss_after_large_messages(server: RunningServer) -> None:
    time.sleep(1.5)
    start = rss_mb(server)
    asyncio.run(asyncio.wait_for(send_all(server.port), 120))
    time.sleep(3)           # a few housekeeping rounds
    rest = rss_mb(server)
    print(f"RSS {start:.0f} -> {rest:.0f} MB")
    assert rest - start < GROWTH_MB, f"RSS {start:.0f} MB -> {rest:.0f} MB at rest"
