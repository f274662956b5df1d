"""The muc scenario of bench/loadgen.py (and bench/muc_bench.py): one room, every occupant
logged in, some of them sending; deliveries counted per occupant, server CPU per delivery."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import procstat
from lg_login import close_all, lat_stats, login_many
from lg_wire import Conn, XMPPError, _discard

MUC = "http://jabber.org/protocol/muc"
OWNER = MUC + "#owner"
# The room archive switch by its names: ours and Prosody's (enablelogging / enablearchiving),
# ejabberd's (mam).  Which a server is sent is --room-fields (a server may refuse a form with
# a field it does not know).
ARCHIVE_FIELDS = {"logging": "muc#roomconfig_enablelogging",
                  "archiving": "muc#roomconfig_enablearchiving", "mam": "mam"}


def room_form(archive: bool, names: str) -> str:
    """The muc#roomconfig fields submitted when the room is created: persistent and archived
    when ``archive``, else temporary without archive."""
    on = "1" if archive else "0"
    out = ("<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value>"
           f"</field><field var='muc#roomconfig_persistentroom'><value>{on}</value></field>")
    for n in (x for x in names.split(",") if x):
        out += f"<field var='{ARCHIVE_FIELDS[n]}'><value>{on}</value></field>"
    return out


class Occupant:
    """Counts groupchat deliveries in the raw byte stream (no XML parsing: a body marker)."""

    MARK = b"</body>"

    def __init__(self, index: int, conn: Conn) -> None:
        self.index = index
        self.conn = conn
        self.tail = b""
        self.received = 0
        self.own = 0                 # own messages reflected back (the sender's window)
        self.own_mark = f"<body>{index:04d}|".encode()
        self.waiter: asyncio.Future[None] | None = None
        self.sent_at: dict[int, int] | None = None
        self.latencies: list[int] = []
        self.last_ns = 0

    def feed(self, data: bytes) -> None:
        # The tail of the previous chunk is kept so a marker split between two reads is
        # found; what lay wholly inside it was counted then and is skipped now.
        keep = len(self.tail)
        chunk = self.tail + data
        n = _count(chunk, self.MARK, keep)
        if n:
            now = time.perf_counter_ns()
            self.received += n
            self.last_ns = now
            start = max(0, keep - 17)
            while True:           # "<body>SSSS|NNNNNN|..." -> latency per delivery
                i = chunk.find(b"<body>", start)
                if i < 0 or i + 18 > len(chunk):
                    break
                try:
                    sender, seq = int(chunk[i + 6:i + 10]), int(chunk[i + 11:i + 17])
                except ValueError:
                    start = i + 6
                    continue
                t0 = SENT.get((sender, seq))
                if t0 is not None:
                    self.latencies.append(now - t0)
                start = i + 6
        mine = _count(chunk, self.own_mark, keep)
        if mine:
            self.own += mine
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)
        self.tail = chunk[-24:]


def _count(chunk: bytes, needle: bytes, keep: int) -> int:
    """Occurrences of `needle` in `chunk` that end after its first `keep` bytes."""
    n, i = 0, max(0, keep - len(needle) + 1)
    while (i := chunk.find(needle, i)) >= 0:
        n += 1
        i += len(needle)
    return n


SENT: dict[tuple[int, int], int] = {}


async def wait_bytes(conn: Conn, needle: bytes, timeout: float = 30) -> None:
    def found(buf: bytearray) -> tuple[int, None] | None:
        i = buf.find(needle)
        return None if i < 0 else (i + len(needle), None)
    await conn.wait(found, timeout)


async def settle(conns: list[Conn], tag: str, domain: str) -> None:
    """A ping per connection: everything the server sent before the answer has arrived."""
    async def one(k: int, c: Conn) -> None:
        c.on_data = None
        c.buf.clear()
        c.write(f"<iq type='get' id='{tag}-{k}-' to='{domain}'><ping xmlns='urn:xmpp:ping'/>"
                f"</iq>".encode())
        await wait_bytes(c, f"{tag}-{k}-".encode())
        c.on_data = _discard
    await asyncio.gather(*(one(k, c) for k, c in enumerate(conns)))


async def run_room(cfg: SimpleNamespace) -> dict[str, Any]:
    errors: list[str] = []
    res = await login_many(cfg, list(range(cfg.start, cfg.start + cfg.occupants)),
                           cfg.concurrency, True, errors=errors)
    conns = [c for _, c, _ in res]
    if errors:
        await close_all(conns)
        raise XMPPError(f"login failed ({len(errors)}): {errors[:3]}")
    owner = conns[0]
    owner.on_data = None
    owner.buf.clear()
    ROOM = cfg.room
    owner.write(f"<presence to='{ROOM}/u1'><x xmlns='{MUC}'/></presence>".encode())
    await wait_bytes(owner, b"</presence>")
    fields = room_form(cfg.archive, cfg.room_fields)
    owner.write(f"<iq type='set' id='cfg1' to='{ROOM}'><query xmlns='{OWNER}'>"
                f"<x xmlns='jabber:x:data' type='submit'>{fields}</x></query></iq>".encode())
    await wait_bytes(owner, b"cfg1")
    owner.on_data = _discard
    sem = asyncio.Semaphore(cfg.concurrency)

    async def enter(k: int, c: Conn) -> None:
        async with sem:
            c.on_data = None
            c.buf.clear()
            c.write(f"<presence to='{ROOM}/u{k + 1}'><x xmlns='{MUC}'><history maxchars='0'/>"
                    f"</x></presence>".encode())
            await wait_bytes(c, b"<subject")             # joined: presence, then subject
            c.on_data = _discard
    await asyncio.gather(*(enter(k, c) for k, c in enumerate(conns) if k > 0))
    await settle(conns, "settle", cfg.domain)

    occupants = [Occupant(k + 1, c) for k, c in enumerate(conns)]
    for o in occupants:
        o.conn.on_data = o.feed
    senders = occupants[:cfg.senders]
    SENT.clear()
    filler = "x" * max(0, cfg.body_size - 12)
    sampler = procstat.Sampler(cfg.server_pid)
    before = sampler.snap()
    first = time.perf_counter_ns()

    async def send(o: Occupant) -> None:
        for seq in range(cfg.messages):
            while seq - o.own >= cfg.window:
                o.waiter = asyncio.get_running_loop().create_future()
                await asyncio.wait_for(o.waiter, cfg.timeout)
            SENT[(o.index, seq)] = time.perf_counter_ns()
            o.conn.write(f"<message to='{ROOM}' type='groupchat' id='{o.index}-{seq}'><body>"
                         f"{o.index:04d}|{seq:06d}|{filler}</body></message>".encode())
    await asyncio.gather(*(send(o) for o in senders))
    expected = cfg.senders * cfg.messages * cfg.occupants
    last_total, last_change = -1, time.perf_counter()
    while True:
        total = sum(o.received for o in occupants)
        if total >= expected:
            break
        if total != last_total:
            last_total, last_change = total, time.perf_counter()
        elif time.perf_counter() - last_change > cfg.drain_timeout:
            break
        await asyncio.sleep(0.01)
    after = sampler.snap()
    d = procstat.Sampler.delta(before, after)
    received = sum(o.received for o in occupants)
    elapsed = (max(o.last_ns for o in occupants) - first) / 1e9
    lats = sorted(x for o in occupants for x in o.latencies)
    out: dict[str, Any] = {
        "scenario": "muc", "occupants": cfg.occupants, "senders": cfg.senders,
        "messages_per_sender": cfg.messages, "window": cfg.window, "archive": cfg.archive,
        "expected": expected, "received": received, "lost": expected - received,
        "elapsed_s": round(elapsed, 3),
        "deliveries_per_s": round(received / elapsed, 1) if elapsed > 0 else None,
        **lat_stats(lats), **d}
    if d.get("server_cpu_s") is not None and received:
        out["server_cpu_s_per_1000"] = round(1000 * d["server_cpu_s"] / received, 4)
    await close_all(conns)
    return out
