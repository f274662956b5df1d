# tests: tests/cluster/test_registry.py
"""`RemoteSession`: a client session bound on another node, as this node's router and modules
see it (`SessionManager.get/resources/available` return it beside local sessions).

- `jid`, `priority`, `available`, `presence`, `peer_ip` and the shared slots
  (`SessionKey(shared=True)`) are the registry's entry, kept current by the mirror
  (xmppd/cluster/registry.py).
- `send_bytes` hands the stanza to the owner node (xmppd/cluster/transport.py) and returns a
  Deferred that fires once that node handled it (delivered, or stored when the session was gone
  there): the router makes the sender's XEP-0198 ack wait for it.
- `close(error)` asks the owner node to close the session (a resource conflict: RFC 6120
  §7.7.2.2, a second login with the same full JID on another node replaces the first).
- Slots that are not shared read as absent; a module writing one keeps it on this node only
  (the presence module's shutdown bookkeeping when the leader ends a dead node's sessions).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import defer

from stanzas.errors import StreamError
from stanzas.jid import JID
from xmppd.sessions import SessionKey, SessionState
from xmppd.xmlstream import serialize

if TYPE_CHECKING:
    from xmppd.cluster.registry import Entry
    from xmppd.cluster.transport import Transport


class RemoteSession(SessionState):
    bound = True
    closing = False
    peer_ip: str | None = None

    def __init__(self, transport: Transport, jid: JID, entry: Entry) -> None:
        self._transport = transport
        self.jid = jid
        self._state: dict[SessionKey[Any], Any] = {}
        self._decoded: dict[str, Any] = {}
        self.entry = entry

    @property
    def entry(self) -> Entry:
        return self._entry

    @entry.setter
    def entry(self, entry: Entry) -> None:
        self._entry = entry
        self.node = entry.node
        self.sid = entry.sid
        self.priority = entry.priority
        self.available = entry.available
        self.peer_ip = entry.ip or None
        self.connected = entry.connected        # False: detached, XEP-0198 waits for it
        self._presence: etree._Element | None = None
        self._decoded = {}

    @property
    def presence(self) -> etree._Element | None:
        if self._presence is None and self._entry.presence:
            self._presence = etree.fromstring(self._entry.presence.encode())
        return self._presence

    @presence.setter
    def presence(self, value: etree._Element | None) -> None:
        self._presence = value

    def __repr__(self) -> str:
        return f"RemoteSession({self.jid} on {self.node})"

    # -- output ------------------------------------------------------------------------------
    def send_bytes(self, data: bytes) -> defer.Deferred[None] | None:
        return self._transport.send(self.node, ["d", 0, str(self.jid), self.sid,
                                                data.decode("utf-8")])

    def send_element(self, el: etree._Element) -> defer.Deferred[None] | None:
        return self.send_bytes(serialize(el))

    def close(self, error: StreamError | None = None) -> None:
        self._transport.send(self.node, ["close", 0, str(self.jid), self.sid,
                                         error.condition if error is not None else None,
                                         error.text if error is not None else None],
                             reply=False)

    # -- slots -------------------------------------------------------------------------------
    def get(self, key: SessionKey[Any], default: Any = None) -> Any:
        if key in self._state:
            found = self._state[key]
            return default if found is None else found
        if not key.shared:
            return default
        if key.name in self._decoded:
            return self._decoded[key.name]
        raw = self._entry.slots.get(key.name)
        if raw is None:
            return default
        assert key.codec is not None
        value = self._decoded[key.name] = key.codec[1](raw)
        return value

    def set(self, key: SessionKey[Any], value: Any) -> None:
        self._state[key] = value

    def pop(self, key: SessionKey[Any]) -> Any:
        if key in self._state:
            return self._state.pop(key)
        found = self.get(key)
        self._state[key] = None             # popped here: reads as absent from now on
        return found

    def setdefault(self, key: SessionKey[Any], make: Any) -> Any:
        found = self.get(key)
        if found is None:
            found = self._state[key] = make()
        return found

    # what a ClientSession offers that modules may touch on any session
    def discard_output(self) -> list[bytes]:
        return []

    def write(self, units: list[bytes]) -> None:
        for unit in units:
            if unit.startswith((b"<message", b"<presence", b"<iq")):
                self.send_bytes(unit)
