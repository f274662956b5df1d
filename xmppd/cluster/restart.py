# tests: tests/cluster/test_multiproc.py
"""A node that starts again under the name it had (a worker the supervisor restarts after a
crash, xmppd/supervisor.py) takes over what its previous run left, as the leader would have
after `node_timeout` (xmppd/cluster/node.py `_dead`) — but at once, and without racing it:

- its inbound stream: the transport reads its own pending entries first (transport.py);
- its registry entries: deleted before it joins (`leftovers`) and, once it serves, those
  sessions end the ordinary way (`end_leftovers`: contacts see them go unavailable, RFC 6121
  §4.5.4; last seen is recorded). A session that bound here in the meantime keeps its entry.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from stanzas.jid import JID
from xmppd.cluster.registry import Entry
from xmppd.cluster.remote import RemoteSession

if TYPE_CHECKING:
    from xmppd.cluster.node import ClusterNode

log = logging.getLogger(__name__)


async def leftovers(node: ClusterNode) -> list[tuple[JID, Entry]]:
    gone = await node.registry.drop_node(node.node)
    local = set(node.sessions.local_sids.values())
    stale = [(jid, entry) for jid, entry in gone if entry.sid not in local]
    if len(stale) != len(gone):
        await node.registry.reconcile()      # publish the new ones again
    return stale


def end_leftovers(node: ClusterNode, stale: list[tuple[JID, Entry]]) -> None:
    if stale:
        log.info("ending %d sessions of this node's previous run", len(stale))
    for jid, entry in stale:
        node._end(RemoteSession(node.transport, jid, entry))
