# tests: tests/storage/test_db.py, tests/storage/test_cache.py, tests/storage/test_accounts_store.py
"""Test backends: throw-away PostgreSQL databases and Redis key spaces, and the CI skip rule.

- `postgres_url()` creates a uniquely named database on the local PostgreSQL and returns its URL
  with a `drop()` that ends its connections and removes it.
- `redis_url()` returns a Redis URL, a unique key prefix and a `cleanup()` deleting those keys.
- `backend_available(name)` answers for "sqlite", "memory", "postgresql", "redis".
- `skip_or_fail(reason)`: under `CI=true` a missing backend fails the test; elsewhere it skips.
- `resolve(x)` drives a coroutine or Deferred that must already have completed (ImmediateRunner,
  MemoryCache) and returns its result or raises its exception.
- `FakeClock` (a settable `() -> float`) and `CacheEnv` (a cache and a way to move its time).
- `backend_urls(kind, tmp)`: storage and cache URLs for a test server of one of
  SERVER_BACKENDS ("sqlite+memory", "postgresql+redis").
- INTEGRATION_BACKENDS adds "cluster": three nodes on PostgreSQL and Redis behind HAProxy
  (`ServerFactory` builds it, tests/harness/cluster_proc.py).
Environment: XMPPD_TEST_PG_HOST/PORT (127.0.0.1:5432), XMPPD_TEST_PG_USER (tries postgres, root),
XMPPD_TEST_REDIS (redis://127.0.0.1:6379/9).
"""
from __future__ import annotations

from pathlib import Path

import functools
import os
import secrets
import shutil
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, NoReturn, TypeVar

import psycopg2  # type: ignore[import-untyped]  # no stubs installed
import pytest
import redis
from psycopg2 import sql
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from storage.cache import Cache

T = TypeVar("T")

PG_HOST = os.environ.get("XMPPD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("XMPPD_TEST_PG_PORT", "5432"))
REDIS_URL = os.environ.get("XMPPD_TEST_REDIS", "redis://127.0.0.1:6379/9")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip a test whose backend is missing, except in CI, where that is a failure."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing backend is a failure)")
    pytest.skip(reason)


def resolve(x: Coroutine[Any, Any, T] | Deferred[T]) -> T:
    """The result of a coroutine/Deferred that completes without the reactor; raises its error."""
    d: Deferred[T] = Deferred.fromCoroutine(x) if isinstance(x, Coroutine) else x
    outcome: list[T | Failure] = []
    d.addBoth(outcome.append)
    assert outcome, "did not complete synchronously (a real thread or reactor wait is involved)"
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


class FakeClock:
    """A clock for `MemoryCache(clock=...)`: call it for the time, move `now` by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class CacheEnv:
    """A cache under test and `advance(seconds)`: a fake clock's step, or real time for Redis."""

    name: str
    cache: Cache
    advance: Callable[[float], None]


# ---- PostgreSQL


class PostgresDB(NamedTuple):
    url: str
    drop: Callable[[], None]


def _pg_admin() -> tuple[Any, str]:
    """An autocommit admin connection and the role it uses. Raises psycopg2.Error if none works."""
    users = [os.environ["XMPPD_TEST_PG_USER"]] if "XMPPD_TEST_PG_USER" in os.environ else ["postgres", "root"]
    last: Exception | None = None
    for user in users:
        for dbname in ("postgres", "test"):
            try:
                conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=user, dbname=dbname, connect_timeout=3)
            except psycopg2.Error as e:
                last = e
                continue
            conn.autocommit = True
            return conn, user
    assert last is not None
    raise last


PG_PREFIX = "xmppd_t_"
STALE_AFTER_S = 6 * 3600


def _drop_stale(cur: Any) -> None:
    """Drop test databases that a killed run left behind (named with their creation time)."""
    cur.execute(
        "SELECT datname FROM pg_database d WHERE datname LIKE %s"
        " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
        (PG_PREFIX + "%",),
    )
    for (name,) in cur.fetchall():
        try:
            created = int(name[len(PG_PREFIX):].split("_")[0], 16)
        except ValueError:
            continue
        if time.time() - created > STALE_AFTER_S:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def postgres_url() -> PostgresDB:
    """A fresh, empty database `xmppd_t_<time>_<random>`; call `drop()` when done."""
    admin, user = _pg_admin()
    name = f"{PG_PREFIX}{int(time.time()):x}_{secrets.token_hex(4)}"
    try:
        with admin.cursor() as cur:
            _drop_stale(cur)
            cur.execute(sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name)))
    finally:
        admin.close()

    def drop() -> None:
        conn, _ = _pg_admin()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                force = sql.SQL(" WITH (FORCE)" if conn.server_version >= 130000 else "")
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force))
        finally:
            conn.close()

    return PostgresDB(f"postgresql+psycopg2://{user}@{PG_HOST}:{PG_PORT}/{name}", drop)


# ---- Redis


class RedisSpace(NamedTuple):
    url: str
    prefix: str
    cleanup: Callable[[], None]


def redis_url() -> RedisSpace:
    """The test Redis URL and a key prefix no other test uses; `cleanup()` deletes its keys."""
    prefix = f"xmppd_t_{secrets.token_hex(6)}:"

    def cleanup() -> None:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    return RedisSpace(REDIS_URL, prefix, cleanup)


# ---- availability


@functools.lru_cache(maxsize=None)
def backend_available(name: str) -> bool:
    """Whether the named backend can be used here (checked once per test run)."""
    if name in ("sqlite", "memory"):
        return True
    if name == "postgresql":
        try:
            conn, _ = _pg_admin()
        except psycopg2.Error:
            return False
        conn.close()
        return True
    if name == "haproxy":
        return Path("/usr/sbin/haproxy").exists() or shutil.which("haproxy") is not None
    if name == "redis":
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()
    raise ValueError(f"unknown backend {name!r}")


def require(name: str) -> None:
    """Skip (or, in CI, fail) the calling test unless backend `name` is available."""
    if not backend_available(name):
        skip_or_fail(f"{name} is not available")


# The backend pairs every test server runs on: the embedded default and production.
SERVER_BACKENDS = ["sqlite+memory", "postgresql+redis"]
# ... and the integration tests once more on a cluster (issue 14): three nodes behind HAProxy.
CLUSTER = "cluster"
INTEGRATION_BACKENDS = [*SERVER_BACKENDS, CLUSTER]


def backend_urls(kind: str, tmp: Path) -> tuple[str, str, list[Callable[[], None]]]:
    """Storage and cache URLs for a test server of `kind` ("sqlite+memory",
    "postgresql+redis"), and the cleanups to run after it (fresh database, key prefix)."""
    storage, cache = kind.split("+")
    cleanups: list[Callable[[], None]] = []
    if storage == "sqlite":
        storage_url = f"sqlite:///{tmp / 'xmppd.sqlite'}"
    else:
        require("postgresql")
        pg = postgres_url()
        storage_url = pg.url
        cleanups.append(pg.drop)
    if cache == "memory":
        cache_url = "memory"
    else:
        require("redis")
        space = redis_url()
        cache_url = space.url
        cleanups.append(space.cleanup)
    return storage_url, cache_url, cleanups
