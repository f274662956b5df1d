# tests: tests/core/test_router.py
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
(carbons) who a message would reach.
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
from collections.abc import Sequence
from copy import deepcopy
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional

from lxml import etree
from twisted.internet import defer

from stanzas import ns
from stanzas.errors import StanzaError, error_reply, escape_attr
from xmppd import hooks
from xmppd.hooks import StanzaEvent, summary
from stanzas.jid import JID, JIDError
from xmppd.metrics import TIMED_EVERY, timer
from xmppd.router_iq import IqRouting
from stanzas.wire import serialize

if TYPE_CHECKING:
    from xmppd.server import Host, Server
    from xmppd.sessions import Session

log = logging.getLogger(__name__)
_E = etree._Element
_C = "{%s}" % ns.CLIENT
_MESSAGE, _PRESENCE, _IQ = _C + "message", _C + "presence", _C + "iq"
_PRIORITY = _C + "priority"
_DELAY = "{%s}delay" % ns.DELAY
_COPIES = frozenset(("{%s}sent" % ns.CARBONS, "{%s}received" % ns.CARBONS,
                     "{%s}result" % ns.MAM))


class Router(IqRouting):
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
        handled = defer.Deferred.fromCoroutine(_handled(done, held, el))
        return handled.addBoth(count.handled_after, started) if started else handled

    def route(self, el: _E) -> None:
        """A stanza the server itself sends (modules, errors, replies)."""
        self._route(el, None)

    # -- dispatch --------------------------------------------------------------------------
    # Each step returns None when routing finished synchronously, else the Deferred it awaits;
    # `held` collects what hook handlers `hold` (None for stanzas nobody waits on).
    def _route(self, el: _E, session: Session | None, held: _Held = None) -> _Done:
        self.routed += 1
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

    def undelivered(self, units: list[bytes], jid: JID) -> defer.Deferred[Any] | None:
        """Units written for the client session `jid` that never reached it (its connection
        is gone): each stanza as if the resource had gone before it arrived (RFC 6121
        §8.5.3.2.1). Chat/normal messages go to offline storage (`message_offline`, with a
        XEP-0203 delay of now) or bounce; IQ requests get <service-unavailable/>; presence,
        other messages and server-made copies (carbons, archive results) are dropped.
        Returns None, or a Deferred firing once what goes to offline storage is stored (a
        cluster node answers "handled" for a stanza it could not deliver only then)."""
        host = self.server.hosts.get(jid.domain)
        storing: list[defer.Deferred[Any]] = []
        for data in units:
            if not data.startswith((b"<message", b"<iq")):
                continue
            try:
                el = etree.fromstring(data)
                sender = JID.parse(el.get("from") or "")
            except (etree.XMLSyntaxError, JIDError):
                continue
            kind = el.get("type")
            if el.tag == _IQ:
                if kind in ("get", "set"):
                    self._bounce(el, StanzaError.service_unavailable(), sender)
                continue
            if kind not in (None, "chat", "normal") or _server_copy(el) or host is None:
                continue
            if not any(d.get("from") == jid.domain for d in el.iter(_DELAY)):
                stamp = datetime.fromtimestamp(self.server.clock.now(), timezone.utc)
                etree.SubElement(el, _DELAY, {"from": jid.domain, "stamp": stamp.isoformat(
                    timespec="milliseconds").replace("+00:00", "Z")},
                    nsmap={None: ns.DELAY})  # type: ignore[dict-item]
            stored = host.hooks.run(hooks.message_offline, StanzaEvent(el, sender, jid.bare))
            if isinstance(stored, defer.Deferred):
                storing.append(stored.addCallback(self._after_offline, el, sender))
            elif not stored:
                self._bounce(el, StanzaError.service_unavailable(), sender)
        return defer.gatherResults(storing) if storing else None

    def recipients(self, to: JID, kind: str) -> list[Session]:
        """The local sessions a message of type `kind` to `to` reaches now (RFC 6121 §8.5): the
        full JID's session, else for chat/normal the available resources of highest priority,
        for headline all available ones; none for groupchat and error to a bare JID."""
        if to.resource is not None:
            target = self.sessions.get(to)
            if target is not None:
                return [target]
            if kind in ("groupchat", "error"):
                return []
        if kind in ("groupchat", "error"):
            return []
        targets = self.sessions.available(to.bare)
        if targets and kind != "headline":
            top = targets[0].priority
            targets = [s for s in targets if s.priority == top]
        return targets

    def fan_out(self, el: _E, recipients: Sequence[JID]) -> None:
        """Deliver `el` (its `from` set, no `to`) to every full JID in `recipients`, each copy
        addressed to its recipient: a MUC room's groupchat message or presence (XEP-0045 §7.4).

        The stanza is serialised once; per recipient only `to` is spliced into the start tag
        (DESIGN.md hot path). A recipient's host runs its `user_inbound` hooks on the shared
        element (read-only; it has no `to`, `ev.to` is the recipient). Recipients not connected
        here get their own routed copy.
        """
        if el.get("to") is not None:
            del el.attrib["to"]
        self.routed += len(recipients)
        sender = JID.parse(el.get("from") or "")
        data: bytes | None = None
        cut = 0
        for to in recipients:
            host = self.server.hosts.get(to.domain)
            session = self.sessions.get(to) if host is not None else None
            if session is None or host is None:
                mine = deepcopy(el)
                mine.set("to", str(to))
                self._route(mine, None)
                continue
            if host.hooks.has(hooks.user_inbound):
                stopped = host.hooks.run(hooks.user_inbound, StanzaEvent(el, sender, to, None))
                if isinstance(stopped, defer.Deferred):
                    mine = deepcopy(el)
                    mine.set("to", str(to))
                    stopped.addCallback(_send_unless_stopped, session, mine)
                    continue
                if stopped:
                    continue
            if data is None:
                data = serialize(el)
                cut = len(etree.QName(el).localname) + 1
                if data[:cut] != b"<" + etree.QName(el).localname.encode():
                    cut = 0             # a prefixed start tag: never ours, but stay correct
            if el.tag == _MESSAGE:
                self.count.delivered += 1
                self.count.delivered_room += 1
            if cut:
                session.send_bytes(b"".join((data[:cut], b' to="',
                                             escape_attr(str(to)).encode(), b'"', data[cut:])))
            else:
                mine = deepcopy(el)
                mine.set("to", str(to))
                session.send_element(mine)

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

    def _deliver_presence(self, el: _E, to: JID, broadcast: bool) -> None:
        if broadcast or to.local is None:
            return
        if to.resource is not None:
            target = self.sessions.get(to)
            targets = [target] if target is not None else []
        else:
            targets = [s for s in self.sessions.resources(to) if s.available]
        if targets:
            data = serialize(el)
            for s in targets:
                s.send_bytes(data)

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


_Held = Optional[list[defer.Deferred[Any]]]
_Done = Optional[defer.Deferred[Any]]


async def _handled(done: defer.Deferred[Any] | None, held: list[defer.Deferred[Any]],
                   el: _E) -> None:
    """Wait for routing to finish, then for everything hooks held (routing may add more while
    it runs). Failures were answered or logged where they happened; log and go on."""
    if done is not None:
        try:
            await done
        except Exception:
            log.exception("routing failed for %s", summary(el))
    while held:
        work = held.pop(0)
        try:
            await work
        except Exception as e:
            log.warning("held work failed for %s: %s", summary(el), e)


def _send_unless_stopped(stopped: bool, session: Session, el: _E) -> None:
    if not stopped:
        session.send_element(el)


def _server_copy(el: _E) -> bool:
    """A copy the server made for this client alone (XEP-0280 carbons, XEP-0313 results)."""
    return any(isinstance(c.tag, str) and c.tag in _COPIES for c in el)


def _priority(el: _E) -> int:
    p = el.find(_PRIORITY)
    if p is None or not p.text:
        return 0
    try:
        return max(-128, min(127, int(p.text.strip())))     # RFC 6121 §4.7.2.3
    except ValueError:
        return 0
