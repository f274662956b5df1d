# tests: tests/storage/test_db.py
"""The SQL database: one SQLAlchemy Core engine (SQLite or PostgreSQL) behind a runner.

- `Database.run(fn)` calls `fn(connection)` inside one transaction on the runner's thread and
  returns a Deferred (await it from `async def` code). Commit on return, roll back on exception.
- Operational failures (connection lost, server down, locked or busy database, timeouts,
  constraint violations a store did not handle) become `StorageError`; programming errors
  (`ProgrammingError`, bad arguments) propagate unchanged. Statement parameters are never put
  in error messages (`hide_parameters`), since they may be credentials.
- SQLite: WAL journal (file databases), `foreign_keys=ON`, `busy_timeout`; SQLAlchemy emits
  `BEGIN IMMEDIATE` itself, so transactions, savepoints and DDL are real and a transaction never
  fails half-way on a read-to-write lock upgrade. SQLite has one writer, so this process runs one
  transaction at a time (a lock; other processes such as `xmppctl` wait up to `busy_timeout`).
  `sqlite://` (memory) uses one shared connection, so every call sees the same database.
- PostgreSQL (psycopg2): a pool as large as the runner's thread count, `pool_pre_ping`.
- `migrate()` runs Alembic `upgrade head` from `storage/migrations/`, found as package data, so it
  works from an installed package with no `alembic.ini`.
- `instrument(metrics)` reports transaction, statement and queue latency (storage/metrics.py).
Not here: the schema (`storage/models/`), stores (`storage/<feature>.py`), caches (`storage/cache.py`).
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import QueuePool, StaticPool
from twisted.internet.defer import Deferred

from storage.errors import StorageError
from storage.runner import ImmediateRunner, Runner, ThreadReactor, ThreadRunner

if TYPE_CHECKING:
    from storage.metrics import StorageMetrics

__all__ = ["Database", "ImmediateRunner", "Runner", "StorageError", "ThreadRunner", "alembic_config"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 5000
POOL_TIMEOUT_S = 30.0
_MIGRATION_LOCK = 0x786D707064  # "xmppd": the advisory lock `migrate()` holds on PostgreSQL

# Failures of the environment, not of our code: the caller survives them (STYLE.md §8).
_EXPECTED: tuple[type[BaseException], ...] = (
    exc.OperationalError,  # connection refused/lost, database locked, timeouts, deadlocks
    exc.IntegrityError,  # a constraint lost a race the store did not expect to lose
    exc.InterfaceError,
    exc.InternalError,
    exc.DataError,  # a value the column cannot hold (too long, out of range)
    exc.TimeoutError,  # no pooled connection became free in time
    exc.DisconnectionError,
)


def alembic_config() -> Config:
    """Alembic configuration built in code: migrations are package data (`storage:migrations`)."""
    cfg = Config()
    cfg.set_main_option("script_location", "storage:migrations")
    return cfg


def head_revision() -> str | None:
    """The newest migration revision shipped with this code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


class Database:
    """An SQL database reached through a runner. Owns its engine and its runner.

    Args:
        url: `sqlite:///path`, `sqlite://` (memory) or `postgresql+psycopg2://user@host/db`.
        runner: where transactions run; `ThreadRunner` in the server, `ImmediateRunner` in tests
            and the command line.

    Raises:
        ValueError: for an unsupported URL.
    """

    def __init__(self, url: str, *, runner: Runner) -> None:
        self._url = make_url(url)
        self._runner = runner
        self._metrics: StorageMetrics | None = None
        backend, driver = self._url.get_backend_name(), self._url.get_driver_name()
        self._lock: contextlib.AbstractContextManager[Any]
        if backend == "sqlite" and driver == "pysqlite":
            self._engine = _sqlite_engine(self._url)
            self._lock = threading.Lock()
        elif backend == "postgresql" and driver == "psycopg2":
            self._engine = _postgresql_engine(self._url, runner.size)
            self._lock = contextlib.nullcontext()
        else:
            raise ValueError(
                f"unsupported database URL {self._url.render_as_string(hide_password=True)!r}: "
                "use sqlite:///path, sqlite:// or postgresql+psycopg2://..."
            )

    @classmethod
    def open(cls, url: str, reactor: ThreadReactor | None = None, *, max_threads: int = 10) -> Database:
        """A Database on a ThreadRunner if a reactor is given (the server), else run inline (CLI)."""
        if reactor is None:
            return cls(url, runner=ImmediateRunner())
        if make_url(url).get_backend_name() == "sqlite":
            max_threads = 1  # one writer; more threads would only queue on the lock
        return cls(url, runner=ThreadRunner(reactor, max_threads=max_threads, name="xmppd-db"))

    @property
    def runner(self) -> Runner:
        return self._runner

    @property
    def dialect(self) -> str:
        """`"sqlite"` or `"postgresql"`, for stores that need a dialect-specific statement."""
        return self._engine.dialect.name

    def __repr__(self) -> str:
        return f"<Database {self._url.render_as_string(hide_password=True)}>"

    def run(self, fn: Callable[[Connection], T]) -> Deferred[T]:
        """Run `fn(conn)` in one transaction on the runner.

        The Deferred fires with `fn`'s result after the commit, or fails with `StorageError`
        (expected backend failures) or with whatever else `fn` raised; either way the
        transaction was rolled back.
        """
        metrics = self._metrics
        if metrics is None:
            return self._runner.run(self._transact, fn)
        metrics.pending.inc()
        d = self._runner.run(self._measured, fn, perf_counter())
        return d.addBoth(_passing, metrics.pending.dec)

    def instrument(self, metrics: StorageMetrics) -> None:
        """Report to `metrics` from now on: each transaction, statement and queue wait."""
        self._metrics = metrics

        def started(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            conn.info.setdefault("xmppd_started", []).append(perf_counter())

        def done(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            stack = conn.info.get("xmppd_started")
            if stack:
                metrics.statement_done(statement, perf_counter() - stack.pop())
        event.listen(self._engine, "before_cursor_execute", started)
        event.listen(self._engine, "after_cursor_execute", done)

    def _measured(self, fn: Callable[[Connection], T], queued_at: float) -> T:
        metrics = self._metrics
        assert metrics is not None
        start = perf_counter()
        metrics.queued.observe(start - queued_at)
        ok = False
        try:
            result = self._transact(fn)
            ok = True
            return result
        finally:
            metrics.transaction_done(perf_counter() - start, ok)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic `upgrade head`); blocks.

        Call at start-up before serving, or from the command line. Idempotent.
        """

        def upgrade(conn: Connection) -> None:
            if conn.dialect.name == "postgresql":
                # Nodes starting together on an empty database: one migrates, the others
                # wait here and then find it done (the lock goes with the transaction).
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

        self._transact(upgrade)

    def current_revision(self) -> str | None:
        """The schema revision the database is at (None before the first migration); blocks."""
        return self._transact(lambda conn: MigrationContext.configure(conn).get_current_revision())

    def close(self) -> None:
        """Stop the runner (in-flight transactions finish first), then close all connections."""
        self._runner.stop()
        self._engine.dispose()

    def _transact(self, fn: Callable[[Connection], T]) -> T:
        with self._lock:
            try:
                with self._engine.begin() as conn:
                    return fn(conn)
            except _EXPECTED as e:
                # Chain a scrubbed stand-in, not `e`, and raise outside this block so `e` is not
                # even the implicit context: PostgreSQL's DETAIL ("Failing row contains (…)")
                # could hold credentials. The traceback (where it failed) is kept.
                cause = DatabaseFailure(_describe(e)).with_traceback(e.__traceback__)
                transient = not isinstance(e, (exc.IntegrityError, exc.DataError))
        raise StorageError(str(cause), transient=transient) from cause


def _passing(result: T, then: Callable[[], Any]) -> T:
    then()
    return result


class DatabaseFailure(Exception):
    """The scrubbed cause of a StorageError from the database (driver error and primary message)."""


def _describe(e: BaseException) -> str:
    """Name the failure without SQL parameters, SQL text or PostgreSQL's DETAIL (row values)."""
    orig = e.orig if isinstance(e, exc.DBAPIError) else None
    if orig is None:
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    diag = getattr(orig, "diag", None)  # psycopg2: diag.message_primary has no row values
    primary = getattr(diag, "message_primary", None) or (str(orig).strip().splitlines() or [""])[0]
    code = getattr(orig, "pgcode", None)
    return f"{type(orig).__name__}{f' [{code}]' if code else ''}: {primary}"


def _sqlite_engine(url: URL) -> Engine:
    memory = url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    engine = create_engine(
        url,
        # Memory: one connection shared by every call, or each call would see its own empty DB.
        # File: one pooled connection is enough, since transactions are serialised anyway.
        poolclass=StaticPool if memory else QueuePool,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        hide_parameters=True,
        **({} if memory else {"pool_size": 1, "max_overflow": 0, "pool_timeout": POOL_TIMEOUT_S}),
    )

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would not BEGIN before a
        # SELECT, a SAVEPOINT or DDL); the "begin" hook below emits BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not memory:
                # Readers in other processes do not block the writer, nor it them.
                _set_wal(cur)
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so a transaction
        # that reads and then writes never fails on the lock upgrade, which no timeout retries.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _set_wal(cur: Any) -> None:
    """PRAGMA journal_mode=WAL, retried for up to the busy timeout: SQLite answers it with
    "database is locked" at once, without the busy handler, while another connection (a
    process starting at the same moment, migrating) holds a lock on the file."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(0.1, delay * 2)


def _postgresql_engine(url: URL, threads: int) -> Engine:
    return create_engine(
        url,
        pool_size=max(1, threads),  # one connection per runner thread: nobody waits for one
        max_overflow=1,  # migrate() at start-up, next to a busy pool
        pool_timeout=POOL_TIMEOUT_S,
        pool_pre_ping=True,  # survive a PostgreSQL restart without failing the next call
        hide_parameters=True,
        connect_args={"connect_timeout": 10, "application_name": "xmppd"},
    )
