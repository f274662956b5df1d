# tests: tests/cluster/test_transport.py
"""Inter-node delivery: a Redis Stream per node, read with a consumer group, acknowledged only
once what it carried was handled (DESIGN.md "the delivery promise": another node).

- `send(node, item, reply=True)` queues an item for `node`; items for one node are written
  together, one XADD per node per reactor turn, on `<prefix>{node:<name>}:in`. An item is a
  JSON list `[kind, request id, args...]`; with a request id, the receiver answers with the
  result once the item is handled, and `send` returns a Deferred firing with that result.
- The receiver reads with XREADGROUP (group `xmppd`, consumer = the node; first its own
  pending entries, left by a previous run of the same node), hands each item to `handle`, and
  XACKs + XDELs an entry once every item in it is handled (delivered to a local session, or
  stored). Answers travel the same way (kind "r"), grouped per origin node.
- A sender that cannot write (Redis unreachable) or hears nothing back within `reply_timeout`
  hands the item to `fallback` (stanzas go to offline storage here: PostgreSQL is shared):
  what a client was acknowledged for is never lost; a late answer after a fallback is ignored
  (the stanza may then arrive twice; clients dedupe by stanza-id).
- `claim(node)`: the leader takes over a dead node's stream — its pending entries (XAUTOCLAIM)
  and those never read — handles them as their receiver would have (`handle` finds no session
  there: offline storage), answers their senders, and empties the stream.
"""
from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Any, Callable

from twisted.internet import defer, task

from xmppd.cluster.redis import Connection, RedisClient
from xmppd.cluster.resp import ConnectionLost, ReplyError

log = logging.getLogger(__name__)
GROUP = "xmppd"
Item = list[Any]
Handler = Callable[[str, Item], "defer.Deferred[Any] | Any"]


class Transport:
    def __init__(self, redis: RedisClient, reactor: Any, prefix: str, node: str, *,
                 handle: Handler, fallback: Callable[[str, Item], Any],
                 reply_timeout: float = 30.0, batch: int = 500) -> None:
        self.redis = redis
        self.reactor = reactor
        self.prefix = prefix
        self.node = node
        self.handle = handle
        self.fallback = fallback
        self.reply_timeout = reply_timeout
        self.batch = batch
        self.key = self.stream_key(node)
        self._out: dict[str, list[Item]] = {}
        self._acks: dict[str, list[bytes]] = {}      # stream key -> entry ids to XACK + XDEL
        self._flush_call: Any = None
        self._next_id = 0
        self._waiting: OrderedDict[int, tuple[defer.Deferred[Any], float, str, Item]] = \
            OrderedDict()
        self._reader: Connection | None = None
        self._running = False
        self._sweeper: task.LoopingCall | None = None
        self.stopped: defer.Deferred[None] = defer.Deferred()
        self.sent_entries = 0       # XADDs written (bench/: what Redis carries per message)
        self.read_entries = 0

    def stream_key(self, node: str) -> str:
        return f"{self.prefix}{{node:{node}}}:in"

    # -- sending -----------------------------------------------------------------------------
    def send(self, node: str, item: Item, reply: bool = True) -> defer.Deferred[Any] | None:
        """Queue `item` (`[kind, 0, args...]`) for `node`; with `reply`, a Deferred of its
        answer (or of `fallback`'s result if none comes)."""
        d: defer.Deferred[Any] | None = None
        if not self._running and self._reader is None and self.stopped.called:
            result = self.fallback(node, item)  # stopped: what we can, here, quietly
            return result if isinstance(result, defer.Deferred) else (
                defer.succeed(None) if reply else None)
        if reply:
            self._next_id += 1
            item[1] = self._next_id
            d = defer.Deferred()
            self._waiting[self._next_id] = (d, self.reactor.seconds(), node, item)
        self._out.setdefault(node, []).append(item)
        self._schedule()
        return d

    def _schedule(self) -> None:
        if self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self._flush)

    def _flush(self) -> list[defer.Deferred[Any]]:
        self._flush_call = None
        out, self._out = self._out, {}
        acks, self._acks = self._acks, {}
        commands: list[tuple[Any, ...]] = []
        batches: list[tuple[str, list[Item]]] = []
        for node, items in out.items():
            body = json.dumps({"o": self.node, "m": items}, separators=(",", ":"))
            commands.append(("XADD", self.stream_key(node), "*", "m", body))
            batches.append((node, items))
        for key, ids in acks.items():
            commands.append(("XACK", key, GROUP, *ids))
            commands.append(("XDEL", key, *ids))
        if not commands:
            return []
        self.sent_entries += len(batches)
        results = self.redis.pipeline(commands)
        for (node, items), d in zip(batches, results):
            d.addErrback(self._not_sent, node, items)
        for d in results[len(batches):]:
            d.addErrback(lambda f: log.warning("XACK/XDEL failed: %s", f.value))
        return results

    def _not_sent(self, failure: Any, node: str, items: list[Item]) -> None:
        log.warning("cannot reach node %s through Redis (%s): %d items fall back", node,
                    failure.value, len(items))
        for item in items:
            self._give_up(item[1], node, item)

    def _give_up(self, rid: int, node: str, item: Item) -> None:
        entry = self._waiting.pop(rid, None) if rid else None
        try:
            result = self.fallback(node, item)
        except Exception:
            log.exception("fallback failed for an item for %s", node)
            result = None
        if entry is None:
            return
        d = entry[0]
        if isinstance(result, defer.Deferred):
            result.addBoth(lambda r: None if d.called else d.callback(None))
        elif not d.called:
            d.callback(None)

    def _sweep(self) -> None:
        """Answers overdue: the receiver is gone and nobody claimed its stream in time."""
        limit = self.reactor.seconds() - self.reply_timeout
        while self._waiting:
            rid, (d, at, node, item) = next(iter(self._waiting.items()))
            if at > limit:
                break
            log.warning("no answer from node %s within %.0f s: handled here instead", node,
                        self.reply_timeout)
            self._give_up(rid, node, item)

    # -- receiving ---------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.redis.execute("XGROUP", "CREATE", self.key, GROUP, "0", "MKSTREAM")
        except ReplyError as e:
            if e.kind != "BUSYGROUP":
                raise
        self._reader = self.redis.dedicated(self.key)
        await self._reader.start()
        self._running = True
        self._sweeper = task.LoopingCall(self._sweep)
        self._sweeper.clock = self.reactor
        self._sweeper.start(1.0, now=False)
        defer.Deferred.fromCoroutine(self._read_loop()).addBoth(self._loop_ended)

    def _loop_ended(self, result: Any) -> None:
        if not self.stopped.called:
            self.stopped.callback(None)
        if isinstance(result, Exception) or hasattr(result, "value"):
            log.error("cluster stream reader stopped: %s", getattr(result, "value", result))

    async def _read_loop(self) -> None:
        start = "0"             # first what a previous run of this node left unacknowledged
        while self._running:
            reader = self._reader
            assert reader is not None
            try:
                reply: Any = await reader.execute(
                    "XREADGROUP", "GROUP", GROUP, self.node, "COUNT", self.batch,
                    *(("BLOCK", 1000) if start == ">" else ()), "STREAMS", self.key, start)
            except ConnectionLost:
                if not self._running:
                    return
                await reader.start()
                continue
            except ReplyError as e:
                if e.kind == "NOGROUP":         # the stream was deleted (a cleanup raced us)
                    await self.redis.execute("XGROUP", "CREATE", self.key, GROUP, "0",
                                             "MKSTREAM")
                    continue
                raise
            entries = reply[0][1] if reply else []
            if start != ">":                        # paging through what was pending
                if not entries:                     # done (not only when none was): new ones
                    start = ">"
                    continue
                start = entries[-1][0].decode()
            self.read_entries += len(entries)
            self._process(self.key, entries)

    def _process(self, key: str, entries: list[Any]) -> None:
        for entry_id, fields in entries:
            if not fields:
                self._ack(key, entry_id)        # deleted meanwhile
                continue
            try:
                body = json.loads(fields[fields.index(b"m") + 1])
                origin, items = body["o"], body["m"]
            except (ValueError, KeyError, TypeError):
                log.error("unreadable cluster entry %s on %s", entry_id, key)
                self._ack(key, entry_id)
                continue
            waits: list[defer.Deferred[Any]] = []
            answers: list[list[Any]] = []
            for item in items:
                if item[0] == "r":
                    self._answered(item[2])
                    continue
                try:
                    result = self.handle(origin, item)
                except Exception:
                    log.exception("cluster item %s from %s failed", item[0], origin)
                    result = None
                rid = item[1]
                if isinstance(result, defer.Deferred):
                    waits.append(result.addCallbacks(
                        self._answer_later, self._failed_item,
                        callbackArgs=(origin, rid), errbackArgs=(origin, rid, item[0])))
                elif rid:
                    answers.append([rid, result])
            if answers:
                self.send(origin, ["r", 0, answers], reply=False)
            if waits:
                defer.DeferredList(waits).addCallback(self._acked_after, key, entry_id)
            else:
                self._ack(key, entry_id)

    def _answer_later(self, result: Any, origin: str, rid: int) -> None:
        if rid:
            self.send(origin, ["r", 0, [[rid, result]]], reply=False)

    def _failed_item(self, failure: Any, origin: str, rid: int, kind: str) -> None:
        log.error("cluster item %s from %s failed: %s", kind, origin, failure.value)
        if rid:
            self.send(origin, ["r", 0, [[rid, None]]], reply=False)

    def _answered(self, answers: list[list[Any]]) -> None:
        for rid, result in answers:
            entry = self._waiting.pop(rid, None)
            if entry is not None and not entry[0].called:
                entry[0].callback(result)

    def _acked_after(self, _: object, key: str, entry_id: bytes) -> None:
        self._ack(key, entry_id)

    def _ack(self, key: str, entry_id: bytes) -> None:
        self._acks.setdefault(key, []).append(entry_id)
        self._schedule()

    # -- a dead node's stream ----------------------------------------------------------------
    async def claim(self, node: str) -> bool:
        """Handle what `node` left in its stream; True once the stream is empty."""
        key = self.stream_key(node)
        try:        # entries written before the node ever read are there too
            await self.redis.execute("XGROUP", "CREATE", key, GROUP, "0", "MKSTREAM")
        except ReplyError as e:
            if e.kind != "BUSYGROUP":
                raise
        cursor = "0-0"
        while True:
            reply: Any = await self.redis.execute("XAUTOCLAIM", key, GROUP, self.node, 0,
                                                  cursor, "COUNT", self.batch)
            cursor = reply[0].decode()
            if reply[1]:
                self._process(key, reply[1])
            if cursor == "0-0":
                break
        while True:
            reply = await self.redis.execute("XREADGROUP", "GROUP", GROUP, self.node, "COUNT",
                                             self.batch, "STREAMS", key, ">")
            entries = reply[0][1] if reply else []
            if not entries:
                break
            self._process(key, entries)
        return True

    # -- stopping ----------------------------------------------------------------------------
    def stop(self) -> list[defer.Deferred[Any]]:
        """Stop reading; what is queued is written now (its Deferreds, which never fail)."""
        self._running = False
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        if self._reader is not None:
            self.redis.release(self._reader)
            self._reader = None
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
            return self._flush()
        return []

    @property
    def waiting(self) -> int:
        return len(self._waiting)
