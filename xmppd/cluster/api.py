# tests: tests/cluster/test_placement.py, tests/cluster/test_cluster_features.py
"""What modules may know of a cluster: `ClusterService` (through `ctx.service`, present only
on a cluster node) and the hooks a cluster fires. Everything else in xmppd/cluster/ is the
core's business; most modules never look here (the session manager shows them every node's
sessions).

- `ClusterService.node`: this node's name. `owner(jid)`: the live node a JID is placed on
  (rendezvous hashing: each node scores hash(node, jid), the highest wins — a node joining or
  leaving moves only the JIDs it wins or held). `placed(domain, handler)`: a service-domain
  handler whose JIDs (MUC rooms) live on their owner node; stanzas for them are forwarded
  there, and the sender's XEP-0198 ack waits for the owner's answer.
- `changed(kind, user)`: this node wrote `user`'s data of `kind` (roster, blocking list,
  vCard, archive preferences, offline messages): other nodes drop what they kept in memory.
- `call(node, name, args)` / `answer(name, fn)`: a request to a module on another node and its
  answer (XEP-0198 resumption across nodes). `mark(name, ttl)` records in Redis that this node
  holds `name` (a stream id); `located(name)` finds the node that marked it.
  `redirect(jid, node, ttl)`: a session moved to `node`; stanzas still arriving here for it
  follow it there for `ttl` seconds (instead of going to offline storage).
- `report(name, fn)`: a figure for `xmppctl cluster status` (the MUC module's rooms).
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from lxml import etree
from twisted.internet import defer

from stanzas.jid import JID
from xmppd.hooks import UserDataChanged, user_data_changed


# Per-node residues for time-based keys written by several nodes (MAM seq): a node's values
# are ≡ its `slot` (mod SEQ_STRIDE), so two nodes never collide.
SEQ_STRIDE = 64


class ClusterService(Protocol):
    node: str
    slot: int                     # 0 ≤ slot < SEQ_STRIDE, this node's own (stable per name)

    def owner(self, jid: JID) -> str: ...

    def live(self) -> frozenset[str]: ...

    def placed(self, domain: str, handler: Callable[[etree._Element, JID, JID], Any]
               ) -> Callable[[etree._Element, JID, JID], Any]: ...

    def changed(self, kind: str, user: JID) -> None: ...

    def call(self, node: str, name: str, args: Any) -> defer.Deferred[Any]: ...

    def answer(self, name: str, fn: Callable[[Any], Any]) -> Callable[[], None]: ...

    def mark(self, name: str, ttl: float) -> None: ...

    def redirect(self, jid: JID, node: str, ttl: float) -> None: ...

    def located(self, name: str) -> defer.Deferred[str | None]: ...

    def report(self, name: str, fn: Callable[[], Any]) -> Callable[[], None]: ...


def cluster_of(ctx: Any) -> ClusterService | None:
    """The `ClusterService` of a module's context, or None when the server is one node."""
    try:
        found: ClusterService = ctx.service(ClusterService)
        return found
    except LookupError:
        return None


def cluster_memory(ctx: Any, kind: str, forget: Callable[[JID], Any]) -> ClusterService | None:
    """For a module that keeps users' data of `kind` in memory: on a cluster node, call
    `forget(user)` when another node changed that data (or the user's last session left), and
    return the `ClusterService` to announce this node's own writes with `changed(kind, user)`.
    None (and nothing registered) without a cluster."""
    cluster = cluster_of(ctx)
    if cluster is not None:
        def drop(ev: UserDataChanged) -> None:
            if ev.kind is None or ev.kind == kind:
                forget(ev.user)
        ctx.hook(user_data_changed, drop)
    return cluster
