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

On SQLite each statement is one multi-row `INSERT … VALUES (…), (…)` too (up to the
connection's limit of bound variables), not an executemany: the sqlite3 module lets go of the
GIL around every row an executemany steps through, and while the reactor thread is busy each
of those rows waited for the GIL to come back — the archive's writer thread spent most of its
time handing the GIL over (issue 18: archive-on messages 0.195 -> 0.141 server CPU-s per 1,000,
`bench/paths_bench.py --scenarios messages`).
"""
from __future__ import annotations

import sqlite3
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
    if conn.dialect.name == "sqlite" and rows:
        _sqlite_values(conn, table, rows, limit)
        return
    for run in chunks(rows, limit):
        conn.execute(insert(table), list(run))


def _sqlite_values(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                   limit: int) -> None:
    """Multi-row VALUES statements (module docstring), values through the columns' own bind
    processors as SQLAlchemy would; every row has the first row's keys."""
    names = list(rows[0])
    prep = conn.dialect.identifier_preparer
    dialect = conn.dialect
    processors = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
    one = "(%s)" % ",".join("?" * len(names))
    head = "INSERT INTO %s (%s) VALUES " % (prep.format_table(table),
                                           ",".join(prep.quote(n) for n in names))
    per_statement = max(1, _max_variables(conn) // len(names))
    for run in chunks(rows, limit):
        for start in range(0, len(run), per_statement):
            part = run[start:start + per_statement]
            values = [row[n] for row in part for n in names]
            for i, process in enumerate(processors):
                if process is not None:
                    values[i::len(names)] = [process(v) for v in values[i::len(names)]]
            conn.exec_driver_sql(head + ",".join([one] * len(part)), tuple(values))


def _max_variables(conn: Connection) -> int:
    raw = conn.connection.dbapi_connection
    try:
        return int(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))  # type: ignore[union-attr]
    except (AttributeError, sqlite3.Error):
        return 999              # SQLite's limit before 3.32
