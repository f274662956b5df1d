# tests: tests/cluster/test_multiproc.py, tests/cluster/test_multiproc_units.py
"""Several worker processes on one machine (`server.processes`, docs/CLUSTER.md "Every core"):
what the supervisor (xmppd/supervisor.py) decides and what a worker changes in its config.

- `plan(config)`: how many processes, and the Redis they meet in. N > 1 needs a store every
  process shares (a SQLite *file*, WAL; or PostgreSQL) and a Redis: the configured one
  (`[cluster] redis_url` or `cache.url`), else, on the embedded default (`cache.url =
  "memory"`), a private `redis-server` the supervisor runs on 127.0.0.1 with a random
  password and no persistence. Where neither works the answer is one process and the reason
  (the supervisor logs it): an in-memory SQLite database, or no redis-server installed.
- Workers are cluster nodes (xmppd/cluster/): `p1`..`pN`, or `<node>-p1`.. when the config
  has a `[cluster]` table (several machines, each with several processes). A worker keeps
  its name across restarts: its registry entries and stream are taken over by its next run.
- `worker_config(config, spec)`: the config a worker runs: its `[cluster]` section, the
  shared cache in Redis (in-process caches would go stale: another process writes), no pid
  file (the supervisor's), no port files (the supervisor writes them), the admin socket as
  configured for the first worker and `<path>.<n>` for worker n, and the metrics listener on
  `port + n - 1` (each process has its own figures).
- `Listening`: a worker's view of the listening sockets it inherited (`listenTCP` adopts the
  inherited file descriptor instead of binding).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
from dataclasses import dataclass
from typing import Any

from xmppd.config import Config, ListenerConfig

ENV = "XMPPD_WORKER"
# Listener types every worker serves from one shared socket; the others ("component": an
# external component is one connection, routed by the node it reached; "metrics": each
# process its own) are not shared.
SHARED = frozenset({"c2s", "c2s_tls", "s2s", "s2s_tls", "http"})


WORKER_NODE_TIMEOUT = 15.0


@dataclass(frozen=True)
class Plan:
    processes: int
    redis_url: str = ""          # where workers meet; "" with private_redis
    private_redis: bool = False  # the supervisor runs one
    reason: str = ""             # why one process though more were asked for


def wanted(config: Config) -> int:
    n = config.server.processes
    return n if n >= 1 else max(1, os.cpu_count() or 1)


def plan(config: Config) -> Plan:
    n = wanted(config)
    if n == 1:
        return Plan(1)
    url = config.storage.url
    if url.startswith("sqlite") and url.rstrip("/") in ("sqlite:", "sqlite://", "sqlite:///"):
        return Plan(1, reason="an in-memory SQLite database cannot be shared by processes "
                              "(storage.url)")
    if not url.startswith(("sqlite:///", "postgresql")):
        return Plan(1, reason=f"storage.url {url.split(':', 1)[0]!r} cannot be shared")
    if config.cluster is not None:
        return Plan(n, redis_url=config.cluster.redis_url)
    if config.cache.url.startswith(("redis://", "redis+cluster://")):
        return Plan(n, redis_url=config.cache.url)
    if config.cache.url == "memory":
        if shutil.which("redis-server") is None:
            return Plan(1, reason="the processes meet in Redis: install redis-server (the "
                                  "supervisor then runs a private one) or set cache.url")
        return Plan(n, private_redis=True)
    return Plan(1, reason=f"cache.url {config.cache.url!r}: the processes meet in Redis")


@dataclass(frozen=True)
class WorkerSpec:
    """What the supervisor hands a worker (JSON in $XMPPD_WORKER)."""
    index: int                   # 1..count
    count: int
    fds: tuple[int, ...]         # per listener: the inherited socket; -1 bind it; -2 skip it
    ready_fd: int                # write one byte once serving
    redis_url: str

    def dumps(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def loads(cls, raw: str) -> WorkerSpec:
        d = json.loads(raw)
        return cls(int(d["index"]), int(d["count"]), tuple(int(f) for f in d["fds"]),
                   int(d["ready_fd"]), str(d["redis_url"]))


def with_processes(config: Config, value: str) -> Config:
    """`config` with server.processes from the command line ("auto" or N); ConfigError."""
    from xmppd.schema import _convert, processes
    n = _convert(value if value == "auto" else _int(value), int, processes(default=1).metadata,
                 "--processes")
    return dataclasses.replace(config, server=dataclasses.replace(config.server, processes=n))


def _int(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value


def tag_logs(tag: str) -> None:
    """A worker's log records say which worker wrote them ("[p2] ...")."""
    import logging
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.msg = f"[{tag}] {record.msg}"
        return record
    logging.setLogRecordFactory(factory)


def node_name(config: Config, index: int) -> str:
    return f"{config.cluster.node}-p{index}" if config.cluster is not None else f"p{index}"


def worker_config(config: Config, spec: WorkerSpec) -> Config:
    from xmppd.cluster.options import ClusterSection
    name = node_name(config, spec.index)
    if config.cluster is not None:
        cluster = dataclasses.replace(config.cluster, node=name)
    else:
        # The supervisor starts a dead worker again within seconds, under its name, and that
        # run takes over what the last one left (xmppd/cluster/restart.py): the others should
        # not presume it dead first (the leader would claim its stream while it is back).
        cluster = ClusterSection(node=name, redis_url=spec.redis_url,
                                 node_timeout=WORKER_NODE_TIMEOUT)
    cache = config.cache
    if not cache.url.startswith(("redis://", "redis+cluster://")):
        cache = dataclasses.replace(cache, url=spec.redis_url)
    server = config.server
    admin = server.admin_socket
    if admin and spec.index > 1:
        admin = f"{admin}.{spec.index}"
    server = dataclasses.replace(server, pid_file="", admin_socket=admin, processes=1)
    listeners = []
    for lst in config.listeners:
        port = lst.port
        if lst.type == "metrics" and port:
            port += spec.index - 1
        listeners.append(dataclasses.replace(lst, port=port, port_file=""))
    return dataclasses.replace(config, cluster=cluster, cache=cache, server=server,
                               listeners=tuple(listeners))


def serves(lst: ListenerConfig, index: int) -> bool:
    """Whether worker `index` serves listener `lst` at all (components: the first only)."""
    return lst.type != "component" or index == 1


def skipped(spec: WorkerSpec | None, k: int) -> bool:
    return spec is not None and k < len(spec.fds) and spec.fds[k] == -2


class Listening:
    """`listenTCP` for listener `k` of a worker: adopt the socket the supervisor bound."""

    def __init__(self, reactor: Any, fd: int) -> None:
        self.reactor = reactor
        self.fd = fd

    def listenTCP(self, port: int, factory: Any, backlog: int = 50,  # noqa: N802 (Twisted)
                  interface: str = "") -> Any:
        with socket.socket(fileno=os.dup(self.fd)) as probe:
            family = probe.family
        listening = self.reactor.adoptStreamPort(self.fd, family, factory)
        os.close(self.fd)        # the reactor holds its own duplicate
        return listening


def reactor_for(reactor: Any, spec: WorkerSpec | None, k: int) -> Any:
    """The reactor, or a `Listening` that adopts listener k's inherited socket."""
    if spec is None or k >= len(spec.fds) or spec.fds[k] < 0:
        return reactor
    return Listening(reactor, spec.fds[k])
