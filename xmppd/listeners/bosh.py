# tests: tests/core/test_web_framing.py, tests/core/test_web_shells.py, tests/integration/test_web_clients.py
"""XMPP over BOSH (XEP-0124, XEP-0206) at the HTTP listener's `bosh_path`.

Every POSTed `<body/>` goes through the restricted parser (`parse_document`, the same scan and
per-stanza limits as TCP); one that does not parse gets HTTP 400 and
`<body type='terminate' condition='bad-request'/>` (XEP-0124 §17.1). Its children go to the
session's `ClientSession` in "bosh" framing (no STARTTLS, XEP-0206 §5; pre-auth limits apply
per child).

- Creation (XEP-0124 §7, XEP-0206 §3): no `sid`; `to` must be ours (else `host-unknown`), `rid`
  a positive integer below 2^53 (§14), `wait` and `hold` integers (else `bad-request`). We
  answer `wait`/`hold` capped by config, `requests` = hold + 1 (§7 RECOMMENDED), `polling`,
  `inactivity`, `ver`, `ack` (we acknowledge throughout, §9.1), `authid` = stream id,
  `xmpp:version`, `xmpp:restartlogic`, and the stream features.
- Requests (§8, §14): payloads are forwarded and requests answered strictly in `rid` order; a
  `rid` inside the window (last + `requests`) but ahead of a missing one waits for it; beyond
  the window, or a `rid` we can neither resend nor find held, ends the session with
  `item-not-found`; a `rid` already answered gets the cached response again (§14.3, the cache
  is trimmed by the client's `ack`); a `rid` still held gets a recoverable `type='error'`
  on the old HTTP request, and the answer goes to the new one. An unknown `sid` is
  `item-not-found`.
- Holding (§8, §11): at most `hold` requests wait for payloads, each at most `wait` seconds,
  then an empty `<body/>`; output goes to the oldest held request. Responses carry `ack` when
  it differs from the answered `rid` (§9.1). More than `requests` unanswered requests, or two
  empty requests of a polling session closer than `polling` seconds, end the session with
  `policy-violation` (§11, §12).
- `inactivity` seconds with no request held end the session silently (§10).
- Each session holds a slot of the process's connection limits (xmppd/limits.py) until it
  ends; past them a creation request is refused with `policy-violation`. An HTTP connection
  that carries a request of an authenticated session no longer counts as a stranger's.
- `xmpp:restart='true'` restarts the stream after SASL (XEP-0206 §5); `type='terminate'`
  forwards its payloads, closes the stream and answers `type='terminate'` (§13). A stream the
  server closes with an error answers `type='terminate' condition='remote-stream-error'` with
  the `<stream:error/>` inside (XEP-0206 §7).
Not implemented: multiple streams per session (§19, optional), `pause` (no `maxpause` is
advertised, so clients must not send it), content encodings.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from lxml import etree
from twisted.internet.interfaces import IDelayedCall

from stanzas import ns
from stanzas.errors import StreamError, escape_attr
from xmppd.clock import Clock
from xmppd.limits import ConnectionGuard
from xmppd.xmlstream import StreamOpen

log = logging.getLogger(__name__)
HttpRequest = Any      # twisted.web.server.Request (untyped)
NS = ns.HTTPBIND
NS_XBOSH = ns.XBOSH
_BODY = "{%s}body" % NS
_RESTART = "{%s}restart" % NS_XBOSH
_VERSION = "{%s}version" % NS_XBOSH
_MAX_RID = (1 << 53) - 1            # XEP-0124 §14.1
_E = etree._Element


class BoshError(Exception):
    """A terminal binding condition (XEP-0124 §17.1)."""

    def __init__(self, condition: str, text: str = "") -> None:
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition


def body(children: list[bytes] = (), **attrs: str) -> bytes:  # type: ignore[assignment]
    """A response `<body/>` with `attrs` (``xmpp_version`` → `xmpp:version`) around units."""
    parts = [b"<body xmlns='%s'" % NS.encode()]
    if any(k.startswith("xmpp_") for k in attrs):
        parts.append(b" xmlns:xmpp='%s'" % NS_XBOSH.encode())
    for key, value in attrs.items():
        name = "xmpp:" + key[5:] if key.startswith("xmpp_") else key
        parts.append((" %s='%s'" % (name, escape_attr(value))).encode())
    if not children:
        parts.append(b"/>")
        return b"".join(parts)
    parts.append(b">")
    parts.extend(children)
    parts.append(b"</body>")
    return b"".join(parts)


def terminate(condition: str | None = None, children: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    attrs = {"type": "terminate"}
    if condition:
        attrs["condition"] = condition
    if condition == "remote-stream-error":
        children = [b"".join(children)] if children else []
    return body(list(children), **attrs)


class Responder(Protocol):
    """One waiting HTTP request; `respond` may be called once."""

    def respond(self, data: bytes, code: int = 200) -> None: ...


class BoshClient(Protocol):
    """What a BOSH session drives: the ClientSession (a fake in unit tests)."""

    def items_received(self, items: list[Any]) -> None: ...

    def close(self, error: StreamError | None = None) -> None: ...

    def connection_lost(self) -> None: ...

    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BoshSettings:
    max_wait: float = 60.0          # longest `wait` granted
    max_hold: int = 1               # most requests held
    inactivity: float = 60.0        # §10: time with no request held before the session ends
    polling: float = 2.0            # §12: shortest interval between empty polls


@dataclass(slots=True)
class _Held:
    rid: int
    responder: Responder
    timer: IDelayedCall | None = None


@dataclass(slots=True)
class _Request:
    rid: int
    attrs: dict[str, str]
    children: list[_E]
    responder: Responder


class BoshSession:
    """One BOSH session: `rid` order, held requests, acks and the session's timers. The
    `ClientSession` writes to it as its Transport (`send`, `close`)."""

    def __init__(self, sid: str, *, clock: Clock, host: str, rid: int, wait: int, hold: int,
                 settings: BoshSettings, on_end: Callable[[BoshSession], None]) -> None:
        self.sid = sid
        self.clock = clock
        self.host = host
        self.wait = wait
        self.hold = hold
        self.requests = hold + 1
        self.polling_session = wait == 0 or hold == 0
        self.inactivity = settings.inactivity + (settings.polling if self.polling_session else 0)
        self.polling = settings.polling
        self.on_end = on_end
        self.client: BoshClient | None = None
        self.last_rid = rid                 # highest rid processed, all lower ones too
        self.held: list[_Held] = []
        self.early: dict[int, _Request] = {}     # ahead of a missing rid
        self.out: list[bytes] = []
        self.cache: dict[int, bytes] = {}       # rid -> response, for resends (§14.3)
        self.terminal: bytes | None = None      # the stream is over: answer this, then end
        self.ended = False
        self._inactive: IDelayedCall | None = None
        self._last_empty_at: float | None = None    # polling check (§12)
        self._last_response_empty = False
        self.guard: ConnectionGuard | None = None   # its slot of the connection limits

    # -- requests ------------------------------------------------------------------------
    def request(self, attrs: dict[str, str], children: list[_E], responder: Responder) -> None:
        if self.ended:
            responder.respond(terminate("item-not-found"))
            return
        try:
            rid = _rid(attrs)
            self._request(_Request(rid, attrs, children, responder))
        except BoshError as e:
            responder.respond(terminate(e.condition))
            self._fail(e.condition)

    def _request(self, req: _Request) -> None:
        rid = req.rid
        if rid <= self.last_rid:
            if rid in self.cache:                       # §14.3: resend what was lost
                req.responder.respond(self.cache[rid])
                return
            for held in self.held:
                if held.rid == rid:                     # §14.3: answer the old one, keep new
                    held.responder.respond(body(type="error"))
                    held.responder = req.responder
                    return
            raise BoshError("item-not-found", f"rid {rid} was answered long ago")
        if rid > self.last_rid + self.requests:         # §14.2: outside the window
            raise BoshError("item-not-found", f"rid {rid} is outside the window")
        if rid != self.last_rid + 1:
            earlier = self.early.get(rid)
            if earlier is not None:                     # a resend of a waiting one
                earlier.responder.respond(body(type="error"))
            self.early[rid] = req                       # §8: in order, whatever arrives first
            return
        self._process(req)
        while self.last_rid + 1 in self.early:
            self._process(self.early.pop(self.last_rid + 1))

    def _process(self, req: _Request) -> None:
        attrs = req.attrs
        self.last_rid = req.rid
        self._cancel_inactivity()
        ack = attrs.get("ack")
        if ack is not None and ack.isdigit():
            for old in [r for r in self.cache if r <= int(ack)]:
                del self.cache[old]
        kind = attrs.get("type")
        if self.terminal is not None:
            self._respond_to(_Held(req.rid, req.responder), self.terminal)
            self._end()
            return
        empty = not req.children and attrs.get(_RESTART) != "true"
        if kind != "terminate" and len(self.held) + 1 > self.requests:
            raise BoshError("policy-violation", "too many simultaneous requests (§11)")
        if kind != "terminate" and empty and self.polling_session:
            now = self.clock.now()
            if self._last_empty_at is not None and self._last_response_empty \
                    and now - self._last_empty_at < self.polling:
                raise BoshError("policy-violation", "polling too frequently (§12)")
            self._last_empty_at = now
        held = _Held(req.rid, req.responder)
        self.held.append(held)
        client = self.client
        if client is not None:
            if attrs.get(_RESTART) == "true":
                lang = attrs.get("xml:lang", "en")
                client.items_received([StreamOpen({"to": self.host, "version": "1.0",
                                                   "xml:lang": lang}, None)])
            if req.children and self.terminal is None:
                client.items_received(list(req.children))
            if kind == "terminate" and self.terminal is None:
                client.close()
                self.terminal = terminate()
        if self.ended:
            return
        if kind == "terminate":
            self._finish_terminal()
            return
        if self.terminal is not None:
            self._finish_terminal()
            return
        self._flush()
        while len(self.held) > self.hold:
            self._respond_oldest([])
        if held in self.held and self.wait >= 0:
            held.timer = self.clock.call_later(self.wait, self._waited, held)

    def request_gone(self, responder: Responder) -> None:
        """The HTTP connection of a held request closed before we answered it."""
        for held in list(self.held):
            if held.responder is responder:
                self.held.remove(held)
                if held.timer is not None and held.timer.active():
                    held.timer.cancel()
        self._maybe_inactive()

    # -- Transport for the ClientSession -------------------------------------------------
    def send(self, units: list[bytes]) -> None:
        self.out.extend(u for u in units if u)
        self._flush()
        if self.out and self.client is not None:
            # No request to answer: the session keeps what follows (bounded) until one comes.
            self.client.pause_writing()

    def abort(self) -> None:
        """The client reads nothing (its output overflowed): the session ends now."""
        self.out.clear()
        self._fail("policy-violation")

    def start_tls(self) -> bool:
        return False                        # XEP-0206 §5: TLS belongs to HTTP

    def close(self) -> None:
        """The stream is over (our side): answer with a terminal body."""
        if self.terminal is None:
            error = [u for u in self.out if u.startswith(b"<stream:error")]
            if error:
                self.terminal = terminate("remote-stream-error", error)
            else:
                self.terminal = terminate()
            self.out.clear()
        if self.held:
            self._finish_terminal()

    # -- helpers -------------------------------------------------------------------------
    def _flush(self) -> None:
        if self.out and self.held and self.terminal is None:
            out, self.out = self.out, []
            self._respond_oldest(out)
            if self.client is not None:
                self.client.resume_writing()

    def _respond_oldest(self, units: list[bytes]) -> None:
        held = self.held.pop(0)
        attrs: dict[str, str] = {}
        if self.last_rid != held.rid:
            attrs["ack"] = str(self.last_rid)           # §9.1
        self._respond_to(held, body(units, **attrs))
        self._last_response_empty = not units
        self._maybe_inactive()

    def _respond_to(self, held: _Held, data: bytes) -> None:
        if held.timer is not None and held.timer.active():
            held.timer.cancel()
        self.cache[held.rid] = data
        while len(self.cache) > self.requests:
            del self.cache[min(self.cache)]
        held.responder.respond(data)

    def _waited(self, held: _Held) -> None:
        held.timer = None
        if held in self.held:
            # Answer in rid order: everything older than this one goes first.
            while self.held and self.held[0] is not held:
                self._respond_oldest([])
            if self.held:
                self._respond_oldest([])

    def _finish_terminal(self) -> None:
        assert self.terminal is not None
        held, self.held = self.held, []
        for i, h in enumerate(held):
            # §13: the terminal body on the oldest request, empty bodies on the others.
            self._respond_to(h, self.terminal if i == 0 else body())
        if held:
            self._end()

    def _maybe_inactive(self) -> None:
        if not self.held and not self.ended and self._inactive is None:
            self._inactive = self.clock.call_later(self.inactivity, self._timed_out)

    def _cancel_inactivity(self) -> None:
        if self._inactive is not None:
            if self._inactive.active():
                self._inactive.cancel()
            self._inactive = None

    def _timed_out(self) -> None:
        self._inactive = None
        log.info("BOSH session %s inactive for %s s", self.sid[:6], self.inactivity)
        self._end()

    def _fail(self, condition: str) -> None:
        """A terminal binding condition: the session ends now."""
        log.info("BOSH session %s terminated: %s", self.sid[:6], condition)
        for h in self.held:
            self._respond_to(h, terminate(condition))
        self.held = []
        if self.client is not None and self.terminal is None:
            self.terminal = terminate(condition)
            self.client.close()
        self._end()

    def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self._cancel_inactivity()
        for h in self.held:
            if h.timer is not None and h.timer.active():
                h.timer.cancel()
            h.responder.respond(body())
        self.held = []
        self.early.clear()
        client, self.client = self.client, None
        if client is not None:
            client.connection_lost()
        if self.guard is not None:
            self.guard.close()
        self.on_end(self)


def _rid(attrs: dict[str, str]) -> int:
    value = attrs.get("rid", "")
    if not value.isdigit() or not 0 < int(value) <= _MAX_RID:
        raise BoshError("bad-request", "rid must be a positive integer below 2^53")
    return int(value)


def _int_attr(attrs: dict[str, str], name: str) -> int:
    value = attrs.get(name, "")
    if not value.isdigit():
        raise BoshError("bad-request", f"{name} must be a non-negative integer")
    return int(value)
