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
import base64
import copy
import hashlib
import hmac
import json
import os
import resource
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procstat  # noqa: E402

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
CLOSE = b"</stream:stream>"
BODY_MARK = b"<body>B:"
BODY_END = b"</body>"


class XMPPError(Exception):
    pass


# --------------------------------------------------------------------------
# byte-level scanning helpers

def find_element(buf, names):
    """Find the first complete element among ``names`` (bytes tag names such
    as b'success' or b'stream:features') in ``buf``.

    Returns (end_offset, (name, open_tag, inner_bytes)) or None if no such
    element is complete yet.  Raises XMPPError on a stream error/close."""
    best = None
    for nm in names:
        start = 0
        while True:
            i = buf.find(b"<" + nm, start)
            if i < 0:
                break
            nxt = buf[i + 1 + len(nm):i + 2 + len(nm)]
            if nxt in (b" ", b">", b"/", b"\t", b"\n", b"\r"):
                if best is None or i < best[0]:
                    best = (i, nm)
                break
            start = i + 1
    if best is None:
        if b"<stream:error" in buf or CLOSE in buf:
            raise XMPPError("stream error/close: " + bytes(buf[-400:]).decode("utf-8", "replace"))
        return None
    i, nm = best
    j = buf.find(b">", i)
    if j < 0:
        return None
    open_tag = bytes(buf[i:j + 1])
    if buf[j - 1:j] == b"/":
        return j + 1, (nm, open_tag, b"")
    close = b"</" + nm + b">"
    k = buf.find(close, j)
    if k < 0:
        return None
    return k + len(close), (nm, open_tag, bytes(buf[j + 1:k]))


def attr(open_tag: bytes, name: bytes) -> bytes | None:
    for q in (b"'", b'"'):
        key = b" " + name + b"=" + q
        i = open_tag.find(key)
        if i >= 0:
            i += len(key)
            return open_tag[i:open_tag.index(q, i)]
    return None


# --------------------------------------------------------------------------
# SCRAM-SHA-1 client (RFC 5802), without channel binding ("n,,")

_salted_cache: dict[tuple, bytes] = {}


def _h(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha1).digest()


def _saslname(user: str) -> str:
    return user.replace("=", "=3D").replace(",", "=2C")


class ScramSha1:
    name = "SCRAM-SHA-1"

    def __init__(self, user: str, password: str):
        self.password = password.encode()
        self.cnonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={_saslname(user)},r={self.cnonce}"
        self.server_sig = None

    def initial(self) -> bytes:
        return ("n,," + self.first_bare).encode()

    def respond(self, server_first: bytes) -> bytes:
        sf = server_first.decode()
        parts = dict(p.split("=", 1) for p in sf.split(","))
        nonce, salt, it = parts["r"], base64.b64decode(parts["s"]), int(parts["i"])
        if not nonce.startswith(self.cnonce):
            raise XMPPError("SCRAM: server nonce does not extend ours")
        # Real clients cache SaltedPassword too; without the cache the
        # client's PBKDF2 (10,000 iterations on Prosody) would dominate the
        # cost of a login on the *client* side.
        ck = (self.password, salt, it)
        salted = _salted_cache.get(ck)
        if salted is None:
            salted = hashlib.pbkdf2_hmac("sha1", self.password, salt, it)
            _salted_cache[ck] = salted
        client_key = _h(salted, b"Client Key")
        stored_key = hashlib.sha1(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_msg = f"{self.first_bare},{sf},{without_proof}".encode()
        sig = _h(stored_key, auth_msg)
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.server_sig = _h(_h(salted, b"Server Key"), auth_msg)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes):
        sf = server_final.decode()
        if not sf.startswith("v="):
            raise XMPPError("SCRAM: bad server-final " + sf)
        if base64.b64decode(sf[2:]) != self.server_sig:
            raise XMPPError("SCRAM: server signature mismatch")


class Plain:
    name = "PLAIN"

    def __init__(self, user: str, password: str):
        self.user, self.password = user, password

    def initial(self) -> bytes:
        return f"\0{self.user}\0{self.password}".encode()

    def respond(self, challenge: bytes) -> bytes:
        raise XMPPError("PLAIN: unexpected challenge")

    def verify(self, server_final: bytes):
        pass


MECHS = {"SCRAM-SHA-1": ScramSha1, "PLAIN": Plain}


# --------------------------------------------------------------------------
# connection

class Conn(asyncio.Protocol):
    """One client connection.  During setup ``wait()`` resolves predicates
    over the receive buffer; afterwards ``on_data`` gets raw chunks."""

    def __init__(self):
        self.transport = None
        self.buf = bytearray()
        self.pred = None
        self.fut = None
        self.on_data = None
        self.lost = False
        self.lost_exc = None
        self.closed_evt = asyncio.Event()
        self.paused = False
        self.resume_evt = asyncio.Event()
        self.resume_evt.set()

    # asyncio callbacks
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        od = self.on_data
        if od is not None:
            od(data)
            return
        self.buf += data
        self._check()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.lost = True
        self.lost_exc = exc
        self.closed_evt.set()
        self.resume_evt.set()
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(XMPPError(f"connection lost ({exc!r}); got: "
                                             + bytes(self.buf[-300:]).decode("utf-8", "replace")))

    def pause_writing(self):
        self.paused = True
        self.resume_evt.clear()

    def resume_writing(self):
        self.paused = False
        self.resume_evt.set()

    # setup helpers
    def _check(self):
        if self.pred is None or self.fut is None or self.fut.done():
            return
        try:
            r = self.pred(self.buf)
        except Exception as e:  # noqa: BLE001
            self.fut.set_exception(e)
            return
        if r is not None:
            n, val = r
            del self.buf[:n]
            self.pred = None
            self.fut.set_result(val)

    async def wait(self, pred, timeout: float):
        if self.lost:
            raise XMPPError(f"connection lost ({self.lost_exc!r})")
        self.fut = asyncio.get_running_loop().create_future()
        self.pred = pred
        self._check()
        try:
            return await asyncio.wait_for(self.fut, timeout)
        except asyncio.TimeoutError:
            raise XMPPError("timeout waiting; got: " + bytes(self.buf[-300:]).decode("utf-8", "replace")) from None
        finally:
            self.fut = None

    async def element(self, names, timeout):
        return await self.wait(lambda b: find_element(b, names), timeout)

    def write(self, data: bytes):
        self.transport.write(data)

    def write_units(self, units):
        self.transport.write(b"".join(units))

    async def close(self, timeout: float = 2.0):
        """Polite close: </stream:stream>, wait for the server to close."""
        if self.lost:
            return
        self.on_data = _discard
        try:
            self.transport.write(CLOSE)
            self.transport.close()
            await asyncio.wait_for(self.closed_evt.wait(), timeout)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001
            pass
        if not self.lost:
            self.transport.abort()


def _discard(_data):
    pass


FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One masked client frame (RFC 6455 §5.2) with the all-zero masking key."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class WsConn(Conn):
    """RFC 7395 over RFC 6455: frames in, the byte scanners of Conn on their payloads."""

    def __init__(self):
        super().__init__()
        self.raw = bytearray()
        self.handshake = asyncio.get_event_loop().create_future()

    def data_received(self, data):
        raw = self.raw
        raw += data
        if not self.handshake.done():
            i = raw.find(b"\r\n\r\n")
            if i < 0:
                return
            self.handshake.set_result(bytes(raw[:i]))
            del raw[:i + 4]
        out = []
        pos, n = 0, len(raw)
        while n - pos >= 2:
            ln, hl = raw[pos + 1] & 0x7F, 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln, hl = int.from_bytes(raw[pos + 2:pos + 4], "big"), 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, hl = int.from_bytes(raw[pos + 2:pos + 10], "big"), 10
            if n - pos < hl + ln:
                break
            op = raw[pos] & 0x0F
            if op in (0, 1):
                out.append(bytes(raw[pos + hl:pos + hl + ln]))
            elif op == 9:                               # ping -> pong
                self.transport.write(ws_frame(bytes(raw[pos + hl:pos + hl + ln]), 0xA))
            pos += hl + ln
        del raw[:pos]
        if out:
            super().data_received(b"".join(out))

    def write(self, data: bytes):
        self.transport.write(ws_frame(data))

    def write_units(self, units):
        self.transport.write(b"".join([ws_frame(u) for u in units]))

    async def close(self, timeout: float = 2.0):
        if self.lost:
            return
        self.on_data = _discard
        try:
            self.transport.write(ws_frame(f"<close xmlns='{FRAMING}'/>".encode()))
            await asyncio.wait_for(self.closed_evt.wait(), timeout)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001
            pass
        if not self.lost:
            self.transport.abort()


async def ws_connect(cfg):
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(loop.create_connection(WsConn, cfg.host, cfg.port),
                                     cfg.timeout)
    key = base64.b64encode(os.urandom(16))
    conn.transport.write(b"GET " + cfg.ws_path.encode() + b" HTTP/1.1\r\nHost: "
                         + cfg.server.encode() + b"\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                         b"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n")
    head = await asyncio.wait_for(conn.handshake, cfg.timeout)
    if not head.startswith(b"HTTP/1.1 101"):
        conn.transport.abort()
        raise XMPPError(f"WebSocket upgrade refused: {head[:200]!r}")
    return conn


_background: set = set()


def background(coro):
    """create_task that keeps a strong reference until the task is done."""
    t = asyncio.get_running_loop().create_task(coro)
    _background.add(t)
    t.add_done_callback(_background.discard)
    return t


def make_sslctx() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False          # servers use self-signed certs
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def stream_header(domain: str) -> bytes:
    return (f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' "
            f"version='1.0'>").encode()


async def login(cfg, user: str, password: str, resource_: str, presence: bool) -> Conn:
    """Full login; returns a bound (and optionally available) Conn."""
    loop = asyncio.get_running_loop()
    to = cfg.timeout
    ws = cfg.transport == "websocket"
    if ws:
        conn = await ws_connect(cfg)
    else:
        _, conn = await asyncio.wait_for(
            loop.create_connection(Conn, cfg.host, cfg.port), to)
    try:
        header = (f"<open xmlns='{FRAMING}' to='{cfg.domain}' version='1.0'/>".encode()
                  if ws else stream_header(cfg.domain))
        conn.write(header)
        _, _, feats = await conn.element([b"stream:features"], to)
        if cfg.tls:
            if b"<starttls" not in feats:
                raise XMPPError("server does not offer STARTTLS")
            conn.write(STARTTLS)
            nm, _, _ = await conn.element([b"proceed", b"failure"], to)
            if nm != b"proceed":
                raise XMPPError("STARTTLS refused")
            if conn.buf:
                raise XMPPError("unexpected data after <proceed/>")
            tls_tr = await asyncio.wait_for(loop.start_tls(
                conn.transport, conn, cfg.sslctx, server_hostname=cfg.domain), to)
            conn.transport = tls_tr
            conn.write(header)
            _, _, feats = await conn.element([b"stream:features"], to)

        mech = MECHS[cfg.mech](user, password)
        if f">{mech.name}<".encode() not in feats:
            raise XMPPError(f"server does not offer {mech.name}: {feats[:300]!r}")
        conn.write(f"<auth xmlns='{NS_SASL}' mechanism='{mech.name}'>".encode()
                   + base64.b64encode(mech.initial()) + b"</auth>")
        names = [b"success", b"failure", b"challenge"]
        while True:
            nm, _, inner = await conn.element(names, to)
            payload = base64.b64decode(inner.strip()) if inner.strip() not in (b"", b"=") else b""
            if nm == b"challenge":
                if mech.server_sig is None:
                    conn.write(f"<response xmlns='{NS_SASL}'>".encode()
                               + base64.b64encode(mech.respond(payload)) + b"</response>")
                else:  # server-final delivered as a challenge
                    mech.verify(payload)
                    conn.write(f"<response xmlns='{NS_SASL}'/>".encode())
                continue
            if nm == b"failure":
                raise XMPPError(f"SASL failure for {user}: {inner[:200]!r}")
            if payload:
                mech.verify(payload)
            break

        conn.write(header)
        _, _, feats = await conn.element([b"stream:features"], to)
        conn.write(b"<iq" + cfg.client_ns + b" type='set' id='bind1'>"
                   b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                   b"<resource>" + resource_.encode() + b"</resource></bind></iq>")
        _, open_tag, inner = await conn.element([b"iq"], to)
        if attr(open_tag, b"type") != b"result":
            raise XMPPError(f"bind failed: {open_tag + inner!r}")
        # RFC 3921 session establishment, only if the server says it is
        # not optional (all three servers mark it optional today).
        si = feats.find(b"urn:ietf:params:xml:ns:xmpp-session")
        if si >= 0 and b"<optional" not in feats[si:feats.find(b"</session>", si) + 1 or None]:
            conn.write(b"<iq" + cfg.client_ns + b" type='set' id='sess1'><session "
                       b"xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
            _, open_tag, inner = await conn.element([b"iq"], to)
            if attr(open_tag, b"type") != b"result":
                raise XMPPError(f"session failed: {open_tag + inner!r}")
        if presence:
            conn.write(b"<presence" + cfg.client_ns + b"/>")
        conn.buf.clear()
        return conn
    except BaseException:
        if conn.transport is not None and not conn.lost:
            conn.transport.abort()
        raise


def creds(cfg, i: int) -> tuple[str, str]:
    return f"{cfg.user_prefix}{i}", f"{cfg.password_prefix}{i}"


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def lat_stats(ns_values, prefix="latency_ms"):
    v = sorted(ns_values)
    out = {}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        x = pct(v, p)
        out[f"{prefix}_{name}"] = round(x / 1e6, 3) if x is not None else None
    return out


async def login_many(cfg, indices, concurrency, presence, resource_="r", errors=None, keep=True):
    """Log in ``indices`` with bounded concurrency.  Returns list of
    (index, Conn|None, latency_ns)."""
    sem = asyncio.Semaphore(concurrency)
    errors = errors if errors is not None else []

    async def one(i):
        u, p = creds(cfg, i)
        async with sem:
            t0 = time.perf_counter_ns()
            try:
                c = await login(cfg, u, p, resource_, presence)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{u}: {e}")
                return i, None, None
            lat = time.perf_counter_ns() - t0
        if not keep:
            background(c.close())
            return i, None, lat
        c.on_data = _discard
        return i, c, lat

    return await asyncio.gather(*(one(i) for i in indices))


async def close_all(conns):
    await asyncio.gather(*(c.close() for c in conns if c is not None), return_exceptions=True)


async def settle_closes():
    """Let background close tasks finish (they are not part of a measurement)."""
    if _background:
        await asyncio.wait(list(_background), timeout=5)


# --------------------------------------------------------------------------
# scenarios

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
    while pair.sent < m:
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
        "sent": sent, "received": recv, "expected": total,
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


async def run_idle(cfg):
    idx = list(range(cfg.start, cfg.start + cfg.connections))
    if cfg.warmup:
        errs = []
        await login_many(cfg, idx[:cfg.warmup], cfg.concurrency, cfg.presence,
                         errors=errs, keep=False)
        await settle_closes()
        await asyncio.sleep(1)
    base_rss = procstat.rss_kib(cfg.server_pid) if cfg.server_pid else None
    t0 = time.perf_counter()
    errors = []
    res = await login_many(cfg, idx, cfg.concurrency, cfg.presence, errors=errors)
    conns = [c for _, c, _ in res if c is not None]
    connect_s = time.perf_counter() - t0
    print(json.dumps({"event": "ready", "connections": len(conns)}), file=sys.stderr, flush=True)
    await asyncio.sleep(min(cfg.settle, cfg.hold))
    rss1 = procstat.rss_kib(cfg.server_pid) if cfg.server_pid else None
    await asyncio.sleep(max(0, cfg.hold - cfg.settle))
    alive = sum(1 for c in conns if not c.lost)
    rss2 = procstat.rss_kib(cfg.server_pid) if cfg.server_pid else None
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
    ms.add_argument("--no-presence", dest="presence", action="store_false")
    ms.add_argument("--receiver-server", default="",
                    help="host:port where the receivers log in (default: --server); a cluster "
                         "benchmark puts senders and receivers on different nodes")

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
    fn = {"logins": run_logins, "messages": run_messages, "idle": run_idle}[cfg.scenario]
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
