#!/usr/bin/env python3
"""Lean XMPP c2s load generator (asyncio + ssl, stdlib only).

Every connection is a raw socket: stream header -> STARTTLS -> SASL
(SCRAM-SHA-1 by default, PLAIN optional) -> stream restart -> resource
bind -> optional initial presence.  Responses are not parsed as XML; the
client only scans bytes for the few tokens it needs, and stanzas are
pre-serialised byte templates, so one Python process can drive far more
traffic than an XMPP library client could.

Scenarios (each prints ONE JSON line on stdout):

  logins    login rate (connect..bind) for accounts user1..userN
  messages  P sender->receiver pairs, throughput / loss / order / latency
  idle      N logged-in idle connections held open (server RSS per conn)

With --transport websocket the same scenarios run over XMPP-over-WebSocket
(RFC 7395) at --ws-path of an HTTP listener: one stanza per text frame,
<open/>/<close/> framing, no TLS (compare with --no-tls on TCP).  Client frames
use an all-zero masking key (valid RFC 6455 framing that costs the client no
XOR; the server unmasks as usual).

Accounts are <user-prefix><i>@<domain> with password <password-prefix><i>
(user1/pw1, user2/pw2, ...).  With --server-pid the server's CPU
(utime+stime from /proc/<pid>/stat) and RSS (VmRSS) are sampled around the
measured phase; the load generator's own CPU is always reported so you can
tell whether it, rather than the server, was the bottleneck.
"""
from __future__ import annotations


import argparse
import asyncio
import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lg_login import close_all, creds, lat_stats, login, login_many, settle_closes  # noqa: E402,F401
from lg_messages import Pair, make_stanza_parts, run_messages, sender_max, senders_rate  # noqa: E402,F401
from lg_muc import run_room  # noqa: E402
from lg_offline import run_offline  # noqa: E402
from lg_scenarios import run_idle, run_logins  # noqa: E402,F401
from lg_wire import (MECHS, Conn, Plain, ScramSha1, XMPPError, _discard, attr,  # noqa: E402,F401
                     background, find_element, make_sslctx, stream_header)
from lg_ws import WsConn, ws_connect, ws_frame  # noqa: E402,F401


def parse_args(argv=None):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", default="127.0.0.1:5222", help="host:port of the c2s listener")
    common.add_argument("--transport", default="tcp", choices=["tcp", "websocket"],
                        help="websocket: RFC 7395 at --ws-path of an HTTP listener (no TLS)")
    common.add_argument("--ws-path", default="/xmpp-websocket")
    common.add_argument("--domain", default="localhost")
    common.add_argument("--user-prefix", default="user")
    common.add_argument("--password-prefix", default="pw",
                        help="password of user<i> is <prefix><i> (default pw)")
    common.add_argument("--start", type=int, default=1, help="first account index")
    common.add_argument("--mech", default="SCRAM-SHA-1", choices=sorted(MECHS))
    common.add_argument("--no-tls", dest="tls", action="store_false",
                        help="skip STARTTLS (only if the server allows it)")
    common.add_argument("--concurrency", type=int, default=20, help="parallel logins")
    common.add_argument("--timeout", type=float, default=30.0, help="per-step timeout (s)")
    common.add_argument("--server-pid", type=int, help="sample CPU/RSS of this pid")
    common.add_argument("--label", help="copied into the JSON output")

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="scenario", required=True)

    lg = sub.add_parser("logins", parents=[common], help="login rate")
    lg.add_argument("--users", type=int, default=200)
    lg.add_argument("--rounds", type=int, default=1, help="log every user in this many times")
    lg.add_argument("--warmup", action="store_true",
                    help="one unmeasured round first (fills the client SCRAM cache)")
    lg.add_argument("--presence", action="store_true", help="send initial presence")

    ms = sub.add_parser("messages", parents=[common], help="message throughput/latency")
    ms.add_argument("--pairs", type=int, default=10)
    ms.add_argument("--messages", type=int, default=2000, help="messages per sender")
    ms.add_argument("--rate", default="max", help="total offered msgs/s, or 'max'")
    ms.add_argument("--window", type=int, default=200,
                    help="max-rate mode: max in-flight messages per pair (0 = unlimited)")
    ms.add_argument("--batch", type=int, default=20, help="max-rate mode: stanzas per write")
    ms.add_argument("--body-size", type=int, default=32, help="padding bytes in each body")
    ms.add_argument("--settle", type=float, default=1.0, help="pause after logins (s)")
    ms.add_argument("--drain-timeout", type=float, default=10.0)
    ms.add_argument("--max-seconds", type=float, default=0,
                    help="max-rate mode: stop sending after this many seconds (0 = no cap)")
    ms.add_argument("--no-presence", dest="presence", action="store_false")
    ms.add_argument("--receiver-server", default="",
                    help="host:port where the receivers log in (default: --server); a cluster "
                         "benchmark puts senders and receivers on different nodes")

    off = sub.add_parser("offline", parents=[common], help="store for offline users, deliver at login")
    off.add_argument("--pairs", type=int, default=20)
    off.add_argument("--messages", type=int, default=100, help="messages per offline receiver")
    off.add_argument("--batch", type=int, default=20, help="stanzas per write")
    off.add_argument("--body-size", type=int, default=32)
    off.add_argument("--settle", type=float, default=1.0)
    off.add_argument("--drain-timeout", type=float, default=10.0)

    mc = sub.add_parser("muc", parents=[common], help="one room: fan-out per delivered stanza")
    mc.add_argument("--room", default="bench@conference.localhost")
    mc.add_argument("--occupants", type=int, default=50)
    mc.add_argument("--senders", type=int, default=10)
    mc.add_argument("--messages", type=int, default=100, help="per sender")
    mc.add_argument("--window", type=int, default=10, help="own messages in flight per sender")
    mc.add_argument("--body-size", type=int, default=100)
    mc.add_argument("--drain-timeout", type=float, default=10.0)
    mc.add_argument("--archive", action="store_true", help="persistent room with its archive on")
    mc.add_argument("--room-fields", default="logging,archiving",
                    help="archive switches in the room form: logging, archiving, mam (comma list)")

    idl = sub.add_parser("idle", parents=[common], help="hold N idle logged-in connections")
    idl.add_argument("--connections", type=int, default=1000)
    idl.add_argument("--hold", type=float, default=10.0, help="seconds to hold them")
    idl.add_argument("--settle", type=float, default=5.0, help="RSS is sampled after this (s)")
    idl.add_argument("--warmup", type=int, default=20,
                     help="log this many in and out before the RSS baseline")
    idl.add_argument("--no-presence", dest="presence", action="store_false")

    cfg = ap.parse_args(argv)
    host, _, port = cfg.server.rpartition(":")
    cfg.host, cfg.port = host or "127.0.0.1", int(port)
    cfg.sslctx = make_sslctx()
    if cfg.transport == "websocket":
        cfg.tls = False             # ws:// (TLS would be wss://, not STARTTLS)
    # RFC 7395 §3.3.3: every WebSocket message declares its namespace
    cfg.client_ns = b" xmlns='jabber:client'" if cfg.transport == "websocket" else b""
    if cfg.scenario == "messages" and cfg.rate != "max":
        float(cfg.rate)
    return cfg


def main(argv=None):
    cfg = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fn = {"logins": run_logins, "messages": run_messages, "idle": run_idle,
          "offline": run_offline, "muc": run_room}[cfg.scenario]
    try:
        out = asyncio.run(fn(cfg))
    except XMPPError as e:
        out = {"scenario": cfg.scenario, "error": str(e)}
    out["server"] = cfg.server
    if cfg.label:
        out["label"] = cfg.label
    print(json.dumps(out), flush=True)
    return 1 if "error" in out else 0


if __name__ == "__main__":
    sys.exit(main())

