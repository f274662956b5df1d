# tests: tests/core/test_c2s.py
"""Client-to-server stream negotiation (RFC 6120 §4–§7), sans-IO.

A `C2SStream` is fed bytes with `receive(data, now)` and answers with bytes in `data_to_send()`
and `Event`s in `events()`; the Twisted shell (xmppd/listeners/c2s.py) moves bytes and performs
the events that need the outside world (TLS, credential look-up, binding, routing).

- Stream header: `to` must be one of our hosts (`<host-unknown/>`), version 1.0
  (`<unsupported-version/>`); features follow at every (re)start (§4.3.2).
- STARTTLS (§5): required by default; anything else first → `<not-authorized/>` (§5.3.1). Bytes
  pipelined after `<starttls/>` are discarded, never read as if encrypted (CVE-2011-1431 class).
- SASL (§6): SCRAM-SHA-256, SCRAM-SHA-1, PLAIN over TLS only; failures as §6.5 conditions;
  after five failures the stream closes with `<policy-violation/>`. An `<auth/>` without an
  initial response gets an empty challenge (§6.4.2); a new `<auth/>` replaces one in progress.
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
- Framings: "tcp" (one XML document), "websocket" (RFC 7395: `<open/>`/`<close/>`, one element
  per message, each unit standalone with its namespaces declared, §3.3.3) and "bosh"
  (XEP-0206: the transport parses `<body/>`s and hands their children to `receive_items`; no
  header or footer on the wire). Framed streams never offer STARTTLS (RFC 7395 §3.8, XEP-0206
  §5: TLS belongs to the HTTP connection); the transport says whether it is `secure`.
Not here: what happens to a stanza (xmppd/router.py), who may have which resource
(xmppd/sessions.py).
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from typing import Callable, Literal, Union

from lxml import etree

from stanzas import iq, ns
from stanzas.errors import StanzaError, StreamError, error_reply, escape_attr
from stanzas.jid import JID, JIDError
from xmppd.sasl import PlainServer, SaslFailure, ScramCredentials
from xmppd.scram import ScramServer
from xmppd.xmlstream import FRAMING_NS, StreamClose, StreamOpen, XmlStreamParser, serialize

_E = etree._Element
_SASL = "{%s}" % ns.SASL
_STANZAS = frozenset("{%s}%s" % (ns.CLIENT, n) for n in ("message", "presence", "iq"))
_MAX_SASL_FAILURES = 5
_MAX_QUEUED = 1000           # top-level elements held while binding is pending
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_STREAM_NS_DECL = b" xmlns:stream='%s'" % ns.STREAMS.encode()


# -- events for the shell --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StartTLS:
    """Write out pending data, start TLS, then call `tls_started()`."""


@dataclass(frozen=True, slots=True)
class NeedCredentials:
    """Look up `username`@`host`; answer with `credentials_found(creds by mechanism or None)`."""
    username: str
    host: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    jid: JID


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """SASL ended in `not-authorized` for `username`@`host` (counted by xmppd/throttle.py)."""
    username: str
    host: str


@dataclass(frozen=True, slots=True)
class BindRequest:
    """Bind `resource` (None: server chooses); answer `bind_succeeded` or `bind_failed`."""
    user: JID
    resource: str | None
    stanza: _E


@dataclass(frozen=True, slots=True)
class PreAuthIq:
    """An IQ before authentication (XEP-0077 registration); reply with `send_element()`."""
    stanza: _E
    host: str


@dataclass(frozen=True, slots=True)
class Stanza:
    stanza: _E
    answered: bool = False      # the stream answered it itself (RFC 3921 session): count only


@dataclass(frozen=True, slots=True)
class Nonza:
    element: _E


@dataclass(frozen=True, slots=True)
class Closed:
    """The stream is over: close the transport once pending data is written."""
    error: StreamError | None = None


Event = Union[StartTLS, NeedCredentials, Authenticated, AuthFailed, BindRequest, PreAuthIq,
              Stanza, Nonza, Closed]
_Item = Union[StreamOpen, StreamClose, _E, StreamError]   # what the parser gave, in order


@dataclass(frozen=True, slots=True)
class C2SSettings:
    hosts: frozenset[str]
    tls: Literal["required", "optional", "off"] = "required"
    tls_available: bool = True
    mechanisms: tuple[str, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")
    max_stanza_size: int = 262144
    max_depth: int = 64
    preauth_stanza_size: int = 8192
    preauth_elements: int = 32
    auth_timeout: float = 60.0
    scram_iterations: int = 4096     # new credentials' count: what unknown users are shown
    # stream -> extra <stream:features/> children before auth (e.g. XEP-0077's <register/>)
    preauth_features: Callable[[C2SStream], list[_E]] = field(default=lambda stream: [])
    # stream -> extra features after auth (stream management, CSI, ...)
    session_features: Callable[[C2SStream], list[_E]] = field(default=lambda stream: [])
    # (stream, payload tag) -> whether an IQ with that payload may come before authentication
    # (a module asked for it, e.g. XEP-0077 registration, and the peer address is allowed)
    preauth_iq_allowed: Callable[[C2SStream, str], bool] = field(
        default=lambda stream, tag: False)
    # "tcp", "websocket" (RFC 7395) or "bosh" (XEP-0206); see the module docstring
    framing: Literal["tcp", "websocket", "bosh"] = "tcp"


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
        self._sasl: ScramServer | None = None
        self._plain: tuple[str, str] | None = None
        self._initial_pending = False          # <auth/> came without an initial response
        self._mechanism = ""
        self._sasl_failures = 0
        self._sasl_user: str | None = None     # who the exchange in progress is for
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
            items = [_preauth_checked(item, self.settings) for item in items]
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
            self._send_header(self.host or next(iter(sorted(self.settings.hosts))))
        if error is not None:
            data = error.to_bytes()
            if self.framed:     # a standalone element (RFC 7395 §3.3.3; XEP-0206 §8)
                data = data.replace(b"<stream:error", b"<stream:error" + _STREAM_NS_DECL, 1)
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
        try:
            if self._sasl is not None:
                mine = creds.get(self._mechanism) if creds else None
                challenge = self._sasl.server_first(mine)
                self._out.append(b"<challenge xmlns='%s'>%s</challenge>"
                                 % (ns.SASL.encode(), base64.b64encode(challenge)))
            else:
                assert self._plain is not None
                username, password = self._plain
                self._plain = None
                # An unknown user costs the same PBKDF2 as a known one (no timing oracle).
                ok = PlainServer.check(password, creds,
                                       iterations=self.settings.scram_iterations)
                if not ok:
                    raise SaslFailure("not-authorized")
                self._succeed(username, b"")
        except SaslFailure as f:
            self._sasl_fail(f)
        self._drain_queue()

    def credentials_unavailable(self) -> None:
        """The credential look-up failed (storage down): <temporary-auth-failure/> (RFC 6120
        §6.5.13), and the client may try again."""
        if self.state != "sasl" or not self._waiting:
            return
        self._sasl_fail(SaslFailure("temporary-auth-failure"))
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
                    self._on_header(item)
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

    def _send_header(self, host: str) -> None:
        self.stream_id = secrets.token_hex(12)
        self._header_sent = True
        if self.settings.framing == "websocket":     # RFC 7395 §3.4
            self._out.append((
                "<open xmlns='%s' id='%s' from='%s' version='1.0' xml:lang='en'/>"
                % (FRAMING_NS, self.stream_id, escape_attr(host))).encode())
            return
        if self.settings.framing == "bosh":
            return      # XEP-0206 §5: the session creation response carries from/authid
        self._out.append((
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' id='%s' from='%s' version='1.0' "
            "xml:lang='en'>" % (self.stream_id, escape_attr(host))).encode())
        self._header_sent = True

    def _on_header(self, header: StreamOpen) -> None:
        to = header.attrs.get("to")
        host = to.lower().rstrip(".") if to else None
        if host is None:
            # RFC 6120 §4.7.2: without 'to' we may pick our default; clients always send it.
            host = self.host or sorted(self.settings.hosts)[0]
        if host not in self.settings.hosts or (self.host is not None and host != self.host):
            self.host = self.host or sorted(self.settings.hosts)[0]
            raise StreamError.host_unknown(f"this server does not serve {to!r}")
        self.host = host
        self._send_header(host)
        if _version(header.attrs.get("version")) < (1, 0):
            raise StreamError.unsupported_version("XMPP 1.0 is required (RFC 6120 §4.7.5)")
        self.lang = header.attrs.get("xml:lang", "en")[:35]
        self._out.append(self._features())
        self.state = "bind" if self.authenticated else "features"

    def _tls_needed(self) -> bool:
        return not self.secure and self.settings.tls == "required" and self.settings.tls_available

    def _features(self) -> bytes:
        assert self.host is not None
        parts = [b"<stream:features%s>" % (_STREAM_NS_DECL if self.framed else b"")]
        if self.authenticated:
            parts.append(b"<bind xmlns='%s'/>" % ns.BIND.encode())
            parts.append(b"<session xmlns='%s'><optional/></session>" % ns.SESSION.encode())
            parts.extend(serialize(f) for f in self.settings.session_features(self))
        else:
            if not self.secure and self.settings.tls != "off" and self.settings.tls_available:
                parts.append(b"<starttls xmlns='%s'>%s</starttls>" % (
                    ns.TLS.encode(), b"<required/>" if self._tls_needed() else b""))
            if not self._tls_needed():
                mechs = "".join("<mechanism>%s</mechanism>" % m for m in self._mechanisms())
                parts.append(("<mechanisms xmlns='%s'>%s</mechanisms>" % (ns.SASL, mechs))
                             .encode())
                parts.extend(serialize(f) for f in self.settings.preauth_features(self))
        parts.append(b"</stream:features>")
        return b"".join(parts)

    def _mechanisms(self) -> list[str]:
        # RFC 6120 §13.8 / DESIGN.md: PLAIN only where the stream is encrypted.
        return [m for m in self.settings.mechanisms if m != "PLAIN" or self.secure]

    def _on_element(self, el: _E) -> bool:
        tag = el.tag
        if self.state == "bound":
            if tag in _STANZAS:
                self._stanza(el)
            elif isinstance(tag, str) and not tag.startswith("{%s}" % ns.CLIENT):
                self._events.append(Nonza(el))
            else:
                raise StreamError.unsupported_stanza_type(f"unknown element {tag}")
            return False
        if tag == "{%s}starttls" % ns.TLS:
            return self._starttls()
        if self._tls_needed():
            # RFC 6120 §5.3.1: the server MUST NOT process anything else until TLS is up.
            raise StreamError.not_authorized("STARTTLS is required first")
        if isinstance(tag, str) and tag.startswith(_SASL):
            return self._sasl_element(el)
        if self.state == "bind" and tag == "{%s}iq" % ns.CLIENT:
            self._bind_iq(el)
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

    def _starttls(self) -> bool:
        if self.secure or self.settings.tls == "off" or not self.settings.tls_available \
                or self.authenticated:
            self._out.append(b"<failure xmlns='%s'/>" % ns.TLS.encode())
            self.close()
            return True
        self._out.append(b"<proceed xmlns='%s'/>" % ns.TLS.encode())
        self._events.append(StartTLS())
        self.parser.reset()         # drop anything pipelined after <starttls/>
        self._queue.clear()
        self.state = "restart"
        return True

    # -- SASL ------------------------------------------------------------------------------
    def _sasl_element(self, el: _E) -> bool:
        name = el.tag[len(_SASL):]
        if self.authenticated:
            raise StreamError.not_authorized("already authenticated")
        if name == "auth":
            # RFC 6120 §6.4.2: a new <auth/> while one is in progress: "the receiving entity
            # MUST discard the ongoing handshake and MUST process a new handshake".
            self._sasl, self._plain, self._initial_pending = None, None, False
            self._sasl_user = None
            mech = el.get("mechanism", "")
            if mech not in self._mechanisms():
                self._sasl_fail(SaslFailure("invalid-mechanism"))
                return False
            self._mechanism = mech
            self.state = "sasl"
            if el.text is None or not el.text.strip():
                # §6.4.2: no initial response (as opposed to "=", an empty one): the server
                # sends an empty challenge and the initial response comes in <response/>.
                self._initial_pending = True
                self._out.append(b"<challenge xmlns='%s'/>" % ns.SASL.encode())
                return False
            self._initial_response(el.text)
            return False
        if name == "response" and self.state == "sasl" and self._initial_pending:
            self._initial_pending = False
            self._initial_response(el.text)
            return False
        if name == "response" and self.state == "sasl" and self._sasl is not None:
            try:
                final = self._sasl.final(self._b64(el.text))
            except SaslFailure as f:
                self._sasl_fail(f)
                return False
            assert self._sasl.username is not None
            return self._succeed(self._sasl.username, final)
        if name == "abort" and self.state == "sasl":
            self._sasl_fail(SaslFailure("aborted"))
            return False
        if name in ("response", "abort"):
            self._sasl_fail(SaslFailure("malformed-request", "no authentication in progress"))
            return False
        raise StreamError.unsupported_stanza_type(f"unknown SASL element {name}")

    def _initial_response(self, text: str | None) -> None:
        """Start the chosen mechanism with the client's initial response."""
        assert self.host is not None
        try:
            data = self._b64(text)
            if self._mechanism == "PLAIN":
                _authzid, user, password = PlainServer.parse(data, host=self.host)
                user = self._valid_user(user)
                self._sasl = None
                self._plain = (user, password)
            else:
                self._sasl = ScramServer(self._mechanism, host=self.host,
                                         fake_iterations=self.settings.scram_iterations)
                user = self._valid_user(self._sasl.first(data))
            self._sasl_user = user
            self._waiting = True
            self._events.append(NeedCredentials(user, self.host))
        except SaslFailure as f:
            self._sasl_fail(f)

    def _valid_user(self, user: str) -> str:
        assert self.host is not None
        try:
            local = JID.of(user, self.host).local
        except JIDError:
            raise SaslFailure("not-authorized") from None
        if not local:
            raise SaslFailure("not-authorized")
        # "Juliet" logs in to the account "juliet": the name is nodeprep'd, as Prosody and
        # ejabberd do (the SCRAM proof does not depend on the spelling of the name).
        return local

    @staticmethod
    def _b64(text: str | None) -> bytes:
        # RFC 6120 §6.4.2: an empty initial response is sent as "=".
        data = (text or "").strip()
        if not data or data == "=":
            return b""
        # §6.5.5 incorrect-encoding: base64 as RFC 4648 §4 defines it. Python alone would take
        # excess padding ("biws==") and more.
        if len(data) % 4 or _BASE64.fullmatch(data) is None:
            raise SaslFailure("incorrect-encoding")
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise SaslFailure("incorrect-encoding") from None

    def _succeed(self, username: str, additional: bytes) -> bool:
        assert self.host is not None
        self._sasl = None
        self.authenticated = True
        self.jid = JID.of(username, self.host)
        data = base64.b64encode(additional).decode() if additional else ""
        self._out.append(("<success xmlns='%s'>%s</success>" % (ns.SASL, data)).encode())
        self._events.append(Authenticated(self.jid))
        # Whatever was parsed after <auth/>/<response/> belongs to the old stream document
        # (§6.4.6: the client restarts the stream once it has received <success/>).
        self._queue.clear()
        self.parser.reset()
        self.parser.max_stanza_size = self.settings.max_stanza_size
        self.parser.max_elements = None
        self._header_sent = False
        self.state = "restart"
        return True

    def _sasl_fail(self, failure: SaslFailure) -> None:
        if self.state == "closed":
            return
        self._sasl = None
        self._initial_pending = False
        self._plain = None
        self._waiting = False
        self.state = "features"
        text = ""
        if failure.text:
            text = "<text xml:lang='en'>%s</text>" % escape_attr(failure.text)
        self._out.append(("<failure xmlns='%s'><%s/>%s</failure>"
                          % (ns.SASL, failure.condition, text)).encode())
        self._sasl_failures += 1
        if failure.condition == "not-authorized" and self._sasl_user and self.host:
            self._events.append(AuthFailed(self._sasl_user, self.host))
        self._sasl_user = None
        if self._sasl_failures >= _MAX_SASL_FAILURES:
            self.close(StreamError.policy_violation("too many failed authentication attempts"))

    # -- binding and stanzas ---------------------------------------------------------------
    def _bind_iq(self, el: _E) -> None:
        payload = iq.payload(el)
        if el.get("type") == "set" and payload is not None \
                and payload.tag == "{%s}bind" % ns.BIND:
            res_el = payload.find("{%s}resource" % ns.BIND)
            resource = (res_el.text or "").strip() if res_el is not None else ""
            assert self.jid is not None
            self._waiting = True
            self._events.append(BindRequest(self.jid, resource or None, el))
            return
        if el.get("type") in ("get", "set"):
            # RFC 6120 §7.2: stanzas other than binding before a resource is bound.
            self._out.append(serialize(error_reply(el, StanzaError.not_authorized(
                "bind a resource first"))))

    def _stanza(self, el: _E) -> None:
        assert self.jid is not None
        sender = el.get("from")
        if sender is not None and sender != str(self.jid) and sender != str(self.jid.bare):
            try:
                claimed = JID.parse(sender)
            except JIDError:
                raise StreamError("invalid-from", "malformed from address") from None
            if claimed != self.jid and claimed != self.jid.bare:
                raise StreamError("invalid-from", "you may only speak for yourself")
        el.set("from", str(self.jid))
        if el.tag == "{%s}iq" % ns.CLIENT and el.get("type") == "set" \
                and el.get("to") in (None, self.jid.domain):
            payload = iq.payload(el)
            if payload is not None and payload.tag == "{%s}session" % ns.SESSION:
                # RFC 3921 §3 session establishment, kept as a no-op for old clients (whose
                # request carries to='<domain>' in RFC 3921's own example).
                self._out.append(serialize(iq.result(el)))
                self._events.append(Stanza(el, answered=True))     # XEP-0198 counts it
                return
        self._events.append(Stanza(el))


def _preauth_checked(item: _Item, settings: C2SSettings) -> _Item:
    """The pre-auth stanza limits for elements parsed by the transport (BOSH bodies are parsed
    under the session's limits, not the pre-auth ones)."""
    if not isinstance(item, etree._Element):
        return item
    if len(serialize(item)) > settings.preauth_stanza_size:
        return StreamError.policy_violation(
            f"stanza larger than {settings.preauth_stanza_size} bytes before authentication")
    if sum(1 for _ in item.iter()) > settings.preauth_elements:
        return StreamError.policy_violation("too many elements in one stanza")
    return item


def _version(value: str | None) -> tuple[int, int]:
    """RFC 6120 §4.7.5: "major.minor", each part an integer compared on its own ("1.10" is
    newer than "1.9"); no version attribute means 0.9. Unreadable → (0, 0)."""
    m = re.fullmatch(r"([0-9]{1,9})\.([0-9]{1,9})", (value or "0.9").strip())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
