# tests: tests/core/test_c2s.py, tests/core/test_sasl2.py
"""Client-to-server stream negotiation (RFC 6120 §4–§7), sans-IO.

A `C2SStream` is fed bytes with `receive(data, now)` and answers with bytes in `data_to_send()`
and `Event`s in `events()` (xmppd/c2s_events.py); the Twisted shell (xmppd/listeners/) moves
bytes and performs the events that need the outside world (TLS, credential look-up, binding,
routing). Opening, STARTTLS, features and framings: xmppd/c2s_features.py.

- SASL (§6, xmppd/sasl1.py) and SASL2 (XEP-0388, xmppd/sasl2.py: Bind 2, FAST): SCRAM-SHA-*,
  their -PLUS variants where the transport has channel bindings (XEP-0440 lists the types),
  PLAIN over TLS only; failures as §6.5 conditions; after five failures the stream closes
  with `<policy-violation/>`. SASL2 has no stream restart: the shell completes the inline
  requests (`Sasl2Success`) and calls `sasl2_finish`.
- Pre-authentication limits: stanzas of at most `preauth_stanza_size` bytes and
  `preauth_elements` elements (ejabberd 26.04 uses 8 KiB / 32), and at most `preauth_elements`
  top-level elements held while credentials are looked up.
- Resource binding (§7) via the BindRequest event; the legacy session IQ (RFC 3921) is answered.
- After binding, every stanza is stamped with the session's full JID (§8.1.2.1; a `from` that
  names another entity → `<invalid-from/>`) and handed out as a Stanza event; nonzas in other
  namespaces go to `Nonza` events (stream management, CSI).
- Between authentication and binding, nonzas are `Nonza` events too (XEP-0198 §5: `<resume/>`
  comes before binding); input waits until the shell calls `nonza_handled()` or `resumed(jid)`,
  which binds the stream to the resumed session without a bind request.
Not here: what happens to a stanza (xmppd/router.py), who may have which resource
(xmppd/sessions.py).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Callable, Literal, Union

from lxml import etree

from stanzas import iq, ns
from stanzas.errors import StanzaError, StreamError, error_reply, escape_attr
from stanzas.jid import JID
from storage.fast import StoredToken
from xmppd import c2s_features, c2s_stanzas
from xmppd.c2s_events import (AuthFailed, Authenticated, BindRequest, C2SSettings, Closed,
                              Event, NeedCredentials, Nonza, PreAuthIq, Sasl2Success,
                              StartTLS, Stanza)
from xmppd.sasl import ScramCredentials
from xmppd.sasl1 import Sasl1
from xmppd.sasl2 import Sasl2, Sasl2Request
from xmppd.sasl_errors import SaslFailure
from xmppd.xmlstream import FRAMING_NS, StreamClose, StreamOpen, XmlStreamParser, serialize

__all__ = ["AuthFailed", "Authenticated", "BindRequest", "C2SSettings", "C2SStream", "Closed",
           "Event", "NeedCredentials", "Nonza", "PreAuthIq", "Sasl2Request", "Sasl2Success",
           "StartTLS", "Stanza"]

_E = etree._Element
_Item = Union[StreamOpen, StreamClose, _E, StreamError]   # what the parser gave, in order
_SASL = "{%s}" % ns.SASL
_SASL2 = "{urn:xmpp:sasl:2}"
_STANZAS = frozenset("{%s}%s" % (ns.CLIENT, n) for n in ("message", "presence", "iq"))
_MAX_SASL_FAILURES = 5
_MAX_QUEUED = 1000           # top-level elements held while binding is pending


class C2SStream:
    """One client connection's XML stream, from the first byte to `</stream:stream>`."""

    def __init__(self, settings: C2SSettings, *, now: float, secure: bool = False,
                 peer_ip: str | None = None) -> None:
        self.settings = settings
        self.secure = secure
        self.peer_ip = peer_ip
        self.host: str | None = None
        self.jid: JID | None = None           # bare after SASL, full after binding
        self.state: Literal["header", "features", "sasl", "restart", "bind", "bound",
                            "closed"] = "header"
        self.authenticated = False
        self.stream_id = ""
        self.lang = "en"
        self.last_activity = now
        self._opened_at = now
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._queue: list[_Item] = []
        self._waiting = False                  # an async answer is pending; queue input
        self._header_sent = False
        self._sasl_failures = 0
        self._sasl1 = Sasl1(self)
        self._sasl2 = Sasl2(self)
        self._auth: Sasl1 | Sasl2 = self._sasl1     # the profile of the exchange in progress
        self.from_jid: JID | None = None       # the header's 'from' (XEP-0388 §2.1)
        # The transport's channel-binding data by type (TLS; set by the shell)
        self.channel_bindings: Callable[[], Mapping[str, bytes]] = dict
        self.framed = settings.framing != "tcp"
        self.parser = XmlStreamParser(max_stanza_size=settings.preauth_stanza_size,
                                      max_depth=settings.max_depth,
                                      max_elements=settings.preauth_elements,
                                      framing="websocket" if settings.framing == "websocket"
                                      else "stream")

    # -- I/O surface -----------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the client: any part of the stream (TCP), or one whole WebSocket
        message."""
        if self.state == "closed":
            return
        if self.settings.framing == "websocket":
            events, error = self.parser.feed_message(data)
        else:
            events, error = self.parser.feed_until_error(data)
        # What was complete before bad bytes is handled first, then the error closes the
        # stream: the outcome does not depend on how TCP split the bytes.
        items: list[_Item] = [*events, error] if error is not None else list(events)
        self.receive_items(items, now)

    def receive_items(self, items: list[_Item], now: float) -> None:
        """Parsed input: a header, elements, the stream end or a StreamError (BOSH parses
        each `<body/>` itself and hands its children here)."""
        if self.state == "closed":
            return
        self.last_activity = now
        if self.settings.framing == "bosh" and not self.authenticated:
            items = [c2s_features.preauth_checked(item, self.settings) for item in items]
        if self._waiting or self._queue:
            self._queue.extend(items)
            # Input waits while the shell looks credentials up or binds; bound it (DESIGN.md:
            # pre-auth state is tightly bounded), or a slow look-up buffers a flood.
            limit = _MAX_QUEUED if self.authenticated else self.settings.preauth_elements
            if len(self._queue) > limit:
                self.close(StreamError.policy_violation("too much input while waiting"))
            return
        self._process(items)

    def take_output(self) -> list[bytes]:
        """Pending output as stream-level units (element, header or footer), in order."""
        out, self._out = self._out, []
        return out

    def data_to_send(self) -> bytes:
        out, self._out = b"".join(self._out), []
        return out

    def events(self) -> list[Event]:
        ev, self._events = self._events, []
        return ev

    def next_deadline(self) -> float | None:
        if self.state in ("bound", "closed"):
            return None
        return self._opened_at + self.settings.auth_timeout

    def on_timeout(self, now: float) -> None:
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            self.close(StreamError.connection_timeout("authentication took too long"))

    def has_output(self) -> bool:
        """Whether units wait in `take_output()`."""
        return bool(self._out)

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    def send_element(self, el: _E) -> None:
        if self.state != "closed":
            self._out.append(serialize(el))

    def send_bytes(self, data: bytes) -> None:
        if self.state != "closed":
            self._out.append(data)

    def close(self, error: StreamError | None = None) -> None:
        """Close our side: stream error (if any), `</stream:stream>`, then the transport."""
        if self.state == "closed":
            return
        if not self._header_sent:
            c2s_features.send_header(self, self.host or next(iter(sorted(self.settings.hosts))))
        if error is not None:
            data = error.to_bytes()
            if self.framed:     # a standalone element (RFC 7395 §3.3.3; XEP-0206 §8)
                data = data.replace(b"<stream:error",
                                    b"<stream:error" + c2s_features.STREAM_NS_DECL, 1)
            self._out.append(data)
        if self.settings.framing == "websocket":
            self._out.append(b"<close xmlns='%s'/>" % FRAMING_NS.encode())   # RFC 7395 §3.6
        elif self.settings.framing == "tcp":
            self._out.append(b"</stream:stream>")
        self.state = "closed"
        self._queue.clear()
        self._events.append(Closed(error))

    # -- answers from the shell ------------------------------------------------------------
    def tls_started(self) -> None:
        if self.state == "closed":
            return
        self.secure = True
        self.parser.reset()
        self._header_sent = False
        self.state = "header"

    def credentials_found(self, creds: dict[str, ScramCredentials] | None) -> None:
        if self.state != "sasl" or not self._waiting:
            return
        self._waiting = False
        self._auth.run(lambda x: x.credentials(creds))
        self._drain_queue()

    def tokens_found(self, tokens: Sequence[StoredToken], now: float) -> None:
        """The client's FAST tokens (XEP-0484), for a `NeedCredentials` of kind "token"."""
        if self.state != "sasl" or not self._waiting:
            return
        self._waiting = False
        self._auth.run(lambda x: x.tokens(tokens, now))
        self._drain_queue()

    def credentials_unavailable(self) -> None:
        """The credential look-up failed (storage down): <temporary-auth-failure/> (RFC 6120
        §6.5.13), and the client may try again."""
        if self.state != "sasl" or not self._waiting:
            return
        self._waiting = False
        self._auth.fail(SaslFailure("temporary-auth-failure"))
        self._drain_queue()

    def sasl2_finish(self, children: list[_E], full: JID | None) -> None:
        """XEP-0388 §2.6.1: the inline requests are done; `full` if a resource was bound (or a
        session resumed): <success/>, then the authenticated stream's features."""
        if self.state == "closed":
            return
        self._sasl2.finish(children, full)
        self._waiting = False
        if full is not None:
            self.jid = full
            self.state = "bound"
        else:
            self.state = "bind"
        self._out.append(c2s_features.features(self))
        self._drain_queue()

    def connection_lost(self) -> None:
        """The transport is gone: nothing more is read or written."""
        self.state = "closed"
        self._queue.clear()

    def bind_succeeded(self, full: JID, iq_id: str) -> None:
        if self.state == "closed":
            return
        self._waiting = False
        self.jid = full
        self.state = "bound"
        client_ns = " xmlns='%s'" % ns.CLIENT if self.framed else ""
        self._out.append(("<iq%s type='result' id='%s'><bind xmlns='%s'><jid>%s</jid></bind></iq>"
                          % (client_ns, escape_attr(iq_id), ns.BIND, escape_attr(str(full))))
                         .encode())
        self._drain_queue()

    def bind_failed(self, request: _E, error: StanzaError) -> None:
        if self.state == "closed":
            return
        self._waiting = False
        self._out.append(serialize(error_reply(request, error)))
        self._drain_queue()

    def nonza_handled(self) -> None:
        """The shell answered a nonza sent before binding; go on with the input."""
        if self.state != "bind":
            return
        self._waiting = False
        self._drain_queue()

    def resumed(self, full: JID) -> None:
        """XEP-0198 §5: this stream now carries the resumed session `full` (no bind request);
        the shell has written `<resumed/>` with `send_bytes`."""
        if self.state == "closed":
            return
        self._waiting = False
        self.jid = full
        self.state = "bound"
        self._drain_queue()

    # -- the state machine -----------------------------------------------------------------
    def _drain_queue(self) -> None:
        if self._waiting or not self._queue:
            return
        items, self._queue = self._queue, []
        self._process(items)

    def _process(self, items: list[_Item]) -> None:
        for i, item in enumerate(items):
            if self.state == "closed":
                return
            if self._waiting:
                self._queue.extend(items[i:])
                return
            try:
                if isinstance(item, StreamError):
                    raise item
                if isinstance(item, StreamOpen):
                    c2s_features.on_header(self, item)
                elif isinstance(item, StreamClose):
                    self.close()
                    return
                else:
                    stop = self._on_element(item)
                    if stop:            # STARTTLS / SASL success: drop the rest (see docstring)
                        return
            except StreamError as e:
                self.close(e)
                return

    # -- for the SASL profiles (xmppd/sasl1.py, xmppd/sasl2.py) -----------------------------
    def need_lookup(self, kind: Literal["password", "token"], username: str,
                    client_id: str) -> None:
        assert self.host is not None
        self.need(NeedCredentials(username, self.host, kind, client_id))

    def need(self, event: Event) -> None:
        """Hand the shell `event` and hold the input until it answers."""
        self._waiting = True
        self._events.append(event)

    def emit(self, event: Event) -> None:
        self._events.append(event)

    def auth_failed(self, condition: str, user: str | None) -> None:
        self._waiting = False
        if self.state == "closed":
            return
        self.state = "features"
        self._sasl_failures += 1
        if condition == "not-authorized" and user and self.host:
            self._events.append(AuthFailed(user, self.host))
        if self._sasl_failures >= _MAX_SASL_FAILURES:
            self.close(StreamError.policy_violation("too many failed authentication attempts"))

    def authenticated_as(self, username: str, *, restart: bool) -> None:
        assert self.host is not None
        self.authenticated = True
        self.jid = JID.of(username, self.host)
        self._events.append(Authenticated(self.jid))
        self.parser.max_stanza_size = self.settings.max_stanza_size
        self.parser.max_elements = None
        if restart:
            # Whatever was parsed after the element that completed it belongs to the old
            # stream document (RFC 6120 §6.4.6: the client restarts the stream).
            self._queue.clear()
            self.parser.reset()
            self._header_sent = False
            self.state = "restart"
        else:
            self.state = "bind"

    def _on_element(self, el: _E) -> bool:
        tag = el.tag
        if self.state == "bound":
            if tag in _STANZAS:
                c2s_stanzas.stanza(self, el)
            elif isinstance(tag, str) and not tag.startswith("{%s}" % ns.CLIENT):
                self._events.append(Nonza(el))
            else:
                raise StreamError.unsupported_stanza_type(f"unknown element {tag}")
            return False
        if tag == "{%s}starttls" % ns.TLS:
            return c2s_features.starttls(self)
        if c2s_features.tls_needed(self):
            # RFC 6120 §5.3.1: the server MUST NOT process anything else until TLS is up.
            raise StreamError.not_authorized("STARTTLS is required first")
        if isinstance(tag, str) and tag.startswith(_SASL):
            self._auth = self._sasl1
            return self._sasl1.element(el)
        if isinstance(tag, str) and tag.startswith(_SASL2) and self.settings.sasl2:
            self._auth = self._sasl2
            self._sasl2.element(el)
            return False
        if self.state == "sasl" and self._auth is self._sasl2:
            # XEP-0388 §2.4: nothing but SASL2 elements while authenticating.
            raise StreamError.not_authorized("only SASL2 elements during authentication")
        if self.state == "bind" and tag == "{%s}iq" % ns.CLIENT:
            c2s_stanzas.bind_iq(self, el)
            return False
        if self.state == "bind" and isinstance(tag, str) \
                and not tag.startswith("{%s}" % ns.CLIENT):
            # XEP-0198 §5: <resume/> comes after authentication, before binding. Later input
            # waits for the answer (nonza_handled / resumed).
            self._waiting = True
            self._events.append(Nonza(el))
            return False
        if tag == "{%s}iq" % ns.CLIENT and not self.authenticated and self.host:
            payload = iq.payload(el)
            if payload is not None and self.settings.preauth_iq_allowed(self, payload.tag):
                if "from" in el.attrib:
                    del el.attrib["from"]
                self._events.append(PreAuthIq(el, self.host))
                return False
        if tag in _STANZAS:
            # RFC 6120 §6.4.8 / §7.2: no stanzas before authentication and binding.
            raise StreamError.not_authorized("authenticate and bind a resource first")
        raise StreamError.unsupported_stanza_type(f"unexpected element {tag}")
