# tests: xmppd/limits.py, xmppd/listeners/session.py, modules/mam/archiving.py
"""A client sending faster than storage writes is slowed, not refused (xmppd/limits.py
ReadGate, `limits.max_unhandled`). Messages are delivered before the archive commits them
(modules/mam/archiving.py), so without back-pressure a fast sender filled the archive's queue
until every new message was refused with <resource-constraint/> (the lost 2,500 of the archive-on
benchmark, docs/PERFORMANCE.md). Here the archive table is locked by the test: the sender's
connection stops being read once it has `max_unhandled` messages waiting for the archive; when
the lock goes, every message arrives, none refused, each archived once."""
from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import RunningServer, ServerFactory

N = 400                    # messages from alice, about 800 KB: many reads of the server's
BODY = "x" * 2000          # socket, so pausing the reads shows
MAX_UNHANDLED = 50


@contextlib.contextmanager
def archive_locked(storage_url: str) -> Iterator[None]:
    """Nobody else can write the archive table while this holds (the server's writes wait
    or fail transiently and are retried)."""
    if storage_url.startswith("sqlite"):
        conn = sqlite3.connect(storage_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = sa.create_engine(storage_url)
    try:
        with engine.connect() as c, c.begin():
            c.execute(sa.text("LOCK TABLE archive_messages IN EXCLUSIVE MODE"))
            yield
    finally:
        engine.dispose()


def archived(storage_url: str, user: str) -> int:
    engine = sa.create_engine(storage_url)
    try:
        with engine.connect() as c:
            return int(c.execute(sa.text("SELECT count(*) FROM archive_messages "
                                         "WHERE username = :u"), {"u": user}).scalar_one())
    finally:
        engine.dispose()


async def flood(srv: RunningServer) -> tuple[int, list[Any], int]:
    """(messages bob had while the archive was locked, errors alice got, bob's total)."""
    alice = XmppClient("alice@localhost/a", "alice-pw")
    bob = XmppClient("bob@localhost/b", "bob-pw")
    got: list[str] = []
    errors: list[Any] = []
    bob.add_event_handler("message", lambda m: m["body"] and got.append(m["id"]))
    alice.add_event_handler("message_error", errors.append)
    assert await alice.start(srv.port) and await bob.start(srv.port)
    try:
        alice.send_message(mto="bob@localhost", mbody="first", mtype="chat")
        for _ in range(100):                # both archives' settings are loaded: delivery
            if got:                         # needs nothing of the locked database
                break
            await asyncio.sleep(0.05)
        got.clear()
        with archive_locked(srv.storage_url):
            for i in range(N):
                msg = alice.make_message(mto="bob@localhost", mbody=BODY, mtype="chat")
                msg["id"] = f"m{i}"
                msg.send()
            await asyncio.sleep(3.0)
            while_locked = len(got)
        for _ in range(300):            # the archive's retries: 0.25 s doubling to 5 s
            if len(got) >= N:
                break
            await asyncio.sleep(0.1)
        return while_locked, errors, len(got)
    finally:
        await alice.stop()
        await bob.stop()


def test_a_sender_faster_than_the_archive_is_paused_not_refused(
        server_factory: ServerFactory) -> None:
    srv = server_factory(limits={"max_unhandled": MAX_UNHANDLED})
    while_locked, errors, total = run(flood(srv))
    assert not errors, [str(e) for e in errors[:3]]
    assert total == N
    # Reading stopped with MAX_UNHANDLED messages in hand; what the last reads brought in
    # (64 KiB each: ~30 messages) is still handled. Without the pause bob has all N.
    assert MAX_UNHANDLED <= while_locked < MAX_UNHANDLED + 100, while_locked
    # Delivery does not wait for the archive: its last commit (or retry, backing off up to 5 s)
    # may still be under way when bob has everything.
    deadline = time.monotonic() + 20
    while (count := archived(srv.storage_url, "alice")) < N + 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert count == N + 1
