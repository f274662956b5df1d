"""The soak benchmark's client (bench/soak_bench.py): one account's life of chatting, dropping
its link and resuming (XEP-0198), and logging out and in, on raw bytes with bench/loadgen.py's
connection, scanners and SASL PLAIN; and the stream scanner that counts its stanzas."""
from __future__ import annotations

import asyncio
import base64
import random
import re
import time
from collections import Counter, deque
from typing import Any

from loadgen import STARTTLS, Conn, Plain, XMPPError, attr, stream_header

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
TAG = re.compile(rb"<(/?)([A-Za-z0-9_:.-]+)")
BODY = re.compile(rb"<body>S:([0-9.]+)</body>")


class Stream:
    """Top-level elements of an XMPP stream from raw chunks (our server escapes '<' and '>' in
    text and attributes, so tags can be found by bytes): `feed()` returns the complete
    children of <stream:stream> as (name, bytes), and ('</stream>', b'') at its end."""

    def __init__(self) -> None:
        self.buf = b""
        self.depth = 0
        self.start = 0
        self.scanned = 0
        self.name = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        buf = self.buf = self.buf + data
        out: list[tuple[bytes, bytes]] = []
        pos = self.scanned
        while True:
            i = buf.find(b"<", pos)
            if i < 0:
                pos = len(buf)
                break
            j = buf.find(b">", i)
            if j < 0:
                pos = i                     # a tag cut in two: scan it again next time
                break
            pos = j + 1
            m = TAG.match(buf, i)
            if m is None:                   # <?xml ...?>
                continue
            closing, name = m.groups()
            if closing:
                self.depth -= 1
                if self.depth == 1:
                    out.append((self.name, buf[self.start:pos]))
                elif self.depth <= 0:
                    out.append((b"</stream>", b""))
            elif name == b"stream:stream":
                self.depth = 1
            elif buf[j - 1:j] == b"/":
                if self.depth == 1:
                    out.append((name, buf[i:pos]))
            else:
                if self.depth == 1:
                    self.start, self.name = i, name
                self.depth += 1
        keep = self.start if self.depth > 1 else pos
        self.buf, self.scanned = buf[keep:], pos - keep
        self.start -= keep
        return out


class Totals:
    def __init__(self) -> None:
        self.sent: set[str] = set()         # ids sent at least once
        self.acked: set[str] = set()
        self.received: Counter[str] = Counter()
        self.resent = self.bounced = self.drops = self.resumes = self.resume_failed = 0
        self.logins = self.logouts = self.errors = self.unacked_at_logout = 0
        self.error_samples: list[str] = []
        self.t0 = time.monotonic()

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 40:
            self.error_samples.append(what[:300])


class Client:
    def __init__(self, bench: Any, idx: int) -> None:
        self.b, self.idx = bench, idx
        self.user = f"soak{idx}"
        self.conn: Conn | None = None
        self.stream = Stream()
        self.smid: bytes | None = None
        self.h_in = 0                       # stanzas handled from the server, this SM session
        self.h_out = 0                      # stanzas sent, this SM session
        self.unacked: deque[tuple[int, str | None]] = deque()
        self.acked_h = 0
        self.ack_evt = asyncio.Event()
        self.counter = 0
        self.closing = False

    # ---- connection set-up (loadgen's Conn, its scanners and SASL PLAIN)
    async def _auth(self) -> Conn:
        cfg, to = self.b.cfg, self.b.cfg.timeout
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(loop.create_connection(Conn, cfg.host, cfg.port), to)
        try:
            conn.write(stream_header(cfg.domain))
            await conn.element([b"stream:features"], to)
            conn.write(STARTTLS)
            await conn.element([b"proceed"], to)
            conn.transport = await asyncio.wait_for(loop.start_tls(
                conn.transport, conn, cfg.sslctx, server_hostname=cfg.domain), to)
            conn.write(stream_header(cfg.domain))
            await conn.element([b"stream:features"], to)
            initial = base64.b64encode(Plain(self.user, f"{self.user}-pw").initial())
            conn.write(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>".encode() + initial
                       + b"</auth>")
            name, _, inner = await conn.element([b"success", b"failure"], to)
            if name != b"success":
                raise XMPPError(f"SASL failure for {self.user}: {inner[:200]!r}")
            conn.write(stream_header(cfg.domain))
            await conn.element([b"stream:features"], to)
            return conn
        except BaseException:
            conn.transport.abort()
            raise

    def _attach(self, conn: Conn) -> None:
        """From now on the connection's bytes go to the stanza loop."""
        self.conn, self.stream = conn, Stream()
        self.stream.depth = 1
        rest = bytes(conn.buf)
        conn.buf.clear()
        conn.on_data = self._data
        if rest:
            self._data(rest)

    async def login(self) -> None:
        conn = await self._auth()
        to = self.b.cfg.timeout
        conn.write(b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                   b"<resource>soak</resource></bind></iq>")
        _, tag, _ = await conn.element([b"iq"], to)
        if attr(tag, b"type") != b"result":
            raise XMPPError(f"bind failed for {self.user}")
        conn.write(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        _, tag, _ = await conn.element([b"enabled"], to)
        self.smid = attr(tag, b"id")
        self.h_in = self.h_out = self.acked_h = 0
        self.unacked.clear()
        self.closing = False
        self._attach(conn)
        self._send(b"<presence/>", None)
        self.b.t.logins += 1

    async def resume(self) -> bool:
        conn = await self._auth()
        conn.write(b"<resume xmlns='urn:xmpp:sm:3' h='%d' previd='%s'/>"
                   % (self.h_in, self.smid or b""))
        name, tag, _ = await conn.element([b"resumed", b"failed"], self.b.cfg.timeout)
        if name == b"failed":
            self.b.t.resume_failed += 1
            self.b.t.error(f"{self.user}: resume failed: {tag!r}")
            conn.transport.abort()
            return False
        h = int(attr(tag, b"h") or b"0")
        self._acked(h)
        pending, self.unacked = list(self.unacked), deque()
        self.h_out = h
        self.closing = False
        self._attach(conn)
        for _, mid in pending:              # XEP-0198 §5: resend what the server did not get
            if mid is not None:
                self.b.t.resent += 1
                self._send(self._message(mid), mid)
        self.b.t.resumes += 1
        return True

    # ---- the stanza loop
    def _data(self, data: bytes) -> None:
        if self.closing:
            return                          # after our </stream>: not handled, not counted
        t = self.b.t
        for name, el in self.stream.feed(data):
            if name in (b"message", b"presence", b"iq"):
                self.h_in += 1
                if name == b"message":
                    m = BODY.search(el)
                    head = el[:el.find(b">")]
                    if b"type='error'" in head or b'type="error"' in head:
                        t.bounced += 1
                        t.error(f"{self.user} got a bounce: {el[:300]!r}")
                    elif m:
                        t.received[m.group(1).decode()] += 1
                elif name == b"iq" and b"urn:xmpp:ping" in el:
                    self._send(b"<iq type='result' id='%s' to='%s'/>"
                               % (attr(el, b"id") or b"", attr(el, b"from") or b""), None)
            elif name == b"r":
                self.conn.write(b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % self.h_in)
            elif name == b"a":
                self._acked(int(attr(el, b"h") or b"0"))
            elif name in (b"</stream>", b"stream:error"):
                t.error(f"{self.user}: server ended the stream: {el[:300]!r}")
                self.conn.transport.abort()

    def _acked(self, h: int) -> None:
        while self.unacked and self.unacked[0][0] <= h:
            _, mid = self.unacked.popleft()
            if mid is not None:
                self.b.t.acked.add(mid)
        self.acked_h = max(self.acked_h, h)
        self.ack_evt.set()

    def _send(self, data: bytes, mid: str | None, cut: bool = False) -> None:
        """Send a stanza (and <r/>); `cut`: only its first half, as a link dying mid-write."""
        self.h_out += 1
        self.unacked.append((self.h_out, mid))
        assert self.conn is not None
        self.conn.write(data[:len(data) // 2] if cut else data + b"<r xmlns='urn:xmpp:sm:3'/>")

    def _message(self, mid: str) -> bytes:
        to = self.b.peer(self.idx)
        return (b"<message type='chat' to='soak%d@localhost' id='%s'><body>S:%s</body>"
                b"</message>" % (to, mid.encode(), mid.encode()))

    def send_one(self, cut: bool = False) -> None:
        self.counter += 1
        mid = f"{self.idx}.{self.counter}"
        self.b.t.sent.add(mid)
        self._send(self._message(mid), mid, cut)

    async def all_acked(self, timeout: float) -> bool:
        """Ask for an ack and wait until everything sent is acked."""
        assert self.conn is not None
        self.conn.write(b"<r xmlns='urn:xmpp:sm:3'/>")
        deadline = time.monotonic() + timeout
        while self.unacked and not self.conn.lost and time.monotonic() < deadline:
            self.ack_evt.clear()
            try:
                await asyncio.wait_for(self.ack_evt.wait(), 1.0)
            except asyncio.TimeoutError:
                self.conn.write(b"<r xmlns='urn:xmpp:sm:3'/>")
        return not self.unacked

    async def logout(self) -> None:
        assert self.conn is not None
        if not await self.all_acked(30):
            self.b.t.unacked_at_logout += len(self.unacked)
            self.b.t.error(f"{self.user}: {len(self.unacked)} unacked after 30 s at logout "
                           f"(sent h {self.h_out}, acked h {self.acked_h}, lost "
                           f"{self.conn.lost}, t {time.monotonic() - self.b.t0:.0f} s)")
        self.conn.write(b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % self.h_in)
        self.closing = True
        await self.conn.close(5.0)
        self.conn = None
        self.b.t.logouts += 1

    def drop(self) -> None:
        assert self.conn is not None
        self.closing = True
        self.conn.transport.abort()
        self.b.t.drops += 1

    async def _again(self, attempt: Any) -> None:
        for i in range(20):
            try:
                return await attempt()
            except (XMPPError, OSError, asyncio.TimeoutError) as e:
                self.b.t.error(f"{self.user}: {type(e).__name__}: {e}")
                await asyncio.sleep(1 + i)
        raise XMPPError(f"{self.user}: gave up reconnecting")

    async def _resume_or_login(self) -> None:
        async def attempt() -> None:
            if not await self.resume():
                await self.login()
        await self._again(attempt)

    async def life(self) -> None:
        b, rnd = self.b, random.Random(self.idx)
        await self._again(self.login)
        next_drop = time.monotonic() + rnd.expovariate(1 / b.args.drop_every)
        next_logout = time.monotonic() + rnd.expovariate(1 / b.args.logout_every)
        while not b.stopping:
            await asyncio.sleep(rnd.expovariate(1 / b.args.interval))
            if b.stopping:
                break
            assert self.conn is not None
            if self.conn.lost:              # the server cut us (or a write failed)
                self.closing = True
                b.t.error(f"{self.user}: connection lost ({self.conn.lost_exc!r})")
                await self._resume_or_login()
                continue
            now = time.monotonic()
            if now >= next_drop:
                if not self.conn.paused:    # in flight when the link goes: whole or cut
                    self.send_one(cut=rnd.random() < 0.5)
                self.drop()
                await asyncio.sleep(rnd.uniform(0.5, 5))
                await self._resume_or_login()
                next_drop = time.monotonic() + rnd.expovariate(1 / b.args.drop_every)
            elif now >= next_logout:
                await self.logout()
                await asyncio.sleep(rnd.uniform(1, 10))
                await self._again(self.login)
                next_logout = time.monotonic() + rnd.expovariate(1 / b.args.logout_every)
            elif not self.conn.paused:
                self.send_one()
        if self.conn is None:
            await self._again(self.login)
        elif self.conn.lost:
            self.closing = True
            await self._resume_or_login()
