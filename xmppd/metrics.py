# tests: tests/core/test_metrics.py, tests/integration/test_metrics_endpoint.py
"""Metrics: one prometheus_client registry per server, served by `type = "metrics"` listeners
(xmppd/listeners/metrics.py) in the Prometheus text or OpenMetrics format.

- The hot path pays a plain int increment: the router, the client sessions and the hook
  registries bump attributes of `CoreCounters` (and their own counters, like
  `HookRegistry.errors`) in place — no label look-up, no lock, no object made per stanza — and
  `ServerCollector` turns them into metric families when the endpoint is scraped. Routing
  latency goes into a fixed-bucket `FastHistogram` the same way, for one stanza in eight
  (`TIMED_EVERY`): two clock reads and a bisect per stanza would cost more than all the
  counting (docs/OPERATIONS.md has the measurement).
- What is a state, not an event (connections by transport, sessions, users online, output
  backlog, IQs waiting for an answer) is counted at scrape time from the server's tables.
- Storage (SQL, Redis, group commits) reports to storage/metrics.py, on storage threads or once
  per transaction.
- Modules get `ctx.metrics` (`ModuleMetrics`): counters and sampled gauges labelled with the
  module's host, removed when the module stops (STYLE §2).
- The process: CPU seconds, resident memory, open file descriptors (prometheus_client's
  ProcessCollector), Python GC.
The names are listed, with the dashboard's queries, in docs/OPERATIONS.md.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from storage.metrics import LATENCY, StorageMetrics

if TYPE_CHECKING:
    from xmppd.server import Server

__all__ = ["CoreCounters", "FastHistogram", "Metrics", "ModuleMetrics", "timer"]

timer = perf_counter            # a measuring clock (latency), never a source of time for logic

_MESSAGE = "{jabber:client}message"
_PRESENCE = "{jabber:client}presence"
_IQ = "{jabber:client}iq"
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class FastHistogram:
    """Fixed buckets, plain ints: `observe` is a bisect and two additions (reactor thread)."""
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1     # first bucket with le >= value
        self.sum += value

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        buckets, running = [], 0
        for bound, n in zip((*map(floatToGoString, self.bounds), "+Inf"), self.counts):
            running += n
            buckets.append((bound, running))
        h = HistogramMetricFamily(name, doc)
        h.add_metric([], buckets, sum_value=self.sum)
        return h


TIMED_EVERY = 8                 # a power of two: routing latency is sampled 1 in 8


class CoreCounters:
    """Events counted by the core, in place (reactor thread only)."""

    def __init__(self) -> None:
        self.messages_in = self.presences_in = self.iqs_in = 0
        # stanzas handed to client sessions, by the byte after "<": m(essage), p(resence), i(q)
        self.out = [0] * 256
        self.ticks = 0                  # stanzas routed; every TIMED_EVERY-th one is timed
        self.delivered = 0              # message copies handed to a recipient's session
        self.delivered_room = 0         # ... of them, fanned out by a room (XEP-0045)
        self.logins = 0
        self.login_failures = 0
        self.connections_opened: dict[str, int] = {}
        self.route = FastHistogram(LATENCY)      # Router.from_client, the synchronous part
        self.handled = FastHistogram(LATENCY)    # arrival to handled (the XEP-0198 ack), async

    def stanza_in(self, tag: str) -> None:
        if tag == _MESSAGE:
            self.messages_in += 1
        elif tag == _PRESENCE:
            self.presences_in += 1
        elif tag == _IQ:
            self.iqs_in += 1

    @property
    def messages_out(self) -> int:
        return self.out[ord("m")]

    @property
    def presences_out(self) -> int:
        return self.out[ord("p")]

    @property
    def iqs_out(self) -> int:
        return self.out[ord("i")]

    def connection_opened(self, transport: str) -> None:
        self.connections_opened[transport] = self.connections_opened.get(transport, 0) + 1

    def handled_after(self, result: Any, started: float) -> Any:
        """A Deferred callback: the stanza received at `started` is handled now."""
        self.handled.observe(perf_counter() - started)
        return result


def transport_kind(transport: object) -> str:
    """"c2s", "c2s_tls", "websocket", "bosh" (the listeners' `kind`), else "other"."""
    kind = getattr(transport, "kind", None)
    return kind if isinstance(kind, str) else "other"


class ServerCollector(Collector):
    """The core's counters and the server's state, read when the endpoint is scraped."""

    def __init__(self, server: Server, core: CoreCounters) -> None:
        self.server = server
        self.core = core

    def collect(self) -> Iterator[Any]:
        server, c = self.server, self.core
        conns = GaugeMetricFamily("xmppd_connections", "open client connections by transport",
                                  labels=["transport"])
        by_kind: dict[str, int] = {k: 0 for k in c.connections_opened}
        backlog = 0
        for conn in list(server.connections):
            kind = transport_kind(getattr(conn, "transport", None))
            by_kind[kind] = by_kind.get(kind, 0) + 1
            backlog += getattr(conn, "backlog_bytes", 0)
        for kind, n in sorted(by_kind.items()):
            conns.add_metric([kind], n)
        yield conns
        opened = CounterMetricFamily("xmppd_connections_opened",
                                     "client connections accepted, by transport",
                                     labels=["transport"])
        for kind, n in sorted(c.connections_opened.items()):
            opened.add_metric([kind], n)
        yield opened
        sessions = server.sessions
        users = sessions.users()
        detached = sum(1 for u in users for s in sessions.resources(u)
                       if not getattr(s, "connected", True))
        yield GaugeMetricFamily("xmppd_sessions", "bound client sessions (resources)",
                                value=len(sessions))
        yield GaugeMetricFamily("xmppd_sessions_detached",
                                "bound sessions waiting for XEP-0198 resumption",
                                value=detached)
        yield GaugeMetricFamily("xmppd_users_online", "accounts with a bound session",
                                value=len(users))
        yield GaugeMetricFamily("xmppd_output_backlog_bytes",
                                "bytes waiting for clients that read slowly", value=backlog)
        yield GaugeMetricFamily("xmppd_iq_pending", "server IQs waiting for an answer",
                                value=sum(len(h.pending_iqs) for h in server.hosts.values()))
        yield CounterMetricFamily("xmppd_logins", "successful SASL authentications",
                                  value=c.logins)
        yield CounterMetricFamily("xmppd_login_failures", "failed SASL authentications",
                                  value=c.login_failures)
        for direction, (m, p, i) in (("in", (c.messages_in, c.presences_in, c.iqs_in)),
                                     ("out", (c.messages_out, c.presences_out, c.iqs_out))):
            fam = CounterMetricFamily(f"xmppd_stanzas_{direction}",
                                      f"stanzas {'from' if direction == 'in' else 'to'} "
                                      "clients, by kind", labels=["kind"])
            for kind, n in (("message", m), ("presence", p), ("iq", i)):
                fam.add_metric([kind], n)
            yield fam
        delivered = CounterMetricFamily("xmppd_messages_delivered",
                                        "messages handed to a recipient's session",
                                        labels=["route"])
        delivered.add_metric(["direct"], c.delivered - c.delivered_room)
        delivered.add_metric(["room"], c.delivered_room)
        yield delivered
        errors = CounterMetricFamily("xmppd_hook_errors",
                                     "hook handlers that raised (logged and skipped)",
                                     labels=["host"])
        for name, host in sorted(server.hosts.items()):
            errors.add_metric([name], host.hooks.errors)
        yield errors
        yield c.route.family("xmppd_route_seconds",
                             "routing a client's stanza, its synchronous part (1 in 8 timed)")
        yield c.handled.family("xmppd_stanza_handled_seconds",
                               "from a client's stanza to handled (XEP-0198 ack), when it waits"
                               " for storage (1 in 8 timed)")
        yield GaugeMetricFamily("xmppd_uptime_seconds", "seconds since the server started",
                                value=server.clock.now() - server.started_at)


class Count:
    """A module's counter: `inc()` adds in place; read at scrape time."""
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class _ModuleFamilies(Collector):
    """Every module's counters and gauges, by metric name, then host."""

    def __init__(self) -> None:
        self.counters: dict[str, tuple[str, dict[str, Count]]] = {}
        self.gauges: dict[str, tuple[str, dict[str, Callable[[], float]]]] = {}

    def collect(self) -> Iterator[Any]:
        for name, (doc, counts) in sorted(self.counters.items()):
            fam = CounterMetricFamily(name, doc, labels=["host"])
            for host, count in sorted(counts.items()):
                fam.add_metric([host], count.value)
            yield fam
        for name, (doc, reads) in sorted(self.gauges.items()):
            g = GaugeMetricFamily(name, doc, labels=["host"])
            for host, read in sorted(reads.items()):
                g.add_metric([host], float(read()))
            yield g


class ModuleMetrics:
    """`ctx.metrics`: a module's metrics on one host (label `host`), gone when it stops.

    Names are given without the `xmppd_` prefix (added) and, for counters, without `_total`
    (the exposition adds it): `ctx.metrics.counter("offline_stored", "...")` is
    `xmppd_offline_stored_total{host="..."}`.
    """

    def __init__(self, families: _ModuleFamilies, host: str, reserved: frozenset[str]) -> None:
        self._families = families
        self._host = host
        self._reserved = reserved
        self._mine: list[tuple[dict[str, Any], str]] = []

    def counter(self, name: str, doc: str) -> Count:
        full = self._name(name, self._families.gauges)
        entry = self._families.counters.setdefault(full, (doc, {}))
        count = entry[1].setdefault(self._host, Count())
        self._mine.append((self._families.counters, full))
        return count

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A value sampled at scrape time by calling `read()` (rooms, queue lengths)."""
        full = self._name(name, self._families.counters)
        self._families.gauges.setdefault(full, (doc, {}))[1][self._host] = read
        self._mine.append((self._families.gauges, full))

    def close(self) -> None:
        for table, full in self._mine:
            entry = table.get(full)
            if entry is not None:
                entry[1].pop(self._host, None)
                if not entry[1]:
                    del table[full]
        self._mine.clear()

    def _name(self, name: str, other: dict[str, Any]) -> str:
        if not _NAME.fullmatch(name) or name.endswith("_total"):
            raise ValueError(f"metric name {name!r}: lower case, digits, _; no _total")
        full = "xmppd_" + name
        if full in self._reserved or full in other:
            raise ValueError(f"metric {full} is already defined")
        return full


class Metrics:
    """The server's registry: the core's counters, storage's instruments, modules' metrics."""

    def __init__(self, server: Server) -> None:
        self.registry = CollectorRegistry()
        self.core = CoreCounters()
        self.storage = StorageMetrics(self.registry)
        self.registry.register(ServerCollector(server, self.core))
        self._modules = _ModuleFamilies()
        self.registry.register(self._modules)
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._server = server
        self._reserved: frozenset[str] | None = None
        instrument = getattr(server.db, "instrument", None)
        if instrument is not None:
            instrument(self.storage)
        instrument = getattr(server.cache, "instrument", None)
        if instrument is not None:
            instrument(self.storage)

    def for_module(self, host: str) -> ModuleMetrics:
        if self._reserved is None:
            self._reserved = frozenset(
                m.name for m in ServerCollector(self._server, self.core).collect())
        return ModuleMetrics(self._modules, host, self._reserved)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format the scraper's Accept header asks for (Prometheus text
        by default, OpenMetrics if asked): (body, content type)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
