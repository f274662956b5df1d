# tests: tests/core/test_router.py, tests/core/test_router_handled.py
"""Delivery to local sessions, part of the router (xmppd/router.py): who a message reaches
(RFC 6121 §8.5), MUC fan-out with one serialisation, presence to its targets, what a lost
connection leaves undelivered, and when a client's stanza counts as handled.

- `recipients(to, kind)`: the full JID's session, else for chat/normal the available
  resources of highest priority, for headline all available ones (§8.5.2, §8.5.3).
- `fan_out(el, recipients)`: one serialisation, each recipient's `to` spliced into the start
  tag (DESIGN.md hot path).
- `undelivered(units, jid)`: what a gone session never got, as if it had gone before
  (§8.5.3.2.1): messages to offline storage or bounced, IQ requests answered.
- `when_handled(done, held, el)`: one Deferred for "routing finished and everything hooks
  held has fired" (the sender's XEP-0198 ack waits for it), chained on the Deferreds
  themselves: no coroutine per stanza.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from copy import deepcopy
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

from lxml import etree
from twisted.internet import defer
from twisted.python.failure import Failure

from stanzas import ns
from stanzas.errors import StanzaError, escape_attr
from stanzas.jid import JID, JIDError
from stanzas.wire import serialize
from xmppd import hooks
from xmppd.hooks import StanzaEvent, summary

if TYPE_CHECKING:
    from xmppd.server import Server
    from xmppd.sessions import Session, SessionManager

log = logging.getLogger("xmppd.router")
_E = etree._Element
_C = "{%s}" % ns.CLIENT
_MESSAGE, _IQ = _C + "message", _C + "iq"
_DELAY = "{%s}delay" % ns.DELAY
_COPIES = frozenset(("{%s}sent" % ns.CARBONS, "{%s}received" % ns.CARBONS,
                     "{%s}result" % ns.MAM))

Held = Optional[list[defer.Deferred[Any]]]
Done = Optional[defer.Deferred[Any]]


class Delivery:
    server: Server
    sessions: SessionManager
    routed: int
    count: Any

    def _route(self, el: _E, session: Session | None, held: Held = None) -> Done:
        raise NotImplementedError

    def _bounce(self, el: _E, error: StanzaError, sender: JID) -> None:
        raise NotImplementedError

    def _after_offline(self, stored: bool, el: _E, sender: JID) -> None:
        raise NotImplementedError

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


def when_handled(done: Done, held: list[defer.Deferred[Any]], el: _E) -> defer.Deferred[None]:
    """Fires once `done` (routing) has fired, then everything in `held` (routing may add to it
    while it runs). Never fails: failures were answered or logged where they happened; they
    are logged here too and count as handled."""
    out: defer.Deferred[None] = defer.Deferred()
    if done is None:
        _await_held(None, out, held, el)
    else:
        done.addBoth(_routed, out, held, el)
    return out


def _routed(result: object, out: defer.Deferred[None], held: list[defer.Deferred[Any]],
            el: _E) -> None:
    if isinstance(result, Failure):
        log.error("routing failed for %s", summary(el), exc_info=result.value)
    _await_held(None, out, held, el)


def _await_held(_: object, out: defer.Deferred[None], held: list[defer.Deferred[Any]],
                el: _E) -> None:
    if not held:
        out.callback(None)
        return
    works = held[:]
    del held[:]
    left = [len(works)]

    def one(result: object) -> None:
        if isinstance(result, Failure):
            log.warning("held work failed for %s: %s", summary(el), result.value)
        left[0] -= 1
        if not left[0]:
            _await_held(None, out, held, el)     # and whatever was held meanwhile
    for work in works:
        work.addBoth(one)


def _send_unless_stopped(stopped: bool, session: Session, el: _E) -> None:
    if not stopped:
        session.send_element(el)


def _server_copy(el: _E) -> bool:
    """A copy the server made for this client alone (XEP-0280 carbons, XEP-0313 results)."""
    return any(isinstance(c.tag, str) and c.tag in _COPIES for c in el)
