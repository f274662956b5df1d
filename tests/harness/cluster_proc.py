# tests: tests/cluster/, tests/integration/
"""A cluster of real `xmppd` nodes in subprocesses (docs/CLUSTER.md), on one PostgreSQL
database and one Redis key prefix, optionally behind HAProxy (tests/harness/haproxy.py).

`RunningCluster` looks like `RunningServer` to tests (`port`, `ports`, `ctl`, `log`, `start`,
`stop`, `restart`, `tmp`, `config`, `env`, `storage_url`), so the integration tests run against
it unchanged (`ServerFactory("cluster", ...)`); it also has `nodes` (each a `RunningServer`),
`kill(i)` (SIGKILL), `stop_node(i)` (SIGTERM: it drains), `start_node(i)`, `wait_live(n)`.
Node ports are fixed when the configs are written, so a node started again (a rolling restart)
is where HAProxy expects it.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.haproxy import HAProxy
from tests.harness.ports import free_port
from tests.harness.server_proc import REPO, Options, RunningServer, server_config, toml
from xmppd.cluster.status import _client
from xmppd.tls import ensure_certificate

HEARTBEAT = 0.25
NODE_TIMEOUT = 2.0
DRAIN = 5.0
_MODES = {"c2s": "c2s", "c2s_tls": "tls", "http": "sticky"}    # HAProxy frontend per type


@dataclass
class RunningCluster:
    tmp: Path
    nodes: list[RunningServer]
    prefix: str
    redis_url: str
    proxy: HAProxy | None = None            # in front of the nodes, if any
    names: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)   # listener -> where clients go
    registered_at: float = 0.0
    fd_limits: tuple[int, int] | None = None

    @property
    def config(self) -> Path:
        return self.nodes[0].config

    @property
    def env(self) -> dict[str, str]:
        return self.nodes[0].env

    @property
    def storage_url(self) -> str:
        return self.nodes[0].storage_url

    @property
    def cache_url(self) -> str:
        return self.nodes[0].cache_url

    @property
    def port(self) -> int:
        """Where clients connect: HAProxy if there is one, else the first node."""
        return self.proxy.port("c2s") if self.proxy is not None else self.nodes[0].port

    def start(self, timeout: float = 60.0) -> None:
        starting = [node for node in self.nodes if node.proc is None]
        for node in starting:           # side by side: each one's start-up is mostly imports
            node.spawn()
        for node in starting:
            node.wait_ready(timeout)
        self.wait_live(len(self.nodes), timeout)
        self.ports = dict(self.nodes[0].ports)
        if self.proxy is not None:
            backends = {"c2s": [n.port for n in self.nodes]}
            for name in self.proxy.frontends:
                if name != "c2s":
                    backends[name] = [n.ports[name] for n in self.nodes]
            self.proxy.start(backends)
            self.ports.update({n: self.proxy.port(n) for n in self.proxy.frontends
                               if n != "c2s"})

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for node in self.nodes:
            node.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def ctl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.nodes[0].ctl(*args, input=input)

    def log(self) -> str:
        return "\n".join(f"--- {name}\n{node.log()}" for name, node in zip(self.names, self.nodes))

    def errors(self) -> list[str]:
        return [f"{name}: {line}" for name, node in zip(self.names, self.nodes)
                for line in node.errors()]

    def cpu_seconds(self) -> float:
        return sum(n.cpu_seconds() for n in self.nodes if n.proc is not None)

    # -- faults ------------------------------------------------------------------------------
    def kill(self, i: int) -> None:
        proc = self.nodes[i].proc
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
        self.nodes[i].proc = None

    def stop_node(self, i: int) -> None:
        self.nodes[i].stop()

    def start_node(self, i: int, timeout: float = 60.0) -> None:
        self.nodes[i].start(timeout)

    def live(self) -> dict[str, float]:
        """Node -> seconds since its last heartbeat, as Redis holds them."""
        client = _client(self.redis_url)
        try:
            sec, usec = client.time()
            t = sec + usec / 1e6
            return {m.decode(): t - s for m, s in
                    client.zrange(f"{self.prefix}{{cluster}}:nodes", 0, -1, withscores=True)}
        finally:
            client.close()

    def joined(self) -> set[str]:
        """Nodes whose current process has joined: its pid in the node's info hash, beating,
        not draining."""
        client = _client(self.redis_url)
        try:
            sec, usec = client.time()
            now = sec + usec / 1e6
            out = set()
            for name, node in zip(self.names, self.nodes):
                info = {k.decode(): v.decode() for k, v in
                        client.hgetall(f"{self.prefix}{{node:{name}}}:info").items()}
                if node.proc is not None and info.get("pid") == str(node.proc.pid) \
                        and info.get("draining") == "0" \
                        and now - float(info.get("heartbeat") or 0) < NODE_TIMEOUT:
                    out.add(name)
            return out
        finally:
            client.close()

    def wait_live(self, n: int, timeout: float = 30.0) -> None:
        """Until `n` nodes (this harness's current processes) joined, then a few heartbeats
        more, so that every node's view has caught up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.joined()) == n:
                time.sleep(HEARTBEAT * 3)
                return
            time.sleep(0.05)
        raise RuntimeError(f"{n} live nodes expected: {self.live()}\n{self.log()}")


def make_cluster(tmp: Path, storage_url: str, redis_url: str, prefix: str,
                 modules: Mapping[str, Options] | None = None,
                 listeners: Mapping[str, Options] | None = None, extra: str = "",
                 tables: Mapping[str, Any] | None = None, *, nodes: int = 3,
                 cluster_redis: str = "", proxy: bool = False) -> RunningCluster:
    """`nodes` nodes named n1, n2, ... sharing `storage_url` and Redis (`redis_url` for the
    stores' cache, `cluster_redis` for the cluster if set: a Redis Cluster), each configured by
    `server_config` (`modules`, `listeners`, `tables`; "{tmp}" is the cluster's directory, so
    uploads share one) in its own directory. With `proxy`, HAProxy gets a frontend for the
    main c2s listener and for each c2s, c2s_tls and http listener, and upload links point at
    it; the cluster's `port` and `ports` are then HAProxy's."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    ensure_certificate(cert, key, ["localhost", "example.test"], generate=True)
    names = [f"n{i + 1}" for i in range(nodes)]
    listeners = dict(listeners or {})
    frontends: dict[str, tuple[int, str]] = {}
    if proxy:
        frontends["c2s"] = (free_port(), "c2s")
        for name, opts in listeners.items():
            mode = _MODES.get(str(opts.get("type", "c2s")))
            if mode is not None:
                frontends[name] = (free_port(), mode)
    modules = dict(modules) if modules is not None else None
    upload = (modules or {}).get("http_upload")
    if proxy and upload is not None and "base_url" not in upload:
        http = next((n for n, o in listeners.items() if o.get("type") == "http"), None)
        if http is not None:
            scheme = "https" if listeners[http].get("tls") else "http"
            path = listeners[http].get("upload_path", "/upload")
            assert modules is not None
            modules["http_upload"] = {**upload, "base_url":
                                      f"{scheme}://localhost:{frontends[http][0]}{path}"}
    invites = (modules or {}).get("invites")
    if proxy and invites is not None and "landing_url" not in invites:
        # docs/CLUSTER.md: the invitation page's public address is the balancer's
        http = next((n for n, o in listeners.items() if o.get("type") == "http"), None)
        if http is not None:
            scheme = "https" if listeners[http].get("tls") else "http"
            assert modules is not None
            modules["invites"] = {**invites, "landing_url":
                                  f"{scheme}://localhost:{frontends[http][0]}/invite"}
    env = dict(os.environ, PYTHONPATH=str(REPO))
    running = []
    for name in names:
        d = tmp / name
        d.mkdir(exist_ok=True)
        shutil.copy(cert, d / "cert.pem")
        shutil.copy(key, d / "key.pem")
        node_tables = dict(tables or {})
        node_tables["cache"] = {**node_tables.get("cache", {}), "prefix": prefix}
        node_tables["cluster"] = {"node": name, "heartbeat": HEARTBEAT,
                                  "node_timeout": NODE_TIMEOUT, "drain_timeout": DRAIN,
                                  **({"redis_url": cluster_redis} if cluster_redis else {})}
        config = server_config(d, storage_url, redis_url, modules, listeners, **node_tables)
        for listener in config["listeners"]:
            listener["port"] = free_port()        # fixed: a restart keeps it
        cfg = d / "xmppd.toml"
        cfg.write_text((toml(config) + "\n" + extra).replace("{tmp}", str(tmp)))
        running.append(RunningServer(tmp=d, config=cfg, env=env, storage_url=storage_url,
                                     cache_url=redis_url, ports=dict.fromkeys(listeners, 0)))
    return RunningCluster(tmp, running, prefix, cluster_redis or redis_url,
                          HAProxy(tmp, frontends) if proxy else None, names)
