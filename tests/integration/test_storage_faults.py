# tests: storage/batch.py, storage/cached.py, modules/offline.py, modules/mam/archiving.py
"""Issue 13 §2 acceptance: PostgreSQL, or Redis, stopped and started under load — a private
instance the test starts, never the machine's shared one. A sender with XEP-0198 writes to an
online and an offline user meanwhile: every message acknowledged to it is delivered or stored
offline, and archived for both sides; nothing acknowledged is lost, and nobody gets a permanent
(type cancel) error for the outage."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import pytest

from tests.harness.backends import skip_or_fail
from tests.harness.clients import XmppClient, run
from tests.harness.private_services import PrivatePostgres, PrivateRedis
from tests.harness.server_proc import RunningServer, ServerFactory

N = 240                       # messages, alternating between bob (online) and carol (offline)
RATE = 60.0                   # per second: the outage falls in the middle of the sending
OUTAGE = 5.0                  # seconds the backend is down


class Sender(XmppClient):
    def __init__(self) -> None:
        super().__init__("alice@localhost/load", "alice-pw", plugins=("xep_0198",))
        self.acked: set[str] = set()
        self.errors: list[tuple[str, str, str]] = []
        self.add_event_handler("stanza_acked", self._acked)
        self.add_event_handler("message_error", self._error)

    def _acked(self, stanza: Any) -> None:
        if stanza.name == "message" and stanza["id"]:
            self.acked.add(stanza["id"])

    def _error(self, msg: Any) -> None:
        self.errors.append((msg["id"], msg["error"]["type"], msg["error"]["condition"]))


class Receiver(XmppClient):
    def __init__(self, user: str) -> None:
        super().__init__(f"{user}@localhost/r", f"{user}-pw")
        self.got: set[str] = set()
        self.add_event_handler("message", lambda m: m["body"] and self.got.add(m["id"]))


@pytest.fixture
def backends() -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    try:
        pg, redis = PrivatePostgres(), PrivateRedis()
    except (FileNotFoundError, RuntimeError) as e:
        skip_or_fail(f"private PostgreSQL/Redis unavailable: {e}")
    try:
        yield pg, redis
    finally:
        pg.close()
        redis.close()


@pytest.fixture
def server(backends: tuple[PrivatePostgres, PrivateRedis], tmp_path: Any
           ) -> Iterator[RunningServer]:
    pg, redis = backends
    with ServerFactory((pg.url, redis.url), lambda: tmp_path) as factory:
        yield factory(users=("alice", "bob", "carol"))


async def load(srv: RunningServer, outage: Any) -> tuple[Sender, set[str], set[str]]:
    alice, bob = Sender(), Receiver("bob")
    assert await alice.start(srv.port) and await bob.start(srv.port)
    sent: list[tuple[str, str]] = []
    task: asyncio.Task[None] | None = None
    for i in range(N):
        if i == N // 4:
            task = asyncio.create_task(asyncio.to_thread(outage))
        to = "bob" if i % 2 == 0 else "carol"
        msg = alice.make_message(mto=f"{to}@localhost", mbody=f"{i}", mtype="chat")
        msg["id"] = f"m{i}"
        msg.send()
        sent.append((f"m{i}", to))
        await asyncio.sleep(1 / RATE)
    assert task is not None
    await task
    sm = alice.plugin["xep_0198"]
    answered = lambda: len(alice.acked) + len(alice.errors) >= N  # noqa: E731
    deadline = time.monotonic() + 90
    while not answered() and time.monotonic() < deadline:
        sm.request_ack()
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)            # deliveries that raced the last ack
    carol = Receiver("carol")
    assert await carol.start(srv.port)
    await asyncio.sleep(2.0)            # offline messages arrive after the initial presence
    for c in (alice, bob, carol):
        await c.stop()
    to_bob = {m for m, to in sent if to == "bob"}
    return alice, bob.got & to_bob | {m for m in carol.got}, {m for m, to in sent}


def archived(pg: PrivatePostgres, user: str) -> set[str]:
    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user="xmppd", dbname="xmppd")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT stanza FROM archive_messages WHERE username = %s", (user,))
            found = set()
            for (stanza,) in cur.fetchall():
                text = bytes(stanza).decode()
                start = text.index(' id="') + 5 if ' id="' in text else text.index(" id='") + 5
                found.add(text[start:text.index(text[start - 1], start)])
            return found
    finally:
        conn.close()


def check(alice: Sender, delivered: set[str], sent: set[str], pg: PrivatePostgres) -> None:
    assert not [e for e in alice.errors if e[1] == "cancel"], alice.errors   # transient only
    assert alice.acked, "nothing was acknowledged"
    lost = alice.acked - delivered
    assert not lost, f"acknowledged but lost: {sorted(lost)}"
    assert alice.acked | {e[0] for e in alice.errors} == sent     # each answered one way
    missing = alice.acked - archived(pg, "alice")
    assert not missing, f"acknowledged but not in alice's archive: {sorted(missing)}"


def test_postgresql_outage_under_load_loses_nothing_acknowledged(
        server: RunningServer, backends: tuple[PrivatePostgres, PrivateRedis]) -> None:
    pg, _ = backends

    def outage() -> None:
        pg.stop()
        time.sleep(OUTAGE)
        pg.start()
    alice, delivered, sent = run(load(server, outage), 240)
    check(alice, delivered, sent, pg)
    assert "storage failed" in server.log() or "storage is back" in server.log()


def test_redis_outage_under_load_loses_nothing_acknowledged(
        server: RunningServer, backends: tuple[PrivatePostgres, PrivateRedis]) -> None:
    pg, redis = backends

    def outage() -> None:
        redis.stop()
        time.sleep(OUTAGE)
        redis.start()
    alice, delivered, sent = run(load(server, outage), 240)
    check(alice, delivered, sent, pg)
