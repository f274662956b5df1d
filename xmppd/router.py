# tests: tests/core/test_router.py, tests/core/test_router_handled.py
"""Stanza routing (RFC 6120 §8, §10; RFC 6121 §8).

- IQ get/set to the server, to a bare JID or with no `to` → the module handler registered for
  (type, target, payload); none → `<service-unavailable/>` (RFC 6120 §8.4). Handlers *return*
  the reply or raise StanzaError; anything else they raise becomes `<internal-server-error/>`.
  IQ to a full JID → that session, or `<service-unavailable/>` when it is gone (RFC 6121
  §8.5.3.2.1). Results and errors to the server resolve `send_iq` waiters.
- Message to a full JID → that session; if gone, chat/normal/headline follow the bare-JID rules
  (§8.5.3.2.1). To a bare JID: chat/normal → the available resource(s) of highest priority;
  headline → every available resource; groupchat → `<service-unavailable/>`; error → dropped
  (§8.5.2.1.1). No available resource → the `message_offline` hook (offline storage);
  unhandled → `<service-unavailable/>` (§8.5.2.2.1).
- Presence without `to` updates the session's availability, then the `presence_in` hook
  (presence module) broadcasts it; directed presence goes to the session or bare JID.
- Service domains registered by modules (`ctx.service_domain`: MUC, upload) get every stanza
  addressed to them; other domains go to `remote` (federation) when set, else
  `<remote-server-not-found/>`.
A stanza is serialised once per delivery batch, not once per recipient; `fan_out` (MUC rooms)
splices each recipient's `to` into one serialisation. `recipients(to, kind)` tells modules
(carbons) who a message would reach (both in xmppd/router_deliver.py, with `undelivered`).
A stanza's JIDs are parsed once, here, and travel with it as arguments and in `StanzaEvent`;
a client's `from` is its session's JID, which the stream stamped (not parsed again).
Presence from a local client to a service domain runs the sender host's `presence_in` first
(directed presence, RFC 6121 §4.6). No database is touched to deliver to an online user.

Durability (XEP-0198 acks, DESIGN.md "✓ sent"): `from_client` says when the stanza is
*handled*: at once (None) when it was delivered to live sessions or answered synchronously, else
a Deferred that fires once routing finished (offline storage committed, every async hook done)
and whatever hook handlers `hold` (the archive commit) has fired. It never fails: a stanza the
server could not store was answered with an error, which hands it back to its sender too.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from lxml import etree
from twisted.internet import defer

from stanzas import ns
from stanzas.errors import StanzaError, error_reply
from stanzas.jid import JID, JIDError
from stanzas.wire import serialize
from xmppd import hooks
from xmppd.hooks import StanzaEvent, summary
from xmppd.metrics import TIMED_EVERY, timer
from xmppd.router_deliver import Delivery, Done as _Done, Held as _Held, when_handled
from xmppd.router_iq import IqRouting

if TYPE_CHECKING:
    from xmppd.server import Host, Server
    from xmppd.sessions import Session

log = logging.getLogger(__name__)
_E = etree._Element
_C = "{%s}" % ns.CLIENT
_MESSAGE, _PRESENCE, _IQ = _C + "message", _C + "presence", _C + "iq"
_PRIORITY = _C + "priority"


class Router(IqRouting, Delivery):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.sessions = server.sessions
        self.routed = 0
        self.count = server.metrics.core       # counters bumped in place (xmppd/metrics.py)
        # Service domains on this server (MUC, upload, components): domain -> handler(el,
        # sender, to). Registered through ModuleContext.service_domain; the handler owns every
        # stanza addressed to the domain or its JIDs, and answers through ctx.send.
        self.services: dict[str, Callable[[_E, JID, JID], Any]] = {}
        # Every other domain: federation (xmppd/s2s) sets this to take the stanza for its
        # remote server; None (no s2s configured) answers <remote-server-not-found/>.
        self.remote: Callable[[_E, JID, JID], None] | None = None

    # -- entry points ----------------------------------------------------------------------
    def from_client(self, session: Session, el: _E) -> defer.Deferred[None] | None:
        """A stanza from a bound client session, `from` already stamped by the stream.
        None if it was handled at once, else a Deferred firing once it is (module docstring)."""
        held: list[defer.Deferred[Any]] = []
        count = self.count
        count.stanza_in(el.tag)
        count.ticks += 1
        started = timer() if not count.ticks % TIMED_EVERY else 0.0    # latency, sampled
        done = self._route(el, session, held)
        if started:
            count.route.observe(timer() - started)
        if done is None and not held:
            return None
        handled = when_handled(done, held, el)
        return handled.addBoth(count.handled_after, started) if started else handled

    def route(self, el: _E) -> None:
        """A stanza the server itself sends (modules, errors, replies)."""
        self._route(el, None)

    # -- dispatch --------------------------------------------------------------------------
    # Each step returns None when routing finished synchronously, else the Deferred it awaits;
    # `held` collects what hook handlers `hold` (None for stanzas nobody waits on).
    def _route(self, el: _E, session: Session | None, held: _Held = None) -> _Done:
        self.routed += 1
        if session is not None:
            sender = session.jid            # what the stream stamped as `from`
        else:
            try:
                sender = JID.parse(el.get("from") or "")
            except JIDError:
                log.warning("dropping stanza with a bad from: %s", summary(el))
                return None
        to_attr = el.get("to")
        if to_attr is None:
            to = sender.bare            # RFC 6120 §10.3: no 'to' = the sender's own account
        else:
            try:
                to = JID.parse(to_attr)
            except JIDError as e:
                self._bounce(el, StanzaError.jid_malformed(str(e)), sender)
                return None
        if session is not None:
            # Outbound checks belong to the sender's host (blocking, rate limits, carbons).
            own = self.server.hosts.get(sender.domain)
            if own is not None and own.hooks.has(hooks.stanza_in):
                stopped = own.hooks.run(hooks.stanza_in, StanzaEvent(el, sender, to, session,
                                                                     mutable=True, held=held))
                if isinstance(stopped, defer.Deferred):
                    return stopped.addCallback(self._after_stanza_in, el, sender, to, session,
                                               held)
                if stopped:
                    return None
        return self._deliver_to_domain(el, sender, to, session, held)

    def _after_stanza_in(self, stopped: bool, el: _E, sender: JID, to: JID,
                         session: Session | None, held: _Held = None) -> _Done:
        if not stopped:
            return self._deliver_to_domain(el, sender, to, session, held)
        return None

    def _deliver_to_domain(self, el: _E, sender: JID, to: JID, session: Session | None,
                           held: _Held = None) -> _Done:
        host = self.server.hosts.get(to.domain)
        if host is not None:
            return self._dispatch(el, sender, to, host, session, held)
        own = self.server.hosts.get(sender.domain) if session is not None else None
        if el.tag == _PRESENCE and own is not None and own.hooks.has(hooks.presence_in):
            # RFC 6121 §3.1.2, §4.6: the sender's server processes outbound subscription
            # requests and directed presence, whatever domain they go to (roster states,
            # bare-JID stamping; the presence module remembers rooms joined).
            handled = own.hooks.run(hooks.presence_in, StanzaEvent(el, sender, to, session))
            if isinstance(handled, defer.Deferred):
                return handled.addCallback(self._after_outbound_presence, el, sender, to)
            if handled:
                return None
        return self._elsewhere(el, sender, to)

    def _after_outbound_presence(self, handled: bool, el: _E, sender: JID, to: JID) -> _Done:
        return None if handled else self._elsewhere(el, sender, to)

    def _elsewhere(self, el: _E, sender: JID, to: JID) -> _Done:
        """To a service domain of ours, or to a remote server (federation). A service's answer
        says when `el` is handled: None, or a Deferred (a room's archive write: the sender's
        XEP-0198 ack waits for it)."""
        service = self.services.get(to.domain)
        if service is not None:
            try:
                done = service(el, sender, to)
            except Exception:
                log.exception("service %s failed on %s", to.domain, summary(el))
                self._bounce(el, StanzaError.internal_server_error(), sender)
                return None
            return done if isinstance(done, defer.Deferred) else None
        if self.remote is None:
            self._bounce(el, StanzaError.remote_server_not_found(
                f"this server does not federate with {to.domain}"), sender)
            return None
        try:
            self.remote(el, sender, to)
        except StanzaError as e:
            self._bounce(el, e, sender)
        return None

    def _dispatch(self, el: _E, sender: JID, to: JID, host: Host,
                  session: Session | None, held: _Held = None) -> _Done:
        if to.local is not None and to.bare != sender.bare and host.hooks.has(hooks.user_inbound):
            stopped = host.hooks.run(hooks.user_inbound, StanzaEvent(el, sender, to, session,
                                                                     mutable=True, held=held))
            if isinstance(stopped, defer.Deferred):
                return stopped.addCallback(self._after_inbound, el, sender, to, host, session,
                                           held)
            if stopped:
                return None
        return self._dispatch_kind(el, sender, to, host, session, held)

    def _after_inbound(self, stopped: bool, el: _E, sender: JID, to: JID, host: Host,
                       session: Session | None, held: _Held = None) -> _Done:
        if not stopped:
            return self._dispatch_kind(el, sender, to, host, session, held)
        return None

    def _dispatch_kind(self, el: _E, sender: JID, to: JID, host: Host,
                       session: Session | None, held: _Held = None) -> _Done:
        tag = el.tag
        if tag == _MESSAGE:
            return self._message(el, sender, to, host, held)
        if tag == _IQ:
            self._iq(el, sender, to, host, session)
        elif tag == _PRESENCE:
            self._presence(el, sender, to, host, session, el.get("to") is None)
        return None

    # -- messages --------------------------------------------------------------------------
    def _message(self, el: _E, sender: JID, to: JID, host: Host, held: _Held = None) -> _Done:
        kind = el.get("type") or "normal"
        if to.local is None:
            return None     # messages to the server itself: nothing here consumes them yet
        targets = self.recipients(to, kind)
        if targets:
            return self._deliver(targets, el, host, held)
        if kind == "error" or kind == "headline":
            return None     # §8.5.2.1.1 / §8.5.2.2.1: errors ignored, headlines not stored
        if kind == "groupchat":
            self._bounce(el, StanzaError.service_unavailable(), sender)
            return None
        ev = StanzaEvent(el, sender, to.bare, held=held)
        stored = host.hooks.run(hooks.message_offline, ev)
        if isinstance(stored, defer.Deferred):
            return stored.addCallback(self._after_offline, el, sender)
        if not stored:
            self._bounce(el, StanzaError.service_unavailable(), sender)
        return None

    def _after_offline(self, stored: bool, el: _E, sender: JID) -> None:
        if not stored:
            self._bounce(el, StanzaError.service_unavailable(), sender)

    def _deliver(self, targets: list[Session], el: _E, host: Host,
                 held: _Held = None) -> _Done:
        data = serialize(el)
        for s in targets:
            done = s.send_bytes(data)
            if done is not None and held is not None:
                held.append(done)   # on another node (cluster): handled once it says so
        self.count.delivered += len(targets)
        return None

    # -- presence --------------------------------------------------------------------------
    def _presence(self, el: _E, sender: JID, to: JID, host: Host, session: Session | None,
                  broadcast: bool) -> None:
        kind = el.get("type")
        if broadcast and session is not None:
            # RFC 6121 §4.2/§4.5: availability and priority of this resource.
            if kind is None:
                session.available = True
                session.priority = _priority(el)
                session.presence = el
            elif kind == "unavailable":
                session.available = False
                session.presence = None
        if host.hooks.has(hooks.presence_in):
            ev = StanzaEvent(el, sender, to, session)
            handled = host.hooks.run(hooks.presence_in, ev)
            if isinstance(handled, defer.Deferred):
                handled.addCallback(self._after_presence_in, el, to, broadcast)
                return
            if handled:
                return
        self._deliver_presence(el, to, broadcast)

    def _after_presence_in(self, handled: bool, el: _E, to: JID, broadcast: bool) -> None:
        if not handled:
            self._deliver_presence(el, to, broadcast)

    # -- errors ----------------------------------------------------------------------------
    def _bounce(self, el: _E, error: StanzaError, sender: JID) -> None:
        """Answer `el` with `error` to its sender (never an error to an error, nor to an IQ
        result: RFC 6120 §8.2.3)."""
        if el.get("type") == "error" or (el.tag == _IQ and el.get("type") == "result"):
            return
        reply = error_reply(el, error)
        origin = el.get("to")
        if origin is None:
            reply.set("from", str(sender.bare))     # on behalf of the sender's own account
        else:
            try:
                JID.parse(origin)
            except JIDError:
                reply.set("from", sender.domain)    # a malformed 'to' cannot be our 'from'
        self.route(reply)


def _priority(el: _E) -> int:
    p = el.find(_PRIORITY)
    if p is None or not p.text:
        return 0
    try:
        return max(-128, min(127, int(p.text.strip())))     # RFC 6121 §4.7.2.3
    except ValueError:
        return 0
