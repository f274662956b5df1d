#!/usr/bin/env python3
"""MUC fan-out: 100 occupants in one room, side by side with Prosody's MUC in the same run.

For each server in --servers (reusing compare.py: temp dir, our config, self-signed cert,
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
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare  # noqa: E402
import loadgen  # noqa: E402
import procstat  # noqa: E402

DOMAIN = compare.DOMAIN
SERVICE = f"conference.{DOMAIN}"
ROOM = f"bench@{SERVICE}"
MUC = "http://jabber.org/protocol/muc"
OWNER = MUC + "#owner"


# -- servers: compare.py's, with a MUC service ----------------------------------------------
class ProsodyMuc(compare.Prosody):
    def write_config(self) -> None:
        super().write_config()
        archive = '\n    modules_enabled = { "muc_mam" }\n    muc_log_by_default = true' \
            if self.mam else ""
        with open(self.cfg, "a") as f:
            f.write(f'\nComponent "{SERVICE}" "muc"\n    restrict_room_creation = false'
                    f"\n    max_history_messages = 20{archive}\n")
        compare.chown_tree(self.tmp, self.user)


class XmppdMuc(compare.Xmppd):
    def start(self) -> None:
        self.cfg = os.path.join(self.tmp, "xmppd.toml")
        text = compare.xmppd_config(self.tmp, self.port, DOMAIN, False)
        text += ("[modules.roster]\n[modules.presence]\n[modules.muc]\n"
                 "max_occupants = 1000\nmax_occupants_limit = 10000\n")
        Path(self.cfg).write_text(text)
        self.proc = self.popen([self.bin("xmppd"), "--config", self.cfg])
        compare.wait_port(self.port, self.proc, timeout=60)
        self.pid = self.proc.pid


SERVERS: dict[str, type[compare.Server]] = {"prosody": ProsodyMuc, "xmppd": XmppdMuc}


# -- the scenario ----------------------------------------------------------------------------
class Occupant:
    """Counts groupchat deliveries in the raw byte stream (no XML parsing: a body marker)."""

    MARK = b"</body>"

    def __init__(self, index: int, conn: loadgen.Conn) -> None:
        self.index = index
        self.conn = conn
        self.tail = b""
        self.received = 0
        self.own = 0                 # own messages reflected back (the sender's window)
        self.own_mark = f"<body>{index:04d}|".encode()
        self.waiter: asyncio.Future[None] | None = None
        self.sent_at: dict[int, int] | None = None
        self.latencies: list[int] = []
        self.last_ns = 0

    def feed(self, data: bytes) -> None:
        # The tail of the previous chunk is kept so a marker split between two reads is
        # found; what lay wholly inside it was counted then and is skipped now.
        keep = len(self.tail)
        chunk = self.tail + data
        n = _count(chunk, self.MARK, keep)
        if n:
            now = time.perf_counter_ns()
            self.received += n
            self.last_ns = now
            start = max(0, keep - 17)
            while True:           # "<body>SSSS|NNNNNN|..." -> latency per delivery
                i = chunk.find(b"<body>", start)
                if i < 0 or i + 18 > len(chunk):
                    break
                try:
                    sender, seq = int(chunk[i + 6:i + 10]), int(chunk[i + 11:i + 17])
                except ValueError:
                    start = i + 6
                    continue
                t0 = SENT.get((sender, seq))
                if t0 is not None:
                    self.latencies.append(now - t0)
                start = i + 6
        mine = _count(chunk, self.own_mark, keep)
        if mine:
            self.own += mine
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)
        self.tail = chunk[-24:]


def _count(chunk: bytes, needle: bytes, keep: int) -> int:
    """Occurrences of `needle` in `chunk` that end after its first `keep` bytes."""
    n, i = 0, max(0, keep - len(needle) + 1)
    while (i := chunk.find(needle, i)) >= 0:
        n += 1
        i += len(needle)
    return n


SENT: dict[tuple[int, int], int] = {}


async def wait_bytes(conn: loadgen.Conn, needle: bytes, timeout: float = 30) -> None:
    def found(buf: bytearray) -> tuple[int, None] | None:
        i = buf.find(needle)
        return None if i < 0 else (i + len(needle), None)
    await conn.wait(found, timeout)


async def settle(conns: list[loadgen.Conn], tag: str) -> None:
    """A ping per connection: everything the server sent before the answer has arrived."""
    async def one(k: int, c: loadgen.Conn) -> None:
        c.on_data = None
        c.buf.clear()
        c.write(f"<iq type='get' id='{tag}-{k}-' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/>"
                f"</iq>".encode())
        await wait_bytes(c, f"{tag}-{k}-".encode())
        c.on_data = loadgen._discard
    await asyncio.gather(*(one(k, c) for k, c in enumerate(conns)))


async def run_room(cfg: SimpleNamespace) -> dict[str, Any]:
    errors: list[str] = []
    res = await loadgen.login_many(cfg, list(range(1, cfg.occupants + 1)), cfg.concurrency,
                                   True, errors=errors)
    conns = [c for _, c, _ in res]
    if errors:
        await loadgen.close_all(conns)
        raise loadgen.XMPPError(f"login failed ({len(errors)}): {errors[:3]}")
    owner = conns[0]
    owner.on_data = None
    owner.buf.clear()
    owner.write(f"<presence to='{ROOM}/u1'><x xmlns='{MUC}'/></presence>".encode())
    await wait_bytes(owner, b"</presence>")
    on = "1" if cfg.archive else "0"          # ours and Prosody's name for the archive switch
    fields = ("<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig"
              f"</value></field><field var='muc#roomconfig_persistentroom'><value>{on}</value>"
              f"</field><field var='muc#roomconfig_enablelogging'><value>{on}</value></field>"
              f"<field var='muc#roomconfig_enablearchiving'><value>{on}</value></field>")
    owner.write(f"<iq type='set' id='cfg1' to='{ROOM}'><query xmlns='{OWNER}'>"
                f"<x xmlns='jabber:x:data' type='submit'>{fields}</x></query></iq>".encode())
    await wait_bytes(owner, b"cfg1")
    owner.on_data = loadgen._discard
    sem = asyncio.Semaphore(cfg.concurrency)

    async def enter(k: int, c: loadgen.Conn) -> None:
        async with sem:
            c.on_data = None
            c.buf.clear()
            c.write(f"<presence to='{ROOM}/u{k + 1}'><x xmlns='{MUC}'><history maxchars='0'/>"
                    f"</x></presence>".encode())
            await wait_bytes(c, b"<subject")             # joined: presence, then subject
            c.on_data = loadgen._discard
    await asyncio.gather(*(enter(k, c) for k, c in enumerate(conns) if k > 0))
    await settle(conns, "settle")

    occupants = [Occupant(k + 1, c) for k, c in enumerate(conns)]
    for o in occupants:
        o.conn.on_data = o.feed
    senders = occupants[:cfg.senders]
    SENT.clear()
    filler = "x" * max(0, cfg.body_size - 12)
    sampler = procstat.Sampler(cfg.server_pid)
    before = sampler.snap()
    first = time.perf_counter_ns()

    async def send(o: Occupant) -> None:
        for seq in range(cfg.messages):
            while seq - o.own >= cfg.window:
                o.waiter = asyncio.get_running_loop().create_future()
                await asyncio.wait_for(o.waiter, cfg.timeout)
            SENT[(o.index, seq)] = time.perf_counter_ns()
            o.conn.write(f"<message to='{ROOM}' type='groupchat' id='{o.index}-{seq}'><body>"
                         f"{o.index:04d}|{seq:06d}|{filler}</body></message>".encode())
    await asyncio.gather(*(send(o) for o in senders))
    expected = cfg.senders * cfg.messages * cfg.occupants
    last_total, last_change = -1, time.perf_counter()
    while True:
        total = sum(o.received for o in occupants)
        if total >= expected:
            break
        if total != last_total:
            last_total, last_change = total, time.perf_counter()
        elif time.perf_counter() - last_change > cfg.drain_timeout:
            break
        await asyncio.sleep(0.01)
    after = sampler.snap()
    d = procstat.Sampler.delta(before, after)
    received = sum(o.received for o in occupants)
    elapsed = (max(o.last_ns for o in occupants) - first) / 1e9
    lats = sorted(x for o in occupants for x in o.latencies)
    out: dict[str, Any] = {
        "scenario": "muc", "occupants": cfg.occupants, "senders": cfg.senders,
        "messages_per_sender": cfg.messages, "window": cfg.window, "archive": cfg.archive,
        "expected": expected, "received": received, "lost": expected - received,
        "elapsed_s": round(elapsed, 3),
        "deliveries_per_s": round(received / elapsed, 1) if elapsed > 0 else None,
        **loadgen.lat_stats(lats), **d}
    if d.get("server_cpu_s") is not None and received:
        out["server_cpu_s_per_1000"] = round(1000 * d["server_cpu_s"] / received, 4)
    await loadgen.close_all(conns)
    return out


def one_run(server: compare.Server, a: argparse.Namespace) -> dict[str, Any]:
    busy = compare.wait_quiet(a) if a.quiet_timeout > 0 else compare.background_busy(1.0)
    cfg = SimpleNamespace(
        host="127.0.0.1", port=server.port, domain=DOMAIN, tls=True, mech="SCRAM-SHA-1",
        transport="tcp", ws_path="", client_ns=b"",
        sslctx=loadgen.make_sslctx(), timeout=30.0, user_prefix="user", password_prefix="pw",
        occupants=a.occupants, senders=a.senders, messages=a.messages, window=a.window,
        body_size=a.body_size, concurrency=a.concurrency, drain_timeout=a.drain_timeout,
        archive=server.mam, server_pid=server.pid)
    result = asyncio.run(run_room(cfg))
    result["background_busy_pct"] = busy
    compare.log(server.label, "  ->", {k: result.get(k) for k in (
        "deliveries_per_s", "server_cpu_s_per_1000", "latency_ms_p50", "latency_ms_p99",
        "lost", "server_cpu_pct", "machine_busy_pct")})
    return result


def bench(name: str, a: argparse.Namespace, cert: str, key: str) -> dict[str, Any]:
    base, _, variant = name.partition("+")
    server = SERVERS[base](variant == "mam", cert, key, a)
    out: dict[str, Any] = {"server": server.label}
    try:
        out["background_busy_pct"] = compare.background_busy()
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
        compare.log(server.label, "FAILED:", e)
        compare.log(server.label, "log tail:\n" + server.log_tail())
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
    ap.add_argument("--quiet-below", type=float, default=20)
    ap.add_argument("--quiet-timeout", type=float, default=0)
    ap.add_argument("--xmppd-bin", default=str(compare.REPO / ".venv" / "bin"))
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--json-out")
    a = ap.parse_args(argv)
    wanted = [s.strip() for s in a.servers.split(",") if s.strip()]
    if any(w.startswith("prosody") for w in wanted) and not shutil.which("prosody"):
        print(f"missing prosody; install with:\n    {compare.APT_HINT}", file=sys.stderr)
        return 2
    if a.nice:
        os.setpriority(os.PRIO_PROCESS, 0, a.nice)
        compare.set_autogroup_nice("self", a.nice)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    certdir = tempfile.mkdtemp(prefix="bench-cert-")
    try:
        cert, key = compare.make_cert(certdir)
        machine = compare.machine_info()
        compare.log("machine:", machine)
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
