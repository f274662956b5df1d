"""`make run-cluster`: three xmppd nodes behind HAProxy on this machine (docs/CLUSTER.md).

- Nodes n1, n2, n3: c2s on 6001-6003, HTTP on 6101-6103, sharing this machine's PostgreSQL
  (database `xmppd_cluster`, created if missing; XMPPD_CLUSTER_PG overrides the URL) and Redis
  (XMPPD_CLUSTER_REDIS, default redis://127.0.0.1:6379/0, key prefix `xmppd_cluster:`).
  Their configs are conf/xmppd.toml with those changes, written to var/cluster/; in-band
  registration stays allowed from this machine; uploads share var/upload.
- HAProxy (the Debian package, run in the foreground with conf/cluster/haproxy.cfg, never as a
  service) on 5222 (client streams) and 5280 (WebSocket, BOSH, host-meta, uploads).
- Ctrl-C (or SIGTERM) stops HAProxy, then each node with SIGTERM (it drains), then exits.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var" / "cluster"
NODES = ("n1", "n2", "n3")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
REDIS = os.environ.get("XMPPD_CLUSTER_REDIS", "redis://127.0.0.1:6379/0")


def say(*args: object) -> None:
    print("run-cluster:", *args, flush=True)


def database() -> str:
    """The PostgreSQL URL, creating the database on the local server if needed."""
    if "XMPPD_CLUSTER_PG" in os.environ:
        return os.environ["XMPPD_CLUSTER_PG"]
    import psycopg2  # type: ignore[import-untyped]
    last: Exception | None = None
    for user in ("postgres", "root", os.environ.get("USER", "")):
        try:
            conn = psycopg2.connect(host="127.0.0.1", user=user, dbname="postgres",
                                    connect_timeout=3)
        except psycopg2.Error as e:
            last = e
            continue
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = 'xmppd_cluster'")
            if cur.fetchone() is None:
                cur.execute("CREATE DATABASE xmppd_cluster ENCODING 'UTF8' TEMPLATE template0")
                say("created the PostgreSQL database xmppd_cluster")
        conn.close()
        return f"postgresql+psycopg2://{user}@127.0.0.1:5432/xmppd_cluster"
    raise SystemExit(f"run-cluster: no PostgreSQL on 127.0.0.1:5432 ({last})")


def node_config(base: str, name: str, i: int, storage: str) -> str:
    """conf/xmppd.toml for node `name`: shared stores, its own ports, a [cluster] table."""
    text = base
    text = re.sub(r'(?m)^url = "sqlite:[^"]*"', f'url = "{storage}"', text, count=1)
    text = re.sub(r'(?m)^url = "memory"', f'url = "{REDIS}"\nprefix = "xmppd_cluster:"',
                  text, count=1)
    # One process per node here (three nodes already share this machine's cores).
    text = re.sub(r'(?m)^processes = "auto"', "processes = 1", text, count=1)
    text = re.sub(r"(?m)^port = 5222\b", f"port = {6000 + i}", text, count=1)
    text = re.sub(r"(?m)^port = 5280\b", f'port = {6100 + i}\npublic_url = "http://localhost:5280"',
                  text, count=1)
    # Every client reaches the nodes through HAProxy: per-address limits would count them as
    # one (docs/CLUSTER.md, docs/SECURITY.md).
    text = re.sub(r"(?m)^\[limits\]$", '[limits]\nexempt_networks = ["127.0.0.0/8", "::1"]',
                  text, count=1)
    text = re.sub(r'(?m)^log_level = "info"',
                  f'log_level = "info"\nlog_file = "{VAR / (name + ".log")}"', text, count=1)
    return text + f'\n[cluster]\nnode = "{name}"\n'


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"run-cluster: {what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"run-cluster: {what} does not listen on {port}")


def main() -> int:
    if not Path(HAPROXY).exists():
        raise SystemExit("run-cluster: HAProxy is not installed (apt-get install haproxy)")
    VAR.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)
    from xmppd.tls import ensure_certificate
    ensure_certificate(Path("var/tls/cert.pem"), Path("var/tls/key.pem"), ["localhost"],
                       generate=True)
    storage = database()
    base = (ROOT / "conf" / "xmppd.toml").read_text()
    python = sys.executable
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def stop(interrupted: bool = False) -> None:
        """SIGTERM each process (they drain), unless Ctrl-C reached them already (the
        terminal signals the whole process group); kill what is still there after 60 s."""
        nonlocal stopping
        if stopping:
            return
        stopping = True
        say("stopping")
        if interrupted:
            time.sleep(0.5)     # their own SIGINT handlers run first
        for name, p in reversed(procs):
            if p.poll() is None and not interrupted:
                p.send_signal(signal.SIGTERM)
        for name, p in reversed(procs):
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        say("stopped")

    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    try:
        for i, name in enumerate(NODES, 1):
            cfg = VAR / f"{name}.toml"
            cfg.write_text(node_config(base, name, i, storage))
            if i == 1:      # one schema migration, before any node runs
                subprocess.run([python, "-m", "xmppd.ctl", "--config", str(cfg), "migrate"],
                               check=True, stdout=subprocess.DEVNULL)
            p = subprocess.Popen([python, "-m", "xmppd.main", "--config", str(cfg)])
            procs.append((name, p))
            wait_port(6000 + i, p, f"node {name}")
            say(f"node {name}: c2s 127.0.0.1:{6000 + i}, http 127.0.0.1:{6100 + i}, "
                f"log {VAR / (name + '.log')}")
        hap = subprocess.Popen([HAPROXY, "-db", "-f", str(ROOT / "conf/cluster/haproxy.cfg")])
        procs.append(("haproxy", hap))
        wait_port(5222, hap, "HAProxy")
        say("HAProxy: c2s localhost:5222, http localhost:5280 (Ctrl-C stops everything)")
        while all(p.poll() is None for _, p in procs):
            time.sleep(0.5)
        for name, p in procs:
            if p.poll() is not None:
                say(f"{name} exited with {p.returncode}")
    except KeyboardInterrupt:
        stop(interrupted=True)
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
