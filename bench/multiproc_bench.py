"""Multi-process benchmark (issue 18 §1, docs/PERFORMANCE.md "Every core"): the same client
load against one server with `server.processes = 1` and with `= 2`, interleaved, fresh server
and database per run.

Backends: `sqlite` (the embedded default: a SQLite file and, with 2 processes, the
supervisor's private redis-server) or `postgresql` (a fresh database on the local PostgreSQL
and a private redis-server started here for both). `--mam` archives every message.

`--scenario logins`: 2 × pairs users log in (STARTTLS, SCRAM-SHA-1, bind) `--login-rounds`
times, 20 at a time: work per connection that never crosses between processes.

Per run: delivered messages/s (loadgen's measured phase), server CPU per message (every
process of the server: workers, supervisor, its private Redis; the logins are included, so
the figure is a little above loadgen's per-phase one), the load generator's CPU, the load
average before the run. Then the ratio of the medians.

  python3 bench/multiproc_bench.py [--rounds 3] [--pairs 50] [--messages 2000] [--window 50]
                                   [--backend sqlite|postgresql] [--mam] [--procs 1,2]
                                   [--rate max|N] [--scenario messages|logins]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
DOMAIN = "bench.local"
sys.path.insert(0, str(ROOT / "bench"))
import procstat  # noqa: E402
from cluster_bench import free_port, pg_admin, wait_port  # noqa: E402


def config(tmp: Path, procs: int, storage: str, cache: str, mam: bool) -> Path:
    mods = "[modules.disco]\n[modules.ping]\n[modules.roster]\n[modules.presence]\n" \
           "[modules.offline]\n[modules.stream_mgmt]\n"
    if mam:
        mods += "[modules.mam]\n"
    text = f"""
[server]
hosts = ["{DOMAIN}"]
log_level = "warning"
log_file = "{tmp / 'xmppd.log'}"
processes = {procs}
[storage]
url = "{storage}"
[cache]
url = "{cache}"
[tls]
cert = "{tmp / 'cert.pem'}"
key = "{tmp / 'key.pem'}"
[[listeners]]
type = "c2s"
bind = "127.0.0.1"
port = 0
port_file = "{tmp / 'port'}"
starttls = "required"
[limits]                  # the load generator stands for many users, all on 127.0.0.1
exempt_networks = ["127.0.0.0/8", "::1"]
c2s_rate = "off"
stanza_rate = "off"
{mods}
"""
    path = tmp / "xmppd.toml"
    path.write_text(text)
    return path


def server_cpu(root: int) -> float:
    total = 0.0
    for pid in [root] + procstat.descendants(root):
        try:
            total += procstat.cpu_seconds(pid)
        except OSError:
            pass
    return total


def one(args: argparse.Namespace, procs: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="xmppd-mp-bench-"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    redis: subprocess.Popen[bytes] | None = None
    db = ""
    server: subprocess.Popen[bytes] | None = None
    try:
        if args.backend == "postgresql":
            admin, user = pg_admin()
            db = f"xmppd_mpbench_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
            with admin.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db} TEMPLATE template0")
            admin.close()
            storage = f"postgresql+psycopg2://{user}@127.0.0.1:5432/{db}"
            rport = free_port()
            redis = subprocess.Popen(
                ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
            wait_port(rport, redis)
            cache = f"redis://127.0.0.1:{rport}/0"
        else:
            storage, cache = f"sqlite:///{tmp / 'db.sqlite'}", "memory"
        cfg = config(tmp, procs, storage, cache, args.mam)
        code = ("import sys\nfrom xmppd.ctl import main\n"
                "for i in range(1, int(sys.argv[2]) + 1):\n"
                "    main(['--config', sys.argv[1], 'register', f'user{i}', "
                f"'{DOMAIN}', f'pw{{i}}'])\n")
        subprocess.run([PY, "-c", code, str(cfg), str(2 * args.pairs)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, env=env)
        server = subprocess.Popen([PY, "-m", "xmppd.main", "--config", str(cfg)], cwd=ROOT,
                                  env=env)
        deadline = time.time() + 90
        while not (tmp / "port").exists() or not (tmp / "port").read_text().strip():
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"server did not start:\n{(tmp / 'xmppd.log').read_text()}")
            time.sleep(0.1)
        port = int((tmp / "port").read_text())
        time.sleep(1.0)
        load = os.getloadavg()[0]
        cpu0 = server_cpu(server.pid) + (procstat.cpu_seconds(redis.pid) if redis else 0)
        common = ["--server", f"127.0.0.1:{port}", "--domain", DOMAIN]
        if args.scenario == "logins":
            cmd = [PY, str(ROOT / "bench/loadgen.py"), "logins", *common, "--users",
                   str(2 * args.pairs), "--rounds", str(args.login_rounds), "--concurrency",
                   "20"]
        else:
            cmd = [PY, str(ROOT / "bench/loadgen.py"), "messages", *common, "--pairs",
                   str(args.pairs), "--messages", str(args.messages), "--rate", args.rate,
                   "--window", str(args.window)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900).stdout
        got: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        cpu1 = server_cpu(server.pid) + (procstat.cpu_seconds(redis.pid) if redis else 0)
        done = got["ok"] if args.scenario == "logins" else got["received"]
        res = {"procs": procs, "backend": args.backend, "mam": args.mam,
               "scenario": args.scenario, "rate": args.rate, "done": done,
               "lost": got.get("lost", got.get("failed")),
               "per_s": got["logins_per_s"] if args.scenario == "logins" else got["msgs_per_s"],
               "server_cpu_us_per_op": round((cpu1 - cpu0) / done * 1e6, 1) if done else None,
               "server_cores": round((cpu1 - cpu0) / got["wall_s"], 2) if got.get("wall_s")
               else None,
               "loadgen_cpu_pct": got.get("loadgen_cpu_pct"),
               "machine_busy_pct": got.get("machine_busy_pct"),
               "latency_ms_p99": got.get("latency_ms_p99", got.get("login_ms_p99")),
               "loadavg_before": round(load, 2)}
        print(json.dumps(res), flush=True)
        return res
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
        if redis is not None:
            redis.terminate()
            redis.wait(10)
        if db:
            admin, _ = pg_admin()
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            admin.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=50)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--mam", action="store_true")
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--scenario", choices=["messages", "logins"], default="messages")
    ap.add_argument("--login-rounds", type=int, default=3,
                    help="logins: log every one of the 2 x pairs users in this many times")
    ap.add_argument("--rate", default="max",
                    help="offered msgs/s in total, or max (a fixed rate compares CPU per "
                         "message without the batching a saturated server gets)")
    args = ap.parse_args()
    counts = [int(x) for x in args.procs.split(",")]
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    for r in range(args.rounds):
        for n in (counts if r % 2 == 0 else counts[::-1]):      # interleaved, alternating
            runs[n].append(one(args, n))
    summary: dict[str, Any] = {"summary": True, "backend": args.backend, "mam": args.mam,
                               "cpus": os.cpu_count()}
    for n, rs in runs.items():
        rates = [r["per_s"] for r in rs if r["per_s"]]
        cpu = [r["server_cpu_us_per_op"] for r in rs if r["server_cpu_us_per_op"]]
        summary[f"p{n}"] = {"per_s_median": statistics.median(rates),
                            "min": min(rates), "max": max(rates),
                            "server_cpu_us_per_op_median": statistics.median(cpu),
                            "lost": sum(r["lost"] for r in rs)}
    if len(counts) == 2:
        a, b = (summary[f"p{n}"]["per_s_median"] for n in counts)
        summary["ratio"] = round(b / a, 3)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
