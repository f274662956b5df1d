# tests: tests/storage/test_db.py, tests/storage/test_cache.py, tests/storage/test_accounts_store.py
"""Backend fixtures for the store and cache contract tests (STYLE.md §5, §9).

- `db`: a migrated, empty Database on "sqlite" (memory) and "postgresql", run inline. PostgreSQL
  uses one fresh database per test session, migrated once and emptied (TRUNCATE) before each
  test: creating and migrating a database per test costs about 0.3 s, emptying it about 10 ms.
- `db_url`: the URL of an empty database per backend (SQLite as a file in `scratch_dir`), for
  migration tests and for tests that build their own Database, e.g. on a real ThreadRunner.
- `cache_env` / `cache`: a Cache on "memory" (fake clock) and "redis" (unique prefix), with
  `cache_env.advance(seconds)` moving the cache's time (fake clock, or real time for Redis).
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from storage.cache import Cache, MemoryCache, RedisCache
from storage.db import Database
from storage.models import metadata
from storage.runner import ImmediateRunner
from tests.harness.backends import CacheEnv, FakeClock, postgres_url, redis_url, require, resolve


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    """A temporary directory removed after the test (pytest's tmp_path keeps the last runs)."""
    with tempfile.TemporaryDirectory(prefix="xmppd-test-") as name:
        yield Path(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, scratch_dir: Path) -> Iterator[str]:
    require(request.param)
    if request.param == "sqlite":
        yield f"sqlite:///{scratch_dir / 'xmppd.db'}"
        return
    pg = postgres_url()
    try:
        yield pg.url
    finally:
        pg.drop()


@pytest.fixture(scope="session")
def migrated_postgres_url() -> Iterator[str]:
    """A PostgreSQL database migrated to head, shared by this session's `db` tests."""
    require("postgresql")
    pg = postgres_url()
    try:
        database = Database(pg.url, runner=ImmediateRunner())
        try:
            database.migrate()
        finally:
            database.close()
        yield pg.url
    finally:
        pg.drop()


def _empty_all_tables(conn: Connection) -> None:
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(t.name) for t in metadata.sorted_tables)
    conn.execute(text("SET LOCAL lock_timeout = '10s'"))  # a leaked transaction fails loudly
    conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    require(request.param)
    if request.param == "sqlite":
        database = Database("sqlite://", runner=ImmediateRunner())
        database.migrate()
    else:
        database = Database(request.getfixturevalue("migrated_postgres_url"), runner=ImmediateRunner())
        resolve(database.run(_empty_all_tables))
    yield database
    database.close()


@pytest.fixture(params=["memory", "redis"])
def cache_env(request: pytest.FixtureRequest) -> Iterator[CacheEnv]:
    require(request.param)
    if request.param == "memory":
        clock = FakeClock()

        def advance(seconds: float) -> None:
            clock.now += seconds

        memory = MemoryCache(max_entries=100, clock=clock)
        yield CacheEnv("memory", memory, advance)
        memory.close()
        return
    space = redis_url()
    cache = RedisCache(space.url, runner=ImmediateRunner(), prefix=space.prefix)
    try:
        # Redis keeps real time; tests advance by small amounts only.
        yield CacheEnv("redis", cache, time.sleep)
    finally:
        cache.close()
        space.cleanup()


@pytest.fixture
def cache(cache_env: CacheEnv) -> Cache:
    return cache_env.cache
