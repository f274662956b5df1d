# tests: tests/core/test_client_session.py, tests/modules/test_sasl2_inline.py
"""What a client session does for its stream's negotiation (xmppd/listeners/session.py
`ClientSession` mixes this in): the answers to the events of logging in, before a resource is
bound — the account's credentials (SASL), FAST tokens and the SASL2 completion (XEP-0484,
XEP-0388: xmppd/listeners/sasl2_shell.py), pre-auth IQs (XEP-0077 registration), and nonzas
(XEP-0198 `<resume/>`, through the `nonza_in` hook). Each hands its answer to the stream and
pumps it (`_pump`).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from lxml import etree
from twisted.python.failure import Failure

from stanzas.errors import StanzaError, StreamError, error_reply
from stanzas.jid import JID
from xmppd import c2s, hooks, throttle
from xmppd.hooks import StanzaEvent
from xmppd.listeners import sasl2_shell
from xmppd.module import IqRequest

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger("xmppd.listeners.session")
_E = etree._Element


class SessionLogin:
    """Mixed into ClientSession; the attributes are the session's."""

    server: Server
    stream: c2s.C2SStream
    peer_ip: str | None
    bound: bool
    jid: JID
    _pump: Callable[[], None]
    close: Callable[[StreamError | None], None]

    def _credentials(self, account: Any) -> None:
        # A disabled account (XEP-0133 §4.3) fails like a wrong password: <not-authorized/>,
        # and nothing tells a guesser that the name exists.
        usable = account is not None and not account.disabled
        self.stream.credentials_found(account.credentials if usable else None)
        self._pump()

    def _tokens(self, found: list[Any]) -> None:
        self.stream.tokens_found(found, self.server.clock.now())
        self._pump()

    def _sasl2_done(self, done: sasl2_shell.Completed) -> None:
        """XEP-0388: <success/> with the inline results, then what must follow it."""
        children, full, after = done
        self.stream.sasl2_finish(children, full)
        self._pump()
        for run in after:
            run()

    def _sasl2_failed(self, failure: Failure) -> None:
        log.error("SASL2 completion failed for %s: %s", self.stream.jid, failure.value)
        self.close(StreamError.internal_server_error())

    def _storage_failed(self, failure: Failure) -> None:
        if isinstance(failure.value, throttle.Throttled):
            log.info("login refused from %s: %s", self.peer_ip, failure.value)
        else:
            log.warning("credential look-up failed: %s", failure.value)
        self.stream.credentials_unavailable()
        self._pump()

    def _preauth_iq(self, ev: c2s.PreAuthIq) -> None:
        host = self.server.hosts[ev.host]
        el = ev.stanza
        payload = next((c for c in el if isinstance(c.tag, str)), None)
        kind = el.get("type")
        handler = host.iq_handlers.get((kind or "", "preauth", payload.tag)) \
            if payload is not None else None

        def reply(answer: _E) -> None:
            for attr in ("to", "from"):
                if attr in answer.attrib:
                    del answer.attrib[attr]
            self.stream.send_element(answer)
            self._pump()
        if kind not in ("get", "set"):
            return
        if handler is None or payload is None:
            reply(error_reply(el, StanzaError.service_unavailable()))
            return
        req = IqRequest(el, JID.of(None, ev.host), JID.of(None, ev.host), payload, self)
        self.server.router.call_iq_handler(handler, req, reply)

    def _nonza(self, el: _E) -> None:
        stream = self.stream
        bound = self.bound
        who = self.jid if bound else stream.jid
        host = self.server.hosts.get(who.domain) if who is not None else None
        if who is not None and host is not None and host.hooks.has(hooks.nonza_in):
            handled = host.hooks.run(hooks.nonza_in, StanzaEvent(el, who, who, self))
            if handled is not True and handled is not False:
                if not bound:       # async handler: it owns the outcome; input waits for it
                    handled.addBoth(self._prebind_nonza_done)
                return
            if handled:
                if not bound:
                    self._prebind_nonza_done(None)
                return
        self.close(StreamError.unsupported_stanza_type(f"unknown element {el.tag}"))

    def _prebind_nonza_done(self, result: object) -> object:
        """A nonza before binding (XEP-0198 <resume/>) was answered: go on reading."""
        self.stream.nonza_handled()
        self._pump()
        return None
