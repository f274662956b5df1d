#!/usr/bin/env python3
"""What the metrics instrumentation costs on the messaging hot path: server CPU-seconds per
1,000 messages (bench/loadgen.py `messages`, max rate, archiving off as in
docs/PERFORMANCE.md's core table) for two source trees of xmppd, runs alternating.

  git archive <before-commit> | tar -x -C /tmp/xmppd-before
  python3 bench/metrics_cost.py --before /tmp/xmppd-before --after . --repeat 3

Each run: a fresh SQLite temp dir, `python -m xmppd.main` from the tree (PYTHONPATH=tree),
20 accounts, 10 pairs x 2,000 messages. Prints one JSON line per run and a summary line.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CONFIG = """
[server]
hosts = ["localhost"]
log_level = "warning"
[storage]
url = "sqlite:///{tmp}/xmppd.sqlite"
[tls]
cert = "{tmp}/cert.pem"
key = "{tmp}/key.pem"
[[listeners]]
port = {port}
[modules.disco]
[modules.ping]
"""

REGISTER = """
import sys
from xmppd.ctl import main
cfg, n = sys.argv[1], int(sys.argv[2])
for i in range(1, n + 1):
    if main(["--config", cfg, "register", f"user{i}", "localhost", f"pw{i}"]) not in (0, 1):
        sys.exit(1)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(tree: Path, pairs: int, messages: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="xmppd-cost-") as tmp:
        port = free_port()
        cfg = Path(tmp) / "xmppd.toml"
        cfg.write_text(CONFIG.format(tmp=tmp, port=port))
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, "-c", REGISTER, str(cfg), str(2 * pairs)], cwd=tree,
                       env=env, check=True, capture_output=True)
        server = subprocess.Popen([sys.executable, "-m", "xmppd.main", "--config", str(cfg)],
                                  cwd=tree, env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("server did not start") from None
                    time.sleep(0.1)
            out = subprocess.run(
                [sys.executable, str(HERE / "loadgen.py"), "messages", "--server",
                 f"127.0.0.1:{port}", "--pairs", str(pairs), "--messages", str(messages),
                 "--server-pid", str(server.pid)], capture_output=True, text=True, check=True)
            return dict(json.loads(out.stdout.strip().splitlines()[-1]))
        finally:
            server.terminate()
            server.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--messages", type=int, default=2000)
    a = ap.parse_args()
    results: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(a.repeat):
        for label, tree in (("before", a.before), ("after", a.after)):
            r = one_run(tree.resolve(), a.pairs, a.messages)
            print(json.dumps({"run": i, "tree": label, **r}), flush=True)
            results[label].append(float(r["server_cpu_s_per_1000"]))  # type: ignore[arg-type]
    summary = {k: {"median": statistics.median(v), "min": min(v), "runs": v}
               for k, v in results.items()}
    b, after = summary["before"]["median"], summary["after"]["median"]
    summary["change_pct"] = round(100 * (after - b) / b, 1)   # type: ignore[assignment]
    print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    main()
