# tests: tests/core/test_web_shells.py, tests/core/test_web_framing.py, tests/integration/test_web_clients.py
"""BOSH over HTTP (XEP-0124/0206): the sessions of one HTTP listener by `sid` — creation with
its checks (§7), requests handed to their `BoshSession` (xmppd/listeners/bosh.py), the end of
a session — and the POST handler that answers a request now or holds it.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from lxml import etree
from twisted.web.server import NOT_DONE_YET

from stanzas.errors import StreamError
from xmppd import c2s
from xmppd.limits import ConnectionGuard, ConnectionLimits
from xmppd.listeners.bosh import (_BODY, _VERSION, NS, BoshClient, BoshError,
                                  BoshSession, BoshSettings, Responder, _int_attr, _rid, body,
                                  terminate)
from xmppd.listeners.session import ClientSession
from xmppd.xmlstream import StreamOpen, parse_document

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)
HttpRequest = Any
_E = etree._Element


class BoshManager:
    """The sessions of one HTTP listener, by `sid`."""

    def __init__(self, server: Server, settings: c2s.C2SSettings, bosh: BoshSettings, *,
                 make_client: Callable[..., BoshClient] | None = None,
                 limits: ConnectionLimits | None = None) -> None:
        self.server = server
        self.settings = settings
        self.bosh = bosh
        self.limits = limits
        self.sessions: dict[str, BoshSession] = {}
        self._make_client = make_client or self._client_session

    def _client_session(self, session: BoshSession, *, peer_ip: str | None,
                        secure: bool) -> BoshClient:
        return ClientSession(self.server, self.settings, session, peer_ip=peer_ip,
                             secure=secure)

    def handle(self, data: bytes, responder: Responder, *, peer_ip: str | None,
               secure: bool) -> BoshSession | None:
        """One POSTed body; returns the session it went to, if any."""
        try:
            head, children = parse_document(
                data, root_tag=_BODY, content_ns=NS, max_stanza_size=self.settings.max_stanza_size,
                max_depth=self.settings.max_depth)
        except StreamError as e:
            log.info("BOSH body from %s refused: %s", peer_ip, e)
            responder.respond(terminate("bad-request"), 400)
            return None
        attrs = head.attrs
        sid = attrs.get("sid")
        if sid is None:
            try:
                self._create(attrs, children, responder, peer_ip=peer_ip, secure=secure)
            except BoshError as e:
                responder.respond(terminate(e.condition), 400 if e.condition == "bad-request"
                                  else 200)
            return None
        session = self.sessions.get(sid)
        if session is None:
            responder.respond(terminate("item-not-found"))    # §17.1: invalid sid
            return None
        session.request(attrs, children, responder)
        return session

    def _create(self, attrs: dict[str, str], children: list[_E], responder: Responder, *,
                peer_ip: str | None, secure: bool) -> None:
        rid = _rid(attrs)
        to = (attrs.get("to") or "").lower().rstrip(".")
        if to not in self.settings.hosts:
            raise BoshError("host-unknown", f"this server does not serve {to!r}")
        wait = min(_int_attr(attrs, "wait"), int(self.bosh.max_wait))
        hold = min(_int_attr(attrs, "hold"), self.bosh.max_hold)
        slot = self.limits.open(peer_ip) if self.limits is not None else None
        if self.limits is not None and slot is None:
            raise BoshError("policy-violation", "too many connections")
        sid = secrets.token_urlsafe(18)     # §7.1: opaque, unpredictable (144 bits)
        session = BoshSession(sid, clock=self.server.clock, host=to, rid=rid, wait=wait,
                              hold=hold, settings=self.bosh, on_end=self._ended)
        session.guard = ConnectionGuard(slot)
        self.sessions[sid] = session
        client = self._make_client(session, peer_ip=peer_ip, secure=secure)
        session.client = client
        lang = attrs.get("xml:lang", "en")
        client.items_received([StreamOpen({"to": to, "version": attrs.get(_VERSION, "1.0"),
                                           "xml:lang": lang}, None)])
        if children:
            client.items_received(list(children))
        stream = getattr(client, "stream", None)
        units, session.out = session.out, []
        client.resume_writing()             # the creation response carries what was held
        if session.terminal is not None:
            responder.respond(session.terminal)
            session._end()
            return
        ver = attrs.get("ver", "1.11")
        response = body(units, sid=sid, wait=str(wait), requests=str(session.requests),
                        hold=str(hold), inactivity=str(int(session.inactivity)),
                        polling=str(int(self.bosh.polling)), ver=min(ver, "1.11", key=_ver),
                        ack=str(rid), authid=getattr(stream, "stream_id", "") or sid,
                        secure="true", **{"from": to}, xmpp_version="1.0",
                        xmpp_restartlogic="true")
        session.cache[rid] = response
        responder.respond(response)
        session._maybe_inactive()

    def _ended(self, session: BoshSession) -> None:
        self.sessions.pop(session.sid, None)

    def close_all(self) -> None:
        for session in list(self.sessions.values()):
            session._fail("system-shutdown")


def _ver(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        return (0,)


@dataclass(eq=False)
class HttpResponder:
    """A held Twisted request."""
    request: HttpRequest
    headers: Callable[[HttpRequest], None]
    done: bool = field(default=False)

    def respond(self, data: bytes, code: int = 200) -> None:
        if self.done:
            return
        self.done = True
        if getattr(self.request, "_disconnected", False):
            return
        self.request.setResponseCode(code)
        self.request.setHeader("content-type", "text/xml; charset=utf-8")
        self.headers(self.request)
        self.request.write(data)
        self.request.finish()


def render_post(manager: BoshManager, request: HttpRequest, *, secure: bool,
                headers: Callable[[HttpRequest], None]) -> int:
    """POST to the BOSH path: hand the body over and hold the request until answered."""
    assert request.content is not None
    data = request.content.read()
    responder = HttpResponder(request, headers)
    peer = request.getClientAddress()

    # (Twisted drops `request.channel` once the request is answered, maybe within handle)
    channel_guard = getattr(getattr(request, "channel", None), "guard", None)
    session = manager.handle(data, responder, peer_ip=getattr(peer, "host", None),
                             secure=secure)
    if session is not None and session.guard is not None and session.guard.slot is not None \
            and session.guard.slot.authenticated and channel_guard is not None:
        channel_guard.authenticated()   # an HTTP connection carrying a user's requests

    def gone(_: object) -> None:
        if not responder.done:
            responder.done = True
            if session is not None:
                session.request_gone(responder)
    if not responder.done:
        request.notifyFinish().addErrback(gone)
    return NOT_DONE_YET
