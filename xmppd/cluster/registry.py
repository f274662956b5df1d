# tests: tests/cluster/test_registry.py, tests/cluster/test_cluster_nodes.py
"""The session registry in Redis, and this node's mirror of it.

- Source of truth: per user a hash `<prefix>{u:<bare JID>}:res`, field = resource, value = an
  `Entry` as JSON (node, session id, priority, available, last available presence, shared
  slots, client IP address). The hash tag puts every key of a user in one slot (Redis
  Cluster); no command spans two. Each node also keeps `<prefix>{node:<name>}:users`, the
  users it registered (for the cleanup after its death).
- A node publishes its own sessions: bind (a script that returns the entry it replaced: RFC
  6120 §7.7.2.2 across nodes — the node of the old session is told to close it with
  <conflict/>), updates (presence, priority, shared slots; coalesced per reactor turn) and
  unbind (only its own session id: a replacement elsewhere is never deleted). Each change is
  also published on `<prefix>{cluster}:sessions`.
- The mirror: every other node's sessions as `RemoteSession`s in the session manager, fed by
  that channel and rebuilt in full (SCAN + HGETALL) at start, after every pub/sub reconnect
  (messages published meanwhile are lost), when a node joins and every `resync_every`
  seconds; events arriving during a rebuild are applied after it. Sessions of dead nodes are
  not mirrored. A stale
  entry is harmless: its node answers a delivery it cannot make by storing the stanza offline.
- `reconcile()`: publish every local session again and drop this node's entries that are no
  longer local (after a Redis outage, or when the others presumed this node dead).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from stanzas.jid import JID, JIDError
from xmppd.cluster.redis import RedisClient
from xmppd.xmlstream import serialize

if TYPE_CHECKING:
    from xmppd.cluster.sessions import ClusterSessions

log = logging.getLogger(__name__)

_BIND = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old
"""
_UPDATE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and not string.find(old, ARGV[3], 1, true) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
_UNBIND = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and string.find(old, ARGV[2], 1, true) then redis.call('HDEL', KEYS[1], ARGV[1]) return 1 end
return 0
"""
_DROP_NODE = """
local gone = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.find(all[i + 1], ARGV[1], 1, true) then
    redis.call('HDEL', KEYS[1], all[i])
    table.insert(gone, all[i]); table.insert(gone, all[i + 1])
  end
end
return gone
"""


@dataclass(slots=True)
class Entry:
    node: str
    sid: str
    priority: int = 0
    available: bool = False
    presence: str = ""                          # the last available presence, serialised
    slots: dict[str, Any] = field(default_factory=dict)
    ip: str = ""                                # the client's address (XEP-0133 user stats)
    connected: bool = True                      # False while XEP-0198 waits to resume it

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Entry:
        d = json.loads(raw)
        return cls(d["node"], d["sid"], int(d.get("priority", 0)), bool(d.get("available")),
                   d.get("presence") or "", d.get("slots") or {}, d.get("ip") or "",
                   bool(d.get("connected", True)))


def sid_marker(sid: str) -> str:
    return f'"sid":"{sid}"'


def node_marker(node: str) -> str:
    return f'"node":"{node}",'


class Registry:
    def __init__(self, redis: RedisClient, reactor: Any, prefix: str, node: str,
                 sessions: ClusterSessions, *, resync_every: float = 60.0) -> None:
        self.redis = redis
        self.reactor = reactor
        self.prefix = prefix
        self.node = node
        self.sessions = sessions
        self.resync_every = resync_every
        self.channel = f"{prefix}{{cluster}}:sessions"
        self.users_key = f"{prefix}{{node:{node}}}:users"
        self.live: frozenset[str] = frozenset()
        self.dead: frozenset[str] = frozenset()     # known nodes whose heartbeat stopped
        self._ops: dict[Any, tuple[str, JID, str]] = {}     # session -> (op, jid, sid)
        self._unbinds: list[tuple[JID, str]] = []
        self._flush_call: Any = None
        self._buffer: list[bytes] | None = None       # events during a rebuild
        self._resyncing: defer.Deferred[None] | None = None
        self.on_conflict: Any = None     # (node, jid, sid) -> tell that node to close it
        self.closing = False

    def user_key(self, bare: JID | str) -> str:
        return f"{self.prefix}{{u:{bare}}}:res"

    # -- this node's sessions ----------------------------------------------------------------
    def bound(self, session: Any, jid: JID, sid: str) -> None:
        self._ops[session] = ("bind", jid, sid)
        self._schedule()

    def changed(self, session: Any) -> None:
        sid = self.sessions.local_sids.get(session)
        if sid is not None and session not in self._ops:
            self._ops[session] = ("update", session.jid, sid)
            self._schedule()

    def unbound(self, session: Any, jid: JID, sid: str) -> None:
        op = self._ops.pop(session, None)
        if op is not None and op[0] == "bind":
            # bound and gone in one turn: the bind must still run (it replaces elsewhere)
            self._write([op], [(session, op)])
        self._unbinds.append((jid, sid))
        self._schedule()

    def entry_of(self, session: Any, sid: str) -> Entry:
        slots = {k.name: k.codec[0](v) for k, v in session._state.items()
                 if k.shared and v is not None}
        presence = session.presence
        return Entry(self.node, sid, session.priority, session.available,
                     serialize(presence).decode() if presence is not None else "", slots,
                     getattr(session, "peer_ip", None) or "",
                     bool(getattr(session, "connected", True)))

    def _schedule(self) -> None:
        if self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self.flush)

    def flush(self) -> list[defer.Deferred[Any]]:
        """Write what is queued now; the writes' Deferreds (they never fail)."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        ops, self._ops = self._ops, {}
        unbinds, self._unbinds = self._unbinds, []
        return self._write(list(ops.values()), list(ops.items()), unbinds)

    def _write(self, ops: list[tuple[str, JID, str]], owners: list[tuple[Any, Any]],
               unbinds: list[tuple[JID, str]] = ()  # type: ignore[assignment]
               ) -> list[defer.Deferred[Any]]:
        commands: list[tuple[Any, ...]] = []
        binds: list[tuple[JID, str]] = []
        for session, (op, jid, sid) in owners:
            entry = self.entry_of(session, sid).to_json()
            key = self.user_key(jid.bare)
            res = jid.resource or ""
            if op == "bind":
                commands.append(("EVAL", _BIND, 1, key, res, entry))
                commands.append(("SADD", self.users_key, str(jid.bare)))
                binds.append((jid, sid))
                event = {"e": "b", "j": str(jid), "v": entry}
            else:
                commands.append(("EVAL", _UPDATE, 1, key, res, entry, sid_marker(sid)))
                event = {"e": "u", "j": str(jid), "v": entry}
            commands.append(("PUBLISH", self.channel, json.dumps(event)))
        for jid, sid in unbinds:
            commands.append(("EVAL", _UNBIND, 1, self.user_key(jid.bare), jid.resource or "",
                             sid_marker(sid)))
            commands.append(("PUBLISH", self.channel, json.dumps(
                {"e": "x", "j": str(jid), "n": self.node, "s": sid})))
        if not commands:
            return []
        results = self.redis.pipeline(commands)
        i = 0
        for session, (op, jid, sid) in owners:
            if op == "bind":
                results[i].addCallbacks(self._replaced, self._failed, callbackArgs=(jid, sid))
                results[i + 1].addErrback(self._failed)
                i += 1
            else:
                results[i].addErrback(self._failed)
            results[i + 1].addErrback(self._failed)
            i += 2
        for d in results[i:]:
            d.addErrback(self._failed)
        return results

    def _replaced(self, old: Any, jid: JID, sid: str) -> None:
        if not old:
            return
        try:
            entry = Entry.from_json(old)
        except (ValueError, KeyError):
            return
        if entry.sid != sid and entry.node != self.node and self.on_conflict is not None:
            self.on_conflict(entry.node, jid, entry.sid)

    def _failed(self, failure: Any) -> None:
        if self.closing:
            return
        log.warning("session registry write failed (%s); reconciling", failure.value)
        self.reactor.callLater(1.0, self._reconcile_soon)

    def _reconcile_soon(self) -> None:
        defer.Deferred.fromCoroutine(self.reconcile()).addErrback(
            lambda f: log.warning("registry reconcile failed: %s", f.value))

    async def reconcile(self) -> None:
        """Publish every local session again; drop our entries that are not local any more."""
        for session, sid in list(self.sessions.local_sids.items()):
            if session.bound:
                self._ops[session] = ("bind", session.jid, sid)
        self._schedule()
        members: Any = await self.redis.execute("SMEMBERS", self.users_key)
        mine = {str(s.jid) for s in self.sessions.local_sids}
        for raw in members or []:
            user = raw.decode()
            found: Any = await self.redis.execute("HGETALL", self.user_key(user))
            for i in range(0, len(found or []), 2):
                res, value = found[i].decode(), found[i + 1]
                try:
                    entry = Entry.from_json(value)
                except (ValueError, KeyError):
                    continue
                full = f"{user}/{res}" if res else user
                if entry.node == self.node and full not in mine:
                    await self.redis.execute("EVAL", _UNBIND, 1, self.user_key(user), res,
                                             sid_marker(entry.sid))

    # -- a dead node's entries ---------------------------------------------------------------
    async def drop_node(self, node: str) -> list[tuple[JID, Entry]]:
        """Delete every entry of `node` (the leader, after its death); returns them."""
        users: Any = await self.redis.execute("SMEMBERS", f"{self.prefix}{{node:{node}}}:users")
        gone: list[tuple[JID, Entry]] = []
        for raw in users or []:
            user = raw.decode()
            found: Any = await self.redis.execute("EVAL", _DROP_NODE, 1, self.user_key(user),
                                                  node_marker(node))
            for i in range(0, len(found or []), 2):
                try:
                    res = found[i].decode()
                    gone.append((JID.parse(f"{user}/{res}" if res else user),
                                 Entry.from_json(found[i + 1])))
                except (JIDError, ValueError, KeyError):
                    continue
        for jid, entry in gone:
            await self.redis.execute("PUBLISH", self.channel, json.dumps(
                {"e": "x", "j": str(jid), "n": entry.node, "s": entry.sid}))
        await self.redis.execute("DEL", f"{self.prefix}{{node:{node}}}:users")
        return gone

    # -- the mirror ----------------------------------------------------------------------------
    def on_message(self, channel: bytes, data: bytes) -> None:
        if self._buffer is not None:
            self._buffer.append(data)
            return
        self._apply(data)

    def _apply(self, data: bytes) -> None:
        try:
            ev = json.loads(data)
            jid = JID.parse(ev["j"])
            if ev["e"] == "x":
                if ev["n"] != self.node:
                    self.sessions.drop_remote(jid, ev["s"])
                return
            entry = Entry.from_json(ev["v"])
        except (ValueError, KeyError, JIDError):
            log.warning("unreadable session event %r", data[:200])
            return
        if entry.node != self.node and entry.node not in self.dead:
            # An update of a session another one already replaced is stale: only a bind
            # replaces (events of two nodes arrive in any order).
            self.sessions.put_remote(jid, entry, replace=ev["e"] == "b")

    async def resync(self) -> None:
        """Rebuild the mirror from Redis (events meanwhile are applied afterwards)."""
        if self._resyncing is not None:
            return
        resyncing: defer.Deferred[None] = defer.Deferred()
        self._resyncing = resyncing
        self._buffer = []
        try:
            keys = await self.redis.scan(f"{self.prefix}{{u:*}}:res")
            replies = self.redis.pipeline([("HGETALL", k) for k in keys])
            table: dict[JID, Any] = {}
            for key, d in zip(keys, replies):
                found: Any = await d
                user = key.decode()[len(self.prefix) + 3:-len("}:res")]
                for i in range(0, len(found or []), 2):
                    try:
                        res = found[i].decode()
                        entry = Entry.from_json(found[i + 1])
                        jid = JID.parse(f"{user}/{res}" if res else user)
                    except (ValueError, KeyError, JIDError):
                        continue
                    if entry.node != self.node and entry.node not in self.dead:
                        table[jid] = entry
            self.sessions.replace_remote(table)
        finally:
            buffered, self._buffer = self._buffer or [], None
            for data in buffered:
                self._apply(data)
            self._resyncing = None
            resyncing.callback(None)

    def set_live(self, live: frozenset[str], dead: frozenset[str]) -> None:
        """Sessions of dead nodes leave the mirror; a node that is new to us may have
        published before we knew it: rebuild (it is the only way to be sure)."""
        joined = bool(self.live) and bool(live - self.live)
        self.live, self.dead = live, dead
        for proxy in list(self.sessions.remote.values()):
            if proxy.node in dead:
                self.sessions.drop_remote(proxy.jid, proxy.sid)
        if joined and self._resyncing is None:
            defer.Deferred.fromCoroutine(self.resync()).addErrback(
                lambda f: log.warning("session mirror resync failed: %s", f.value))
