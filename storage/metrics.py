# tests: tests/storage/test_storage_metrics.py
"""Storage's metrics, on a prometheus_client registry the server owns (xmppd/metrics.py).

- SQL: `xmppd_sql_transaction_seconds{outcome}` (one `Database.run` call, on its thread, from
  BEGIN to COMMIT or ROLLBACK), `xmppd_sql_statement_seconds{verb}` (each statement, from
  SQLAlchemy's cursor events), `xmppd_sql_queue_seconds` (waiting for a free runner thread) and
  `xmppd_sql_pending` (calls queued or running).
- Redis: `xmppd_redis_call_seconds{command}` and `xmppd_redis_errors_total{command}`.
- Group commits (storage/batch.py): `xmppd_group_commit_batch_items` (items per transaction),
  `xmppd_group_commit_transactions_total`, `xmppd_group_commit_items_total{outcome}` and
  `xmppd_group_commit_queue` (items waiting), by the commit's name ("archive", "offline store",
  ...), read from the live instances' plain counters at scrape time.
All of these are observed on storage threads or once per transaction, never per stanza.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from storage import batch

# Latency buckets (seconds) for one statement, one transaction, one Redis call.
LATENCY = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
           5.0, 10.0)
VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE")


class StorageMetrics:
    """The instruments `Database.instrument` and `RedisCache.instrument` report to."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.transaction = Histogram(
            "xmppd_sql_transaction_seconds", "SQL transactions (Database.run) by outcome",
            ["outcome"], buckets=LATENCY, registry=registry)
        self.statement = Histogram(
            "xmppd_sql_statement_seconds", "SQL statements by verb", ["verb"],
            buckets=LATENCY, registry=registry)
        self.queued = Histogram(
            "xmppd_sql_queue_seconds", "time an SQL transaction waited for a runner thread",
            buckets=LATENCY, registry=registry)
        self.pending = Gauge(
            "xmppd_sql_pending", "SQL transactions queued or running", registry=registry)
        self.redis = Histogram(
            "xmppd_redis_call_seconds", "Redis calls by command", ["command"],
            buckets=LATENCY, registry=registry)
        self.redis_errors = Counter(
            "xmppd_redis_errors", "Redis calls that failed, by command", ["command"],
            registry=registry)
        self._ok = self.transaction.labels("commit")
        self._failed = self.transaction.labels("rollback")
        self._verbs = {v: self.statement.labels(v.lower()) for v in VERBS}
        self._other = self.statement.labels("other")
        registry.register(GroupCommitCollector())

    def transaction_done(self, seconds: float, ok: bool) -> None:
        (self._ok if ok else self._failed).observe(seconds)

    def statement_done(self, statement: str, seconds: float) -> None:
        verb = statement.lstrip()[:6].upper()
        self._verbs.get(verb, self._other).observe(seconds)

    def redis_done(self, command: str, seconds: float, ok: bool) -> None:
        self.redis.labels(command).observe(seconds)
        if not ok:
            self.redis_errors.labels(command).inc()


class GroupCommitCollector(Collector):
    """Reads every live `GroupCommit`'s counters at scrape time (summed by name)."""

    def collect(self) -> Iterator[Any]:
        by_name: dict[str, list[batch.GroupCommit[Any, Any]]] = {}
        for gc in batch.live():
            by_name.setdefault(gc.name, []).append(gc)
        queue = GaugeMetricFamily("xmppd_group_commit_queue",
                                  "items waiting for a group commit transaction", labels=["name"])
        busy = GaugeMetricFamily("xmppd_group_commit_in_flight",
                                 "group commit transactions running", labels=["name"])
        txns = CounterMetricFamily("xmppd_group_commit_transactions",
                                   "group commit transactions started", labels=["name"])
        items = CounterMetricFamily("xmppd_group_commit_items",
                                    "items written by group commits, by outcome",
                                    labels=["name", "outcome"])
        sizes = HistogramMetricFamily("xmppd_group_commit_batch_items",
                                      "items per group commit transaction", labels=["name"])
        for name, gcs in sorted(by_name.items()):
            queue.add_metric([name], sum(len(g) for g in gcs))
            busy.add_metric([name], sum(1 for g in gcs if g.in_flight))
            txns.add_metric([name], sum(g.transactions for g in gcs))
            items.add_metric([name, "ok"], sum(g.items_written for g in gcs))
            items.add_metric([name, "failed"], sum(g.items_failed for g in gcs))
            counts = [sum(g.batch_sizes[i] for g in gcs)
                      for i in range(len(batch.BATCH_BUCKETS) + 1)]
            total = sum(g.items_batched for g in gcs)
            buckets, running = [], 0
            for bound, n in zip((*map(floatToGoString, batch.BATCH_BUCKETS), "+Inf"), counts):
                running += n
                buckets.append((bound, running))
            sizes.add_metric([name], buckets, sum_value=total)
        yield from (queue, busy, txns, items, sizes)
