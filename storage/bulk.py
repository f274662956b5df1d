# tests: tests/storage/test_bulk.py, tests/integration/test_large_messages_memory.py
"""Multi-row inserts in statements of bounded size.

`insert_rows(conn, table, rows)` writes `rows` (dicts) with as few statements as it can while no
statement carries much more than `STATEMENT_BYTES` of values (a row larger than that goes alone).

Why (issue 13): an executemany on psycopg2 becomes one `INSERT … VALUES (…), (…)` of up to 1000
rows (SQLAlchemy's insertmanyvalues), and libpq keeps a connection's output buffer as large as
the largest statement it ever sent, for the life of the connection. A group-commit batch of
500 archived 200 KiB messages was one ~200 MB statement (bytea, hex-escaped), and every pooled
connection that wrote such a batch held its buffer: a server's rest RSS went from 100 MB to
600–900 MB after a few bursts of large messages. With statements of about 1 MiB each
connection holds about 2 MiB at most; batches of small messages are still one statement.
SQLite binds row by row, so this changes nothing there but the number of calls.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert

STATEMENT_BYTES = 1 << 20
"""Bytes of str/bytes values per statement, roughly (a single larger row goes alone)."""


def row_size(row: Mapping[str, Any]) -> int:
    """Bytes a row adds to a statement, roughly: its str and bytes values (others are small)."""
    return sum(len(v) for v in row.values() if isinstance(v, (str, bytes)))


def chunks(rows: Sequence[Mapping[str, Any]],
           limit: int = STATEMENT_BYTES) -> Iterator[Sequence[Mapping[str, Any]]]:
    """`rows` in order, cut into runs of at most about `limit` bytes (never empty runs)."""
    start, size = 0, 0
    for i, row in enumerate(rows):
        n = row_size(row)
        if i > start and size + n > limit:
            yield rows[start:i]
            start, size = i, 0
        size += n
    if start < len(rows):
        yield rows[start:]


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                limit: int = STATEMENT_BYTES) -> None:
    """Insert `rows` into `table` in order, in statements of at most about `limit` bytes."""
    for run in chunks(rows, limit):
        conn.execute(insert(table), list(run))
