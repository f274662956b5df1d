# tests: tests/cluster/
"""A three-shard Redis Cluster started by the test from the Debian `redis-server`
(`--cluster-enabled yes`, then `redis-cli --cluster create ... --cluster-yes`), on free ports in
a temp dir, no persistence; `stop()` ends the three servers. `url` is what xmppd's
`[cluster] redis_url` and `cache.url` take: `redis+cluster://127.0.0.1:<port>`."""
from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.harness.ports import free_port

SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def available() -> str | None:
    if not Path(SERVER).exists() or not Path(CLI).exists():
        return "redis-server / redis-cli are not installed"
    return None


class RedisCluster:
    def __init__(self, tmp: Path, shards: int = 3) -> None:
        self.tmp = tmp
        self.ports = [free_port(bus=True) for _ in range(shards)]   # bus: port + 10000
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self, timeout: float = 30.0) -> None:
        for port in self.ports:
            d = self.tmp / f"redis-{port}"
            d.mkdir(parents=True, exist_ok=True)
            log = (d / "redis.log").open("ab")
            self.procs.append(subprocess.Popen(
                [SERVER, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(d / "nodes.conf"), "--dir", str(d), "--save", "",
                 "--appendonly", "no", "--protected-mode", "no"], stdout=log, stderr=log))
            log.close()
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while not self._pings(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {port} did not start")
                time.sleep(0.05)
        done = subprocess.run([CLI, "--cluster", "create",
                               *[f"127.0.0.1:{p}" for p in self.ports],
                               "--cluster-replicas", "0", "--cluster-yes"],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
        while not all(self._ok(p) for p in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def _pings(self, port: int) -> bool:
        try:
            return bool(redis.Redis(port=port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def _ok(self, port: int) -> bool:
        try:
            info = redis.Redis(port=port, socket_timeout=1).execute_command("CLUSTER", "INFO")
        except redis.RedisError:
            return False
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.procs.clear()
