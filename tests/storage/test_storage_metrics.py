"""Storage's metrics (storage/metrics.py): SQL transactions and statements on both databases,
Redis calls, group commits — each counted once per thing done."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, insert, select, text
from twisted.internet import defer

from storage.batch import GroupCommit
from storage.cache import RedisCache
from storage.db import Database
from storage.errors import StorageError
from storage.metrics import StorageMetrics
from storage.models import accounts
from storage.runner import ImmediateRunner
from tests.harness.backends import redis_url, require, resolve


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def sample(registry: CollectorRegistry, metric: str, **labels: str) -> float:
    return registry.get_sample_value(metric, labels) or 0.0


def test_transactions_and_statements_are_timed(db: Database, registry: CollectorRegistry) -> None:
    metrics = StorageMetrics(registry)
    db.instrument(metrics)

    def two_inserts_and_a_select(conn: Connection) -> int:
        for name in ("a", "b"):
            conn.execute(insert(accounts).values(host="h", username=name, created_at=1.0))
        return len(conn.execute(select(accounts.c.username)).all())
    assert resolve(db.run(two_inserts_and_a_select)) == 2

    def fails(conn: Connection) -> None:
        conn.execute(text("SELECT 1"))
        conn.execute(insert(accounts).values(host="h", username="a", created_at=1.0))
    with pytest.raises(StorageError):
        resolve(db.run(fails))
    assert sample(registry, "xmppd_sql_transaction_seconds_count", outcome="commit") == 1
    assert sample(registry, "xmppd_sql_transaction_seconds_count", outcome="rollback") == 1
    assert sample(registry, "xmppd_sql_statement_seconds_count", verb="insert") == 2
    # the failed insert raised inside the driver: no "after" event for it
    assert sample(registry, "xmppd_sql_statement_seconds_count", verb="select") == 2
    assert sample(registry, "xmppd_sql_queue_seconds_count") == 2
    assert sample(registry, "xmppd_sql_pending") == 0


@pytest.fixture
def redis_cache() -> Iterator[RedisCache]:
    require("redis")
    space = redis_url()
    cache = RedisCache(space.url, runner=ImmediateRunner(), prefix=space.prefix)
    try:
        yield cache
    finally:
        cache.close()
        space.cleanup()


def test_redis_calls_are_timed_by_command(redis_cache: RedisCache,
                                          registry: CollectorRegistry) -> None:
    redis_cache.instrument(StorageMetrics(registry))
    resolve(redis_cache.set("k", b"v"))
    assert resolve(redis_cache.get("k")) == b"v"
    assert resolve(redis_cache.get("missing")) is None
    resolve(redis_cache.hset("h", "f", b"1"))
    with pytest.raises(StorageError):
        resolve(redis_cache.get("h"))           # WRONGTYPE
    assert sample(registry, "xmppd_redis_call_seconds_count", command="set") == 1
    assert sample(registry, "xmppd_redis_call_seconds_count", command="get") == 3
    assert sample(registry, "xmppd_redis_call_seconds_count", command="hset") == 1
    assert sample(registry, "xmppd_redis_errors_total", command="get") == 1


def test_group_commits_are_read_at_scrape_time(registry: CollectorRegistry) -> None:
    StorageMetrics(registry)
    pending: list[defer.Deferred[list[int]]] = []

    def write(items: list[int]) -> defer.Deferred[list[int]]:
        d: defer.Deferred[list[int]] = defer.Deferred()
        pending.append(d)
        return d
    gc: GroupCommit[int, int] = GroupCommit(write, name="test commit")
    for n in range(4):
        gc.add(n)                               # 1 in flight, 3 queued
    assert sample(registry, "xmppd_group_commit_queue", name="test commit") == 3
    assert sample(registry, "xmppd_group_commit_in_flight", name="test commit") == 1
    pending[0].callback([0])                    # the next batch takes the 3 queued
    pending[1].errback(StorageError("down"))
    assert sample(registry, "xmppd_group_commit_transactions_total", name="test commit") == 2
    assert sample(registry, "xmppd_group_commit_items_total", name="test commit",
                  outcome="ok") == 1
    assert sample(registry, "xmppd_group_commit_items_total", name="test commit",
                  outcome="failed") == 3
    assert sample(registry, "xmppd_group_commit_batch_items_bucket", name="test commit",
                  le="1.0") == 1
    assert sample(registry, "xmppd_group_commit_batch_items_bucket", name="test commit",
                  le="5.0") == 2
    assert sample(registry, "xmppd_group_commit_batch_items_sum", name="test commit") == 4
    assert sample(registry, "xmppd_group_commit_queue", name="test commit") == 0
