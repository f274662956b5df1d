"""The messages scenario: sender/receiver pairs, throughput, loss, order and latency."""
from __future__ import annotations

import asyncio
import copy
import time

import procstat
from lg_login import close_all, creds, lat_stats, login_many
from lg_wire import BODY_END, BODY_MARK, XMPPError

class Pair:
    __slots__ = ("idx", "sender", "receiver", "to", "sent", "recv", "ooo", "last_seq",
                 "lat", "room_evt", "window", "tail", "bounced", "last_recv_ns", "parts")

    def __init__(self, idx, window):
        self.idx = idx
        self.sent = 0
        self.recv = 0
        self.ooo = 0
        self.last_seq = -1
        self.lat = []
        self.window = window
        self.room_evt = asyncio.Event()
        self.tail = b""
        self.bounced = 0
        self.last_recv_ns = 0

    # receiver side: scan for <body>B:pair:seq:ts:...</body>
    def feed(self, data):
        buf = self.tail + data if self.tail else data
        now = time.perf_counter_ns()
        pos = 0
        lat = self.lat
        got = 0
        while True:
            i = buf.find(BODY_MARK, pos)
            if i < 0:
                self.tail = buf[-(len(BODY_MARK) - 1):]
                break
            j = buf.find(BODY_END, i)
            if j < 0:
                self.tail = buf[i:]
                break
            _, seq, ts, _ = buf[i + 8:j].split(b":", 3)
            seq = int(seq)
            lat.append(now - int(ts))
            if seq <= self.last_seq:
                self.ooo += 1
            else:
                self.last_seq = seq
            got += 1
            pos = j + 7
        if got:
            self.recv += got
            self.last_recv_ns = now
            if not self.room_evt.is_set() and self.sent - self.recv <= self.window // 2:
                self.room_evt.set()

    def feed_sender(self, data):
        # anything addressed back to a sender as <message> is a bounce
        self.bounced += data.count(b"<message")


def make_stanza_parts(cfg, pair: Pair, to_jid: str):
    pad = b"x" * max(0, cfg.body_size)
    head = (b"<message" + cfg.client_ns
            + f" type='chat' to='{to_jid}' id='m{pair.idx}-".encode())
    mid = b"'><body>B:" + str(pair.idx).encode() + b":"
    tail = b":" + pad + b"</body></message>"
    return head, mid, tail


async def sender_max(cfg, pair: Pair, parts, first_send):
    head, mid, tail = parts
    conn = pair.sender
    m = cfg.messages
    batch = cfg.batch
    cap_ns = int(getattr(cfg, "max_seconds", 0) * 1e9)   # 0: no time cap
    while pair.sent < m:
        if cap_ns and first_send[0] is not None and time.perf_counter_ns() - first_send[0] > cap_ns:
            return  # --max-seconds: a slow server gets fewer messages, not a longer run
        room = pair.window - (pair.sent - pair.recv)
        if room <= 0:
            pair.room_evt.clear()
            try:
                await asyncio.wait_for(pair.room_evt.wait(), cfg.drain_timeout)
            except asyncio.TimeoutError:
                return  # receiver stalled: stop, report loss
            continue
        n = min(room, batch, m - pair.sent)
        ts = b"%d" % time.perf_counter_ns()
        if first_send[0] is None:
            first_send[0] = time.perf_counter_ns()
        s = pair.sent
        conn.write_units([head + b"%d" % k + mid + b"%d" % k + b":" + ts + tail
                          for k in range(s, s + n)])
        pair.sent = s + n
        if conn.paused:
            await conn.resume_evt.wait()
        else:
            await asyncio.sleep(0)
        if conn.lost:
            return


async def senders_rate(cfg, pairs, rate_per_sender, first_send, lagmax):
    """Fixed offered rate for all senders from ONE timer loop (1 ms tick):
    at each tick every sender writes what is due.  Senders are staggered
    inside one period.  The timestamp is the actual send time; the
    scheduling lag (actual - due) is reported separately."""
    m = cfg.messages
    period_ns = 1e9 / rate_per_sender
    P = len(pairs)
    t0 = time.perf_counter_ns()
    offs = [t0 + int(k * period_ns / P) for k in range(P)]
    active = list(range(P))
    while active:
        now = time.perf_counter_ns()
        ts = None
        for k in tuple(active):
            p = pairs[k]
            if now >= offs[k]:
                due = min(m, int((now - offs[k]) / period_ns) + 1)
                n = due - p.sent
                if n > 0:
                    if ts is None:
                        ts = b"%d" % now
                        if first_send[0] is None:
                            first_send[0] = now
                    lag = now - (offs[k] + p.sent * period_ns)
                    if lag > lagmax[0]:
                        lagmax[0] = lag
                    head, mid, tail = p.parts
                    s = p.sent
                    p.sender.write_units([head + b"%d" % j + mid + b"%d" % j + b":" + ts + tail
                                          for j in range(s, due)])
                    p.sent = due
            if p.sent >= m or p.sender.lost:
                active.remove(k)
        await asyncio.sleep(0.001)


async def run_messages(cfg):
    P = cfg.pairs
    t_setup = time.perf_counter()
    errors = []
    senders = list(range(cfg.start, cfg.start + P))
    receivers = list(range(cfg.start + P, cfg.start + 2 * P))
    if cfg.receiver_server:     # receivers elsewhere (another node of a cluster)
        other = copy.copy(cfg)
        host, _, port = cfg.receiver_server.rpartition(":")
        other.host, other.port = host or "127.0.0.1", int(port)
        res = (await login_many(cfg, senders, cfg.concurrency, cfg.presence, errors=errors)
               + await login_many(other, receivers, cfg.concurrency, cfg.presence,
                                  errors=errors))
    else:
        res = await login_many(cfg, senders + receivers, cfg.concurrency, cfg.presence,
                               errors=errors)
    conns = {i: c for i, c, _ in res}
    if errors:
        await close_all(conns.values())
        raise XMPPError(f"login failed ({len(errors)}): {errors[:3]}")
    pairs = []
    for k in range(P):
        p = Pair(k, cfg.window if cfg.window > 0 else 1 << 62)
        p.sender = conns[senders[k]]
        p.receiver = conns[receivers[k]]
        p.receiver.on_data = p.feed
        p.sender.on_data = p.feed_sender
        p.parts = make_stanza_parts(cfg, p, f"{creds(cfg, receivers[k])[0]}@{cfg.domain}/r")
        pairs.append(p)
    await asyncio.sleep(cfg.settle)  # let presence traffic die down
    setup_s = time.perf_counter() - t_setup

    sampler = procstat.Sampler(cfg.server_pid)
    a = sampler.snap()
    first_send = [None]
    lagmax = [0]
    if cfg.rate == "max":
        tasks = [asyncio.create_task(sender_max(cfg, p, p.parts, first_send)) for p in pairs]
        offered = None
    else:
        offered = float(cfg.rate)
        tasks = [asyncio.create_task(senders_rate(cfg, pairs, offered / P, first_send, lagmax))]
    await asyncio.gather(*tasks)
    total = P * cfg.messages
    # drain: until everything arrived or no progress for drain_timeout
    last_total, last_change = -1, time.perf_counter()
    while True:
        got = sum(p.recv for p in pairs)
        if got >= sum(p.sent for p in pairs):
            break
        if got != last_total:
            last_total, last_change = got, time.perf_counter()
        elif time.perf_counter() - last_change > cfg.drain_timeout:
            break
        await asyncio.sleep(0.01)
    b = sampler.snap()
    d = procstat.Sampler.delta(a, b)
    sent = sum(p.sent for p in pairs)
    recv = sum(p.recv for p in pairs)
    last_recv = max(p.last_recv_ns for p in pairs)
    elapsed = (last_recv - first_send[0]) / 1e9 if recv and first_send[0] else None
    lats = []
    for p in pairs:
        lats += p.lat
    out = {
        "scenario": "messages", "pairs": P, "messages_per_pair": cfg.messages,
        "rate": cfg.rate, "window": cfg.window, "body_size": cfg.body_size,
        "sent": sent, "received": recv, "expected": total, "capped": sent < total,
        "lost": sent - recv, "loss_pct": round(100 * (sent - recv) / sent, 3) if sent else None,
        "out_of_order": sum(p.ooo for p in pairs),
        "bounced": sum(p.bounced for p in pairs),
        "elapsed_s": round(elapsed, 3) if elapsed else None,
        "msgs_per_s": round(recv / elapsed, 1) if elapsed else None,
        "setup_s": round(setup_s, 3),
        **lat_stats(lats), **d,
    }
    if offered is not None:
        out["offered_rate"] = offered
        out["max_send_lag_ms"] = round(lagmax[0] / 1e6, 3)
    if "server_cpu_s" in d and recv:
        out["server_cpu_s_per_1000"] = round(1000 * d["server_cpu_s"] / recv, 4)
    await close_all(conns.values())
    return out

