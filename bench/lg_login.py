"""Logging in many raw clients: STARTTLS, SASL, bind, presence (bench/loadgen.py)."""
from __future__ import annotations

import asyncio
import base64
import time

from lg_wire import (NS_SASL, STARTTLS, MECHS, Conn, XMPPError, attr, background, _background,
                     _discard, stream_header)
from lg_ws import FRAMING, ws_connect

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


