#!/usr/bin/env python3
"""Server CPU on three paths of xmppd's shipped config: logins, offline messages, the archive.

Run: .venv/bin/python bench/paths_bench.py [--tree DIR] [--scenarios logins,offline,messages]
Starts xmppd from DIR (default: this checkout) with `conf/xmppd.toml` as shipped (every module
it enables), rewritten only for a temp dir (SQLite file, cert, admin socket, upload dir), one
STARTTLS listener on a free port, logging at warning level and no rate limits for 127.0.0.1;
makes the accounts user1..userN (password pw<i>), then runs, each `--repeat` times:

- logins: `bench/loadgen.py logins` (STARTTLS, SCRAM-SHA-1 or --mech, bind), --users users,
  one warm-up round then --rounds measured: server CPU-ms per login.
- offline: --pairs senders log in; each sends --offline messages to a receiver that is not
  online; once those are stored (the server goes quiet), the receivers log in with presence
  and get them all: server CPU-s per 1,000 messages, stored and delivered (logins included),
  with the archive on and off as --archive says.
- messages: `bench/loadgen.py messages` one-to-one at full speed (--pairs × --messages,
  window 50): server CPU-s per 1,000 with the shipped config (archive on) and with
  [modules.mam] removed (archive off). Logins run with the shipped config only.
Experiments: XMPPD_PRELUDE (Python run before the server), XMPPD_CPROFILE (a cProfile file of
the main thread), --profile (py-spy; SPY_EXTRA adds options); what the modules cost:
--without push,carbons (those removed from the shipped list) or --only disco,ping,... (only
those kept; a module another needs must stay, the server says which).
Prints one JSON line per run and a summary of medians (min–max). Nothing here is imported by
the server or the tests.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import loadgen  # noqa: E402
import procstat  # noqa: E402

DOMAIN = "localhost"


def config(tree: Path, tmp: Path, archive: bool, without: frozenset[str] = frozenset(),
           only: frozenset[str] | None = None) -> str:
    """The shipped config, pointed at `tmp`, less the modules `without` (or all but `only`)."""
    sys.path.insert(0, str(tree))
    from tests.harness.server_proc import toml
    cfg: dict[str, Any] = tomllib.loads((tree / "conf" / "xmppd.toml").read_text())
    cfg["server"]["log_level"] = "warning"
    cfg["server"]["log_file"] = str(tmp / "xmppd.log")
    cfg["server"]["admin_socket"] = str(tmp / "xmppd.sock")
    cfg["storage"]["url"] = f"sqlite:///{tmp}/xmppd.sqlite"
    cfg["tls"] = {"cert": str(tmp / "cert.pem"), "key": str(tmp / "key.pem"),
                  "generate_self_signed": True}
    cfg["listeners"] = [{"type": "c2s", "bind": "127.0.0.1", "port": 0,
                         "port_file": str(tmp / "port"), "starttls": "required"}]
    cfg["limits"] = {**cfg.get("limits", {}), "exempt_networks": ["127.0.0.0/8", "::1"],
                     "c2s_rate": "off", "stanza_rate": "off"}
    mods = cfg["modules"]
    if "http_upload" in mods:
        mods["http_upload"]["directory"] = str(tmp / "upload")
    if not archive:
        mods.pop("mam", None)
    for name in list(mods):
        if name in without or (only is not None and name not in only):
            del mods[name]
    return toml(cfg)


class Server:
    def __init__(self, tree: Path, archive: bool, users: int,
                 without: frozenset[str] = frozenset(), only: frozenset[str] | None = None
                 ) -> None:
        self.tree = tree
        self.tmp = Path(tempfile.mkdtemp(prefix="paths-bench-"))
        self.cfg = self.tmp / "xmppd.toml"
        self.cfg.write_text(config(tree, self.tmp, archive, without, only))
        self.env = {**os.environ, "PYTHONPATH": str(tree)}
        code = ("import sys\nfrom xmppd.ctl import main\n"
                "for i in range(1, int(sys.argv[2]) + 1):\n"
                "    main(['--config', sys.argv[1], 'register', f'user{i}', 'localhost',"
                " f'pw{i}'])\n")
        subprocess.run([sys.executable, "-c", code, str(self.cfg), str(users)], cwd=tree,
                       env=self.env, check=True, stdout=subprocess.DEVNULL)
        run = ["-m", "xmppd.main"]
        if os.environ.get("XMPPD_PRELUDE"):       # experiments: code run before the server
            run = ["-c", os.environ["XMPPD_PRELUDE"] + "\nimport runpy, sys\n"
                   "sys.argv[0] = 'xmppd'\nrunpy.run_module('xmppd.main', run_name='__main__')"]
        if os.environ.get("XMPPD_CPROFILE"):      # the main thread under cProfile, to a file
            run = ["-m", "cProfile", "-o", os.environ["XMPPD_CPROFILE"], "-m", "xmppd.main"]
        self.proc = subprocess.Popen([sys.executable, *run, "--config",
                                      str(self.cfg)], cwd=tree, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.tmp / "port"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("xmppd did not start: " + self.log())
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        self.pid = self.proc.pid
        self.spy: subprocess.Popen[bytes] | None = None

    def profile(self, out: str) -> None:
        """Sample the server with py-spy (collapsed stacks in `out`) until `close`: only the
        thread holding the GIL (else threads waiting for it count as busy), so C code that
        releases the GIL (TLS handshakes, SQLite steps) is under-counted."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.spy = subprocess.Popen([spy, "record", "--pid", str(self.pid), "--rate", "250",
                                     "--format", "raw", "--output", out, "--nonblocking", "--gil"] + os.environ.get("SPY_EXTRA", "").split(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)

    def log(self) -> str:
        p = self.tmp / "xmppd.log"
        return p.read_text()[-2000:] if p.exists() else ""

    def quiet(self, below_ms: float = 3.0, timeout: float = 30.0) -> None:
        """Wait until the server spends under `below_ms` of CPU in 200 ms (work drained)."""
        deadline = time.monotonic() + timeout
        last = procstat.cpu_seconds(self.pid)
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = procstat.cpu_seconds(self.pid)
            if (now - last) * 1000 < below_ms:
                return
            last = now

    def close(self) -> None:
        if self.spy is not None:
            self.spy.send_signal(2)
            self.spy.wait(60)
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_loadgen(srv: Server, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(HERE / "loadgen.py"), *args, "--server",
                          f"127.0.0.1:{srv.port}", "--server-pid", str(srv.pid)],
                         capture_output=True, text=True, timeout=900)
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if not lines:
        raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    if "error" in result:
        raise RuntimeError(f"loadgen: {result['error']}\n{srv.log()}")
    return result


async def offline_run(srv: Server, a: argparse.Namespace) -> dict[str, Any]:
    cfg = loadgen.parse_args(["logins", "--server", f"127.0.0.1:{srv.port}", "--mech", a.mech,
                              "--timeout", "120"])
    p, m = a.pairs, a.offline
    senders, receivers = range(1, p + 1), range(p + 1, 2 * p + 1)
    errors: list[str] = []
    res = await loadgen.login_many(cfg, senders, 10, True, errors=errors)
    conns = [c for _, c, _ in res]
    if errors:
        raise RuntimeError(f"logins failed: {errors[:3]}")
    await asyncio.sleep(0.5)
    srv.quiet()
    before = procstat.cpu_seconds(srv.pid)
    t0 = time.perf_counter()
    for k, c in enumerate(conns):
        to = f"user{receivers[k]}@{DOMAIN}"
        c.write(b"".join(f"<message type='chat' to='{to}' id='o{k}-{i}'><body>B:{k}:{i}:0:"
                         f"offline message {i}</body></message>".encode() for i in range(m)))
    await asyncio.sleep(0.2)
    srv.quiet()
    stored = procstat.cpu_seconds(srv.pid)
    counts = [0] * p

    def counter(k: int) -> Any:
        def feed(data: bytes) -> None:
            counts[k] += data.count(b"<body>B:")
        return feed

    got = await loadgen.login_many(cfg, receivers, 10, False, errors=errors)
    rconns = [c for _, c, _ in got]
    if errors:
        raise RuntimeError(f"logins failed: {errors[:3]}")
    for k, c in enumerate(rconns):
        c.buf.clear()
        c.on_data = counter(k)
        c.write(b"<presence/>")
    deadline = time.monotonic() + 120
    while sum(counts) < p * m and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    srv.quiet()
    after = procstat.cpu_seconds(srv.pid)
    wall = time.perf_counter() - t0
    await loadgen.close_all(conns + rconns)
    n = sum(counts)
    return {"scenario": "offline", "pairs": p, "per_pair": m, "delivered": n,
            "wall_s": round(wall, 2), "store_cpu_s_per_1000": round(1000 * (stored - before) / n, 4),
            "deliver_cpu_s_per_1000": round(1000 * (after - stored) / n, 4),
            "server_cpu_s_per_1000": round(1000 * (after - before) / n, 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=HERE.parent)
    ap.add_argument("--scenarios", default="logins,offline,messages")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--mech", default="SCRAM-SHA-1")
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--offline", type=int, default=500, help="offline messages per pair")
    ap.add_argument("--messages", type=int, default=2000, help="messages per pair")
    ap.add_argument("--archive", default="on,off", help="archive settings for messages")
    ap.add_argument("--without", default="", help="modules removed from the shipped list")
    ap.add_argument("--only", default="", help="the only modules kept (comma list)")
    ap.add_argument("--profile", help="py-spy collapsed stacks to PROFILE.<n> (one per server)")
    a = ap.parse_args()
    scenarios = a.scenarios.split(",")
    results: dict[str, list[float]] = {}

    def record(key: str, value: float, run: dict[str, Any]) -> None:
        results.setdefault(key, []).append(value)
        print(json.dumps({"key": key, "loadavg": os.getloadavg()[0], **run}), flush=True)

    users = max(a.users, 2 * a.pairs)
    started = 0
    for _ in range(a.repeat):
        for archive in [x == "on" for x in a.archive.split(",")]:
            srv = Server(a.tree.resolve(), archive, users, frozenset(a.without.split(",")) - {""},
                         frozenset(a.only.split(",")) if a.only else None)
            started += 1
            if a.profile:
                srv.profile(f"{a.profile}.{started}")
            try:
                if archive and "logins" in scenarios:
                    r = run_loadgen(srv, "logins", "--users", str(a.users), "--warmup",
                                    "--rounds", str(a.rounds), "--mech", a.mech)
                    record(f"login {a.mech} cpu-ms", r["server_cpu_ms_per_login"], r)
                on = "on" if archive else "off"
                if "offline" in scenarios:
                    r = asyncio.run(offline_run(srv, a))
                    record(f"offline store+deliver archive {on} cpu-s/1000",
                           r["server_cpu_s_per_1000"], r)
                if "messages" in scenarios:
                    srv.quiet()
                    r = run_loadgen(srv, "messages", "--pairs", str(a.pairs), "--messages",
                                    str(a.messages), "--window", "50", "--mech", a.mech)
                    record(f"messages archive {on} cpu-s/1000", r["server_cpu_s_per_1000"], r)
            finally:
                srv.close()
    print("\nsummary (median, min-max):")
    for key, vals in results.items():
        print(f"  {key}: {statistics.median(vals):.4g} ({min(vals):.4g}-{max(vals):.4g}) "
              f"n={len(vals)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
