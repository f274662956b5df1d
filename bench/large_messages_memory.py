#!/usr/bin/env python3
"""Server RSS during and after bursts of large messages (issue 13: "large messages on the
PostgreSQL path leave RSS high").

Starts xmppd on one backend pair with shaping off (`c2s_rate`/`stanza_rate` "off", so one
client can push as fast as the server reads), logs alice in with XEP-0198, and sends
`--bursts` bursts of `-n` messages of `--size` bytes to bob: offline (each stored offline and
archived on both sides) or, with `--online`, to bob logged in and reading (delivered, archived).
After each burst it waits for all acks, then `--rest` seconds, and prints the peak RSS seen
during the burst and the RSS at rest (VmRSS). The server trims its heap every 30 s
(xmppd/main.py housekeeping): a rest of 35 s or more shows what it really keeps.

  PYTHONPATH=. .venv/bin/python bench/large_messages_memory.py --backend postgresql+redis \
      [-n 700] [--size 204800] [--bursts 3] [--rest 35] [--online] [--env NAME=VALUE ...]
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import procstat  # noqa: E402
from tests.harness.backends import backend_urls  # noqa: E402
from tests.harness.server_proc import make_server, register_accounts  # noqa: E402


def mb(pid: int) -> int:
    return procstat.rss_kib(pid) // 1024


async def run(port: int, pid: int, a: argparse.Namespace) -> None:
    cfg = types.SimpleNamespace(host="127.0.0.1", port=port, timeout=60, transport="tcp",
                                domain="localhost", tls=True, sslctx=loadgen.make_sslctx(),
                                mech="PLAIN", client_ns=b"")
    alice = await loadgen.login(cfg, "alice", "alice-pw", "r", True)
    alice.write(b"<enable xmlns='urn:xmpp:sm:3'/>")
    await alice.element([b"enabled"], 30)
    got = [0]
    if a.online:
        bob = await loadgen.login(cfg, "bob", "bob-pw", "r", True)
        bob.on_data = lambda d: got.__setitem__(0, got[0] + d.count(b"</message>"))
    pad = b"x" * a.size
    print(f"start: {mb(pid)} MB", flush=True)
    for burst in range(a.bursts):
        peak = 0
        for i in range(a.n):
            alice.write(b"<message type='chat' to='bob@localhost' id='m%d'><body>%s</body>"
                        b"</message><r xmlns='urn:xmpp:sm:3'/>" % (i, pad))
            if i % 20 == 19:
                await alice.element([b"a"], 60)
                peak = max(peak, mb(pid))
        want = (burst + 1) * a.n        # h counts from <enable/>, after the presence
        while True:
            _, tag, _ = await alice.element([b"a"], 120)
            peak = max(peak, mb(pid))
            if int(loadgen.attr(tag, b"h") or b"0") >= want:
                break
            if not alice.buf:
                alice.write(b"<r xmlns='urn:xmpp:sm:3'/>")
        await asyncio.sleep(a.rest)
        print(f"burst {burst + 1}: {a.n} x {a.size} B, peak {peak} MB, rest {mb(pid)} MB"
              + (f", bob got {got[0]}" if a.online else ""), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="postgresql+redis",
                    choices=["sqlite+memory", "postgresql+redis"])
    ap.add_argument("-n", type=int, default=700, help="messages per burst")
    ap.add_argument("--size", type=int, default=200 * 1024, help="body bytes")
    ap.add_argument("--online", action="store_true", help="bob is online and reading")
    ap.add_argument("--bursts", type=int, default=3)
    ap.add_argument("--rest", type=float, default=35.0, help="seconds after each burst")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="xmppd-large-"))
    storage, cache, cleanups = backend_urls(a.backend, tmp)
    srv = make_server(tmp, storage, cache,
                      modules={"disco": {}, "roster": {}, "presence": {}, "receipts": {},
                               "offline": {"max_messages": 100_000}, "carbons": {}, "mam": {},
                               "stream_mgmt": {}},
                      limits={"max_stanza_size": "256 KiB", "c2s_rate": "off",
                              "stanza_rate": "off", "exempt_networks": ["127.0.0.0/8"]})
    for kv in a.env:
        name, _, value = kv.partition("=")
        srv.env[name] = value
    try:
        register_accounts(srv, {"alice": "alice-pw", "bob": "bob-pw"})
        srv.start()
        assert srv.proc is not None
        asyncio.run(run(srv.port, srv.proc.pid, a))
    finally:
        srv.stop()
        for cleanup in cleanups:
            cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
