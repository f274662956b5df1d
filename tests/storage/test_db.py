"""Database contract: transactions, error mapping, migrations, runners — on SQLite and PostgreSQL."""
from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
import pytest_twisted
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Connection, Integer, MetaData, insert, inspect, select, text
from twisted.internet import defer
from twisted.internet.defer import Deferred

from storage.accounts import SqlAccountStore
from storage.db import Database, alembic_config, head_revision
from storage.errors import StorageError
from storage.models import account_credentials, accounts, metadata
from storage.runner import ImmediateRunner, ThreadRunner
from tests.harness.backends import require, resolve


def _add(conn: Connection, username: str, host: str = "example.org") -> None:
    conn.execute(insert(accounts).values(host=host, username=username, created_at=1.0))


def _usernames(conn: Connection) -> list[str]:
    return sorted(conn.execute(select(accounts.c.username)).scalars())


def test_run_returns_the_result_to_async_code(db: Database) -> None:
    async def caller() -> list[str]:
        await db.run(lambda conn: _add(conn, "alice"))
        return await db.run(_usernames)

    assert resolve(caller()) == ["alice"]


def test_exception_in_transaction_rolls_back_and_propagates_unchanged(db: Database) -> None:
    def txn(conn: Connection) -> None:
        _add(conn, "alice")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        resolve(db.run(txn))
    assert resolve(db.run(_usernames)) == []


def test_constraint_violation_becomes_storage_error_and_rolls_back(db: Database) -> None:
    def txn(conn: Connection) -> None:
        _add(conn, "alice")
        _add(conn, "bob")
        _add(conn, "alice")

    with pytest.raises(StorageError) as info:
        resolve(db.run(txn))
    assert "IntegrityError" in str(info.value) or "UniqueViolation" in str(info.value)
    assert info.value.transient is False        # repeating it will not help: no retry
    assert resolve(db.run(_usernames)) == []


@pytest.mark.parametrize("violation", ["foreign-key", "check"])
def test_storage_errors_carry_no_row_values(db: Database, violation: str) -> None:
    secret = b"s3cret-value-never-logged"
    resolve(db.run(lambda conn: _add(conn, "alice")))

    def txn(conn: Connection) -> None:
        conn.execute(
            insert(account_credentials).values(
                host="example.org", username="nobody" if violation == "foreign-key" else "alice",
                mechanism="SCRAM-SHA-256", salt=secret, stored_key=secret, server_key=secret,
                iterations=4096 if violation == "foreign-key" else 0,
            )
        )

    with pytest.raises(StorageError) as info:
        resolve(db.run(txn))
    chain = [info.value, info.value.__cause__, info.value.__context__]
    text_seen = " ".join(f"{e!s} {e!r}" for e in chain if e is not None)
    assert secret.decode() not in text_seen and secret.hex() not in text_seen
    assert info.value.__cause__ is not None and info.value.__cause__.__traceback__ is not None
    # PostgreSQL puts the failing row in DETAIL; make sure the test would have seen it there.
    if db.dialect == "postgresql" and violation == "check":
        assert "iterations_positive" in str(info.value)


def test_foreign_keys_are_enforced(db: Database) -> None:
    def txn(conn: Connection) -> None:
        conn.execute(
            insert(account_credentials).values(
                host="example.org", username="ghost", mechanism="SCRAM-SHA-1",
                salt=b"s", iterations=4096, stored_key=b"k", server_key=b"k",
            )
        )

    with pytest.raises(StorageError):
        resolve(db.run(txn))


def test_savepoint_rolls_back_alone_inside_a_transaction(db: Database) -> None:
    def txn(conn: Connection) -> None:
        _add(conn, "alice")
        try:
            with conn.begin_nested():
                _add(conn, "bob")
                raise KeyError("undo bob")
        except KeyError:
            pass
        _add(conn, "carol")

    resolve(db.run(txn))
    assert resolve(db.run(_usernames)) == ["alice", "carol"]


@pytest.mark.parametrize(
    "url",
    ["sqlite:////nonexistent-dir-xmppd/xmppd.db", "postgresql+psycopg2://postgres@127.0.0.1:1/xmppd"],
    ids=["sqlite", "postgresql"],
)
def test_unreachable_database_is_storage_error(url: str) -> None:
    database = Database(url, runner=ImmediateRunner())
    try:
        with pytest.raises(StorageError) as info:
            resolve(database.run(lambda conn: conn.execute(text("SELECT 1")).scalar()))
        assert info.value.transient is True     # an outage: writes due are retried
    finally:
        database.close()


def test_postgresql_connection_lost_fails_one_call_then_recovers(migrated_postgres_url: str) -> None:
    database = Database(migrated_postgres_url, runner=ImmediateRunner())
    try:
        with pytest.raises(StorageError, match="OperationalError"):
            resolve(database.run(lambda conn: conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))))
        assert resolve(database.run(lambda conn: conn.execute(text("SELECT 1")).scalar())) == 1
    finally:
        database.close()


@pytest.mark.parametrize("url", ["mysql://u@localhost/x", "postgresql+asyncpg://u@localhost/x", "sqlite+aiosqlite://"])
def test_unsupported_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        Database(url, runner=ImmediateRunner())


def test_migrate_is_idempotent(db_url: str) -> None:
    database = Database(db_url, runner=ImmediateRunner())
    try:
        assert database.current_revision() is None
        database.migrate()
        database.migrate()
        assert database.current_revision() == head_revision() is not None
    finally:
        database.close()


def _schema_diff(conn: Connection, target: MetaData) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(ctx, target))


def test_migrations_match_models(db: Database) -> None:
    assert resolve(db.run(lambda conn: _schema_diff(conn, metadata))) == []


def test_schema_comparison_would_see_a_difference(db: Database) -> None:
    # Guards the test above against comparing nothing.
    changed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["accounts"].append_column(Column("extra", Integer, nullable=True))
    diff = resolve(db.run(lambda conn: _schema_diff(conn, changed)))
    assert [(d[0], d[2], d[3].name) for d in diff] == [("add_column", "accounts", "extra")]


def test_downgrade_to_base_and_upgrade_again(db_url: str) -> None:
    database = Database(db_url, runner=ImmediateRunner())
    try:
        database.migrate()

        def downgrade(conn: Connection) -> list[str]:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
            return sorted(inspect(conn).get_table_names())

        assert resolve(database.run(downgrade)) == ["alembic_version"]
        database.migrate()
        assert resolve(database.run(lambda conn: _schema_diff(conn, metadata))) == []
    finally:
        database.close()


def test_sqlite_file_uses_wal_and_foreign_keys(scratch_dir: Path) -> None:
    database = Database(f"sqlite:///{scratch_dir / 'x.db'}", runner=ImmediateRunner())
    try:
        pragmas = resolve(database.run(lambda conn: (
            conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
            conn.exec_driver_sql("PRAGMA foreign_keys").scalar(),
            conn.exec_driver_sql("PRAGMA busy_timeout").scalar(),
        )))
        assert pragmas == ("wal", 1, 5000)
    finally:
        database.close()


class NotYetRunningReactor:
    """Just the reactor surface ThreadRunner uses; it never runs, so callFromThread queues."""

    def __init__(self) -> None:
        self.triggers: dict[int, tuple[str, str, Callable[..., Any]]] = {}
        self.from_threads: list[Callable[[], Any]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.from_threads.append(lambda: f(*args, **kwargs))

    def callWhenRunning(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.addSystemEventTrigger("after", "startup", f, *args, **kwargs)

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        trigger_id = next(self._ids)
        self.triggers[trigger_id] = (phase, event, lambda: f(*args, **kwargs))
        return trigger_id

    def removeSystemEventTrigger(self, trigger_id: Any) -> None:
        del self.triggers[trigger_id]  # KeyError: removing an unknown (or fired) trigger

    def fire(self, phase: str, event: str) -> None:
        """Run the triggers for one event once, as the reactor does, then forget them."""
        for trigger_id, (p, e, f) in list(self.triggers.items()):
            if (p, e) == (phase, event):
                del self.triggers[trigger_id]
                f()


def test_open_runs_inline_without_a_reactor_and_on_threads_with_one() -> None:
    inline = Database.open("sqlite://")
    assert isinstance(inline.runner, ImmediateRunner)
    assert inline.dialect == "sqlite"
    inline.close()

    reactor = NotYetRunningReactor()
    threaded = Database.open("sqlite://", reactor)
    assert isinstance(threaded.runner, ThreadRunner)
    assert threaded.runner.size == 1  # SQLite: one writer
    threaded.close()
    assert reactor.triggers == {}, "a closed runner leaves no reactor trigger behind"


def test_thread_runner_starts_with_the_reactor_and_stops_at_its_shutdown() -> None:
    reactor = NotYetRunningReactor()
    runner = ThreadRunner(reactor, max_threads=2)
    reactor.fire("after", "startup")
    assert [(p, e) for p, e, _ in reactor.triggers.values()] == [("during", "shutdown")]
    done = runner.run(lambda: threading.get_ident())
    reactor.fire("during", "shutdown")  # joins the threads: the call has finished
    for call in reactor.from_threads:
        call()
    assert resolve(done) != threading.get_ident()
    assert reactor.triggers == {}
    with pytest.raises(StorageError):
        resolve(runner.run(lambda: 1))


def test_calls_queued_before_the_reactor_runs_complete_on_stop() -> None:
    reactor = NotYetRunningReactor()
    runner = ThreadRunner(reactor, max_threads=2)
    queued = [runner.run(lambda i=i: i * i) for i in range(4)]
    runner.stop()
    for call in reactor.from_threads:
        call()
    assert [resolve(d) for d in queued] == [0, 1, 4, 9]


@pytest_twisted.ensureDeferred
async def test_threaded_runner_runs_transactions_off_the_reactor_thread(db_url: str) -> None:
    from twisted.internet import reactor

    reactor_thread = threading.get_ident()
    database = Database(db_url, runner=ThreadRunner(reactor, max_threads=4))
    try:
        database.migrate()
        store = SqlAccountStore(database)

        # Eight sign-ups race for one name: the unique key lets exactly one win.
        attempts = [Deferred.fromCoroutine(store.create("alice", "example.org", {}, float(i))) for i in range(8)]
        outcomes = await defer.gatherResults(attempts)
        assert sorted(outcomes) == [False] * 7 + [True]
        assert threading.get_ident() == reactor_thread  # results fire on the reactor thread

        ran_on = await database.run(lambda conn: threading.get_ident())
        assert ran_on != reactor_thread
        assert await store.list_users("example.org") == ["alice"]
    finally:
        database.close()


def test_nodes_starting_together_on_a_fresh_database_migrate_it_once(db_url: str) -> None:
    # The nodes of a cluster (or the processes of one machine) may all start at once against
    # an empty database: each runs `migrate()`, and none may fail on another's CREATE TABLE.
    databases = [Database(db_url, runner=ImmediateRunner()) for _ in range(4)]
    barrier = threading.Barrier(len(databases))
    errors: list[BaseException] = []

    def start(database: Database) -> None:
        barrier.wait()
        try:
            database.migrate()
        except BaseException as e:      # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=start, args=(d,)) for d in databases]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not [t for t in threads if t.is_alive()], "a migration never finished"
        assert errors == []
        assert all(d.current_revision() == head_revision() for d in databases)
    finally:
        for d in databases:
            d.close()
