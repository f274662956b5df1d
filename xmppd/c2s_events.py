# tests: tests/core/test_c2s.py, tests/core/test_sasl2.py
"""What the client stream (xmppd/c2s.py) and its shell tell each other: the events the shell
performs (TLS, credential look-ups, binding, routing) and the stream's settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal, Union

from lxml import etree

from stanzas.errors import StreamError
from stanzas.jid import JID
from xmppd.xmlstream import StreamClose, StreamOpen

if TYPE_CHECKING:
    from xmppd.c2s import C2SStream
    from xmppd.sasl2 import Sasl2Request

_E = etree._Element


@dataclass(frozen=True, slots=True)
class StartTLS:
    """Write out pending data, start TLS, then call `tls_started()`."""


@dataclass(frozen=True, slots=True)
class NeedCredentials:
    """Look up `username`@`host`: its password credentials (`kind` "password": answer with
    `credentials_found(creds by mechanism or None)`) or the FAST tokens of client `client_id`
    (`kind` "token": answer with `tokens_found(list)`)."""
    username: str
    host: str
    kind: Literal["password", "token"] = "password"
    client_id: str = ""


@dataclass(frozen=True, slots=True)
class Authenticated:
    jid: JID


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """SASL ended in `not-authorized` for `username`@`host` (counted by xmppd/throttle.py)."""
    username: str
    host: str


@dataclass(frozen=True, slots=True)
class Sasl2Success:
    """XEP-0388: the SASL2 mechanism succeeded for `jid` (bare). The shell performs what the
    client asked for inline (`request`: FAST token, XEP-0198 resumption, Bind2), then calls
    `sasl2_finish(children of <success/>, the bound full JID or None)`."""
    jid: JID
    request: Sasl2Request


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


Event = Union[StartTLS, NeedCredentials, Authenticated, AuthFailed, Sasl2Success, BindRequest,
              PreAuthIq, Stanza, Nonza, Closed]
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
    # XEP-0388 SASL2 (with XEP-0386 Bind2) and XEP-0484 FAST tokens offered
    sasl2: bool = False
    fast: bool = False
    # stream -> children of SASL2's <inline/> from modules (XEP-0198 <sm/>), and Bind2's
    # <feature var/> elements (carbons, CSI, stream management)
    sasl2_inline: Callable[[C2SStream], list[_E]] = field(default=lambda stream: [])
    bind2_inline: Callable[[C2SStream], list[_E]] = field(default=lambda stream: [])


