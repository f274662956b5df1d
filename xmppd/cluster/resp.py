# tests: tests/cluster/test_redis_client.py
"""A Redis connection on the reactor: RESP2 framing, pipelining, pub/sub pushes.

Why not redis-py here: its client blocks, so the server drives it from a thread pool (fine for
the stores' cache, storage/cache.py). Inter-node delivery is on the hot path of every
cross-node message; a thread hop under a busy reactor waits for the GIL (up to its 5 ms switch
interval), so the cluster speaks RESP itself, without threads, with every command pipelined.

- `encode(args)` builds a command; `Parser` turns bytes into replies (bytes, int, list, None,
  `ReplyError` for `-ERR ...` answers), across reads.
- `RespProtocol`: commands are written at once and answered in order (a Deferred each). In
  pub/sub mode (after SUBSCRIBE) pushes go to `on_push(channel, data)`. A lost connection fails
  every command still waiting with `ConnectionLost`.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Union

from twisted.internet import defer, protocol
from twisted.python.failure import Failure

Reply = Union[bytes, int, list[Any], None, "ReplyError"]
Arg = Union[bytes, str, int, float]


class ReplyError(Exception):
    """An error reply (`-ERR ...`, `-MOVED ...`): the text after the dash."""

    @property
    def kind(self) -> str:
        return str(self).split(" ", 1)[0]


class ConnectionLost(Exception):
    """The connection went away before the reply came (the command may or may not have run)."""


def encode(args: tuple[Arg, ...] | list[Arg]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            b = a.encode()
        elif isinstance(a, bytes):
            b = a
        else:
            b = str(a).encode()
        out.append(b"$%d\r\n" % len(b))
        out.append(b)
        out.append(b"\r\n")
    return b"".join(out)


class _Incomplete(Exception):
    pass


_INCOMPLETE = _Incomplete()


class Parser:
    """Incremental RESP2 parser: `feed(data)`, then `replies()` yields what is complete."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def replies(self) -> list[Reply]:
        out: list[Reply] = []
        buf = self._buf
        while self._pos < len(buf):
            try:
                reply, end = self._parse(buf, self._pos)
            except _Incomplete:
                break
            out.append(reply)
            self._pos = end
        if self._pos:
            del buf[:self._pos]
            self._pos = 0
        return out

    def _line(self, buf: bytearray, pos: int) -> tuple[bytes, int]:
        end = buf.find(b"\r\n", pos)
        if end < 0:
            raise _INCOMPLETE
        return bytes(buf[pos:end]), end + 2

    def _parse(self, buf: bytearray, pos: int) -> tuple[Reply, int]:
        kind = buf[pos]
        line, pos = self._line(buf, pos + 1)
        if kind == 0x24:                 # $ bulk string
            n = int(line)
            if n < 0:
                return None, pos
            if len(buf) < pos + n + 2:
                raise _INCOMPLETE
            return bytes(buf[pos:pos + n]), pos + n + 2
        if kind == 0x2a:                 # * array
            n = int(line)
            if n < 0:
                return None, pos
            items: list[Any] = []
            for _ in range(n):
                item, pos = self._parse(buf, pos) if pos < len(buf) else _raise()
                items.append(item)
            return items, pos
        if kind == 0x3a:                 # : integer
            return int(line), pos
        if kind == 0x2b:                 # + simple string
            return line, pos
        if kind == 0x2d:                 # - error
            return ReplyError(line.decode("utf-8", "replace")), pos
        raise ValueError(f"not RESP: {bytes(buf[pos - len(line) - 3:pos])!r}")


def _raise() -> tuple[Reply, int]:
    raise _INCOMPLETE


class RespProtocol(protocol.Protocol):
    """One connection. `execute(*args)` → Deferred of the reply (errback `ReplyError`)."""

    def __init__(self) -> None:
        self._parser = Parser()
        self._waiting: deque[defer.Deferred[Reply]] = deque()
        self.on_push: Callable[[bytes, bytes], None] | None = None
        self.on_lost: Callable[[RespProtocol], None] | None = None
        self.connected_ = False
        self.subscribed = False

    def connectionMade(self) -> None:
        self.connected_ = True

    def execute(self, *args: Arg) -> defer.Deferred[Reply]:
        d: defer.Deferred[Reply] = defer.Deferred()
        if not self.connected_ or self.transport is None:
            d.errback(ConnectionLost("not connected to Redis"))
            return d
        self._waiting.append(d)
        self.transport.write(encode(args))
        return d

    def execute_many(self, commands: list[tuple[Arg, ...]]) -> list[defer.Deferred[Reply]]:
        """Several commands in one write (a pipeline); a Deferred per command."""
        if not self.connected_ or self.transport is None:
            return [defer.fail(ConnectionLost("not connected to Redis")) for _ in commands]
        out = []
        for _ in commands:
            d: defer.Deferred[Reply] = defer.Deferred()
            self._waiting.append(d)
            out.append(d)
        self.transport.write(b"".join(encode(c) for c in commands))
        return out

    def dataReceived(self, data: bytes) -> None:
        self._parser.feed(data)
        try:
            replies = self._parser.replies()
        except ValueError:
            self.transport.loseConnection()         # type: ignore[union-attr]
            return
        for reply in replies:
            if self.subscribed and isinstance(reply, list) and reply and reply[0] == b"message":
                if self.on_push is not None:
                    self.on_push(reply[1], reply[2])
                continue
            if not self._waiting:
                continue                # a (p)subscribe confirmation nobody waits for
            d = self._waiting.popleft()
            if isinstance(reply, ReplyError):
                d.errback(reply)
            else:
                d.callback(reply)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.connected_ = False
        waiting, self._waiting = self._waiting, deque()
        for d in waiting:
            d.errback(ConnectionLost(str(reason.value)))
        if self.on_lost is not None:
            self.on_lost(self)

    def close(self) -> None:
        self.on_lost = None
        if self.transport is not None:
            self.transport.loseConnection()
