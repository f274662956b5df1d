#!/usr/bin/env python3
"""MUC fan-out: 100 occupants in one room, side by side with Prosody's MUC in the same run.

For each server in --servers (reusing servers.py: temp dir, our config, self-signed cert,
accounts made with the server's own tool, the server's pid for CPU sampling) this script

  1. logs in --occupants users (raw asyncio clients from loadgen.py: STARTTLS, SCRAM-SHA-1,
     bind, initial presence),
  2. user1 creates the room and configures it (a temporary room without archive: the form
     turns archiving off, which xmppd otherwise does for temporary rooms too; with "+mam", a
     persistent room whose messages are archived: xmppd's room archive, Prosody's
     mod_muc_mam), everyone else joins, and each client pings the server so all join
     presence has arrived,
  3. --senders occupants send --messages groupchat messages each, at most --window of their own
     in flight (a sender waits for the room to reflect its message back before sending more),
  4. counts every groupchat message every occupant receives, until all arrived.

Reported per server: deliveries/s (occupants x messages / time from first send to last
delivery), server CPU-seconds per 1,000 deliveries (utime+stime of the server process over
the same span), message latency (send to each delivery, p50/p99), lost deliveries, and how
busy the machine was before the run (other tenants).

  python3 bench/muc_bench.py [--servers prosody,xmppd,prosody+mam,xmppd+mam] [--occupants 100]
      [--senders 10] [--messages 200] [--repeat 3] [--nice -10] [--json-out FILE]

Run as root (Prosody drops to its user through setpriv); needs `apt-get install -y prosody`.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import scenarios  # noqa: E402
import servers  # noqa: E402
from anchors import Ejabberd, Prosody  # noqa: E402
from lg_muc import run_room  # noqa: E402
from xmppd_server import Xmppd  # noqa: E402

DOMAIN = servers.DOMAIN
ROOM = f"bench@{servers.MUC_DOMAIN}"


# -- servers: the comparison's (their configs carry a MUC service at conference.<host>) ----
SERVERS: dict[str, type[servers.Server]] = {"prosody": Prosody, "ejabberd": Ejabberd,
                                            "xmppd": Xmppd}


# -- the scenario: bench/lg_muc.py (loadgen.py muc) -----------------------------------------


def one_run(server: servers.Server, a: argparse.Namespace) -> dict[str, Any]:
    busy = scenarios.background_busy(1.0)
    cfg = SimpleNamespace(
        host="127.0.0.1", port=server.port, domain=DOMAIN, tls=True, mech="SCRAM-SHA-1",
        transport="tcp", ws_path="", client_ns=b"",
        sslctx=loadgen.make_sslctx(), timeout=30.0, user_prefix="user", password_prefix="pw",
        occupants=a.occupants, senders=a.senders, messages=a.messages, window=a.window,
        body_size=a.body_size, concurrency=a.concurrency, drain_timeout=a.drain_timeout,
        archive=server.mam, server_pid=server.pid, room=ROOM, room_fields=server.room_fields,
        start=1)
    result = asyncio.run(run_room(cfg))
    result["background_busy_pct"] = busy
    servers.log(server.label, "  ->", {k: result.get(k) for k in (
        "deliveries_per_s", "server_cpu_s_per_1000", "latency_ms_p50", "latency_ms_p99",
        "lost", "server_cpu_pct", "machine_busy_pct")})
    return result


def bench(name: str, a: argparse.Namespace, cert: str, key: str) -> dict[str, Any]:
    base, _, variant = name.partition("+")
    server = SERVERS[base](variant == "mam", cert, key, a)
    out: dict[str, Any] = {"server": server.label}
    try:
        out["background_busy_pct"] = scenarios.background_busy()
        server.start()
        server.register(a.occupants)
        runs = []
        for _ in range(a.repeat):
            runs.append(one_run(server, a))
        good = [r for r in runs if r.get("deliveries_per_s")]
        good.sort(key=lambda r: r["deliveries_per_s"], reverse=True)
        out.update(good[0] if a.pick == "best" and good else
                   good[len(good) // 2] if good else runs[-1])
        out["runs"] = [{k: r.get(k) for k in ("deliveries_per_s", "server_cpu_s_per_1000",
                                              "machine_busy_pct", "background_busy_pct",
                                              "lost")} for r in runs]
    except Exception as e:  # noqa: BLE001
        servers.log(server.label, "FAILED:", e)
        servers.log(server.label, "log tail:\n" + server.log_tail())
        out["error"] = str(e)
    finally:
        server.cleanup()
    return out


ROWS = [("deliveries/s", "deliveries_per_s", "{:.0f}"),
        ("server CPU-s / 1,000 deliveries", "server_cpu_s_per_1000", "{:.4f}"),
        ("p50 latency (ms)", "latency_ms_p50", "{:.1f}"),
        ("p99 latency (ms)", "latency_ms_p99", "{:.1f}"),
        ("lost deliveries", "lost", "{}"),
        ("server CPU %", "server_cpu_pct", "{}"),
        ("machine busy % (run)", "machine_busy_pct", "{}"),
        ("background busy % (before)", "background_busy_pct", "{}")]


def render(results: list[dict[str, Any]]) -> str:
    names = [r["server"] for r in results]
    lines = ["| metric | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for label, key, fmt in ROWS:
        cells = ["–" if r.get(key) is None else fmt.format(r[key]) for r in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", default="prosody,xmppd")
    ap.add_argument("--occupants", type=int, default=100)
    ap.add_argument("--senders", type=int, default=10)
    ap.add_argument("--messages", type=int, default=200, help="per sender")
    ap.add_argument("--window", type=int, default=10, help="own messages in flight per sender")
    ap.add_argument("--body-size", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pick", choices=("best", "median"), default="best")
    ap.add_argument("--drain-timeout", type=float, default=10)
    ap.add_argument("--nice", type=int, default=0)
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs xmppd")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--json-out")
    a = ap.parse_args(argv)
    wanted = [s.strip() for s in a.servers.split(",") if s.strip()]
    if any(w.startswith("prosody") for w in wanted) and not shutil.which("prosody"):
        print(f"missing prosody; install with:\n    {servers.APT_HINT}", file=sys.stderr)
        return 2
    if a.nice:
        os.setpriority(os.PRIO_PROCESS, 0, a.nice)
        servers.set_autogroup_nice("self", a.nice)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    certdir = tempfile.mkdtemp(prefix="bench-cert-")
    try:
        cert, key = servers.make_cert(certdir)
        machine = servers.machine_info()
        servers.log("machine:", machine)
        results = [bench(w, a, cert, key) for w in wanted]
    finally:
        shutil.rmtree(certdir, ignore_errors=True)
    print(f"Machine: {machine}\n\nRoom of {a.occupants} occupants, {a.senders} senders x "
          f"{a.messages} messages (window {a.window}, body {a.body_size} B), best of "
          f"{a.repeat}.\n")
    print(render([r for r in results if "error" not in r]))
    for r in results:
        if "error" in r:
            print(f"\n{r['server']}: FAILED: {r['error']}")
        elif r.get("runs"):
            print(f"\n{r['server']} runs: " + ", ".join(
                f"{x['deliveries_per_s']}/s ({x['server_cpu_s_per_1000']} CPU-s, busy "
                f"{x['machine_busy_pct']}%)" for x in r["runs"]))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"machine": machine, "args": vars(a),
                                                "results": results}, indent=1, default=str))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
