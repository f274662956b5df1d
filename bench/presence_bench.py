#!/usr/bin/env python3
"""Presence at login: a user with 1,000 contacts (500 of them online) logs in.

Starts a real xmppd (`python -m xmppd.main`) on SQLite in a temp dir, with the modules of
conf/xmppd.toml, and creates the accounts and rosters directly in the database first
(user0 with 1,000 'both' contacts c1..c1000, each with user0 in its roster). Then 500
contacts log in (raw asyncio clients from loadgen.py: STARTTLS, SCRAM-SHA-1, bind, initial
presence) and, `--repeat` times, user0:

  login     connect .. resource bound (TLS, SASL, bind)
  roster    roster get .. the 1,000-item result read
  presence  initial presence sent .. every online contact got it AND user0 got the probe
            answers of all 500 (the server answers probes on their behalf)
  offline   unavailable sent .. every online contact got it

Prints one JSON line per round and a summary line (medians), plus the server's CPU seconds
for the presence phase.

  python3 bench/presence_bench.py [--contacts 1000] [--online 500] [--repeat 5]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import loadgen  # noqa: E402
import procstat  # noqa: E402

DOMAIN = "localhost"
PASSWORD = "bench-pw"
MAIN = "user0"
_FROM_CONTACT = re.compile(rb"<presence[^>]*from=[\"']c\d+@" + DOMAIN.encode())
_PRESENCE_TAG = re.compile(rb"<presence[^>]*>")


def toml_modules(conf: Path) -> str:
    """The [modules.*] tables of a shipped config, re-serialised (flat values only)."""
    with conf.open("rb") as f:
        modules = tomllib.load(f).get("modules", {})
    out = []
    for name, table in modules.items():
        out.append(f"[modules.{name}]")
        for k, v in table.items():
            out.append(f"{k} = {json.dumps(v)}")
    return "\n".join(out) + "\n"


def write_config(tmp: Path, modules: str) -> Path:
    cfg = tmp / "xmppd.toml"
    cfg.write_text(f"""
[server]
hosts = ["{DOMAIN}"]
log_level = "warning"
log_file = "{tmp / 'xmppd.log'}"

[storage]
url = "sqlite:///{tmp / 'xmppd.sqlite'}"

[cache]
url = "memory"

[tls]
cert = "{tmp / 'cert.pem'}"
key = "{tmp / 'key.pem'}"

[[listeners]]
bind = "127.0.0.1"
port = 0
port_file = "{tmp / 'port'}"
starttls = "required"

[limits]                  # the load generator stands for many users, all on 127.0.0.1
exempt_networks = ["127.0.0.0/8", "::1"]
c2s_rate = "off"
stanza_rate = "off"
max_sessions_per_user = 16

{modules}
""")
    return cfg


def populate(url: str, contacts: int) -> None:
    """Accounts and rosters, written in bulk (the schema of storage/models)."""
    from sqlalchemy import insert

    from storage.db import Database
    from storage.models import account_credentials, accounts, roster_items, roster_versions
    from xmppd.sasl import derive_all

    creds = derive_all(PASSWORD, 4096)          # one derivation, shared: a benchmark shortcut
    users = [MAIN] + [f"c{i}" for i in range(1, contacts + 1)]
    now = time.time()

    def item(owner: str, contact: str) -> dict[str, Any]:
        return {"host": DOMAIN, "username": owner, "contact": f"{contact}@{DOMAIN}", "name": "",
                "groups": "[]", "subscription": "both", "ask": False, "pending_in": False,
                "approved": False, "listed": True}

    def txn(conn: Any) -> None:
        conn.execute(insert(accounts), [{"host": DOMAIN, "username": u, "created_at": now}
                                        for u in users])
        conn.execute(insert(account_credentials), [
            {"host": DOMAIN, "username": u, "mechanism": m, "salt": c.salt,
             "iterations": c.iterations, "stored_key": c.stored_key, "server_key": c.server_key}
            for u in users for m, c in creds.items()])
        conn.execute(insert(roster_items), [item(MAIN, u) for u in users[1:]]
                     + [item(u, MAIN) for u in users[1:]])
        conn.execute(insert(roster_versions), [{"host": DOMAIN, "username": u, "version": 1}
                                               for u in users])

    db = Database.open(url)
    try:
        db.migrate()
        from tests.harness.backends import resolve
        resolve(db.run(txn))
    finally:
        db.close()


class Server:
    def __init__(self, cfg: Path, tmp: Path) -> None:
        self.cfg, self.tmp = cfg, tmp
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, "-m", "xmppd.main", "--config", str(cfg)],
                                     cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        port_file = tmp / "port"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"xmppd did not start: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


async def round_(cfg: Any, contacts: list[Any], pid: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    online = len(contacts)
    marker = f"{MAIN}@{DOMAIN}/bench".encode()
    got_on: asyncio.Future[float] = loop.create_future()
    got_off: asyncio.Future[float] = loop.create_future()
    seen = {"on": 0, "off": 0}

    def watch(c: Any) -> None:
        state = {"on": False, "off": False, "buf": b""}

        def on_data(data: bytes) -> None:
            buf = state["buf"] + data                                  # type: ignore[operator]
            end = 0
            for m in _PRESENCE_TAG.finditer(buf):
                end = m.end()
                tag = m.group(0)
                if marker not in tag:
                    continue
                if b"unavailable" in tag:
                    if state["on"] and not state["off"]:
                        state["off"] = True
                        seen["off"] += 1
                        if seen["off"] == online and not got_off.done():
                            got_off.set_result(time.perf_counter())
                elif not state["on"]:
                    state["on"] = True
                    seen["on"] += 1
                    if seen["on"] == online and not got_on.done():
                        got_on.set_result(time.perf_counter())
            rest = buf[end:]
            state["buf"] = rest[rest.rfind(b"<"):] if b"<" in rest else b""
        c.on_data = on_data

    for c in contacts:
        watch(c)

    t0 = time.perf_counter()
    me = await loadgen.login(cfg, MAIN, PASSWORD, "bench", presence=False)
    t_bound = time.perf_counter()
    me.write(b"<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
    await me.wait(lambda b: (lambda i: (i + 5, None) if i >= 0 else None)(b.find(b"</iq>")),
                  cfg.timeout)
    t_roster = time.perf_counter()

    answers: asyncio.Future[float] = loop.create_future()
    state = {"buf": b"", "count": 0}

    def mine(data: bytes) -> None:
        buf = state["buf"] + data                 # type: ignore[operator]
        cut = buf.rfind(b">") + 1
        state["count"] += len(_FROM_CONTACT.findall(buf[:cut]))   # type: ignore[operator]
        state["buf"] = buf[cut:]
        if state["count"] >= online and not answers.done():
            answers.set_result(time.perf_counter())
    me.buf.clear()
    me.on_data = mine
    cpu0 = procstat.cpu_seconds(pid)
    t_presence = time.perf_counter()
    me.write(b"<presence/>")
    done_on, done_answers = await asyncio.wait_for(asyncio.gather(got_on, answers), cfg.timeout)
    cpu1 = procstat.cpu_seconds(pid)
    t_off = time.perf_counter()
    me.write(b"<presence type='unavailable'/>")
    done_off = await asyncio.wait_for(got_off, cfg.timeout)
    await me.close()
    return {
        "login_ms": round((t_bound - t0) * 1000, 1),
        "roster_ms": round((t_roster - t_bound) * 1000, 1),
        "presence_ms": round((max(done_on, done_answers) - t_presence) * 1000, 1),
        "broadcast_ms": round((done_on - t_presence) * 1000, 1),
        "probes_answered_ms": round((done_answers - t_presence) * 1000, 1),
        "presence_server_cpu_s": round(cpu1 - cpu0, 3),
        "offline_ms": round((done_off - t_off) * 1000, 1),
        "total_ms": round((max(done_on, done_answers) - t0) * 1000, 1),
    }


async def bench(args: argparse.Namespace, port: int, pid: int) -> list[dict[str, float]]:
    cfg = SimpleNamespace(host="127.0.0.1", port=port, domain=DOMAIN, timeout=60.0, tls=True,
                          sslctx=loadgen.make_sslctx(), mech="SCRAM-SHA-1")
    sem = asyncio.Semaphore(50)

    async def contact(i: int) -> Any:
        async with sem:
            return await loadgen.login(cfg, f"c{i}", PASSWORD, "r", presence=True)
    contacts = await asyncio.gather(*(contact(i) for i in range(1, args.online + 1)))
    for c in contacts:
        c.on_data = loadgen._discard
    await asyncio.sleep(1.0)        # let the contacts' own presence traffic settle
    results = []
    for n in range(args.repeat):
        r = await round_(cfg, list(contacts), pid)
        print(json.dumps({"round": n + 1, **r}), flush=True)
        results.append(r)
    for c in contacts:
        await c.close()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--contacts", type=int, default=1000)
    p.add_argument("--online", type=int, default=500)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--config", type=Path, default=REPO / "conf" / "xmppd.toml",
                   help="whose [modules.*] the server loads")
    args = p.parse_args()
    if args.online > args.contacts:
        raise SystemExit("--online cannot exceed --contacts")
    with tempfile.TemporaryDirectory(prefix="xmppd-presence-bench-") as name:
        tmp = Path(name)
        cfg = write_config(tmp, toml_modules(args.config))
        populate(f"sqlite:///{tmp / 'xmppd.sqlite'}", args.contacts)
        server = Server(cfg, tmp)
        try:
            results = asyncio.run(bench(args, server.port, server.proc.pid))
        finally:
            server.stop()
        summary = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(json.dumps({"summary": "median", "contacts": args.contacts,
                          "online": args.online, "rounds": args.repeat,
                          "nproc": os.cpu_count(), **summary}), flush=True)
        log = (tmp / "xmppd.log").read_text()
        if "ERROR" in log or "Traceback" in log:
            print(log[-4000:], file=sys.stderr)


if __name__ == "__main__":
    main()
