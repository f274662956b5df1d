"""What bench/compare.py runs against each server: bench/loadgen.py in a subprocess (its own
CPU apart from the server's and from ours), one scenario at a time, with the server's pid so
the server's process tree is sampled around the measured phase only.

Accounts: messages and latency use user1..user(2P), rooms user1..userO, offline its own
range above the pairs' (its receivers must be offline), logins user1..userU, idle
user1..userN.  Each scenario's logins are counted (Server.logins) for the "after 10,000
logins" row.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from servers import DOMAIN, MUC_DOMAIN, Server, log
import procstat

LOADGEN = Path(__file__).resolve().parent / "loadgen.py"

# scenario -> which servers run it: "all", "off" (archive off), "on" (archive on),
# "login" (the archive does not touch it: the anchors without archive, both xmppd configs)
WHO = {"messages": "all", "latency": "all", "muc": "all", "offline": "all",
       "scram": "login", "plain": "login", "idle": "login", "after": "off"}
# Messages first (the "fresh" figure: a server that has done nothing but start), idle before
# the scenarios that leave freed memory behind in the server's heap (RSS per connection is
# measured as growth).
ORDER = ["messages", "latency", "idle", "muc", "offline", "scram", "plain"]


def applies(scenario: str, server: Server) -> bool:
    who = WHO[scenario]
    if who == "all":
        return True
    if who == "off":
        return not server.archive
    if who == "on":
        return server.archive
    return not server.archive or server.name == "xmppd"


def background_busy(seconds: float = 1.0) -> float:
    """Machine-wide CPU busy % while we are idle: other tenants' load."""
    import time
    a = procstat.machine_cpu()
    time.sleep(seconds)
    b = procstat.machine_cpu()
    return round(100 * (b[0] - a[0]) / max(1, b[1] - a[1]), 1)


def loadgen(server: Server, a: Any, scenario: str, *extra: str, timeout: float = 900
            ) -> dict[str, Any]:
    bg = background_busy(0.5)
    cmd = [sys.executable, str(LOADGEN), scenario, "--server", f"127.0.0.1:{server.port}",
           "--domain", DOMAIN, "--server-pid", str(server.pid), "--label", server.label,
           "--concurrency", str(a.concurrency), *extra]
    if a.loadgen_cpu is not None:
        cmd = ["taskset", "-c", a.loadgen_cpu] + cmd
    log(server.label, "run:", scenario, " ".join(extra))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    lines = [ln for ln in r.stdout.decode().splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"loadgen produced no result: {r.stderr.decode()[-1500:]}")
    res: dict[str, Any] = json.loads(lines[-1])
    res["background_busy_pct"] = bg
    if "error" in res:
        log(server.label, "ERROR:", res["error"][:500])
    else:
        keys = ("logins_per_s", "server_cpu_ms_per_login", "msgs_per_s", "deliveries_per_s",
                "server_cpu_s_per_1000", "latency_ms_p99", "kib_per_conn", "server_cpu_pct",
                "loadgen_cpu_pct", "machine_busy_pct", "lost", "failed")
        log(server.label, "  ->", {k: res[k] for k in keys if k in res})
    return res


def messages_args(a: Any) -> list[str]:
    return ["--pairs", str(a.pairs), "--messages", str(a.messages), "--window", str(a.window),
            "--rate", "max", "--max-seconds", str(a.max_seconds)]


def run(scenario: str, server: Server, a: Any, rnd: int, rates: dict[bool, float]
        ) -> dict[str, Any]:
    """One measured run; ``rates`` holds this round's latency rate per archive setting."""
    if scenario in ("messages", "after"):
        res = loadgen(server, a, "messages", *messages_args(a))
        logins = 2 * a.pairs
    elif scenario == "latency":
        rate = rates[server.archive]
        per_pair = max(10, math.ceil(rate * a.latency_seconds / a.pairs))
        res = loadgen(server, a, "messages", "--pairs", str(a.pairs), "--messages",
                      str(per_pair), "--rate", f"{rate:.0f}")
        logins = 2 * a.pairs
    elif scenario == "muc":
        extra = ["--archive"] if server.archive else []
        res = loadgen(server, a, "muc", "--room", f"bench-r{rnd}@{MUC_DOMAIN}",
                      "--occupants", str(a.occupants), "--senders", str(a.muc_senders),
                      "--messages", str(a.muc_messages), "--room-fields", server.room_fields,
                      *extra)
        logins = a.occupants
    elif scenario == "offline":
        res = loadgen(server, a, "offline", "--start", str(2 * a.pairs + 1), "--pairs",
                      str(a.offline_pairs), "--messages", str(a.offline_messages))
        logins = 2 * a.offline_pairs
    elif scenario in ("scram", "plain"):
        users = a.login_users if scenario == "scram" else a.plain_users
        mech = ["--mech", "PLAIN"] if scenario == "plain" else []
        res = loadgen(server, a, "logins", "--users", str(users), "--rounds",
                      str(a.login_rounds), "--warmup", *mech)
        logins = users * (a.login_rounds + 1)
    elif scenario == "idle":
        res = loadgen(server, a, "idle", "--connections", str(a.idle), "--hold",
                      str(a.idle_hold), "--settle", str(min(a.idle_hold, 3)),
                      timeout=1800)
        logins = a.idle + 20
    else:
        raise ValueError(scenario)
    server.logins += logins
    res["logins_before"] = server.logins - logins
    return res


def top_up_logins(server: Server, a: Any, target: int) -> dict[str, Any] | None:
    """Logins (SCRAM, unmeasured for the table) until ``server`` has seen ``target``."""
    need = target - server.logins
    if need <= 0:
        return None
    users = min(a.login_users, need)
    rounds = math.ceil(need / users)
    res = loadgen(server, a, "logins", "--users", str(users), "--rounds", str(rounds),
                  timeout=3600)
    server.logins += users * rounds
    return res


def accounts_needed(a: Any) -> int:
    return max(a.idle + 1, a.login_users, a.plain_users, 2 * a.pairs + 2 * a.offline_pairs,
               a.occupants)
