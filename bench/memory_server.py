"""Memory per idle authenticated STARTTLS connection of a running xmppd, shipped config.

Run: PYTHONPATH=. .venv/bin/python bench/memory_server.py --connections 2000
     (10,000: --connections 10000 --loadgens 4)

- The server runs `conf/xmppd.toml` as shipped (its modules and their options), changed only
  where a benchmark on one machine must: listeners on free ports, files under a temp dir,
  logging at warning level, and the load generator's address exempt from the per-IP limits
  and rate shaping (every client comes from 127.0.0.1).
- Accounts user1..userN are created in one process before the server starts.
- `--loadgens P` load-generator processes (`bench/loadgen.py idle`) each hold N/P connections
  (STARTTLS, SCRAM-SHA-1, bind, initial presence); RLIMIT_NOFILE is raised to the hard limit
  for the server and for each load generator.
- RSS of the server (VmRSS) is sampled after 20 warm-up logins (the base), once every
  connection is up plus `--settle` seconds, and again after `--hold` seconds (past the
  server's housekeeping, which compacts idle parsers and trims the heap every 30 s).
- `--trace`: the server runs under tracemalloc; snapshots at N/2 and N connections are
  diffed, and the lines that grew most are printed per connection, next to glibc's
  mallinfo2() heap growth (what tracemalloc does not see: OpenSSL, libxml2).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import procstat  # noqa: E402

LIMITS = """[limits]
exempt_networks = ["127.0.0.0/8", "::1"]    # bench: every client is on 127.0.0.1
c2s_rate = "off"
stanza_rate = "off"
max_unauthenticated_per_ip = 100000
"""

RUNNER = """
import ctypes, os, signal, sys, tracemalloc
TRACE = os.environ.get("TRACE") == "1"
if TRACE:
    tracemalloc.start(int(os.environ.get("TRACE_FRAMES", "1")))
libc = ctypes.CDLL("libc.so.6")
class M(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = M
def dump(signum, frame):
    import gc
    gc.collect()
    base = os.environ["TRACE_OUT"]
    n = len([f for f in os.listdir(os.path.dirname(base)) if "." not in f])
    if TRACE:
        tracemalloc.take_snapshot().dump(f"{base}{n}")
    else:
        open(f"{base}{n}", "w").close()
    from xmppd.xmlstream import XmlStreamParser
    parsers = [o for o in gc.get_objects() if isinstance(o, XmlStreamParser)]
    with open(f"{base}{n}.parsers", "w") as f:
        f.write(f"{len(parsers)} parsers, {sum(getattr(p, '_compacted', False) for p in parsers)} compacted")
    m = libc.mallinfo2()
    with open(f"{base}{n}.heap", "w") as f:
        f.write(str(m.uordblks + m.hblkhd))
signal.signal(signal.SIGUSR2, dump)
from xmppd.main import main
sys.exit(main(sys.argv[1:]))
"""


def shipped_config(tmp: Path) -> Path:
    """conf/xmppd.toml with free ports (port files), warning logs and the bench's limits."""
    text = (REPO / "conf" / "xmppd.toml").read_text()
    names = iter(["c2s", "http", "metrics"])

    def port(m: re.Match[str]) -> str:
        return f'port = 0\nport_file = "{tmp}/{next(names)}.port"'
    text = re.sub(r"^port = \d+$", port, text, count=3, flags=re.M)
    text = re.sub(r'^log_level = "\w+"', 'log_level = "warning"', text, flags=re.M)
    text = text.replace("[limits]\n", LIMITS, 1)
    cfg = tmp / "xmppd.toml"
    cfg.write_text(text)
    return cfg


def register(cfg: Path, n: int, tmp: Path) -> None:
    code = (
        "import sys\n"
        "from xmppd.config import load\n"
        "from xmppd.ctl import _server, _wait\n"
        "server = _server(load(sys.argv[1]))\n"
        "for i in range(1, int(sys.argv[2]) + 1):\n"
        "    _wait(server.accounts.register(f'user{i}', 'localhost', f'pw{i}'))\n")
    subprocess.run([sys.executable, "-c", code, str(cfg), str(n)], cwd=tmp, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})


def rss_parts(pid: int) -> dict[str, int]:
    """RSS in KiB by kind of mapping: the main malloc heap ([heap]), anonymous mappings (Python's
    object arenas, other threads' malloc arenas, large blocks) and files (code)."""
    parts = {"heap": 0, "anon": 0, "file": 0}
    kind = "file"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if not head:
                continue
            if "-" in head[0] and len(head) >= 5:       # a mapping's first line
                name = head[5] if len(head) > 5 else ""
                kind = "heap" if name == "[heap]" else "anon" if not name.startswith("/") \
                    else "file"
            elif head[0] == "Rss:":
                parts[kind] += int(head[1])
    return parts


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start(cfg: Path, tmp: Path, trace: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRACE_OUT": str(tmp / "snaps" / "snap"),
           "TRACE": "1" if trace else "0"}
    (tmp / "snaps").mkdir()
    cmd = [sys.executable, "-c", RUNNER, "--config", str(cfg)]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                            stdout=open(tmp / "server.log", "wb"), stderr=subprocess.STDOUT)
    port_file = tmp / "c2s.port"
    deadline = time.time() + 120
    while not port_file.exists() or not port_file.read_text().strip():
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit("server did not start:\n" + (tmp / "server.log").read_text()[-2000:])
        time.sleep(0.2)
    return proc


def loadgen(port: int, scenario: str, first: int, count: int, *extra: str
            ) -> subprocess.Popen[bytes]:
    count_arg = "--connections" if scenario == "idle" else "--users"
    cmd = [sys.executable, str(HERE / "loadgen.py"), scenario, "--server", f"127.0.0.1:{port}",
           "--start", str(first), count_arg, str(count), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def hold_connections(port: int, n: int, procs: int, hold: float, concurrency: int,
                     start_at: int = 1) -> tuple[list[subprocess.Popen[bytes]], float]:
    """Start the idle load generators; returns them once every one said it is ready."""
    per = -(-n // procs)
    gens = []
    t0 = time.time()
    for k in range(procs):
        first = start_at + k * per
        count = min(per, n - k * per)
        gens.append(loadgen(port, "idle", first, count, "--hold", str(hold), "--settle",
                            str(hold), "--warmup", "0", "--concurrency", str(concurrency),
                            "--timeout", "120"))
    for g in gens:
        assert g.stderr is not None
        for line in g.stderr:
            if b'"event": "ready"' in line:
                break
        else:
            raise SystemExit("a load generator ended before it was ready")
    return gens, time.time() - t0


def snapshot(proc: subprocess.Popen[bytes], tmp: Path, trace: bool = True) -> tuple[Any, int]:
    """Ask the server for its heap in use (glibc) and, with --trace, a tracemalloc snapshot."""
    import tracemalloc
    n = len([f for f in os.listdir(tmp / "snaps") if "." not in f])
    proc.send_signal(signal.SIGUSR2)
    path = tmp / "snaps" / f"snap{n}"
    heap = Path(f"{path}.heap")
    while not heap.exists() or not heap.read_text():
        time.sleep(0.2)
    print(Path(f"{path}.parsers").read_text(), file=sys.stderr)
    snap = tracemalloc.Snapshot.load(str(path)) if trace else None
    return snap, int(heap.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--loadgens", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=20, help="logins at a time per loadgen")
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--hold", type=float, default=70.0)
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--accounts-cache", default="",
                    help="a directory keeping the registered accounts' SQLite file for reuse "
                         "(registering 10,000 takes minutes)")
    a = ap.parse_args()
    raise_nofile()
    n = a.connections
    tmp = Path(tempfile.mkdtemp(prefix="xmppd-mem-"))
    proc = None
    try:
        cfg = shipped_config(tmp)
        t = time.time()
        accounts = Path(a.accounts_cache) / f"xmppd-accounts-{n + 20}.sqlite" \
            if a.accounts_cache else None
        if accounts is not None and accounts.exists():
            (tmp / "var").mkdir()
            shutil.copy(accounts, tmp / "var" / "xmppd.sqlite")
        else:
            register(cfg, n + 20, tmp)
            if accounts is not None:
                shutil.copy(tmp / "var" / "xmppd.sqlite", accounts)
        print(f"{n + 20} accounts ready in {time.time() - t:.0f} s", file=sys.stderr)
        proc = start(cfg, tmp, a.trace)
        port = int((tmp / "c2s.port").read_text())
        warm = loadgen(port, "logins", n + 1, 20, "--concurrency", "5")
        warm.communicate()
        time.sleep(2)
        base = procstat.rss_kib(proc.pid)
        parts0 = rss_parts(proc.pid)
        _, heap0 = snapshot(proc, tmp, a.trace)
        out: dict[str, Any] = {"connections": n, "loadgens": a.loadgens, "rss_base_kib": base}
        if a.trace:
            half_gens, _ = hold_connections(port, n // 2, 1, 10 ** 6, a.concurrency)
            time.sleep(a.settle)
            snap1, heap1 = snapshot(proc, tmp)
            rest = n - n // 2
            gens, _ = hold_connections(port, rest, 1, 10 ** 6, a.concurrency,
                                       start_at=n // 2 + 1)
            time.sleep(a.settle)
            snap2, heap2 = snapshot(proc, tmp)
            report_trace(snap1, snap2, heap2 - heap1, rest, a.top)
            for g in half_gens + gens:
                g.kill()
            return
        cpu0 = procstat.cpu_seconds(proc.pid)
        # Each load generator holds from its own "ready": a margin so none lets go before
        # the last sample.
        gens, took = hold_connections(port, n, a.loadgens, a.hold + 30, a.concurrency)
        out["login_s"] = round(took, 1)
        out["logins_per_s"] = round(n / took, 1)
        out["server_cpu_ms_per_login"] = round(
            1000 * (procstat.cpu_seconds(proc.pid) - cpu0) / n, 2)
        time.sleep(a.settle)
        settled = procstat.rss_kib(proc.pid)
        _, heap1 = snapshot(proc, tmp, False)
        time.sleep(max(0.0, a.hold - a.settle - 5))
        later = procstat.rss_kib(proc.pid)
        parts2 = rss_parts(proc.pid)
        _, heap2 = snapshot(proc, tmp, False)
        alive = 0
        for g in gens:
            stdout, _ = g.communicate()
            res = json.loads(stdout.decode().strip().splitlines()[-1])
            alive += res.get("alive_at_end", 0)
        out.update({
            "alive_at_end": alive, "rss_settled_kib": settled, "rss_held_kib": later,
            "rss_held_mib": round(later / 1024, 1),
            "kib_per_conn_settled": round((settled - base) / n, 2),
            "kib_per_conn_held": round((later - base) / n, 2),
            "heap_kib_per_conn_settled": round((heap1 - heap0) / 1024 / n, 2),
            "heap_kib_per_conn_held": round((heap2 - heap0) / 1024 / n, 2),
            "rss_kib_per_conn_held_by_mapping": {
                k: round((parts2[k] - parts0[k]) / n, 2) for k in parts0},
            "load_average": os.getloadavg(),
        })
        print(json.dumps(out))
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if a.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report_trace(s1: Any, s2: Any, heap_growth: int, n: int, top: int) -> None:
    """Growth per connection by line: the most recent frame in xmppd's own code (modules,
    storage, stanzas, xmppd), and the frame that allocated when it is elsewhere (lxml,
    Twisted, the stdlib)."""
    stats = s2.compare_to(s1, "traceback")
    traced = sum(s.size_diff for s in stats)
    print(f"per connection: heap (mallinfo2) {heap_growth / n / 1024:.2f} KiB, "
          f"tracemalloc (Python allocator) {traced / n / 1024:.2f} KiB, "
          f"native rest {(heap_growth - traced) / n / 1024:.2f} KiB")
    by_line: dict[str, list[float]] = {}
    for s in stats:
        frames = list(s.traceback)
        ours = [f for f in frames if f.filename.startswith(str(REPO)) and "/.venv/" not in
                f.filename and "/bench/" not in f.filename]
        last = frames[-1]
        where = f"{last.filename.split('/')[-1]}:{last.lineno}"
        if ours and ours[-1] is not last:
            mine = ours[-1]
            where = f"{mine.filename.replace(str(REPO) + '/', '')}:{mine.lineno} -> {where}"
        elif ours:
            where = f"{last.filename.replace(str(REPO) + '/', '')}:{last.lineno}"
        acc = by_line.setdefault(where, [0.0, 0.0])
        acc[0] += s.size_diff / n
        acc[1] += s.count_diff / n
    for where, (size, count) in sorted(by_line.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"{size:9.0f} B {count:6.2f} blocks  {where}")


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
