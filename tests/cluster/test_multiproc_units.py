"""The pieces of `server.processes` without processes: the config key, the plan (how many,
which Redis, or why one), a worker's config, and the shared sockets' steering."""
from __future__ import annotations

import dataclasses
import socket
import time
from pathlib import Path

import pytest

from xmppd import multiproc, sharedsockets
from xmppd.config import Config, ConfigError, load

BASE = """
[server]
hosts = ["localhost"]
admin_socket = "{tmp}/ctl.sock"
pid_file = "{tmp}/pid"
{server}
[storage]
url = "{storage}"
[cache]
url = "{cache}"
[[listeners]]
port = 0
port_file = "{tmp}/port"
[[listeners]]
type = "metrics"
port = 9000
[[listeners]]
type = "component"
port = 0
"""


def config(tmp: Path, server: str = "", storage: str = "", cache: str = "memory",
           cluster: str = "") -> Config:
    path = tmp / "x.toml"
    path.write_text(BASE.format(tmp=tmp, server=server, cache=cache,
                                storage=storage or f"sqlite:///{tmp}/db.sqlite") + cluster)
    return load(path)


def test_processes_is_auto_or_a_number(tmp_path: Path) -> None:
    assert config(tmp_path).server.processes == 1
    assert config(tmp_path, 'processes = "auto"').server.processes == 0
    assert config(tmp_path, "processes = 3").server.processes == 3
    for bad in ('"all"', "0", "true", "1.5"):
        with pytest.raises(ConfigError, match="server.processes"):
            config(tmp_path, f"processes = {bad}")
    c = multiproc.with_processes(config(tmp_path), "auto")
    assert c.server.processes == 0
    with pytest.raises(ConfigError, match="--processes"):
        multiproc.with_processes(c, "many")


def test_auto_is_one_per_core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/redis-server")
    assert multiproc.plan(config(tmp_path, 'processes = "auto"')) == \
        multiproc.Plan(6, private_redis=True)


def test_the_plan_falls_back_to_one_process_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    p = multiproc.plan(config(tmp_path, "processes = 2"))
    assert p.processes == 1 and "redis-server" in p.reason
    p = multiproc.plan(config(tmp_path, "processes = 2", storage="sqlite://"))
    assert p.processes == 1 and "in-memory SQLite" in p.reason
    # with a Redis configured, no redis-server of ours is needed
    p = multiproc.plan(config(tmp_path, "processes = 2", cache="redis://127.0.0.1:6379/3"))
    assert p == multiproc.Plan(2, redis_url="redis://127.0.0.1:6379/3")
    assert multiproc.plan(config(tmp_path)) == multiproc.Plan(1)


def test_a_worker_is_a_cluster_node_with_its_own_socket_and_metrics(tmp_path: Path) -> None:
    c = config(tmp_path, "processes = 2")
    spec = multiproc.WorkerSpec(2, 2, (7, -1, -2), 9, "redis://:pw@127.0.0.1:1/0")
    assert multiproc.WorkerSpec.loads(spec.dumps()) == spec
    w = multiproc.worker_config(c, spec)
    assert w.cluster is not None and w.cluster.node == "p2"
    assert w.cluster.redis_url == w.cache.url == spec.redis_url     # caches shared, not stale
    assert w.server.admin_socket == f"{tmp_path}/ctl.sock.2" and w.server.pid_file == ""
    assert w.server.processes == 1
    assert [lst.port for lst in w.listeners] == [0, 9001, 0]
    assert all(lst.port_file == "" for lst in w.listeners)          # the supervisor's
    first = multiproc.worker_config(c, dataclasses.replace(spec, index=1))
    assert first.server.admin_socket == f"{tmp_path}/ctl.sock"
    assert [multiproc.serves(lst, 2) for lst in c.listeners] == [True, True, False]
    assert multiproc.skipped(spec, 2) and not multiproc.skipped(spec, 1)


def test_workers_of_a_cluster_node_are_named_after_it(tmp_path: Path) -> None:
    c = config(tmp_path, "processes = 2", storage="postgresql+psycopg2://x@127.0.0.1/x",
               cache="redis://127.0.0.1:6379/0", cluster='[cluster]\nnode = "n1"\n')
    spec = multiproc.WorkerSpec(1, 2, (), 9, "redis://127.0.0.1:6379/0")
    w = multiproc.worker_config(c, spec)
    assert w.cluster is not None and w.cluster.node == "n1-p1"
    assert w.cache.url == "redis://127.0.0.1:6379/0"


def _accepted(socks: list[socket.socket], expect: int) -> list[int]:
    counts = [0] * len(socks)
    deadline = time.monotonic() + 10
    while sum(counts) < expect and time.monotonic() < deadline:
        for i, s in enumerate(socks):
            try:
                s.accept()[0].close()
                counts[i] += 1
            except BlockingIOError:
                pass
    return counts


def test_connections_spread_over_the_group_and_http_sticks_to_the_client() -> None:
    a = sharedsockets.bind("127.0.0.1", 0)
    port = a.getsockname()[1]
    b = sharedsockets.bind("127.0.0.1", port)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    spread = _accepted([a, b], 40)
    assert sum(spread) == 40 and min(spread) > 0, spread     # 2^-39 to fail by chance
    for c in clients:
        c.close()
    # steered by source address: 127.0.0.1 is odd, so every connection goes to index 1
    h = sharedsockets.bind("127.0.0.1", 0)
    hport = h.getsockname()[1]
    i = sharedsockets.bind("127.0.0.1", hport)
    assert sharedsockets.steer_by_source(h, 2)
    clients = [socket.create_connection(("127.0.0.1", hport)) for _ in range(20)]
    assert _accepted([h, i], 20) == [0, 20]
    for s in clients + [a, b, h, i]:
        s.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::"])
def test_http_steering_follows_the_source_address_on_ipv4_and_dual_stack(host: str) -> None:
    try:
        a = sharedsockets.bind(host, 0)
    except OSError:
        pytest.skip(f"cannot listen on {host}")
    port = a.getsockname()[1]
    b = sharedsockets.bind(host, port)
    assert sharedsockets.steer_by_source(a, 2)
    for source, expected in (("127.0.0.2", [20, 0]), ("127.0.0.3", [0, 20])):
        clients = []
        for _ in range(20):
            c = socket.socket()
            c.bind((source, 0))
            c.connect(("127.0.0.1", port))
            clients.append(c)
        assert _accepted([a, b], 20) == expected, source       # address modulo 2
        for c in clients:
            c.close()
    a.close()
    b.close()
