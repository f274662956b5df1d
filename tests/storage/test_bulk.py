"""Bulk inserts in statements of bounded size (storage/bulk.py, issue 13): a batch of large
archived messages is never one giant statement, on SQLite and PostgreSQL, and nothing is lost or
reordered by the cutting."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select

from storage.archive import ArchiveEntry, Query, SqlArchiveStore
from storage import bulk
from storage.bulk import STATEMENT_BYTES, chunks
from storage.db import Database
from storage.models import accounts, archive_messages
from storage.muc import ArchivedMessage, ArchiveQuery, SqlMucStore, StoredRoom
from tests.harness.backends import resolve
from stanzas.jid import JID

ALICE = JID.parse("alice@example.org")
BOB = JID.parse("bob@example.org")
ROOM = JID.parse("coven@chat.example.org")
BIG = 200 * 1024


def _size(parameters: Any) -> int:
    """Bytes of str/bytes values a cursor call carries: one row (a dict or a tuple) or a list of
    rows (executemany). Binary values come processed: memoryviews (sqlite3) or psycopg2's
    Binary wrapper (its `adapted` is the value)."""
    if isinstance(parameters, dict):
        return sum(_size(v) for v in parameters.values())
    if isinstance(parameters, (list, tuple)):
        return sum(_size(p) for p in parameters)
    if hasattr(parameters, "adapted"):
        return _size(parameters.adapted)
    if isinstance(parameters, memoryview):
        return parameters.nbytes
    return len(parameters) if isinstance(parameters, (str, bytes, bytearray)) else 0


@pytest.fixture
def statement_sizes() -> Iterator[list[int]]:
    """Bytes of values in each statement sent to any database while the test runs."""
    sizes: list[int] = []

    def sent(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        sizes.append(_size(parameters))
    event.listen(Engine, "before_cursor_execute", sent)
    yield sizes
    event.remove(Engine, "before_cursor_execute", sent)


def test_chunks_keep_order_and_bound_size() -> None:
    rows = [{"n": i, "stanza": b"x" * size}
            for i, size in enumerate([10, STATEMENT_BYTES // 2, STATEMENT_BYTES // 2, 5,
                                      3 * STATEMENT_BYTES, 7, 8])]
    runs = [list(run) for run in chunks(rows)]
    assert [[r["n"] for r in run] for run in runs] == [[0, 1], [2, 3], [4], [5, 6]]
    assert all(run for run in runs)
    assert list(chunks([])) == []
    small = [{"stanza": b"<message/>" * 10} for _ in range(500)]
    assert len(list(chunks(small))) == 1        # small messages: still one statement


def test_large_archive_batch_is_cut_into_bounded_statements(
        db: Database, statement_sizes: list[int]) -> None:
    def txn(conn):  # type: ignore[no-untyped-def]
        conn.execute(insert(accounts).values(host="example.org", username="alice",
                                             created_at=1.0))
    resolve(db.run(txn))
    store = SqlArchiveStore(db)
    entries = [ArchiveEntry(ALICE, 1_700_000_000_000_000 + n, f"id{n}", BOB, False,
                            b"<message><body>%d %s</body></message>" % (n, b"x" * BIG))
               for n in range(20)]
    statement_sizes.clear()
    assert resolve(store.append(entries)) == [True] * 20
    # 20 x 200 KiB in one statement was 4 MB (libpq keeps a buffer that large per connection)
    assert max(statement_sizes) <= STATEMENT_BYTES + BIG + 1024
    page = resolve(store.query(ALICE, Query(), max=50))
    assert [m.id for m in page.items] == [f"id{n}" for n in range(20)]
    assert all(len(m.stanza) > BIG for m in page.items)


def test_large_room_archive_batch_is_cut_into_bounded_statements(
        db: Database, statement_sizes: list[int]) -> None:
    store = SqlMucStore(db)
    resolve(store.put_room(StoredRoom(ROOM, {"persistent": True}, "s", 1.0)))
    messages = [ArchivedMessage(ROOM, f"id{n}", float(n), "witch", "crone@example.org",
                                b"<message>%d %s</message>" % (n, b"x" * BIG))
                for n in range(12)]
    statement_sizes.clear()
    assert resolve(store.archive(messages)) == 12
    assert max(statement_sizes) <= STATEMENT_BYTES + BIG + 1024
    page = resolve(store.query(ROOM, ArchiveQuery(limit=50)))
    assert [m.stanza_id for m in page.messages] == [f"id{n}" for n in range(12)]


def test_small_rows_go_in_multi_row_statements_within_the_variable_limit(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: one INSERT … VALUES (…), (…) per chunk instead of an executemany (the sqlite3
    module hands the GIL over on every row of those), never more bound variables than the
    connection allows (PostgreSQL: SQLAlchemy's insertmanyvalues, one statement); the values
    through the columns' types (booleans, bytes, NULL) either way."""
    monkeypatch.setattr(bulk, "_max_variables", lambda conn: 9 * 7)   # 7 archive rows

    def txn(conn):  # type: ignore[no-untyped-def]
        conn.execute(insert(accounts).values(host="example.org", username="alice",
                                             created_at=1.0))
    resolve(db.run(txn))
    store = SqlArchiveStore(db)
    entries = [ArchiveEntry(ALICE, 1_700_000_000_000_000 + n, f"id{n}", BOB, n % 2 == 0,
                            b"<message><body>%d</body></message>" % n,
                            f"o{n}" if n % 3 else None)
               for n in range(30)]
    inserts: list[str] = []

    def sent(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO archive_messages"):
            inserts.append(statement)
    event.listen(Engine, "before_cursor_execute", sent)
    try:
        assert resolve(store.append(entries)) == [True] * 30
    finally:
        event.remove(Engine, "before_cursor_execute", sent)
    assert len(inserts) == (5 if db.dialect == "sqlite" else 1)     # 7+7+7+7+2 rows
    page = resolve(store.query(ALICE, Query(), max=50))
    assert [(m.id, m.stanza) for m in page.items] == [(e.id, e.stanza) for e in entries]
    outgoing = resolve(store.query(ALICE, Query(with_jid=BOB), max=50))
    assert len(outgoing.items) == 30
    assert resolve(store.sent_before(ALICE, "o2"))             # outgoing, with an origin-id
    assert not resolve(store.sent_before(ALICE, "o1"))         # received: not alice's own

    def flags(conn):  # type: ignore[no-untyped-def]
        return [bool(r[0]) for r in conn.execute(
            select(archive_messages.c.outgoing).order_by(archive_messages.c.seq))]
    assert resolve(db.run(flags)) == [n % 2 == 0 for n in range(30)]
