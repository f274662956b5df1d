# tests: tests/core/test_router.py, tests/core/test_module.py
"""IQ routing (RFC 6120 §8.2.3, §10.3; RFC 6121 §8.5.3.2.1), part of the router.

- get/set to the server, a bare JID or with no `to` → the handler a module registered for
  (type, target, payload); none → `<service-unavailable/>` (RFC 6120 §8.4). Handlers *return*
  the reply or raise StanzaError; a StorageError becomes `<internal-server-error/>` type
  'wait', anything else `<internal-server-error/>` (logged).
- get/set to a full JID → that session, or `<service-unavailable/>` when it is gone.
- result/error to the server resolves a `send_iq` waiter; to a full JID, goes to that session.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import defer

from stanzas.errors import StanzaError, error_reply
from stanzas.jid import JID
from storage.errors import StorageError
from xmppd.hooks import summary
from xmppd.module import IqRequest, iq_error_from_reply

if TYPE_CHECKING:
    from xmppd.server import Host
    from xmppd.sessions import Session, SessionManager

log = logging.getLogger(__name__)
_E = etree._Element


class IqRouting:
    sessions: SessionManager

    def route(self, el: _E) -> None:
        raise NotImplementedError

    def _bounce(self, el: _E, error: StanzaError, sender: JID) -> None:
        raise NotImplementedError

    # -- IQs -------------------------------------------------------------------------------
    def _iq(self, el: _E, sender: JID, to: JID, host: Host, session: Session | None) -> None:
        kind = el.get("type")
        if kind in ("result", "error"):
            self._iq_response(el, to, host)
            return
        if kind not in ("get", "set") or not el.get("id"):
            self._bounce(el, StanzaError.bad_request("an IQ needs an id and a type"), sender)
            return
        if to.resource is not None:
            target = self.sessions.get(to)
            if target is None:
                self._bounce(el, StanzaError.service_unavailable(), sender)
            else:
                target.send_element(el)
            return
        payload = next((c for c in el if isinstance(c.tag, str)), None)
        if payload is None:
            self._bounce(el, StanzaError.bad_request("an IQ get/set has one child"), sender)
            return
        handler = None
        if to.local is None:
            handler = host.iq_handlers.get((kind, "host", payload.tag))
        else:
            if to.bare == sender.bare:
                handler = host.iq_handlers.get((kind, "self", payload.tag))
            if handler is None:
                handler = host.iq_handlers.get((kind, "bare", payload.tag))
        if handler is None:
            self._bounce(el, StanzaError.service_unavailable(), sender)
            return
        self.call_iq_handler(handler, IqRequest(el, sender, to, payload, session), self.route)

    def call_iq_handler(self, handler: Any, req: IqRequest, reply_to: Any) -> None:
        """Run an IQ handler; route its reply (or the error it raised) with `reply_to`."""
        try:
            result = handler(req)
        except Exception as e:
            self._iq_failed(e, req, reply_to)
            return
        if isinstance(result, defer.Deferred) or hasattr(result, "__await__"):
            d = result if isinstance(result, defer.Deferred) else \
                defer.Deferred.fromCoroutine(result)
            d.addCallbacks(lambda reply: self._iq_replied(reply, req, reply_to),
                           lambda f: self._iq_failed(f.value, req, reply_to))
            return
        self._iq_replied(result, req, reply_to)

    def _iq_replied(self, reply: Any, req: IqRequest, reply_to: Any) -> None:
        if not isinstance(reply, etree._Element):
            log.error("IQ handler returned %r for %s", reply, summary(req.stanza))
            self._iq_failed(RuntimeError("no reply"), req, reply_to)
            return
        if reply.get("from") is None:
            reply.set("from", str(req.to))
        reply_to(reply)

    def _iq_failed(self, exc: BaseException, req: IqRequest, reply_to: Any) -> None:
        if isinstance(exc, StanzaError):
            err = exc
        elif isinstance(exc, StorageError):
            err = StanzaError.internal_server_error(type="wait")
            log.warning("storage failed for %s: %s", summary(req.stanza), exc)
        else:
            err = StanzaError.internal_server_error()
            log.error("IQ handler failed on %s", summary(req.stanza),
                      exc_info=(type(exc), exc, exc.__traceback__))
        reply = error_reply(req.stanza, err)
        if reply.get("from") is None:
            reply.set("from", str(req.to))
        reply_to(reply)

    def _iq_response(self, el: _E, to: JID, host: Host) -> None:
        if to.resource is None or to.local is None:
            waiter = host.pending_iqs.pop((str(to), el.get("id") or ""), None)
            if waiter is not None and not waiter.called:
                if el.get("type") == "result":
                    waiter.callback(el)
                else:
                    waiter.errback(iq_error_from_reply(el))
            return
        target = self.sessions.get(to)
        if target is not None:
            target.send_element(el)
