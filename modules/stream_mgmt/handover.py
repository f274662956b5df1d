# tests: tests/cluster/test_cluster_features.py, tests/modules/test_stream_mgmt.py
"""XEP-0198 resumption across the nodes of a cluster (docs/CLUSTER.md): a client that comes
back through the load balancer lands on another node most of the time.

- Stream ids name their node (`<node>.<token>`); a node that took a session over records that
  it holds the id now (`ClusterService.mark`), so a later resumption finds it there.
- `<resume previd/>` for an id held elsewhere: this node asks the holder to hand the session
  over (`export` there): the holder waits until every stanza it received on the session is
  handled, serialises it — full JID, priority, availability, presence, the slots with a codec
  (carbons, joined rooms, caps...), the counters and the unacknowledged stanzas with when
  they were first sent — and retires it without `session_ended` (it lives on). This node
  rebuilds it (`ClientSession.adopt`) and answers `<resumed/>` followed by exactly those
  stanzas, as a local resumption would. Stanzas someone tracked there (offline messages)
  count as delivered for their tracker; if the client never acknowledges them here, they go
  to offline storage again when the session ends, as any unacknowledged message does.
- The holder dead, the id unknown, or another account's: `<failed><item-not-found/>`; the
  client logs in again and gets what it missed from offline storage and MAM.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import defer

from modules.stream_mgmt.state import MOD, NS, REQUEST, STATE, HandledCountTooHigh, Out, SmState
from stanzas.errors import escape_attr
from stanzas.jid import JID, JIDError
from xmppd import hooks
from xmppd.cluster.api import ClusterService
from xmppd.hooks import STOP, SessionEvent
from xmppd.module import SessionKey
from xmppd.xmlstream import serialize

if TYPE_CHECKING:
    from modules.stream_mgmt import StreamManagement


def holder_named(previd: str, cluster: ClusterService) -> str | None:
    """The node an id names, if it is another live node."""
    node = previd.split(".", 1)[0] if "." in previd else None
    if node is None or node == cluster.node:
        return None
    return node


async def export(m: StreamManagement, args: dict[str, Any]) -> dict[str, Any] | None:
    """The holder's side: the session as data, retired here; None if there is none to give."""
    previd, user = str(args.get("previd")), str(args.get("user"))
    state = m.resumable.get(previd)
    if state is None or str(state.session.jid.bare) != user or state.resuming:
        return None
    state.resuming = True
    await state.settled()               # what the old connection sent is handled first
    state.resuming = False
    if m.resumable.get(previd) is not state:
        return None
    session = state.session
    slots = {k.name: k.codec[0](v) for k, v in session._state.items()
             if k.codec is not None and k.resumable and v is not None}
    presence = session.presence
    out = {"jid": str(session.jid), "priority": session.priority,
           "available": session.available,
           "presence": serialize(presence).decode() if presence is not None else "",
           "slots": slots, "received": state.received, "handled": state.handled,
           "sent": state.sent, "acked": state.acked, "timeout": state.timeout,
           "queue": [[o.data.decode(), o.at] for o in state.queue]}
    for o in state.queue:
        if o.done is not None:
            o.done(True)                # in the new node's hands now (module docstring)
    state.queue.clear()
    state.queued_bytes = 0
    if state.timer is not None and state.timer.active():
        state.timer.cancel()
    state.timer = None
    m.resumable.pop(previd, None)
    m.states.discard(state)
    session.pop(STATE)
    session.hand_over()
    if m.cluster is not None and args.get("node"):
        # What is still on its way here follows the session (not to offline storage).
        m.cluster.redirect(session.jid, str(args["node"]), 60.0)
    m.ctx.log.info("%s handed over to another node (%d stanzas unacknowledged)",
                   session.jid, len(out["queue"]))
    return out


async def resume_elsewhere(m: StreamManagement, cluster: ClusterService, session: Any,
                           user: JID, previd: str, h: int) -> object:
    """The new node's side of `<resume/>` for an id another node holds."""
    try:
        node = await cluster.located(previd) or holder_named(previd, cluster)
    except Exception:
        node = holder_named(previd, cluster)
    taken = None
    if node is not None and node != cluster.node and node in cluster.live():
        try:
            taken = await cluster.call(node, f"sm.handover.{m.ctx.host}",
                                       {"previd": previd, "user": str(user.bare),
                                        "node": cluster.node})
        except Exception as e:
            m.ctx.log.warning("resumption of %s from node %s failed: %s", previd, node, e)
    if not taken:
        m._failed(session, "item-not-found")
        return STOP
    try:
        jid = JID.parse(taken["jid"])
    except (JIDError, KeyError):
        m._failed(session, "item-not-found")
        return STOP
    slots: dict[SessionKey[Any], Any] = {}
    for name, raw in taken.get("slots", {}).items():
        key = SessionKey.named(name)
        if key is not None and key.codec is not None:
            slots[key] = key.codec[1](raw)
    presence = etree.fromstring(taken["presence"].encode()) if taken.get("presence") else None
    state = SmState(m, session, True, float(taken["timeout"]))
    state.id = previd
    state.received = state.handled = int(taken["handled"])
    state.sent, state.acked = int(taken["sent"]), int(taken["acked"])
    for data, at in taken["queue"]:
        state.queue.append(Out(data.encode(), None, float(at)))
        state.queued_bytes += len(data)
    gone = session.transport is None
    session.adopt(jid, int(taken["priority"]), bool(taken["available"]), presence, slots)
    session.set(STATE, state)
    m.states.add(state)
    m.resumable[previd] = state
    cluster.mark(previd, state.timeout * 2 + 60)
    if gone:                            # the new connection went away meanwhile: detached
        session.connection_lost()
        return STOP
    if state.too_high(h):
        session.close(HandledCountTooHigh(h, state.sent % MOD))
        return STOP
    state.acknowledged(h)
    units = [b"<resumed xmlns='%s' previd='%s' h='%d'/>"
             % (NS.encode(), escape_attr(previd).encode(), state.handled % MOD)]
    units.extend(o.data for o in state.queue)           # counted when first sent
    state.requested = bool(state.queue)
    if state.queue:
        units.append(REQUEST)
    session.write(units)
    m.ctx.log.info("%s resumed its session from node %s (%d stanzas resent)", jid, node,
                   len(state.queue))
    result = m.ctx.run(hooks.session_resumed, SessionEvent(session))
    if isinstance(result, defer.Deferred):
        await result
    return STOP
