# tests: tests/cluster/test_nodes.py, tests/cluster/test_cluster_nodes.py
"""Which nodes live: heartbeats in a Redis sorted set, read back on the same tick.

- Every `heartbeat` a node runs one script on `<prefix>{cluster}:nodes`: ZADD itself with the
  Redis server's own TIME as score (no clock of ours is compared with another machine's) and
  read every member back with that time. Live = heartbeat within `node_timeout`. A node that
  stops (crash, SIGKILL, a stalled process, a network split from Redis) drops out of everybody's
  live set within `node_timeout` + one heartbeat.
- `<prefix>{node:<name>}:info` holds what `xmppctl cluster status` shows (started_at, pid,
  sessions, rooms, ports), refreshed with the heartbeat and expiring after a day.
- Listeners hear `live_changed(live, gone)` on every change of the set (placement of rooms,
  the session mirror dropping a dead node's sessions), and the leader — the lowest live name —
  cleans up after dead nodes (`dead(name)`), once per death, again while its inbound stream
  still holds entries. A node that could not heartbeat for longer than `node_timeout` was
  presumed dead by the others: `rejoined()` tells it to publish its sessions again.
- `leave()` (drain): the node joins `<prefix>{cluster}:draining` (same hash slot, one script):
  the others stop placing rooms on it at their next beat, while its sessions stay reachable
  until they moved or it stops; a node that starts again leaves the set.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from twisted.internet import defer, task

from xmppd.cluster.redis import RedisClient

log = logging.getLogger(__name__)

_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
if ARGV[2] == '1' then redis.call('ZADD', KEYS[2], now, ARGV[1])
else redis.call('ZREM', KEYS[2], ARGV[1]) end
return {tostring(now), redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES'),
        redis.call('ZRANGE', KEYS[2], 0, -1)}
"""


def live_set(members: dict[str, float], now: float, timeout: float) -> frozenset[str]:
    return frozenset(n for n, t in members.items() if t > now - timeout)


class Nodes:
    """The live set as this node sees it (see the module docstring)."""

    def __init__(self, redis: RedisClient, reactor: Any, prefix: str, name: str, *,
                 heartbeat: float, timeout: float, info: Callable[[], dict[str, Any]]) -> None:
        self.redis = redis
        self.reactor = reactor
        self.name = name
        self.key = f"{prefix}{{cluster}}:nodes"
        self.draining_key = f"{prefix}{{cluster}}:draining"    # same slot: one script
        self.draining: frozenset[str] = frozenset()
        self.prefix = prefix
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.info = info
        self.live: frozenset[str] = frozenset()
        self.members: dict[str, float] = {}     # every node known, with its last heartbeat
        self.now = 0.0                          # Redis time at the last beat
        self.started_at = 0.0
        self.listeners: list[Callable[[frozenset[str], frozenset[str]], Any]] = []
        self.on_dead: Callable[[str], Any] | None = None
        self.on_rejoined: Callable[[], Any] | None = None
        self.leaving = False
        self._loop: task.LoopingCall | None = None
        self._last_ok = 0.0                     # our clock: when a beat last succeeded
        self._cleaned: dict[str, float] = {}    # dead node -> its heartbeat when cleaned
        self._cleaning: set[str] = set()
        self._beating = False

    @property
    def dead(self) -> frozenset[str]:
        """Nodes known to Redis whose heartbeat stopped (not this one)."""
        return frozenset(self.members) - self.live - {self.name}

    @property
    def leader(self) -> bool:
        return bool(self.live) and min(self.live) == self.name

    def info_key(self, node: str) -> str:
        return f"{self.prefix}{{node:{node}}}:info"

    async def start(self) -> None:
        """Announce this node and learn the live set (before anything is routed)."""
        await self.beat()
        self.started_at = self.now
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.reactor
        self._loop.start(self.heartbeat, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        if self._beating:
            return
        d = defer.Deferred.fromCoroutine(self.beat())
        d.addErrback(self._beat_failed)

    def _beat_failed(self, failure: Any) -> None:
        if self._loop is not None and self._loop.running:
            log.warning("cluster heartbeat failed: %s", failure.value)

    async def beat(self) -> None:
        self._beating = True
        try:
            mine = self.reactor.seconds()
            reply: Any = await self.redis.execute("EVAL", _BEAT, 2, self.key,
                                                  self.draining_key, self.name,
                                                  "1" if self.leaving else "0")
            info = {k: str(v) for k, v in self.info().items()}
            info["draining"] = "1" if self.leaving else "0"
            fields: list[Any] = []
            for k, v in info.items():
                fields += [k, v]
            key = self.info_key(self.name)
            for d in self.redis.pipeline([("HSET", key, "heartbeat", reply[0], *fields),
                                          ("EXPIRE", key, 86400)]):
                d.addErrback(lambda f: None)
        finally:
            self._beating = False
        now = float(reply[0])
        pairs = reply[1]
        members = {pairs[i].decode(): float(pairs[i + 1]) for i in range(0, len(pairs), 2)}
        draining = frozenset(n.decode() for n in reply[2])
        gap = mine - self._last_ok if self._last_ok else 0.0
        self._last_ok = mine
        self.now, self.members = now, members
        live = live_set(members, now, self.timeout)
        if gap > self.timeout and self.on_rejoined is not None:
            log.warning("no heartbeat for %.1f s: the others presumed this node dead; "
                        "publishing its sessions again", gap)
            self.on_rejoined()
        self._set_live(live, draining & live)
        if self.leader:
            self._clean_up(members, now)

    @property
    def placeable(self) -> frozenset[str]:
        """Where rooms may live: the live nodes not draining (all live ones if all drain)."""
        return (self.live - self.draining) or self.live

    def _set_live(self, live: frozenset[str], draining: frozenset[str]) -> None:
        if live == self.live and draining == self.draining:
            return
        if draining != self.draining:
            log.info("cluster nodes draining: %s", ", ".join(sorted(draining)) or "-")
        self.draining = draining
        gone = self.live - live
        old, self.live = self.live, live
        if live != old:
            log.info("cluster nodes: %s (joined: %s, gone: %s)", ", ".join(sorted(live)),
                     ", ".join(sorted(live - old)) or "-", ", ".join(sorted(gone)) or "-")
        for listener in list(self.listeners):
            try:
                listener(live, gone)
            except Exception:
                log.exception("live set listener failed")

    def _clean_up(self, members: dict[str, float], now: float) -> None:
        """The leader takes over what dead nodes left (once per death)."""
        for node, seen in members.items():
            if node in self.live or node == self.name or node in self._cleaning:
                continue
            if self._cleaned.get(node) == seen and now - seen > self.timeout * 10:
                continue        # done; until then look again (items sent to it meanwhile)
            if self.on_dead is None:
                continue
            self._cleaning.add(node)
            d = defer.maybeDeferred(self.on_dead, node)

            def done(result: Any, node: str = node, seen: float = seen) -> None:
                self._cleaning.discard(node)
                if result is not False:        # False: entries remain, try again next beat
                    self._cleaned[node] = seen
                if now - seen > max(3600.0, self.timeout * 100):
                    self.redis.execute("ZREM", self.key, node).addErrback(lambda f: None)

            def failed(f: Any, node: str = node) -> None:
                self._cleaning.discard(node)
                log.warning("cleaning up after node %s failed: %s", node, f.value)
            d.addCallbacks(done, failed)

    async def leave(self) -> None:
        """Drain: rooms go elsewhere now; sessions stay reachable here while clients move
        (the node keeps beating until it stops; then it dies the ordinary way, and the leader
        takes what is left)."""
        self.leaving = True
        try:
            await self.beat()
        except Exception as e:
            log.warning("could not announce the drain: %s", e)
