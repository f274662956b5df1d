#!/usr/bin/env python3
"""Server CPU per 1,000 messages over server-to-server streams, next to client-to-server.

Two xmppd instances on loopback federate with each other: `one.example` and `two.example`,
each with its own c2s and s2s port, finding each other through `s2s.routes` (no DNS) and
authenticating by Server Dialback (self-signed certificates). The load is loadgen.py's
"messages" scenario at its maximum rate (P sender->receiver pairs, a window of messages in
flight per pair), run two ways in alternating rounds:

  c2s  senders and receivers all on one.example: one server parses, routes and delivers
  s2s  senders on one.example, receivers on two.example: one.example routes each message
       onto its s2s stream, two.example parses it from that stream and delivers it

Server CPU is utime+stime from /proc/<pid>/stat of each server around the measured phase
(logins and the s2s stream set-up are outside it: a warm-up round opens the streams). Prints
one JSON line per round on stderr and a summary JSON line (medians) on stdout.

    python3 bench/s2s_bench.py --rounds 5 --pairs 10 --messages 2000

Runs this checkout's xmppd with the venv's Python (`make install`); stdlib otherwise. Linux
only (/proc).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadgen  # noqa: E402
import procstat  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ONE, TWO = "one.example", "two.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(tmp: Path, domain: str, c2s: int, s2s: int, peer: str, peer_s2s: int) -> str:
    return f"""\
[server]
hosts = ["{domain}"]
log_level = "warning"

[storage]
url = "sqlite:///{tmp}/xmppd.sqlite"

[cache]
url = "memory"

[tls]
cert = "{tmp}/cert.pem"   # generated self-signed: the servers authenticate by dialback
key = "{tmp}/key.pem"

[[listeners]]
type = "c2s"
bind = "127.0.0.1"
port = {c2s}

[[listeners]]
type = "s2s"
bind = "127.0.0.1"
port = {s2s}

[s2s]
routes = {{ "{peer}" = "127.0.0.1:{peer_s2s}" }}
idle_timeout = "off"

[limits]                  # the load generator stands for many users, all on 127.0.0.1
exempt_networks = ["127.0.0.0/8", "::1"]
c2s_rate = "off"
stanza_rate = "off"

[modules.disco]
[modules.ping]
"""


class Server:
    def __init__(self, root: Path, domain: str, c2s: int, s2s: int, peer: str,
                 peer_s2s: int, bin_dir: Path) -> None:
        self.domain, self.c2s = domain, c2s
        self.tmp = root / domain
        self.tmp.mkdir()
        self.cfg = self.tmp / "xmppd.toml"
        self.cfg.write_text(config(self.tmp, domain, c2s, s2s, peer, peer_s2s))
        self.bin = bin_dir
        # this checkout's xmppd, whatever the venv has installed
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc: subprocess.Popen[bytes] | None = None

    def register(self, users: range) -> None:
        code = ("import sys\nfrom xmppd.ctl import main\n"
                "cfg, host = sys.argv[1], sys.argv[2]\n"
                "for i in map(int, sys.argv[3:]):\n"
                "    if main(['--config', cfg, 'register', f'user{i}', host, f'pw{i}']) "
                "not in (0, 1):\n"
                "        sys.exit(f'register user{i} failed')\n")
        subprocess.run([str(self.bin / "python"), "-c", code, str(self.cfg), self.domain,
                        *map(str, users)], cwd=self.tmp, check=True, env=self.env,
                       stdout=subprocess.DEVNULL)

    def start(self) -> None:
        log = open(self.tmp / "server.log", "ab")
        self.proc = subprocess.Popen([str(self.bin / "python"), "-m", "xmppd.main", "--config",
                                      str(self.cfg)], cwd=self.tmp, stdout=log, env=self.env,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"xmppd {self.domain} exited: "
                                   f"{(self.tmp / 'server.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.c2s), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"xmppd {self.domain} is not listening")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def loadgen_cfg(server: Server, a: argparse.Namespace) -> argparse.Namespace:
    return loadgen.parse_args(["messages", "--server", f"127.0.0.1:{server.c2s}",
                               "--domain", server.domain, "--pairs", str(a.pairs),
                               "--messages", str(a.messages), "--window", str(a.window),
                               "--batch", str(a.batch)])


async def one_round(send_cfg: argparse.Namespace, recv_cfg: argparse.Namespace,
                    pids: dict[str, int], messages: int) -> dict[str, object]:
    """P pairs: senders user1..P at send_cfg's server, receivers userP+1..2P at recv_cfg's;
    CPU of every server in `pids` around the sending and the drain."""
    P = send_cfg.pairs
    send_cfg.messages = recv_cfg.messages = messages
    errors: list[str] = []
    senders = await loadgen.login_many(send_cfg, range(1, P + 1), 20, True, errors=errors)
    receivers = await loadgen.login_many(recv_cfg, range(P + 1, 2 * P + 1), 20, True,
                                         errors=errors)
    if errors:
        raise RuntimeError(f"logins failed: {errors[:3]}")
    pairs = []
    for k in range(P):
        p = loadgen.Pair(k, send_cfg.window)
        p.sender, p.receiver = senders[k][1], receivers[k][1]
        p.receiver.on_data = p.feed
        p.sender.on_data = p.feed_sender
        p.parts = loadgen.make_stanza_parts(send_cfg, p, f"user{P + 1 + k}@{recv_cfg.domain}/r")
        pairs.append(p)
    await asyncio.sleep(1.0)                    # presence traffic dies down
    before = {name: procstat.cpu_seconds(pid) for name, pid in pids.items()}
    t0 = time.perf_counter()
    first: list[int | None] = [None]
    await asyncio.gather(*(loadgen.sender_max(send_cfg, p, p.parts, first) for p in pairs))
    last_total, last_change = -1, time.perf_counter()
    while sum(p.recv for p in pairs) < sum(p.sent for p in pairs):
        got = sum(p.recv for p in pairs)
        if got != last_total:
            last_total, last_change = got, time.perf_counter()
        elif time.perf_counter() - last_change > send_cfg.drain_timeout:
            break
        await asyncio.sleep(0.01)
    wall = time.perf_counter() - t0
    cpu = {name: procstat.cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    received = sum(p.recv for p in pairs)
    await loadgen.close_all([c for _, c, _ in senders + receivers])
    out: dict[str, object] = {"sent": sum(p.sent for p in pairs), "received": received,
                              "bounced": sum(p.bounced for p in pairs),
                              "wall_s": round(wall, 3),
                              "msgs_per_s": round(received / wall, 1) if wall else None}
    for name, seconds in cpu.items():
        out[f"cpu_s_per_1000_{name}"] = round(1000 * seconds / max(1, received), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds of each kind")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--messages", type=int, default=2000, help="messages per pair and round")
    ap.add_argument("--window", type=int, default=200, help="messages in flight per pair")
    ap.add_argument("--batch", type=int, default=20, help="stanzas per write")
    ap.add_argument("--xmppd-bin", type=Path, default=REPO / ".venv" / "bin",
                    help="the venv's bin directory (its python runs this checkout's xmppd)")
    ap.add_argument("--keep-tmp", action="store_true")
    a = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="xmppd-s2s-bench-"))
    ports = [free_port() for _ in range(4)]
    one = Server(root, ONE, ports[0], ports[1], TWO, ports[3], a.xmppd_bin)
    two = Server(root, TWO, ports[2], ports[3], ONE, ports[1], a.xmppd_bin)
    try:
        one.register(range(1, 2 * a.pairs + 1))
        two.register(range(a.pairs + 1, 2 * a.pairs + 1))
        one.start()
        two.start()
        c2s_send, s2s_recv = loadgen_cfg(one, a), loadgen_cfg(two, a)
        pids = {"one": one.pid, "two": two.pid}
        # warm-up: opens the s2s streams (dialback) and warms both servers' caches
        asyncio.run(one_round(c2s_send, s2s_recv, pids, 50))
        asyncio.run(one_round(c2s_send, c2s_send, pids, 50))
        rounds: dict[str, list[dict[str, object]]] = {"c2s": [], "s2s": []}
        for r in range(a.rounds):
            for kind, recv in (("c2s", c2s_send), ("s2s", s2s_recv)):
                res = asyncio.run(one_round(c2s_send, recv, pids, a.messages))
                res.update(kind=kind, round=r + 1, load1=os.getloadavg()[0])
                print(json.dumps(res), file=sys.stderr, flush=True)
                rounds[kind].append(res)
        summary: dict[str, object] = {"pairs": a.pairs, "messages_per_round": a.pairs *
                                      a.messages, "rounds": a.rounds, "cpus": os.cpu_count()}
        for kind, runs in rounds.items():
            for key in ("cpu_s_per_1000_one", "cpu_s_per_1000_two", "msgs_per_s"):
                vals = [float(x[key]) for x in runs if x.get(key) is not None]
                summary[f"{kind}_{key}_median"] = round(statistics.median(vals), 4)
            lost = sum(int(x["sent"]) - int(x["received"]) for x in runs)
            summary[f"{kind}_lost"] = lost
        print(json.dumps(summary), flush=True)
        return 0
    finally:
        one.stop()
        two.stop()
        if a.keep_tmp:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
