#!/usr/bin/env python3
"""Messages/s and latency over XMPP-over-WebSocket (RFC 7395) next to TCP, on one xmppd.

Starts xmppd from a temp config (a c2s listener with STARTTLS optional and an HTTP listener),
creates the accounts in one interpreter, then runs `loadgen.py messages` (10 pairs x 2,000
messages at the maximum rate, then at a fixed offered rate for latency) over:

  tcp        plain TCP, no TLS (--no-tls)         the like-for-like baseline for ws://
  tcp+tls    TCP with STARTTLS                    what native clients use
  websocket  ws:// at /xmpp-websocket, no TLS     what browsers use (wss:// adds TLS as tcp+tls)

Each is run --repeat times and the best run is kept (noise only ever slows a server down).
Prints one JSON line per run and a markdown table at the end.

  PYTHONPATH=. .venv/bin/python bench/web_bench.py --repeat 3 [--nice -10]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import procstat  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(tmp: Path, c2s: int, http: int) -> str:
    return f"""
[server]
hosts = ["localhost"]
log_level = "warning"
log_file = "{tmp / 'xmppd.log'}"
[storage]
url = "sqlite:///{tmp / 'db.sqlite'}"
[tls]
cert = "{tmp / 'cert.pem'}"
key = "{tmp / 'key.pem'}"
[[listeners]]
type = "c2s"
port = {c2s}
starttls = "optional"
[[listeners]]
type = "http"
port = {http}
[limits]                  # the load generator stands for many users, all on 127.0.0.1
exempt_networks = ["127.0.0.0/8", "::1"]
c2s_rate = "off"
stanza_rate = "off"
[modules.disco]
[modules.ping]
[modules.roster]
[modules.presence]
"""


def register(cfg: Path, n: int) -> None:
    code = ("import sys\nfrom xmppd.ctl import main\n"
            f"for i in range(1, {n} + 1):\n"
            f"    rc = main(['--config', {str(cfg)!r}, 'register', f'user{{i}}', 'localhost',"
            " f'pw{i}'])\n"
            "    if rc: sys.exit(rc)\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL)


def loadgen(args: list[str], nice: int | None) -> dict:
    cmd = [sys.executable, str(HERE / "loadgen.py"), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    return json.loads(line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=2000.0, help="offered msgs/s, latency runs")
    ap.add_argument("--nice", type=int, help="renice server and load generator (root)")
    ap.add_argument("--json-out", help="also write all runs here")
    a = ap.parse_args()
    if a.nice is not None:
        os.nice(a.nice)
    tmp = Path(tempfile.mkdtemp(prefix="xmppd-webbench-"))
    c2s, http = free_port(), free_port()
    cfg = tmp / "xmppd.toml"
    cfg.write_text(config(tmp, c2s, http))
    register(cfg, 2 * a.pairs)
    server = subprocess.Popen([sys.executable, "-m", "xmppd.main", "--config", str(cfg)],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    runs: list[dict] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", http), 1).close()
                socket.create_connection(("127.0.0.1", c2s), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("xmppd did not start: " + (tmp / "xmppd.log").read_text())
                time.sleep(0.1)
        transports = {
            "tcp": ["--server", f"127.0.0.1:{c2s}", "--no-tls"],
            "tcp+tls": ["--server", f"127.0.0.1:{c2s}"],
            "websocket": ["--server", f"127.0.0.1:{http}", "--transport", "websocket"],
        }
        common = ["--pairs", str(a.pairs), "--messages", str(a.messages),
                  "--server-pid", str(server.pid)]
        for mode, rate in (("max", "max"), ("fixed", str(a.rate))):
            for name, targs in transports.items():
                for i in range(a.repeat):
                    busy0, total0 = procstat.machine_cpu()
                    r = loadgen(["messages", *targs, *common, "--rate", rate,
                                 "--label", f"{name}/{mode}/{i}"], a.nice)
                    busy1, total1 = procstat.machine_cpu()
                    r.update(transport=name, mode=mode, run=i)
                    # the whole machine, this server and load generator included
                    r["machine_busy_pct"] = round(100 * (busy1 - busy0) / max(1, total1 - total0), 1)
                    runs.append(r)
                    print(json.dumps(r), flush=True)
    finally:
        server.terminate()
        server.wait(15)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(runs, indent=1))
    print()
    print("| transport | mode | msgs/s | p50 ms | p99 ms | server CPU s / 1000 msgs | lost | machine busy % |")
    print("|---|---|---|---|---|---|---|---|")
    for mode in ("max", "fixed"):
        for name in ("tcp", "tcp+tls", "websocket"):
            mine = [r for r in runs if r["transport"] == name and r["mode"] == mode
                    and "error" not in r]
            if not mine:
                print(f"| {name} | {mode} | error | | | | | |")
                continue
            best = (max(mine, key=lambda r: r.get("msgs_per_s") or 0) if mode == "max"
                    else min(mine, key=lambda r: r.get("latency_ms_p99") or 1e9))
            print(f"| {name} | {mode} | {best.get('msgs_per_s')} | "
                  f"{best.get('latency_ms_p50')} | {best.get('latency_ms_p99')} | "
                  f"{best.get('server_cpu_s_per_1000')} | {best.get('lost')} | "
                  f"{best.get('machine_busy_pct')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
