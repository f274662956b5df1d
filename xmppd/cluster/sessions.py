# tests: tests/cluster/test_registry.py
"""The session manager of a cluster node: this node's `ClientSession`s and `RemoteSession`
proxies for every other node's, side by side, behind the `SessionManager` API — the router
and modules see one table of the whole cluster and need no change.

- `bind` keeps RFC 6120 §7.7.2.2's replace policy across nodes (a proxy it replaces is told
  to close its session with <conflict/>, and so is any session the registry's bind replaced
  that this node's mirror had not seen yet) and counts `max_sessions_per_user` over every node.
- A local session bound, unbound or changed (presence, priority, a shared slot) is published
  through the registry; remote ones come and go with the mirror (`put_remote`,
  `drop_remote`, `replace_remote`). A remote entry under the full JID of a local
  session waits behind it and takes its place when the local one goes.
- `on_user_gone(bare)`: the last session of a user left this node's view through the mirror
  (modules drop what they kept in memory for the user's sessions).
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Callable

from stanzas.jid import JID, JIDError
from xmppd.cluster.remote import RemoteSession
from xmppd.sessions import Session, SessionKey, SessionManager, SessionState

if TYPE_CHECKING:
    from xmppd.cluster.registry import Entry, Registry
    from xmppd.cluster.transport import Transport


class ClusterSessions(SessionManager):
    def __init__(self, *, max_sessions_per_user: int = 16, node: str, epoch: int) -> None:
        super().__init__(max_sessions_per_user=max_sessions_per_user)
        self.node = node
        self.remote: dict[JID, RemoteSession] = {}
        self.local_sids: dict[Any, str] = {}
        self._ids = itertools.count(1)
        self._epoch = epoch
        self.registry: Registry | None = None
        self.transport: Transport | None = None
        self.on_user_gone: Callable[[JID], Any] | None = None

    def local(self, full: JID) -> Any:
        """The local session bound to `full`, or None (never a proxy)."""
        found = self.get(full)
        return None if found is None or isinstance(found, RemoteSession) else found

    def local_count(self) -> int:
        return len(self.local_sids)

    # -- this node's sessions ----------------------------------------------------------------
    def bind(self, user: JID, resource: str | None, session: Session) -> JID:
        old: Any = None
        if resource is not None:
            try:
                old = self.get(user.with_resource(resource))
            except JIDError:
                pass
        full = super().bind(user, resource, session)
        if old is not None and old is not session:
            self.local_sids.pop(old, None)
        sid = f"{self.node}.{self._epoch:x}.{next(self._ids)}"
        self.local_sids[session] = sid
        if isinstance(session, SessionState):
            session._shared_changed = self._slot_changed
        if self.registry is not None:
            self.registry.bound(session, full, sid)
        return full

    def unbind(self, session: Session) -> bool:
        done = super().unbind(session)
        sid = self.local_sids.pop(session, None)
        if sid is not None and self.registry is not None:
            self.registry.unbound(session, session.jid, sid)
        if done:
            waiting = self.remote.get(session.jid)
            if waiting is not None:
                self._by_bare.setdefault(session.jid.bare, {})[session.jid.resource or ""] = \
                    waiting
        return done

    def changed(self, session: Any) -> None:
        """A local session's presence or priority changed: publish it."""
        if self.registry is not None and session in self.local_sids:
            self.registry.changed(session)

    def _slot_changed(self, session: SessionState, key: SessionKey[Any]) -> None:
        if self.registry is not None and session in self.local_sids:
            self.registry.changed(session)

    # -- the mirror ----------------------------------------------------------------------------
    def put_remote(self, jid: JID, entry: Entry, replace: bool = True) -> None:
        """Mirror `entry`; an update (`replace` False) of another session than the one
        mirrored under `jid` is stale and ignored."""
        proxy = self.remote.get(jid)
        if proxy is not None and proxy.sid == entry.sid:
            proxy.entry = entry
            return
        if proxy is not None and not replace:
            return
        assert self.transport is not None
        proxy = self.remote[jid] = RemoteSession(self.transport, jid, entry)
        resources = self._by_bare.setdefault(jid.bare, {})
        current = resources.get(jid.resource or "")
        if current is None or isinstance(current, RemoteSession):
            resources[jid.resource or ""] = proxy

    def drop_remote(self, jid: JID, sid: str | None = None) -> RemoteSession | None:
        proxy = self.remote.get(jid)
        if proxy is None or (sid is not None and proxy.sid != sid):
            return None
        del self.remote[jid]
        resources = self._by_bare.get(jid.bare)
        if resources is not None and resources.get(jid.resource or "") is proxy:
            del resources[jid.resource or ""]
            if not resources:
                del self._by_bare[jid.bare]
                if self.on_user_gone is not None:
                    self.on_user_gone(jid.bare)
        return proxy

    def replace_remote(self, table: dict[JID, Entry]) -> None:
        """The mirror rebuilt from Redis: `table` is every remote session there is."""
        for jid, proxy in list(self.remote.items()):
            entry = table.get(jid)
            if entry is None or entry.sid != proxy.sid:
                self.drop_remote(jid)
        for jid, entry in table.items():
            self.put_remote(jid, entry)
