#!/usr/bin/env python3
"""Soak: hundreds of clients chatting, dropping links, resuming (XEP-0198) and logging in and out
for minutes on one server; then every acknowledged message must have arrived exactly once, RSS
must be flat after warm-up and the server's file descriptors back where they started.

Starts xmppd (conf/xmppd.toml's modules and limits, all clients from 127.0.0.1 counted as behind
a load balancer: `limits.exempt_networks`) on one backend pair, makes accounts soak1..soakN,
and runs N clients (bench/soak_client.py: asyncio, raw bytes, bench/loadgen.py's connection,
TLS and SASL pieces):

- each logs in (STARTTLS, PLAIN, bind), enables stream management with resumption, sends
  initial presence, then sends `<message type='chat'>` with a unique id (`<body>S:<id></body>`)
  to a random other user's bare JID every `--interval` s on average, with `<r/>` after each;
- now and then (exponential, mean `--drop-every` s per client) it aborts its TCP connection
  (RST, no `</stream>`), waits 0.5–5 s, then resumes (`<resume previd h/>`), resending what
  `<resumed h/>` says the server did not get;
- now and then (mean `--logout-every` s) it waits for its acks, acks what it got, closes its
  stream, stays away 1–10 s and logs in afresh (its messages come from offline storage).

A message counts as *acked* once the server's `<a h/>` covers it, and as *received* once the
recipient counted it in its `h` (what it acks or resumes with); stanzas arriving after a client
closed its stream are not counted (the server must keep them for it). At the end every client is
brought back, all acks and deliveries are waited for, and: lost = acked but never received,
duplicated = received more than once. The server's RSS (VmRSS) and open fds (/proc/PID/fd)
are sampled every `--sample` s: RSS slope after warm-up (least squares, MB/min), fds before
the clients came and after they all left.

  PYTHONPATH=. .venv/bin/python bench/soak_bench.py --backend sqlite+memory \
      [--clients 300] [--duration 600] [--warmup 120]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import procstat  # noqa: E402
from loadgen import make_sslctx  # noqa: E402
from soak_client import Client, Totals  # noqa: E402
from tests.harness.backends import backend_urls  # noqa: E402
from tests.harness.server_proc import make_server, register_accounts  # noqa: E402

MODULES: dict[str, dict[str, Any]] = {      # conf/xmppd.toml's, without HTTP ones
    "disco": {}, "adhoc": {}, "ping": {"keepalive_interval": "5 min", "keepalive_timeout": "30 s"},
    "version": {}, "time": {}, "roster": {"max_items": 1000}, "presence": {}, "last": {},
    "caps": {}, "pep": {}, "private": {}, "bookmarks": {}, "blocking": {}, "vcard": {},
    "offline": {"max_messages": 1000}, "receipts": {}, "carbons": {},
    "mam": {"default": "always", "batch_size": 500}, "csi": {},
    "stream_mgmt": {"resume_timeout": "5 min", "max_unacked": 5000},
}


class Bench:
    def __init__(self, args: argparse.Namespace, port: int, pid: int) -> None:
        self.args, self.pid = args, pid
        self.cfg = types.SimpleNamespace(host="127.0.0.1", port=port, domain="localhost",
                                         timeout=60.0, sslctx=make_sslctx())
        self.t = Totals()
        self.stopping = False
        self.samples: list[tuple[float, int, int]] = []     # (s since start, RSS KiB, fds)
        self.rnd = random.Random(1)
        self.lags: list[float] = []

    def peer(self, idx: int) -> int:
        n = self.args.clients
        return (idx + self.rnd.randrange(1, n)) % n + 1 if n > 1 else idx

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def backend_fds(self) -> int:
        """The server's TCP connections to PostgreSQL (5432) or Redis (6379): its pools."""
        remote: dict[str, int] = {}
        for name in ("tcp", "tcp6"):
            try:
                lines = Path(f"/proc/{self.pid}/net/{name}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                f = line.split()
                remote[f[9]] = int(f[2].rsplit(":", 1)[1], 16)
        n = 0
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                link = os.readlink(f"/proc/{self.pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and remote.get(link[8:-1]) in (5432, 6379):
                n += 1
        return n

    async def sample(self, t0: float) -> None:
        while True:
            self.samples.append((time.monotonic() - t0, procstat.rss_kib(self.pid), self.fds()))
            await asyncio.sleep(self.args.sample)

    async def lag(self) -> None:
        """How late this process' event loop runs its timers (the clients' own lag)."""
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.2)
            self.lags.append(time.monotonic() - t - 0.2)

    async def run(self) -> dict[str, Any]:
        a = self.args
        fds_before, pool_before = self.fds(), self.backend_fds()
        rss_before = procstat.rss_kib(self.pid)
        cpu0, t0 = procstat.cpu_seconds(self.pid), time.monotonic()
        self.t0 = self.t.t0 = t0
        own0 = resource.getrusage(resource.RUSAGE_SELF)
        sampler = asyncio.get_running_loop().create_task(self.sample(t0))
        lagger = asyncio.get_running_loop().create_task(self.lag())
        clients = [Client(self, i) for i in range(1, a.clients + 1)]
        lives = [asyncio.get_running_loop().create_task(c.life()) for c in clients]
        await asyncio.sleep(a.duration)
        self.stopping = True
        run_s = time.monotonic() - t0
        cpu = procstat.cpu_seconds(self.pid) - cpu0
        rss_end = procstat.rss_kib(self.pid)
        own1 = resource.getrusage(resource.RUSAGE_SELF)
        self.own_cpu = own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime
        lagger.cancel()
        for r in await asyncio.gather(*lives, return_exceptions=True):
            if isinstance(r, BaseException):
                self.t.error(f"client died: {r!r}")
        # everyone is online: wait for all acks, then for every acked message to arrive
        live = [c for c in clients if c.conn is not None and not c.conn.lost]
        await asyncio.gather(*(c.all_acked(60) for c in live))
        deadline, last = time.monotonic() + 120, -1
        while time.monotonic() < deadline:
            got = sum(1 for m in self.t.acked if self.t.received[m])
            if got == len(self.t.acked) or got == last:
                break
            last = got
            await asyncio.sleep(5)
        settle_s = time.monotonic() - t0 - run_s
        await asyncio.gather(*(c.logout() for c in live), return_exceptions=True)
        await asyncio.sleep(a.settle)
        sampler.cancel()
        fds_after, rss_after = self.fds(), procstat.rss_kib(self.pid)
        out = self.report(run_s, settle_s, cpu, fds_before, fds_after, rss_before, rss_end,
                          rss_after)
        out.update(backend_fds_before=pool_before, backend_fds_after=self.backend_fds())
        return out

    def report(self, run_s: float, settle_s: float, cpu: float, fds_before: int,
               fds_after: int, rss_before: int, rss_end: int, rss_after: int) -> dict[str, Any]:
        t, a = self.t, self.args
        lost = sorted(m for m in t.acked if not t.received[m])
        dups = sorted(m for m, n in t.received.items() if n > 1)
        unsent = [m for m in t.received if m not in t.sent]
        after = [(s, r) for s, r, _ in self.samples if a.warmup <= s <= run_s]
        slope = _slope(after) * 60 / 1024 if len(after) >= 3 else None      # MB/min
        fd_samples = [f for s, _, f in self.samples if s <= run_s]
        return {
            "backend": a.backend, "clients": a.clients, "duration_s": round(run_s),
            "settle_s": round(settle_s), "sent": len(t.sent), "acked": len(t.acked),
            "received_unique": len(t.received), "received_total": sum(t.received.values()),
            "lost": len(lost), "duplicated": len(dups), "lost_ids": lost[:20],
            "duplicated_ids": dups[:20], "not_sent_but_received": len(unsent),
            "resent": t.resent, "bounced": t.bounced, "drops": t.drops, "resumes": t.resumes,
            "resume_failed": t.resume_failed, "logins": t.logins, "logouts": t.logouts,
            "unacked_at_logout": t.unacked_at_logout, "client_errors": t.errors,
            "error_samples": t.error_samples,
            "msgs_per_s": round(len(t.sent) / run_s, 1),
            "server_cpu_ms_per_msg": round(1000 * cpu / max(1, len(t.sent)), 3),
            "server_cpu_pct": round(100 * cpu / run_s, 1),
            "clients_cpu_pct": round(100 * self.own_cpu / run_s, 1),
            "clients_loop_lag_s_p99_max": [round(sorted(self.lags)[int(len(self.lags) * .99)], 2),
                                           round(max(self.lags), 2)] if self.lags else None,
            "rss_mb_before": round(rss_before / 1024, 1),
            "rss_mb_at_warmup": round(after[0][1] / 1024, 1) if after else None,
            "rss_mb_end_of_run": round(rss_end / 1024, 1),
            "rss_mb_after_logout": round(rss_after / 1024, 1),
            "rss_mb_max": round(max(r for _, r, _ in self.samples) / 1024, 1),
            "rss_slope_mb_per_min": round(slope, 2) if slope is not None else None,
            "fds_before": fds_before, "fds_max": max(fd_samples, default=None),
            "fds_after": fds_after,
            "samples": [(round(s), round(r / 1024, 1), f) for s, r, f in self.samples],
        }


def _slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of y over x (KiB per s)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="sqlite+memory",
                    choices=["sqlite+memory", "postgresql+redis"])
    ap.add_argument("--clients", type=int, default=300)
    ap.add_argument("--duration", type=float, default=600, help="seconds of churn")
    ap.add_argument("--warmup", type=float, default=120, help="RSS slope from here on (s)")
    ap.add_argument("--interval", type=float, default=2.0,
                    help="mean seconds between a client's messages")
    ap.add_argument("--drop-every", type=float, default=60.0,
                    help="mean seconds between a client's link drops")
    ap.add_argument("--logout-every", type=float, default=90.0,
                    help="mean seconds between a client's log-outs")
    ap.add_argument("--sample", type=float, default=10.0, help="RSS/fd sampling period (s)")
    ap.add_argument("--settle", type=float, default=10.0,
                    help="seconds after the last log-out before fds are counted")
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                    help="set in the server's environment (e.g. MALLOC_ARENA_MAX=2)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = Path(tempfile.mkdtemp(prefix="xmppd-soak-"))
    storage, cache, cleanups = backend_urls(args.backend, tmp)
    srv = make_server(tmp, storage, cache, modules=MODULES,
                      limits={"max_stanza_size": "256 KiB", "exempt_networks": ["127.0.0.0/8"]})
    for kv in args.server_env:
        name, _, value = kv.partition("=")
        srv.env[name] = value
    try:
        t0 = time.monotonic()
        register_accounts(srv, {f"soak{i}": f"soak{i}-pw" for i in range(1, args.clients + 1)})
        print(f"{args.clients} accounts in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        srv.start()
        assert srv.proc is not None
        out = asyncio.run(Bench(args, srv.port, srv.proc.pid).run())
        out["server_log_errors"] = sum(1 for line in (tmp / "xmppd.log").read_text().splitlines()
                                       if " ERROR " in line or "Traceback" in line)
    finally:
        srv.stop()
        for cleanup in cleanups:
            cleanup()
    out.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               machine=f"{platform.machine()}, {os.cpu_count()} vCPU",
               loadavg=os.getloadavg(), command="bench/soak_bench.py " + " ".join(sys.argv[1:]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    if out["lost"] or out["duplicated"] or out["server_log_errors"]:
        out["server_dir"] = str(tmp)        # kept: its xmppd.log
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({k: v for k, v in out.items() if k != "samples"}), flush=True)
    return 1 if out["lost"] or out["duplicated"] else 0


if __name__ == "__main__":
    sys.exit(main())
