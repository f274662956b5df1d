"""The offline scenario of bench/loadgen.py: messages stored for users who are not logged in,
then delivered when they log in (XEP-0160 behaviour on all three servers)."""
from __future__ import annotations

import asyncio
import time

import procstat
from lg_login import close_all, creds, login_many
from lg_wire import XMPPError, _discard

MARK = b"<body>O:"


class Inbox:
    """Counts offline-delivered bodies on one receiver's raw byte stream."""

    def __init__(self) -> None:
        self.tail = b""
        self.got = 0
        self.last_ns = 0

    def feed(self, data: bytes) -> None:
        buf = self.tail + data
        n = buf.count(MARK) - self.tail.count(MARK)
        if n:
            self.got += n
            self.last_ns = time.perf_counter_ns()
        self.tail = buf[-(len(MARK) - 1):]


async def ping(conn, tag: str, domain: str, timeout: float) -> None:
    """An iq the server answers after it has handled everything sent before it."""
    conn.on_data = None
    conn.buf.clear()
    conn.write(f"<iq type='get' id='{tag}' to='{domain}'><ping xmlns='urn:xmpp:ping'/></iq>"
               .encode())
    needle = f"'{tag}'".encode()
    needle2 = f'"{tag}"'.encode()

    def found(buf):
        for nd in (needle, needle2):
            i = buf.find(nd)
            if i >= 0:
                return i + len(nd), None
        return None
    await conn.wait(found, timeout)
    conn.on_data = _discard


async def run_offline(cfg):
    """P senders each send M chat messages to a receiver that is offline (stored), then the
    receivers log in and send initial presence and get them.  Server CPU: from the first send
    to the last delivery, less the receivers' logins (connect to bound, reported apart)."""
    P, M = cfg.pairs, cfg.messages
    senders = list(range(cfg.start, cfg.start + P))
    receivers = list(range(cfg.start + P, cfg.start + 2 * P))
    errors: list[str] = []
    res = await login_many(cfg, senders, cfg.concurrency, True, errors=errors)
    sconns = [c for _, c, _ in res]
    if errors:
        await close_all(sconns)
        raise XMPPError(f"login failed ({len(errors)}): {errors[:3]}")
    await asyncio.sleep(cfg.settle)
    pad = "x" * max(0, cfg.body_size)
    sampler = procstat.Sampler(cfg.server_pid)
    a = sampler.snap()
    t0 = time.perf_counter_ns()
    for k, c in enumerate(sconns):
        to = f"{creds(cfg, receivers[k])[0]}@{cfg.domain}"
        for lo in range(0, M, cfg.batch):
            c.write(b"".join(
                f"<message type='chat' to='{to}' id='o{k}-{i}'><body>O:{k}:{i}:{pad}</body>"
                f"</message>".encode() for i in range(lo, min(M, lo + cfg.batch))))
            await asyncio.sleep(0)
    await asyncio.gather(*(ping(c, f"stored{k}", cfg.domain, cfg.timeout)
                           for k, c in enumerate(sconns)))
    stored_ns = time.perf_counter_ns()
    await asyncio.sleep(cfg.settle)     # a store that commits in batches has committed
    mid = sampler.snap()
    # receivers: bound without presence, then the counter, then initial presence
    res = await login_many(cfg, receivers, cfg.concurrency, False, errors=errors)
    rconns = [c for _, c, _ in res]
    if errors:
        await close_all(sconns + rconns)
        raise XMPPError(f"receiver login failed ({len(errors)}): {errors[:3]}")
    logged_in = sampler.snap()
    inboxes = []
    for c in rconns:
        box = Inbox()
        c.on_data = box.feed
        inboxes.append(box)
        c.write(b"<presence/>")
    expected = P * M
    last, last_change = -1, time.perf_counter()
    while True:
        got = sum(b.got for b in inboxes)
        if got >= expected:
            break
        if got != last:
            last, last_change = got, time.perf_counter()
        elif time.perf_counter() - last_change > cfg.drain_timeout:
            break
        await asyncio.sleep(0.01)
    b = sampler.snap()
    d = procstat.Sampler.delta(a, b)
    stored = procstat.Sampler.delta(a, mid)
    logins = procstat.Sampler.delta(mid, logged_in)
    if "server_cpu_s" in d:         # the receivers' logins are not the offline path's cost
        d["server_cpu_s"] = round(d["server_cpu_s"] - logins["server_cpu_s"], 3)
    got = sum(x.got for x in inboxes)
    end_ns = max([x.last_ns for x in inboxes] + [stored_ns])
    out = {
        "scenario": "offline", "pairs": P, "messages_per_pair": M, "expected": expected,
        "delivered": got, "lost": expected - got,
        "store_s": round((stored_ns - t0) / 1e9, 3),
        "deliver_s": round((end_ns - stored_ns) / 1e9, 3),
        "store_server_cpu_s": stored.get("server_cpu_s"),
        "login_server_cpu_s": logins.get("server_cpu_s"), **d,
    }
    if d.get("server_cpu_s") is not None and got:
        out["server_cpu_s_per_1000"] = round(1000 * d["server_cpu_s"] / got, 4)
    await close_all(sconns + rconns)
    return out
