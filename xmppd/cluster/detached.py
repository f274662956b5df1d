# tests: tests/integration/test_push_slixmpp.py
"""Other nodes see when a session of this node is detached (its connection gone while
XEP-0198 waits to resume it) and when it is resumed: the registry entry's `connected`
(`RemoteSession.connected`), which push (XEP-0357) on the sender's node reads to decide
whether the account sleeps."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from xmppd import hooks
from xmppd.hooks import ConnectionLost, SessionEvent

if TYPE_CHECKING:
    from xmppd.cluster.node import ClusterNode


def watch(node: ClusterNode, host: Any) -> list[Callable[[], None]]:
    def lost(ev: ConnectionLost, keep: bool) -> bool:
        if keep:        # after the connection is gone (the entry reads session.connected)
            node.reactor.callLater(0, node.sessions.changed, ev.session)
        return keep

    def resumed(ev: SessionEvent) -> None:
        node.sessions.changed(ev.session)
    return [host.hooks.add(hooks.connection_lost, lost, hooks.LAST),
            host.hooks.add(hooks.session_resumed, resumed)]
