# tests: tests/cluster/test_redis_client.py
"""The cluster's Redis client: one Redis, or a Redis Cluster, behind one small API.

- `redis://[:password@]host:port/db`: one server. `redis+cluster://[:password@]host:port`: a
  Redis Cluster reached through any of its nodes; commands go to the master of their key's
  slot (CRC16 of the hash tag, as Redis computes it), `-MOVED`/`-ASK` and lost connections
  refresh the slot map and retry once. Every key the cluster uses carries a hash tag, so no
  command ever spans slots.
- `execute(*args)` → Deferred reply (errback `ReplyError`, `ConnectionLost`); `pipeline`
  writes several commands at once per server. Connections reconnect by themselves (backoff up
  to 2 s); a command sent while one is down fails at once: callers retry or fall back.
- `subscribe(channel, on_message, on_connected)`: a pub/sub connection (on Redis Cluster any
  node hears every PUBLISH) that resubscribes after a reconnect and says so, because messages
  published meanwhile are lost (the mirror resynchronises then).
- `dedicated(key)`: a connection of its own to the server holding `key`, for blocking reads.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable
from urllib.parse import unquote, urlparse

from twisted.internet import defer, protocol
from twisted.internet.interfaces import IDelayedCall

from xmppd.cluster.resp import Arg, ConnectionLost, Reply, ReplyError, RespProtocol

log = logging.getLogger(__name__)
SLOTS = 16384


def _table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_CRC = _table()


def _crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), the one Redis Cluster hashes keys with."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC[((crc >> 8) ^ byte) & 0xFF]
    return crc


@functools.lru_cache(maxsize=65536)
def key_slot(key: bytes | str) -> int:
    """The Redis Cluster slot of `key` (its {hash tag} if it has a non-empty one)."""
    k = key.encode() if isinstance(key, str) else key
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1:end]
    return _crc16(k) % SLOTS


def command_key(args: tuple[Arg, ...]) -> Arg | None:
    """The key a command acts on (None: any server will do, e.g. PUBLISH, PING)."""
    name = str(args[0]).upper() if not isinstance(args[0], bytes) else args[0].decode().upper()
    if name in ("PUBLISH", "PING", "CLUSTER", "INFO", "SCAN", "SCRIPT"):
        return None
    if name in ("XREADGROUP", "XREAD"):
        upper = [str(a).upper() if not isinstance(a, bytes) else a.decode().upper()
                 for a in args]
        return args[upper.index("STREAMS") + 1]
    if name in ("EVAL", "EVALSHA"):
        return args[3] if int(args[2]) > 0 else None
    return args[1] if len(args) > 1 else None


class Connection:
    """A reconnecting connection to one Redis server."""

    def __init__(self, reactor: Any, host: str, port: int, *, password: str | None = None,
                 db: int = 0, name: str = "") -> None:
        self.reactor = reactor
        self.host, self.port = host, port
        self.password, self.db = password, db
        self.name = name or f"{host}:{port}"
        self.proto: RespProtocol | None = None
        self.on_connected: Callable[[RespProtocol], Any] | None = None
        self.on_push: Callable[[bytes, bytes], None] | None = None
        self._closed = False
        self._delay = 0.05
        self._retry: IDelayedCall | None = None
        self._ready: list[defer.Deferred[None]] = []
        self._connecting = False

    @property
    def connected(self) -> bool:
        return self.proto is not None and self.proto.connected_

    def start(self) -> defer.Deferred[None]:
        """Fires once connected (and authenticated); keeps trying until then."""
        d: defer.Deferred[None] = defer.Deferred()
        if self.connected:
            d.callback(None)
            return d
        self._ready.append(d)
        if not self._connecting and self._retry is None:
            self._connect()
        return d

    def _ensure(self) -> None:
        """Connecting, or about to (nobody waits for it here)."""
        if not self._closed and not self._connecting and self._retry is None:
            self._connect()

    def _connect(self) -> None:
        self._retry = None
        if self._closed:
            return
        self._connecting = True
        creator = protocol.ClientCreator(self.reactor, RespProtocol)  # type: ignore[no-untyped-call]
        d = creator.connectTCP(self.host, self.port, timeout=5)  # type: ignore[no-untyped-call]
        d.addCallbacks(self._made, self._failed)

    def _failed(self, failure: Any) -> None:
        self._connecting = False
        if self._closed:
            return
        log.warning("Redis %s: cannot connect: %s", self.name, failure.value)
        self._schedule()

    def _schedule(self) -> None:
        if self._closed or self._retry is not None:
            return
        self._retry = self.reactor.callLater(self._delay, self._connect)
        self._delay = min(2.0, self._delay * 2)

    def _made(self, proto: RespProtocol) -> None:
        self._connecting = False
        if self._closed:
            proto.close()
            return
        proto.on_lost = self._lost
        proto.on_push = self.on_push
        d = defer.Deferred.fromCoroutine(self._handshake(proto))
        d.addErrback(self._handshake_failed, proto)

    async def _handshake(self, proto: RespProtocol) -> None:
        if self.password:
            await proto.execute("AUTH", self.password)
        if self.db:
            await proto.execute("SELECT", self.db)
        self.proto = proto
        self._delay = 0.05
        if self.on_connected is not None:
            result = self.on_connected(proto)
            if isinstance(result, defer.Deferred):
                await result
        ready, self._ready = self._ready, []
        for d in ready:
            if not d.called:        # a waiter may have given up (cancelled)
                d.callback(None)

    def _handshake_failed(self, failure: Any, proto: RespProtocol) -> None:
        log.warning("Redis %s: handshake failed: %s", self.name, failure.value)
        proto.on_lost = None
        proto.close()
        self.proto = None
        self._schedule()

    def _lost(self, proto: RespProtocol) -> None:
        if self.proto is proto:
            self.proto = None
        if not self._closed:
            log.warning("Redis %s: connection lost; reconnecting", self.name)
            self._schedule()

    def execute(self, *args: Arg) -> defer.Deferred[Reply]:
        proto = self.proto
        if proto is None:
            self._ensure()
            return defer.fail(ConnectionLost(f"not connected to Redis {self.name}"))
        return proto.execute(*args)

    def execute_many(self, commands: list[tuple[Arg, ...]]) -> list[defer.Deferred[Reply]]:
        proto = self.proto
        if proto is None:
            self._ensure()
            return [defer.fail(ConnectionLost(f"not connected to Redis {self.name}"))
                    for _ in commands]
        return proto.execute_many(commands)

    def close(self) -> None:
        self._closed = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self.proto is not None:
            self.proto.close()
            self.proto = None
        for d in self._ready:
            if not d.called:
                d.errback(ConnectionLost("closed"))
        self._ready = []


class RedisClient:
    """One Redis server or a Redis Cluster (see the module docstring)."""

    def __init__(self, reactor: Any, url: str) -> None:
        u = urlparse(url)
        if u.scheme not in ("redis", "redis+cluster"):
            raise ValueError(f"unsupported Redis URL {url!r} (redis:// or redis+cluster://)")
        self.reactor = reactor
        self.is_cluster = u.scheme == "redis+cluster"
        self.password = unquote(u.password) if u.password else None
        self.db = int(u.path.strip("/") or 0) if not self.is_cluster else 0
        self.seed = (u.hostname or "127.0.0.1", u.port or 6379)
        self._conns: dict[tuple[str, int], Connection] = {}
        self._slots: list[tuple[str, int]] = []     # slot -> master address (cluster only)
        self._extra: list[Connection] = []          # subscribers and dedicated connections
        self._refreshing: defer.Deferred[None] | None = None

    # -- start and stop ----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect (and, on a Redis Cluster, read the slot map); retries until it works."""
        await self._conn(self.seed).start()
        if self.is_cluster:
            await self.refresh()

    async def refresh(self) -> None:
        """Read the slot map again (after MOVED or a lost master)."""
        if self._refreshing is not None:
            await _wait(self._refreshing)
            return
        d: defer.Deferred[None] = defer.Deferred()
        self._refreshing = d
        try:
            reply: Any = None
            for addr in [self.seed, *self._conns]:
                try:
                    reply = await self._conn(addr).execute("CLUSTER", "SLOTS")
                    break
                except (ConnectionLost, ReplyError):
                    continue
            if reply is None:
                raise ConnectionLost("no Redis Cluster node answers CLUSTER SLOTS")
            slots = list(self._slots) or [self.seed] * SLOTS
            for start, end, master, *_ in reply:
                addr = (master[0].decode() or self.seed[0], int(master[1]))
                for s in range(int(start), int(end) + 1):
                    slots[s] = addr
            self._slots = slots
        finally:
            self._refreshing = None
            d.callback(None)

    def close(self) -> None:
        for c in [*self._conns.values(), *self._extra]:
            c.close()
        self._conns.clear()
        self._extra.clear()

    def _conn(self, addr: tuple[str, int]) -> Connection:
        c = self._conns.get(addr)
        if c is None:
            c = self._conns[addr] = Connection(self.reactor, addr[0], addr[1],
                                               password=self.password, db=self.db)
            c._ensure()
        return c

    def address_of(self, key: Arg | None) -> tuple[str, int]:
        if not self.is_cluster or key is None or not self._slots:
            return self.seed
        return self._slots[key_slot(key if not isinstance(key, (int, float)) else str(key))]

    # -- commands ----------------------------------------------------------------------------
    def execute(self, *args: Arg) -> defer.Deferred[Reply]:
        addr = self.address_of(command_key(args))
        conn = self._conn(addr)
        if conn.connected:
            d = conn.execute(*args)
        else:                       # a master we have not talked to yet, or reconnecting
            d = defer.Deferred.fromCoroutine(self._when_ready(conn, args))
        if self.is_cluster:
            d.addErrback(self._redirect, args)
        return d

    async def _when_ready(self, conn: Connection, args: tuple[Arg, ...],
                          wait: float = 2.0) -> Reply:
        """`args` on `conn` once it is connected, if that takes at most `wait` seconds."""
        ready = conn.start()
        timer = self.reactor.callLater(wait, ready.cancel)
        try:
            await ready
        except defer.CancelledError:
            raise ConnectionLost(f"not connected to Redis {conn.name}") from None
        finally:
            if timer.active():
                timer.cancel()
        return await conn.execute(*args)

    def pipeline(self, commands: list[tuple[Arg, ...]]) -> list[defer.Deferred[Reply]]:
        """Several commands, written together per server; a Deferred per command."""
        if not self.is_cluster:
            return self._conn(self.seed).execute_many(commands)
        groups: dict[tuple[str, int], list[int]] = {}
        for i, c in enumerate(commands):
            groups.setdefault(self.address_of(command_key(c)), []).append(i)
        out: list[defer.Deferred[Reply] | None] = [None] * len(commands)
        for addr, idx in groups.items():
            for i, d in zip(idx, self._conn(addr).execute_many([commands[i] for i in idx])):
                d.addErrback(self._redirect, commands[i])
                out[i] = d
        return [d for d in out if d is not None]

    def _redirect(self, failure: Any, args: tuple[Arg, ...]) -> Any:
        err = failure.value
        if isinstance(err, ReplyError) and err.kind in ("MOVED", "ASK"):
            host, _, port = str(err).split()[2].rpartition(":")
            addr = (host or self.seed[0], int(port))
            if err.kind == "MOVED":
                self.reactor.callLater(0, lambda: defer.ensureDeferred(self.refresh())
                                       .addErrback(lambda f: None))
                return self._conn(addr).execute(*args)
            conn = self._conn(addr)
            conn.execute("ASKING").addErrback(lambda f: None)
            return conn.execute(*args)
        if isinstance(err, ConnectionLost):
            return defer.ensureDeferred(self._retry_after_refresh(args))
        return failure

    async def _retry_after_refresh(self, args: tuple[Arg, ...]) -> Reply:
        await self.refresh()
        return await self._conn(self.address_of(command_key(args))).execute(*args)

    async def scan(self, match: str, count: int = 1000) -> list[bytes]:
        """Every key matching `match`, from every master."""
        masters = sorted(set(self._slots)) if self.is_cluster else [self.seed]
        found: list[bytes] = []
        for addr in masters:
            cursor: Any = b"0"
            while True:
                conn = self._conn(addr)
                reply: Any = await (conn.execute("SCAN", cursor, "MATCH", match, "COUNT", count)
                                    if conn.connected else self._when_ready(
                                        conn, ("SCAN", cursor, "MATCH", match, "COUNT", count)))
                cursor, keys = reply
                found.extend(keys)
                if cursor in (b"0", 0):
                    break
        return found

    # -- special connections -----------------------------------------------------------------
    def subscribe(self, channels: list[str], on_message: Callable[[bytes, bytes], None],
                  on_connected: Callable[[], Any]) -> Connection:
        """A pub/sub connection to `channels`; `on_connected()` after every
        (re)subscription (what was published while it was down is lost)."""
        c = Connection(self.reactor, *self.seed, password=self.password, db=self.db,
                       name=f"{self.seed[0]}:{self.seed[1]} (pub/sub)")
        c.on_push = on_message

        async def subscribed(proto: RespProtocol) -> None:
            proto.subscribed = True
            for channel in channels:
                await proto.execute("SUBSCRIBE", channel)
            result = on_connected()
            if isinstance(result, defer.Deferred):
                await result
        c.on_connected = lambda proto: defer.Deferred.fromCoroutine(subscribed(proto))
        self._extra.append(c)
        c._ensure()
        return c

    def dedicated(self, key: str) -> Connection:
        """A connection of its own to the server of `key` (blocking reads)."""
        host, port = self.address_of(key)
        c = Connection(self.reactor, host, port, password=self.password, db=self.db,
                       name=f"{host}:{port} (blocking)")
        self._extra.append(c)
        c._ensure()
        return c

    def release(self, conn: Connection) -> None:
        conn.close()
        if conn in self._extra:
            self._extra.remove(conn)


async def _wait(d: defer.Deferred[None]) -> None:
    waiter: defer.Deferred[None] = defer.Deferred()

    def done(result: Any) -> Any:
        waiter.callback(None)
        return result
    d.addBoth(done)
    await waiter
