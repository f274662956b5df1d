#!/usr/bin/env python3
"""A phone's reconnect, legacy vs SASL2 + FAST: round trips, wall time and server CPU.

Starts xmppd (SQLite, in-process cache) with a direct TLS listener (XEP-0368, so both flows pay
the same TLS handshake), then reconnects N times each way, one after the other:

  legacy  header → features; SCRAM-SHA-256 auth → challenge; response → success; restart
          header → features; bind → result; XEP-0198 enable → enabled; carbons IQ → result
          (what Conversations did before SASL2: 7 round trips after TLS)
  fast    header + SASL2 <authenticate mechanism='HT-SHA-256-EXPR'> with a FAST token, Bind 2
          with stream management and carbons inline, in one flight → success (features cached
          from an earlier connection: XEP-0388 §2.1 says they may be): 1 round trip after TLS

Round trips are counted as the times the client waits for the server. Server CPU is the
xmppd process's utime + stime (/proc) over the N reconnects, divided by N. The machine is
shared: run it when it is quiet, and compare the two rows of one run only.

  PYTHONPATH=. .venv/bin/python bench/reconnect_bench.py [-n 200]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import json
import os
import re
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.core.test_sasl import ScramClient  # noqa: E402
from tests.harness.server_proc import make_server, register_accounts  # noqa: E402
from xmppd.listeners.channel_binding import exporter  # noqa: E402

HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
AGENT = "5c1a2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


class Conn:
    def __init__(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.r, self.w, self.buf, self.waits = r, w, b"", 0

    @classmethod
    async def open(cls, port: int) -> Conn:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_alpn_protocols(["xmpp-client"])
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                             server_hostname="localhost")
        return cls(r, w)

    async def ask(self, data: str | bytes, until: bytes) -> bytes:
        """Send, then wait for `until`: one round trip."""
        self.w.write(data.encode() if isinstance(data, str) else data)
        self.waits += 1
        while until not in self.buf:
            chunk = await self.r.read(65536)
            if not chunk:
                raise EOFError(self.buf[-300:])
            self.buf += chunk
        head, _, self.buf = self.buf.partition(until)
        return head + until

    def close(self) -> None:
        self.w.close()


async def legacy(port: int) -> int:
    c = await Conn.open(port)
    await c.ask(HEADER, b"</stream:features>")
    sc = ScramClient("SCRAM-SHA-256", "alice", "alice-pw")
    ch = await c.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>"
                     f"{base64.b64encode(sc.first()).decode()}</auth>", b"</challenge>")
    data = re.search(rb"<challenge[^>]*>([^<]*)</challenge>", ch).group(1)  # type: ignore[union-attr]
    await c.ask("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                f"{base64.b64encode(sc.final(base64.b64decode(data))).decode()}"
                "</response>", b"</success>")
    await c.ask(HEADER, b"</stream:features>")
    await c.ask("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                "<resource>phone</resource></bind></iq>", b"</iq>")
    await c.ask("<enable xmlns='urn:xmpp:sm:3' resume='true'/>", b"/>")
    await c.ask("<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>", b"id=\"c\"")
    c.close()
    return c.waits


async def get_token(port: int) -> str:
    c = await Conn.open(port)
    await c.ask(HEADER, b"</stream:features>")
    ok = await c.ask(_authenticate("PLAIN", b"\0alice\0alice-pw",
                                   "<request-token xmlns='urn:xmpp:fast:0' "
                                   "mechanism='HT-SHA-256-EXPR'/>"), b"</success>")
    c.close()
    return re.search(rb"token=\"([^\"]+)\"", ok).group(1).decode()  # type: ignore[union-attr]


async def fast(port: int, token: str) -> int:
    c = await Conn.open(port)
    cb = exporter(c.w.get_extra_info("ssl_object"))
    assert cb is not None
    proof = b"alice\0" + hmac.digest(token.encode(), b"Initiator" + cb, "sha256")
    await c.ask(HEADER + _authenticate(
        "HT-SHA-256-EXPR", proof, "<fast xmlns='urn:xmpp:fast:0'/>"
        "<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag><enable xmlns='urn:xmpp:sm:3' "
        "resume='true'/><enable xmlns='urn:xmpp:carbons:2'/></bind>"), b"</success>")
    c.close()
    return c.waits


def _authenticate(mechanism: str, initial: bytes, inline: str) -> str:
    return (f"<authenticate xmlns='urn:xmpp:sasl:2' mechanism='{mechanism}'><initial-response>"
            f"{base64.b64encode(initial).decode()}</initial-response><user-agent id='{AGENT}'/>"
            f"{inline}</authenticate>")


async def measure(srv: Any, port: int, n: int) -> list[dict[str, Any]]:
    token = await get_token(port)
    rows = []
    for name in ("legacy", "fast"):
        for _ in range(5):                                  # warm up
            await (legacy(port) if name == "legacy" else fast(port, token))
        cpu0, t0 = srv.cpu_seconds(), time.perf_counter()
        waits = 0
        for _ in range(n):
            waits = await (legacy(port) if name == "legacy" else fast(port, token))
        wall, cpu = time.perf_counter() - t0, srv.cpu_seconds() - cpu0
        rows.append({"flow": name, "n": n, "round_trips_after_tls": waits,
                     "wall_ms_per_reconnect": round(1000 * wall / n, 2),
                     "server_cpu_ms_per_reconnect": round(1000 * cpu / n, 2)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="xmppd-reconnect-"))
    srv = make_server(tmp, f"sqlite:///{tmp}/db.sqlite", "memory",
                      listeners={"tls": {"type": "c2s_tls"}},
                      limits={"exempt_networks": ["127.0.0.0/8"],
                              "auth_max_failures_per_ip": 1000000})
    register_accounts(srv, {"alice": "alice-pw"})
    srv.start()
    try:
        port = srv.ports["tls"]
        rows = asyncio.run(measure(srv, port, args.n))
    finally:
        srv.stop()
    print("\n| flow | round trips after TLS | wall ms / reconnect | server CPU ms / reconnect |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['flow']} | {r['round_trips_after_tls']} | {r['wall_ms_per_reconnect']} | "
              f"{r['server_cpu_ms_per_reconnect']} |")
    os.system(f"rm -rf {tmp}")


if __name__ == "__main__":
    main()
