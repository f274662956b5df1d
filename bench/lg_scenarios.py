"""The logins and idle scenarios of bench/loadgen.py."""
from __future__ import annotations

import asyncio
import json
import sys
import time

import procstat
from lg_login import close_all, lat_stats, login_many, settle_closes
from lg_wire import XMPPError

async def run_logins(cfg):
    users = list(range(cfg.start, cfg.start + cfg.users))
    if cfg.warmup:
        # unmeasured round: fills the client's SCRAM cache and warms the server
        errs = []
        await login_many(cfg, users, cfg.concurrency, cfg.presence, errors=errs, keep=False)
        await settle_closes()
        if errs:
            raise XMPPError(f"warm-up failed ({len(errs)}): {errs[:3]}")
    sampler = procstat.Sampler(cfg.server_pid)
    errors, lats, ok = [], [], 0
    a = sampler.snap()
    for _ in range(cfg.rounds):
        res = await login_many(cfg, users, cfg.concurrency, cfg.presence, errors=errors, keep=False)
        ok += sum(1 for _, _, lat in res if lat is not None)
        lats += [lat for _, _, lat in res if lat is not None]
    b = sampler.snap()
    await settle_closes()
    d = procstat.Sampler.delta(a, b)
    out = {
        "scenario": "logins", "users": cfg.users, "concurrency": cfg.concurrency,
        "rounds": cfg.rounds, "warmup": cfg.warmup, "mech": cfg.mech,
        "ok": ok, "failed": len(errors),
        "logins_per_s": round(ok / d["wall_s"], 1) if d["wall_s"] else None,
        **lat_stats(lats, "login_ms"), **d,
    }
    if "server_cpu_s" in d and ok:
        out["server_cpu_ms_per_login"] = round(1000 * d["server_cpu_s"] / ok, 3)
    if errors:
        out["errors"] = errors[:5]
    return out


async def run_idle(cfg):
    idx = list(range(cfg.start, cfg.start + cfg.connections))
    if cfg.warmup:
        errs = []
        await login_many(cfg, idx[:cfg.warmup], cfg.concurrency, cfg.presence,
                         errors=errs, keep=False)
        await settle_closes()
        await asyncio.sleep(1)
    base_rss = procstat.tree_rss_kib(cfg.server_pid) if cfg.server_pid else None
    t0 = time.perf_counter()
    errors = []
    res = await login_many(cfg, idx, cfg.concurrency, cfg.presence, errors=errors)
    conns = [c for _, c, _ in res if c is not None]
    connect_s = time.perf_counter() - t0
    print(json.dumps({"event": "ready", "connections": len(conns)}), file=sys.stderr, flush=True)
    await asyncio.sleep(min(cfg.settle, cfg.hold))
    rss1 = procstat.tree_rss_kib(cfg.server_pid) if cfg.server_pid else None
    await asyncio.sleep(max(0, cfg.hold - cfg.settle))
    alive = sum(1 for c in conns if not c.lost)
    rss2 = procstat.tree_rss_kib(cfg.server_pid) if cfg.server_pid else None
    out = {
        "scenario": "idle", "connections": cfg.connections, "connected": len(conns),
        "alive_at_end": alive, "failed": len(errors), "hold_s": cfg.hold,
        "connect_s": round(connect_s, 3),
    }
    if cfg.server_pid:
        rss = max(rss1, rss2)
        out.update({
            "server_rss_base_kib": base_rss, "server_rss_settled_kib": rss1,
            "server_rss_end_kib": rss2,
            "kib_per_conn": round((rss - base_rss) / max(1, alive), 2),
        })
    if errors:
        out["errors"] = errors[:5]
    await close_all(conns)
    return out


# --------------------------------------------------------------------------
