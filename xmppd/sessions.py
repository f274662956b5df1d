# tests: tests/core/test_sessions.py
"""Session manager: who is connected, under which full JID, how available (RFC 6120 §7, 6121 §8).

- `bind` applies RFC 6120 §7.7.2.2's "override" policy: a second session with the same resource
  replaces the first, which is closed with `<conflict/>` (ejabberd and Prosody do the same).
  A missing resource gets a random one; a bad one `<bad-request/>`; more than
  `max_sessions_per_user` sessions `<resource-constraint/>` (§7.6.2.1).
- Routing reads `available(bare)`: the sessions that sent available presence with priority ≥ 0,
  highest priority first (RFC 6121 §8.5.2.1.1). All in memory: no database on delivery.
Not here: presence broadcast (modules/presence.py), the Twisted session object (listeners).
"""
from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, Callable, Generic, Protocol, TypeVar, overload

from lxml import etree

from stanzas.errors import StanzaError, StreamError
from stanzas.jid import JID, JIDError

if TYPE_CHECKING:
    from twisted.internet import defer


T = TypeVar("T")


class SessionKey(Generic[T]):
    """A typed slot of per-session state owned by a module (`session.get(KEY)`).

    `resumable`: the value moves to the new connection when XEP-0198 resumes the session
    (carbons on, joined rooms); False for per-connection state (XEP-0352 starts active again).
    `codec`: (encode, decode) between the value and JSON, for slots that travel when another
    node of a cluster takes the session over (XEP-0198 resumption there). `shared`: other nodes
    read the value too (carbons on, roster pushes wanted, caps features): it is published with
    the session in the cluster's registry (docs/CLUSTER.md); plain JSON values (bool, str, int)
    need no codec. Without a cluster neither costs anything.
    Keys compare by identity: declare each once, at module level.
    """
    __slots__ = ("name", "resumable", "shared", "codec")
    _with_codec: dict[str, SessionKey[Any]] = {}    # by name: what a handover can carry

    def __init__(self, name: str, *, resumable: bool = True, shared: bool = False,
                 codec: tuple[Callable[[T], Any], Callable[[Any], T]] | None = None) -> None:
        self.name = name
        self.resumable = resumable
        self.shared = shared
        self.codec = codec if codec is not None or not shared else (_same, _same)
        if self.codec is not None:
            SessionKey._with_codec[name] = self

    @staticmethod
    def named(name: str) -> SessionKey[Any] | None:
        """The key with a codec declared under `name` (a cluster node rebuilding a session)."""
        return SessionKey._with_codec.get(name)

    def __repr__(self) -> str:
        return f"SessionKey({self.name})"


def _same(value: Any) -> Any:
    return value


class SessionState:
    """The per-session slots (mixed into every session the router knows)."""
    _state: dict[SessionKey[Any], Any]
    # Set by a cluster's session manager on its nodes' own sessions: told when a shared slot
    # changes (xmppd/cluster/). None (the class default) everywhere else.
    _shared_changed: Callable[[SessionState, SessionKey[Any]], None] | None = None

    @overload
    def get(self, key: SessionKey[T]) -> T | None: ...
    @overload
    def get(self, key: SessionKey[T], default: T) -> T: ...

    def get(self, key: SessionKey[T], default: T | None = None) -> T | None:
        return self._state.get(key, default)

    def set(self, key: SessionKey[T], value: T) -> None:
        self._state[key] = value
        if key.shared and self._shared_changed is not None:
            self._shared_changed(self, key)

    def pop(self, key: SessionKey[T]) -> T | None:
        found = self._state.pop(key, None)
        if key.shared and self._shared_changed is not None:
            self._shared_changed(self, key)
        return found   # type: ignore[no-any-return]

    def setdefault(self, key: SessionKey[T], make: Callable[[], T]) -> T:
        found = self._state.get(key)
        if found is None:
            found = self._state[key] = make()
            if key.shared and self._shared_changed is not None:
                self._shared_changed(self, key)
        return found

    def move_state(self, old: SessionState) -> None:
        """XEP-0198 resumption: take `old`'s resumable slots."""
        self._state.update((k, v) for k, v in old._state.items() if k.resumable)
        old._state = {}


class Session(Protocol):
    """What the router and modules use of a connected, bound client
    (xmppd/listeners/session.py `ClientSession`; the harness runs the same class)."""
    jid: JID                       # full JID once bound
    priority: int                  # from the last available presence (RFC 6121 §4.7.2.3)
    available: bool                # sent available presence and not unavailable since
    presence: etree._Element | None
    peer_ip: str | None

    # None once written (or queued) for the client; in a cluster, a session on another node
    # returns a Deferred firing once that node handled the stanza (delivered or stored).
    def send_bytes(self, data: bytes) -> defer.Deferred[None] | None: ...
    def send_element(self, el: etree._Element) -> defer.Deferred[None] | None: ...
    def close(self, error: StreamError | None = None) -> None: ...
    @overload
    def get(self, key: SessionKey[T]) -> T | None: ...
    @overload
    def get(self, key: SessionKey[T], default: T) -> T: ...
    def set(self, key: SessionKey[T], value: T) -> None: ...
    def pop(self, key: SessionKey[T]) -> T | None: ...
    def setdefault(self, key: SessionKey[T], make: Callable[[], T]) -> T: ...


class SessionManager:
    def __init__(self, *, max_sessions_per_user: int = 16) -> None:
        self.max_sessions_per_user = max_sessions_per_user
        self._by_bare: dict[JID, dict[str, Session]] = {}

    def __len__(self) -> int:
        return sum(len(r) for r in self._by_bare.values())

    def bind(self, user: JID, resource: str | None, session: Session) -> JID:
        """Give `session` a full JID under bare `user`; raises StanzaError."""
        if resource is None:
            resource = secrets.token_hex(8)
        try:
            full = user.with_resource(resource)
        except JIDError as e:
            raise StanzaError.bad_request(f"invalid resource: {e}") from None
        resources = self._by_bare.setdefault(user.bare, {})
        old = resources.get(full.resource or "")
        if old is None and len(resources) >= self.max_sessions_per_user:
            raise StanzaError.resource_constraint("too many sessions for this account")
        resources[full.resource or ""] = session
        if old is not None and old is not session:
            old.close(StreamError.conflict("replaced by a new session with this resource"))
        return full

    def unbind(self, session: Session) -> bool:
        """Remove `session` if it is still the one registered under its JID."""
        jid = session.jid
        resources = self._by_bare.get(jid.bare)
        if resources is None or resources.get(jid.resource or "") is not session:
            return False
        del resources[jid.resource or ""]
        if not resources:
            del self._by_bare[jid.bare]
        return True

    def get(self, full: JID) -> Session | None:
        resources = self._by_bare.get(full.bare)
        return resources.get(full.resource or "") if resources else None

    def resources(self, bare: JID) -> list[Session]:
        resources = self._by_bare.get(bare)
        return list(resources.values()) if resources else []

    def available(self, bare: JID) -> list[Session]:
        """Available sessions with non-negative priority, highest priority first."""
        resources = self._by_bare.get(bare)
        if not resources:
            return []
        found = [s for s in resources.values() if s.available and s.priority >= 0]
        if len(found) > 1:
            found.sort(key=lambda s: -s.priority)
        return found

    def is_online(self, bare: JID) -> bool:
        resources = self._by_bare.get(bare)
        return bool(resources) and any(s.available for s in resources.values())  # type: ignore[union-attr]

    def users(self) -> list[JID]:
        return list(self._by_bare)
