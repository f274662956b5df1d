#!/usr/bin/env python3
"""The comparison `make bench` runs: xmppd (the shipped config, and archive off) against
Prosody and ejabberd (no archive, and archive-all), interleaved rounds, medians with min–max,
the table rewritten in docs/PERFORMANCE.md.

All six servers are started (bench/servers.py, anchors.py, xmppd_server.py) and their
accounts created with their own tools once; every round restarts them (data kept), so each
round measures freshly started servers.  Each round runs every
scenario (bench/scenarios.py: messages at full load, latency at half of the slowest peak,
MUC, offline, SCRAM and PLAIN logins, idle connections) on every server in turn, the order of
the servers rotating from round to round, so drift on a shared machine hits all alike.  After
the last round the archive-off servers log in until they have seen --after-logins logins
since their start and run the messages scenario once more ("fresh → after").  The load generator is bench/loadgen.py, one subprocess
per run; server CPU is utime+stime of the server's process tree over the measured phase.

    python3 bench/compare.py                 # the full run (about 20-25 min on 2 cores)
    python3 bench/compare.py --quick         # a smoke run (3-5 min), the doc left alone
    python3 bench/compare.py --servers prosody,xmppd --scenarios messages,scram --rounds 1

Run it as root: Prosody and ejabberd drop to their users with setpriv.  It installs nothing
(`apt-get install -y prosody ejabberd`, or `make test-debs`).
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shlex
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import report  # noqa: E402
import scenarios  # noqa: E402
from anchors import Ejabberd, Prosody  # noqa: E402
from servers import (APT_HINT, REPO_ROOT, Server, log, machine_info,  # noqa: E402
                     make_cert, set_autogroup_nice)
from xmppd_server import Xmppd  # noqa: E402

ALL = "prosody,prosody+mam,ejabberd,ejabberd+mam,xmppd-nomam,xmppd"
KINDS = {"prosody": (Prosody, False), "prosody+mam": (Prosody, True),
         "ejabberd": (Ejabberd, False), "ejabberd+mam": (Ejabberd, True),
         "xmppd-nomam": (Xmppd, False), "xmppd": (Xmppd, True)}
FULL = dict(rounds=3, pairs=50, messages=2000, window=50, max_seconds=12, latency_seconds=8,
            occupants=50, muc_senders=10, muc_messages=50, offline_pairs=20,
            offline_messages=100, login_users=500, plain_users=200, login_rounds=2,
            idle=2000, idle_hold=5, after_logins=10000)
QUICK = dict(rounds=2, pairs=10, messages=500, window=50, max_seconds=3, latency_seconds=3,
             occupants=20, muc_senders=5, muc_messages=20, offline_pairs=10,
             offline_messages=20, login_users=50, plain_users=30, login_rounds=1,
             idle=200, idle_hold=2, after_logins=1000)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke-run sizes: " + json.dumps(QUICK))
    ap.add_argument("--servers", default=ALL, help=f"comma list of {ALL}")
    ap.add_argument("--scenarios", default=",".join(scenarios.ORDER + ["after"]))
    for k, v in FULL.items():
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=None,
                        help=f"(full: {v}, --quick: {QUICK[k]})")
    ap.add_argument("--concurrency", type=int, default=20, help="logins in parallel")
    ap.add_argument("--nice", type=int, default=0, help="niceness of servers and load "
                    "generator (e.g. -10 on a shared machine; negative needs root)")
    ap.add_argument("--loadgen-cpu", help="pin the load generator (taskset -c LIST)")
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs xmppd "
                    "(this checkout goes on its PYTHONPATH)")
    ap.add_argument("--doc", default=None, help="rewrite the table in this file (default: "
                    "docs/PERFORMANCE.md for a full run, nothing with --quick)")
    ap.add_argument("--no-doc", action="store_true", help="leave docs/PERFORMANCE.md alone")
    ap.add_argument("--json-out", help="all raw results")
    ap.add_argument("--keep-tmp", action="store_true", help="keep temp dirs (configs, logs)")
    ap.add_argument("--from-json", help="no run: the table from the --json-out of an earlier "
                    "run (written to --doc if given)")
    a = ap.parse_args(argv)
    for k, v in (QUICK if a.quick else FULL).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    a.scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    bad = [s for s in a.servers if s not in KINDS] + \
        [s for s in a.scenarios if s not in scenarios.WHO]
    if bad:
        ap.error(f"unknown: {bad}")
    if a.doc is None and not a.quick and not a.no_doc and not a.from_json:
        a.doc = str(REPO_ROOT / "docs" / "PERFORMANCE.md")
    if a.no_doc:
        a.doc = None
    return a


def start_all(servers: list[Server], accounts: int) -> None:
    """Start each server (one at a time: their start-up is not measured but shares the
    machine), then create the accounts on all of them in parallel."""
    for s in servers:
        t = time.time()
        s.start()
        log(s.label, f"started in {time.time() - t:.1f}s: pid {s.pid}, port {s.port}")

    def reg(s: Server) -> None:
        t = time.time()
        s.register(accounts)
        log(s.label, f"{accounts} accounts in {time.time() - t:.1f}s")
    with ThreadPoolExecutor(len(servers)) as ex:
        list(ex.map(reg, servers))


def restart_all(servers: list[Server]) -> None:
    """Every round starts from freshly started servers (their accounts and data kept): the
    memory and "fresh" figures mean the same in every round."""
    for s in servers:
        try:
            s.stop()
            s.start()
            s.logins = 0
        except Exception as e:  # noqa: BLE001 - its runs report it as not running
            log(s.label, "restart FAILED:", e, "\nlog tail:\n" + s.log_tail())


def run_rounds(servers: list[Server], a: argparse.Namespace,
               results: dict[str, dict[str, list[dict[str, Any]]]], busy: list[float]) -> None:
    for rnd in range(1, a.rounds + 1):
        k = (rnd - 1) % len(servers)
        order = servers[k:] + servers[:k]
        if rnd > 1:
            restart_all(servers)
        log(f"=== round {rnd}/{a.rounds}: {', '.join(s.label for s in order)}")
        rates: dict[bool, float] = {}
        for scen in [s for s in scenarios.ORDER if s in a.scenarios]:
            if scen == "latency":
                rates = latency_rates(servers, results)
            for s in order:
                if not scenarios.applies(scen, s) or (scen == "latency" and s.archive
                                                      not in rates):
                    continue
                res = guarded(s, scen, a, rnd, rates)
                busy.append(res.get("background_busy_pct") or 0)
                res["round"] = rnd
                results.setdefault(s.label, {}).setdefault(scen, []).append(res)


def latency_rates(servers: list[Server], results: dict[str, Any]) -> dict[bool, float]:
    """Half of the slowest peak of this round, per archive setting."""
    out = {}
    for archive in (False, True):
        peaks = [results[s.label]["messages"][-1].get("msgs_per_s") for s in servers
                 if s.archive == archive and results.get(s.label, {}).get("messages")]
        peaks = [p for p in peaks if p]
        if peaks:
            out[archive] = round(min(peaks) / 2)
    return out


def guarded(s: Server, scen: str, a: argparse.Namespace, rnd: int,
            rates: dict[bool, float]) -> dict[str, Any]:
    if not s.alive():
        return {"error": f"{s.label} is not running", "scenario": scen}
    try:
        return scenarios.run(scen, s, a, rnd, rates)
    except Exception as e:  # noqa: BLE001 - one failed run is reported, the bench goes on
        log(s.label, scen, "FAILED:", e, "\nlog tail:\n" + s.log_tail())
        return {"error": str(e), "scenario": scen}


def run_after(servers: list[Server], a: argparse.Namespace, results: dict[str, Any]) -> None:
    for s in servers:
        if not scenarios.applies("after", s) or not s.alive():
            continue
        top = scenarios.top_up_logins(s, a, a.after_logins)
        if top:
            results.setdefault(s.label, {}).setdefault("top_up", []).append(top)
        res = guarded(s, "after", a, 0, {})
        results.setdefault(s.label, {}).setdefault("after", []).append(res)


def from_json(a: argparse.Namespace) -> int:
    raw = json.loads(Path(a.from_json).read_text())
    old = argparse.Namespace(**raw["args"])
    text = report.block(raw["results"], old, raw["meta"])
    print(text)
    if a.doc:
        report.rewrite_doc(Path(a.doc), text)
    return 0


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.from_json:
        return from_json(a)
    missing = [n for n, b in (("prosody", "prosody"), ("ejabberd", "ejabberdctl"))
               if any(w.startswith(n) for w in a.servers) and not shutil.which(b)]
    if missing:
        print(f"missing: {', '.join(missing)}; install with:\n    {APT_HINT}", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))     # servers inherit it
    if a.nice:
        os.setpriority(os.PRIO_PROCESS, 0, a.nice)
        set_autogroup_nice("self", a.nice)
    t0 = time.time()
    meta: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                            "load_start": machine_info()["loadavg"],
                            "command": "python3 bench/compare.py " + shlex.join(sys.argv[1:])}
    if os.environ.get("BENCH_COMMAND"):
        meta["command"] = os.environ["BENCH_COMMAND"]
    certdir = tempfile.mkdtemp(prefix="bench-cert-")
    servers: list[Server] = []

    def cleanup() -> None:
        for s in servers:
            try:
                s.cleanup()
            except Exception as e:  # noqa: BLE001
                log("cleanup", s.label, e)
        servers.clear()
        shutil.rmtree(certdir, ignore_errors=True)
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))

    cert, key = make_cert(certdir)
    for w in a.servers:
        cls, archive = KINDS[w]
        servers.append(cls(archive, cert, key, a))
    meta["configs"] = [f"{s.label} = {s.describe()}" for s in servers]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    busy: list[float] = []
    start_all(servers, scenarios.accounts_needed(a))
    log(f"set-up {time.time() - t0:.0f}s")
    run_rounds(servers, a, results, busy)
    if "after" in a.scenarios:
        run_after(servers, a, results)
    meta.update(machine=machine_info(), load_end=machine_info()["loadavg"],
                duration_min=(time.time() - t0) / 60, background_busy=busy)
    text = report.block(results, a, meta)
    print(text)
    if a.doc:
        report.rewrite_doc(Path(a.doc), text)
        log("table written to", a.doc)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"meta": meta, "args": vars(a),
                                                "results": results}, indent=1, default=str))
    cleanup()
    log(f"done in {(time.time() - t0) / 60:.1f} min")
    return 1 if report.losses(results) else 0


if __name__ == "__main__":
    sys.exit(main())
