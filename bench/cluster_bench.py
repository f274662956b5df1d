"""Cluster benchmark (issue 14, docs/PERFORMANCE.md "Cluster"): one node vs two on this machine
under the same client load, and what a cross-node message costs against a same-node one.

Each scenario gets a fresh PostgreSQL database on the local server and a private redis-server
(started here on a free port, no persistence), so Redis' and PostgreSQL's counters are ours:

  single     one node, no [cluster]                       loadgen: all pairs on it
  cluster1   one node with [cluster] (nothing crosses)      loadgen: all pairs on it
  same2      two nodes, every pair on one node              two loadgens, half the pairs each
  cross2     two nodes, senders on n1, receivers on n2      one loadgen (--receiver-server)
  lat-same / lat-cross   two nodes at a fixed low rate: same-node vs cross-node latency

Per run: messages/s, CPU per message of all xmppd nodes, of Redis, Redis commands and bytes
per message (INFO commandstats/stats), PostgreSQL commits and rows per message
(pg_stat_database). `--mam` archives every message (XEP-0313) as a production node does.

  python3 bench/cluster_bench.py [--pairs 10] [--messages 2000] [--mam] [--json-out F]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import redis

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
DOMAIN = "bench.local"
sys.path.insert(0, str(ROOT / "bench"))
import procstat  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def pg_admin() -> tuple[Any, str]:
    for user in ("postgres", "root"):
        try:
            conn = psycopg2.connect(host="127.0.0.1", user=user, dbname="postgres")
        except psycopg2.Error:
            continue
        conn.autocommit = True
        return conn, user
    raise SystemExit("no PostgreSQL on 127.0.0.1:5432")


class Env:
    """A database, a private Redis, a temp dir; `close()` removes them."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="xmppd-cluster-bench-"))
        admin, self.pg_user = pg_admin()
        self.db = f"xmppd_bench_{secrets.token_hex(4)}"
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {self.db} TEMPLATE template0")
        admin.close()
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)], stdout=subprocess.DEVNULL)
        wait_port(self.redis_port, self.redis)
        self.nodes: list[subprocess.Popen[bytes]] = []

    @property
    def storage(self) -> str:
        return f"postgresql+psycopg2://{self.pg_user}@127.0.0.1:5432/{self.db}"

    def config(self, name: str, port: int, cluster: bool, mam: bool) -> Path:
        mods = "[modules.disco]\n[modules.ping]\n[modules.roster]\n[modules.presence]\n"
        if mam:
            mods += "[modules.mam]\n"
        text = f"""
[server]
hosts = ["{DOMAIN}"]
log_level = "warning"
log_file = "{self.tmp / (name + '.log')}"
[storage]
url = "{self.storage}"
[cache]
url = "redis://127.0.0.1:{self.redis_port}/0"
[tls]
cert = "{self.tmp / 'cert.pem'}"
key = "{self.tmp / 'key.pem'}"
[[listeners]]
type = "c2s"
bind = "127.0.0.1"
port = {port}
starttls = "required"
[limits]                  # the load generator stands for many users, all on 127.0.0.1
exempt_networks = ["127.0.0.0/8", "::1"]
c2s_rate = "off"
stanza_rate = "off"
{mods}
"""
        if cluster:
            text += f'[cluster]\nnode = "{name}"\n'
        path = self.tmp / f"{name}.toml"
        path.write_text(text)
        return path

    def register(self, cfg: Path, users: int) -> None:
        code = ("import sys\nfrom xmppd.ctl import main\n"
                "for i in range(1, int(sys.argv[2]) + 1):\n"
                "    main(['--config', sys.argv[1], 'register', f'user{i}', "
                f"'{DOMAIN}', f'pw{{i}}'])\n")
        subprocess.run([PY, "-c", code, str(cfg), str(users)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(ROOT)))

    def start(self, cfg: Path, port: int) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([PY, "-m", "xmppd.main", "--config", str(cfg)], cwd=ROOT,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
        wait_port(port, p)
        self.nodes.append(p)
        return p

    def stop_nodes(self) -> None:
        for p in self.nodes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.nodes:
            p.wait(60)
        time.sleep(1.0)

    def close(self) -> None:
        for p in self.nodes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.nodes:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        self.redis.send_signal(signal.SIGTERM)
        self.redis.wait(10)
        admin, _ = pg_admin()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        admin.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def pg_counters(env: Env) -> dict[str, float]:
    admin, _ = pg_admin()
    with admin.cursor() as cur:
        cur.execute("SELECT xact_commit, tup_inserted, tup_updated, tup_deleted "
                    "FROM pg_stat_database WHERE datname = %s", (env.db,))
        commits, ins, upd, dele = cur.fetchone()
    admin.close()
    return {"pg_commits": commits, "pg_rows": ins + upd + dele}


def counters(env: Env, pids: list[int]) -> dict[str, float]:
    r = redis.Redis(port=env.redis_port)
    stats, cpu = r.info("stats"), r.info("cpu")
    calls = sum(v["calls"] for k, v in r.info("commandstats").items())
    xadd = r.info("commandstats").get("cmdstat_xadd", {}).get("calls", 0)
    r.close()
    return {"node_cpu": sum(procstat.cpu_seconds(p) for p in pids),
            "redis_cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
            "redis_cmds": calls, "redis_xadd": xadd,
            "redis_bytes": stats["total_net_input_bytes"] + stats["total_net_output_bytes"]}


def loadgen(port: int, pairs: int, messages: int, start: int = 1, rate: str = "max",
            receiver: int | None = None, pid: int | None = None) -> subprocess.Popen[str]:
    cmd = [PY, str(ROOT / "bench/loadgen.py"), "messages", "--server", f"127.0.0.1:{port}",
           "--domain", DOMAIN, "--pairs", str(pairs), "--messages", str(messages),
           "--rate", rate, "--start", str(start)]
    if receiver is not None:
        cmd += ["--receiver-server", f"127.0.0.1:{receiver}"]
    if pid is not None:
        cmd += ["--server-pid", str(pid)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=600)
    d: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if "error" in d:
        raise RuntimeError(d["error"])
    return d


def scenario(name: str, args: argparse.Namespace) -> dict[str, Any]:
    env = Env()
    try:
        two = name not in ("single", "cluster1")
        ports = [free_port() for _ in range(2 if two else 1)]
        cfgs = [env.config(f"n{i + 1}", p, name != "single", args.mam)
                for i, p in enumerate(ports)]
        env.register(cfgs[0], 2 * args.pairs)
        procs = [env.start(c, p) for c, p in zip(cfgs, ports)]
        time.sleep(3 if two else 1)                       # nodes see each other
        pids = [p.pid for p in procs]
        rate = str(args.latency_rate) if name.startswith("lat-") else "max"
        n = args.latency_messages if name.startswith("lat-") else args.messages
        before = counters(env, pids) | pg_counters(env)
        busy0 = procstat.machine_busy() if hasattr(procstat, "machine_busy") else None
        if name == "same2":
            half = args.pairs // 2
            runs = [loadgen(ports[0], half, n, 1), loadgen(ports[1], half, n, 1 + 2 * half)]
        elif name in ("cross2", "lat-cross"):
            runs = [loadgen(ports[0], args.pairs, n, receiver=ports[1], rate=rate)]
        else:                                              # single, cluster1, lat-same
            runs = [loadgen(ports[0], args.pairs, n, rate=rate)]
        got = [result(r) for r in runs]
        time.sleep(1.0)     # the last group commits
        after = counters(env, pids)
        env.stop_nodes()    # PostgreSQL counts a backend's rows when it goes idle or closes
        after |= pg_counters(env)
        recv = sum(g["received"] for g in got)
        elapsed = max(g["elapsed_s"] or 0 for g in got)
        per = {k: (after[k] - before[k]) / recv for k in before} if recv else {}
        out = {"scenario": name, "mam": args.mam, "received": recv,
               "lost": sum(g["lost"] for g in got),
               "msgs_per_s": round(recv / elapsed) if elapsed else None,
               "node_cpu_us_per_msg": round(per.get("node_cpu", 0) * 1e6, 1),
               "redis_cpu_us_per_msg": round(per.get("redis_cpu", 0) * 1e6, 1),
               "redis_cmds_per_msg": round(per.get("redis_cmds", 0), 3),
               "redis_xadd_per_msg": round(per.get("redis_xadd", 0), 3),
               "redis_bytes_per_msg": round(per.get("redis_bytes", 0)),
               "pg_commits_per_msg": round(per.get("pg_commits", 0), 3),
               "pg_rows_per_msg": round(per.get("pg_rows", 0), 3),
               "latency_ms_p50": got[0].get("latency_ms_p50"),
               "latency_ms_p90": got[0].get("latency_ms_p90"),
               "latency_ms_p99": got[0].get("latency_ms_p99"),
               "machine_busy_pct": got[0].get("machine_busy_pct"), "busy0": busy0}
        print(json.dumps(out), flush=True)
        return out
    finally:
        env.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--messages", type=int, default=2000, help="per pair, max-rate runs")
    ap.add_argument("--latency-rate", type=int, default=500, help="msgs/s, latency runs")
    ap.add_argument("--latency-messages", type=int, default=300, help="per pair")
    ap.add_argument("--mam", action="store_true", help="archive every message (XEP-0313)")
    ap.add_argument("--scenarios", default="single,cluster1,same2,cross2,lat-same,lat-cross")
    ap.add_argument("--json-out", default="")
    args = ap.parse_args()
    rows = [scenario(s, args) for s in args.scenarios.split(",")]
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1))
    cols = ["scenario", "msgs_per_s", "node_cpu_us_per_msg", "redis_cpu_us_per_msg",
            "redis_cmds_per_msg", "redis_bytes_per_msg", "pg_commits_per_msg",
            "pg_rows_per_msg", "latency_ms_p50", "latency_ms_p99", "lost"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c)) for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
