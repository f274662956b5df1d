# tests: tests/core/test_module.py
"""The module contract (STYLE §2): a module is a class built once per virtual host with a
`ModuleContext`, and its `__init__` *is* its registration. Everything registered through the
context is recorded and undone by `ctx.close()`; modules write no cleanup code for it.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, Literal, TypeVar

from lxml import etree
from twisted.internet import defer

from stanzas.errors import StanzaError
from xmppd import config as _config
from xmppd.config import ConfigError
from xmppd.hooks import NORMAL, FoldHook, RunHook
from stanzas.jid import JID

if TYPE_CHECKING:
    from xmppd.server import Host, Server, Stores
    from xmppd.sessions import SessionManager

_E = etree._Element
O = TypeVar("O")
T = TypeVar("T")

# Re-exported for modules' Options dataclasses.
duration = _config.duration
size = _config.size
number = _config.number
networks = _config.networks

IqTarget = Literal["host", "bare", "self", "preauth"]


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

    # -- registrations ---------------------------------------------------------------------
    def iq_get(self, namespace: str, name: str, handler: Callable[[IqRequest], Any],
               to: IqTarget | tuple[IqTarget, ...] = "host") -> None:
        self._iq("get", namespace, name, handler, to)

    def iq_set(self, namespace: str, name: str, handler: Callable[[IqRequest], Any],
               to: IqTarget | tuple[IqTarget, ...] = "host") -> None:
        self._iq("set", namespace, name, handler, to)

    def _iq(self, type: str, namespace: str, name: str, handler: Callable[[IqRequest], Any],
            to: IqTarget | tuple[IqTarget, ...]) -> None:
        table = self._host.iq_handlers
        for target in (to,) if isinstance(to, str) else to:
            key = (type, target, "{%s}%s" % (namespace, name))
            if key in table:
                raise ConfigError(f"two modules handle IQ {key} on {self.host}")
            table[key] = handler
            self._undo.append(_remover(table, key))

    def hook(self, hook: RunHook[Any] | FoldHook[Any, Any], handler: Callable[..., Any],
             priority: int = NORMAL) -> None:
        self._undo.append(self._host.hooks.add(hook, handler, priority))

    def disco_feature(self, namespace: str, to: Literal["host", "account"] = "host") -> None:
        features = self._host.features[to]
        features.append(namespace)
        self._undo.append(lambda: features.remove(namespace))

    def disco_identity(self, category: str, type: str, name: str = "") -> None:
        ident = (category, type, name)
        self._host.identities.append(ident)
        self._undo.append(lambda: self._host.identities.remove(ident))

    def stream_feature(self, provider: Callable[[Any], _E | None],
                       stage: Literal["preauth", "session"] = "session") -> None:
        """`provider(stream)` returns a `<stream:features/>` child for that stream, or None."""
        lst = self._host.stream_features[stage]
        lst.append(provider)
        self._undo.append(lambda: lst.remove(provider))

    def allow_preauth_iq(self, policy: Callable[[str | None], bool]) -> None:
        """Allow IQs to `preauth` handlers before login from peers where `policy(ip)` holds."""
        self._host.preauth_policies.append(policy)
        self._undo.append(lambda: self._host.preauth_policies.remove(policy))

    def on_idle(self, interval: float, handler: Callable[[Any], Any]) -> None:
        """Call `handler(hooks.IdleEvent)` when a bound client of this host has sent nothing
        for `interval` seconds (the C2S shell owns the timer: it sees every byte)."""
        from xmppd.hooks import c2s_idle
        previous = self._host.idle_interval
        self._host.idle_interval = interval if previous is None else min(previous, interval)
        self.hook(c2s_idle, handler)

        def undo() -> None:
            self._host.idle_interval = previous
        self._undo.append(undo)

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

    def provide(self, service: object) -> None:
        """Publish a service object other modules reach with `ctx.service(type)`."""
        self._host.services[type(service)] = service
        self._undo.append(_remover(self._host.services, type(service)))

    def service(self, kind: type[T]) -> T:
        found = self._host.services.get(kind)
        if found is None:
            raise LookupError(f"no {kind.__name__} on {self.host}; is its module enabled?")
        return found  # type: ignore[return-value]

    # -- using the server ------------------------------------------------------------------
    @property
    def stores(self) -> Stores:
        return self._server.stores

    @property
    def sessions(self) -> SessionManager:
        return self._server.sessions

    @property
    def server(self) -> Server:
        return self._server

    def send(self, stanza: _E) -> None:
        """Route a stanza from this host (sets `from` to the host if missing)."""
        if stanza.get("from") is None:
            stanza.set("from", self.host)
        self._server.router.route(stanza)

    def send_iq(self, stanza: _E, timeout: float = 30.0) -> defer.Deferred[_E]:
        """Send an IQ get/set and wait for its result (the element); raises IqTimeout, or the
        StanzaError of an error reply. Never dangles: the timeout always fires or is cancelled."""
        if stanza.get("from") is None:
            stanza.set("from", self.host)
        key = (stanza.get("from") or "", stanza.get("id") or "")
        d: defer.Deferred[_E] = defer.Deferred()
        pending = self._host.pending_iqs
        pending[key] = d
        timer = self.clock.call_later(timeout, self._expire, key)

        def done(result: Any) -> Any:
            pending.pop(key, None)
            if timer.active():
                timer.cancel()
            return result
        d.addBoth(done)
        self._server.router.route(stanza)
        return d

    def _expire(self, key: tuple[str, str]) -> None:
        d = self._host.pending_iqs.pop(key, None)
        if d is not None and not d.called:
            d.errback(IqTimeout(f"no answer to IQ {key[1]}"))

    def close(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self.clock.close()


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


def module_class(name: str) -> type[Module[Any]]:
    """The Module subclass behind `[modules.<name>]`; ConfigError if there is none."""
    if not name.isidentifier():
        raise ConfigError(f"modules.{name}: not a module name")
    try:
        mod = importlib.import_module(f"modules.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"modules.{name}":
            raise ConfigError(f"modules.{name}: no such module") from None
        raise
    for obj in vars(mod).values():
        if isinstance(obj, type) and issubclass(obj, Module) and obj is not Module \
                and getattr(obj, "name", None) == name:
            return obj
    raise ConfigError(f"modules.{name}: modules/{name}.py defines no module named {name!r}")


def resolve(tables: dict[str, dict[str, Any]]) -> list[tuple[type[Module[Any]], Any]]:
    """Validate every `[modules.*]` table and order the modules so dependencies come first."""
    classes = {name: module_class(name) for name in tables}
    for name, cls in classes.items():
        for dep in cls.depends:
            if dep not in classes:
                raise ConfigError(f"modules.{name}: needs module {dep!r}; add [modules.{dep}]")
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ConfigError(f"modules: dependency cycle {' -> '.join(chain + (name,))}")
        state[name] = 1
        for dep in classes[name].depends:
            visit(dep, chain + (name,))
        state[name] = 2
        order.append(name)
    for name in sorted(classes):
        visit(name, ())
    result = []
    for name in order:
        cls = classes[name]
        opts_cls = cls.Options
        options = _config.build(opts_cls, tables[name], f"modules.{name}") \
            if dataclasses.is_dataclass(opts_cls) else None
        result.append((cls, options))
    return result
