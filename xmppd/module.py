# tests: tests/core/test_module.py, tests/core/test_hooks.py
"""The module contract (STYLE §2): a module is a class built once per virtual host with a
`ModuleContext`, and its `__init__` *is* its registration. `ModuleContext` is the only API a
module uses; everything registered through it (IQ handlers, hooks, disco features and items,
stream features, output filters, timers, service domains, services) is recorded and undone by
`ctx.close()`, which also cancels the IQs it is still waiting for. Modules write no cleanup
code for any of it. A module that uses another names it in `depends` and calls its public
service (`ctx.service(T)`); it never imports the server, the router or another module's
internals.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, Literal, TypeVar, overload

from lxml import etree
from twisted.internet import defer

from stanzas.errors import StanzaError
from stanzas.jid import JID
from xmppd import config as _config
from xmppd.config import ConfigError
from xmppd.hooks import NORMAL, FoldHook, RunHook, Stop
from xmppd.sessions import SessionKey

if TYPE_CHECKING:
    from storage.stores import Stores
    from xmppd.accounts import Accounts
    from xmppd.listeners.session import InputObserver, OutputFilter
    from xmppd.metrics import ModuleMetrics
    from xmppd.server import Host, Server
    from xmppd.sessions import Session, SessionManager

__all__ = ["DiscoView", "HttpEndpoint", "IqRequest", "IqTimeout", "Module", "ModuleContext",
           "NoOptions", "SessionKey", "duration", "networks", "number", "size"]

_E = etree._Element
O = TypeVar("O")
T = TypeVar("T")
P = TypeVar("P")
A = TypeVar("A")

# Re-exported for modules' Options dataclasses.
duration = _config.duration
size = _config.size
number = _config.number
networks = _config.networks

IqTarget = Literal["host", "bare", "self", "preauth"]
IqHandler = Callable[["IqRequest"], Any]


@dataclass(frozen=True, slots=True)
class NoOptions:
    pass


@dataclass(frozen=True, slots=True)
class IqRequest:
    """An IQ get/set for a handler. `sender` is server-stamped; `to` is never None (an IQ with
    no 'to' is addressed to the sender's account, RFC 6120 §10.3.3)."""
    stanza: _E
    sender: JID
    to: JID
    payload: _E
    session: Any = None          # the sending client's session (or C2S stream, pre-auth)


@dataclass(frozen=True, slots=True)
class HttpEndpoint:
    """An HTTP listener as clients reach it (`type = "http"`)."""
    base_url: str                # scheme://authority, no trailing slash
    secure: bool                 # https (or behind a TLS proxy)
    upload_path: str


@dataclass(frozen=True, slots=True)
class DiscoView:
    """What this host's modules announce (XEP-0030), for the disco module to answer."""
    identities: tuple[tuple[str, str, str], ...]      # (category, type, name)
    features: tuple[str, ...]                          # of the host
    account_features: tuple[str, ...]                  # of every account
    items: tuple[tuple[str, str], ...]                 # (jid, name) of the host's services


class IqTimeout(Exception):
    pass


class Module(Generic[O]):
    name: ClassVar[str]
    xeps: ClassVar[tuple[int, ...]] = ()
    depends: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type] = NoOptions

    def __init__(self, ctx: ModuleContext[O]) -> None:
        self.ctx = ctx

    async def stop(self) -> None:
        """Flush or close external resources only; registrations are undone by the context."""


class ModuleContext(Generic[O]):
    """The only API a module uses. Every registration is undone by `close()`."""

    def __init__(self, host: Host, name: str, options: O) -> None:
        self._host = host
        self._server: Server = host.server
        self.host = host.name
        self.options = options
        self.log = logging.getLogger(f"modules.{name}")
        self.clock = host.server.clock.scoped()
        self._undo: list[Callable[[], None]] = []
        self._waiting: set[defer.Deferred[_E]] = set()

    # -- registrations ---------------------------------------------------------------------
    def iq_get(self, namespace: str, name: str, handler: IqHandler,
               to: IqTarget | tuple[IqTarget, ...] = "host") -> None:
        """Answer IQ gets for `{namespace}name` addressed to the host, a user's bare JID
        ("bare"), the sender's own account ("self", tried before "bare") or, before
        authentication, the stream ("preauth", with `allow_preauth_iq`)."""
        self._iq("get", namespace, name, handler, to)

    def iq_set(self, namespace: str, name: str, handler: IqHandler,
               to: IqTarget | tuple[IqTarget, ...] = "host") -> None:
        self._iq("set", namespace, name, handler, to)

    def _iq(self, type: str, namespace: str, name: str, handler: IqHandler,
            to: IqTarget | tuple[IqTarget, ...]) -> None:
        table = self._host.iq_handlers
        for target in (to,) if isinstance(to, str) else to:
            key = (type, target, "{%s}%s" % (namespace, name))
            if key in table:
                raise ConfigError(f"two modules handle IQ {key} on {self.host}")
            table[key] = handler
            self._undo.append(_remover(table, key))

    @overload
    def hook(self, hook: RunHook[P], handler: Callable[[P], Any],
             priority: int = NORMAL) -> None: ...

    @overload
    def hook(self, hook: FoldHook[P, A],
             handler: Callable[[P, A], A | Stop[A] | Awaitable[A | Stop[A]]],
             priority: int = NORMAL) -> None: ...

    def hook(self, hook: RunHook[Any] | FoldHook[Any, Any], handler: Callable[..., Any],
             priority: int = NORMAL) -> None:
        """Handle `hook` on this host: run hooks call `handler(payload)` (None or STOP), fold
        hooks `handler(payload, acc)` (the new acc or Stop(acc)); either may be async."""
        self._undo.append(self._host.hooks.add(hook, handler, priority))

    def disco_feature(self, namespace: str, to: Literal["host", "account"] = "host") -> None:
        """Announce `namespace` in disco#info of the host or of every account (XEP-0030)."""
        self._add(self._host.features[to], namespace)

    def disco_identity(self, category: str, type: str, name: str = "") -> None:
        self._add(self._host.identities, (category, type, name))

    def disco_item(self, jid: str, name: str = "") -> None:
        """List `jid` (a service: rooms, upload) in the host's disco#items (XEP-0030 §4)."""
        self._add(self._host.items, (jid, name))

    def stream_feature(self, provider: Callable[[Any], _E | None],
                       stage: Literal["preauth", "session"] = "session") -> None:
        """`provider(stream)` returns a `<stream:features/>` child for that stream, or None."""
        self._add(self._host.stream_features[stage], provider)

    def allow_preauth_iq(self, policy: Callable[[str | None], bool]) -> None:
        """Let this module's `to="preauth"` IQ handlers answer before authentication, for peers
        where `policy(ip)` holds (XEP-0077 in-band registration)."""
        self._add(self._host.preauth_policies, policy)

    def on_idle(self, interval: float, handler: Callable[[Any], Any]) -> None:
        """Call `handler(hooks.IdleEvent)` when a bound client of this host has sent nothing
        for `interval` seconds (the client session owns the timer: it sees every byte)."""
        from xmppd.hooks import c2s_idle
        previous = self._host.idle_interval
        self._host.idle_interval = interval if previous is None else min(previous, interval)
        self.hook(c2s_idle, handler)

        def undo() -> None:
            self._host.idle_interval = previous
        self._undo.append(undo)

    def output_filter(self, filter: OutputFilter, priority: int = NORMAL) -> None:
        """Pass every stanza for this host's bound clients through `filter(session, data)`,
        in ascending priority: True means the filter took it and writes it itself (now with
        `session.write`, or later with `session.pass_on(filter, data)`)."""
        self._add_sorted(self._host.output_filters, priority, filter)

    def input_observer(self, observer: InputObserver) -> None:
        """Call `observer(session, handled)` after each stanza from this host's clients was
        routed (`handled`: None if done at once, else a Deferred firing once it is)."""
        self._add(self._host.input_observers, observer)

    def service_domain(self, domain: str, handler: Callable[[_E, JID, JID], Any]) -> None:
        """Own a service domain (e.g. `conference.<host>`, `upload.<host>`): the router hands
        `handler(stanza, sender, to)` every stanza addressed to it or to JIDs under it.
        `sender` is stamped by the server; answer with `ctx.send` (from = a JID under
        `domain`). Raises ConfigError if the domain is a virtual host or already taken."""
        router = self._server.router
        if domain in self._server.hosts or domain in router.services:
            raise ConfigError(f"{domain} is already served on this server")
        router.services[domain] = handler
        self._undo.append(_remover(router.services, domain))

    def before_serving(self, started: defer.Deferred[Any]) -> None:
        """What the module reads at start (`started`) comes before the server says it serves:
        its port files are written once every such Deferred fired (or failed: the module logs)."""
        self._server.starting.append(started)

    def provide(self, service: object) -> None:
        """Publish a service object other modules reach with `ctx.service(type)`."""
        self._host.services[type(service)] = service
        self._undo.append(_remover(self._host.services, type(service)))

    def service(self, kind: type[T]) -> T:
        found = self._host.services.get(kind)
        if found is None:
            raise LookupError(f"no {kind.__name__} on {self.host}; is its module enabled?")
        return found  # type: ignore[return-value]

    def service_on(self, domain: str, kind: type[T]) -> T | None:
        """The `kind` service of the local host `domain` (this module's peer on another
        virtual host: a subscription or a PEP owner there); None if not ours or not loaded."""
        host = self._server.hosts.get(domain)
        found = host.services.get(kind) if host is not None else None
        return found if isinstance(found, kind) else None

    # -- using the server ------------------------------------------------------------------
    @property
    def stores(self) -> Stores:
        """The server's stores, each built on first use (storage/stores.py)."""
        return self._server.stores

    @property
    def sessions(self) -> SessionManager:
        """Who is connected: `get(full)`, `resources(bare)`, `available(bare)`, ..."""
        return self._server.sessions

    @cached_property
    def metrics(self) -> ModuleMetrics:
        """This module's counters and gauges, labelled with its host, served by the metrics
        listener (xmppd/metrics.py); removed when the module stops."""
        made = self._server.metrics.for_module(self.host)
        self._undo.append(made.close)
        return made

    @property
    def accounts(self) -> Accounts:
        """Account operations shared with xmppctl and admin commands (xmppd/accounts.py)."""
        return self._server.accounts

    def host_disco(self) -> DiscoView:
        """Every disco identity, feature and item registered on this host so far."""
        h = self._host
        return DiscoView(tuple(h.identities), tuple(h.features["host"]),
                         tuple(h.features["account"]), tuple(h.items))

    @property
    def local_domains(self) -> frozenset[str]:
        """The virtual hosts of this server (not its service domains)."""
        return self._server.local_domains

    @property
    def started_at(self) -> float:
        """When this server started (`clock.now()` time)."""
        return self._server.started_at

    async def user_exists(self, jid: JID) -> bool:
        """Whether `jid`'s bare JID is an account of one of our hosts."""
        return await self._server.accounts.exists(jid)

    def run(self, hook: RunHook[P], payload: P) -> bool | defer.Deferred[bool]:
        """Fire a run hook on this host: True if a handler stopped it (a Deferred if any
        handler is async)."""
        return self._host.hooks.run(hook, payload)

    def fold(self, hook: FoldHook[P, A], payload: P, initial: A) -> A | defer.Deferred[A]:
        """Fold a hook on this host from `initial` (a Deferred if any handler is async)."""
        return self._host.hooks.fold(hook, payload, initial)

    def send(self, stanza: _E) -> None:
        """Route a stanza from this host (sets `from` to the host if missing)."""
        if stanza.get("from") is None:
            stanza.set("from", self.host)
        self._server.router.route(stanza)

    def fan_out(self, stanza: _E, recipients: Sequence[JID]) -> None:
        """Deliver `stanza` (its `from` set) to every full JID in `recipients`, each copy
        addressed to its recipient, serialised once (a room's message or presence)."""
        self._server.router.fan_out(stanza, recipients)

    def recipients(self, to: JID, kind: str) -> list[Session]:
        """The sessions a message of type `kind` to `to` would reach now (RFC 6121 §8.5)."""
        return self._server.router.recipients(to, kind)

    def call_iq(self, handler: IqHandler, req: IqRequest, reply_to: Callable[[_E], Any]) -> None:
        """Run an IQ handler the router's way (its reply, or the error it raised, goes to
        `reply_to`): for service domains that dispatch their own IQs."""
        self._server.router.call_iq_handler(handler, req, reply_to)

    def http_endpoints(self) -> list[HttpEndpoint]:
        """The HTTP listeners, TLS first, as clients of this host reach them."""
        return self._server.http_endpoints(self.host)

    def send_iq(self, stanza: _E, timeout: float = 30.0) -> defer.Deferred[_E]:
        """Send an IQ get/set and wait for its result (the element); raises IqTimeout, or the
        StanzaError of an error reply (<service-unavailable/> at once if the client session it
        was sent to ends first, RFC 6121 §8.5.3.2.1). Never dangles: the timeout always fires
        or is cancelled, and `close()` cancels what is still waited for."""
        if stanza.get("from") is None:
            stanza.set("from", self.host)
        key = (stanza.get("from") or "", stanza.get("id") or "")
        d: defer.Deferred[_E] = defer.Deferred()
        pending = self._host.pending_iqs
        pending[key] = d
        self._host.iq_targets[key] = stanza.get("to") or ""
        self._waiting.add(d)
        timer = self.clock.call_later(timeout, self._expire, key)

        def done(result: Any) -> Any:
            if pending.get(key) is d:
                del pending[key]
                self._host.iq_targets.pop(key, None)
            self._waiting.discard(d)
            if timer.active():
                timer.cancel()
            return result
        d.addBoth(done)
        self._server.router.route(stanza)
        return d

    def _expire(self, key: tuple[str, str]) -> None:
        self._host.iq_targets.pop(key, None)
        d = self._host.pending_iqs.pop(key, None)
        if d is not None and not d.called:
            d.errback(IqTimeout(f"no answer to IQ {key[1]}"))

    def close(self) -> None:
        for d in list(self._waiting):
            d.cancel()
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self.clock.close()

    def _add(self, target: list[Any], item: Any) -> None:
        target.append(item)
        self._undo.append(lambda: target.remove(item))

    def _add_sorted(self, target: list[tuple[int, int, Any]], priority: int, item: Any) -> None:
        entry = (priority, self._host.next_seq(), item)
        target.append(entry)
        target.sort(key=lambda e: (e[0], e[1]))
        self._undo.append(lambda: target.remove(entry))


def _remover(table: dict[Any, Any], key: Any) -> Callable[[], None]:
    def remove() -> None:
        table.pop(key, None)
    return remove


def iq_error_from_reply(reply: _E) -> StanzaError:
    err = reply.find("{jabber:client}error")
    cond = "undefined-condition"
    if err is not None:
        for child in err:
            if isinstance(child.tag, str) and child.tag.startswith(
                    "{urn:ietf:params:xml:ns:xmpp-stanzas}") and not child.tag.endswith("}text"):
                cond = etree.QName(child).localname
                break
    try:
        return StanzaError(cond)
    except ValueError:
        return StanzaError("undefined-condition")
