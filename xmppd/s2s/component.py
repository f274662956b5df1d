# tests: tests/core/test_component_stream.py
"""An external component's stream (XEP-0114, jabber:component:accept), sans-IO.

- Header: `to` names the component's domain; one not configured is `<host-unknown/>`, one
  already connected `<conflict/>` (§3), both after our own header (RFC 6120 §4.7.1 rules for
  header errors). Our header carries the stream id and no version: no stream features.
- `<handshake/>` holds hex(SHA-1(stream id + secret)), compared in constant time; a wrong one
  closes the stream with `<not-authorized/>`. Success answers an empty `<handshake/>`.
- Before the handshake nothing else is accepted (`<not-authorized/>`), under the c2s
  pre-authentication limits, within `auth_timeout`.
- Stanzas need `to` and `from` (`<improper-addressing/>`); `from` must be the component's
  domain or a JID at it (§3: "the component MAY send stanzas from any user at its hostname"),
  else `<invalid-from/>`. They come out in jabber:client; ours go out in the component's
  namespace.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Callable

from lxml import etree

from stanzas import ns
from stanzas.errors import StreamError
from xmppd.s2s.stream import STANZA_NAMES, BaseStream, Limits, Stanza, domain_of, header_bytes
from xmppd.xmlstream import StreamOpen

_E = etree._Element


@dataclass(frozen=True, slots=True)
class HandshakeDone:
    domain: str


@dataclass(frozen=True, slots=True)
class ComponentSettings:
    limits: Limits
    secret_for: Callable[[str], str | None]     # None: not a configured component
    connected: Callable[[str], bool]             # a stream for the domain is already up


class ComponentStream(BaseStream):
    content_ns = ns.COMPONENT

    def __init__(self, settings: ComponentSettings, *, now: float) -> None:
        super().__init__(settings.limits, now=now)
        self.settings = settings
        self.domain: str | None = None

    def next_deadline(self) -> float | None:
        if self.authenticated:
            return None         # a component stays as long as it likes (it may ping)
        return super().next_deadline()

    def _send_header(self) -> None:
        self._out.append(header_bytes(ns.COMPONENT, from_=self.domain, to=None,
                                      stream_id=self._new_stream_id(), version=False,
                                      dialback=False))
        self._header_sent = True

    def _on_header(self, header: StreamOpen) -> None:
        if self.state != "header":
            raise StreamError.bad_format("a component stream is never restarted")
        to = domain_of(header.attrs.get("to"))
        known = to is not None and self.settings.secret_for(to) is not None
        if known:
            self.domain = to
        self._send_header()
        if not known:
            raise StreamError.host_unknown(f"no component {header.attrs.get('to')!r} here")
        assert to is not None
        if self.settings.connected(to):
            raise StreamError.conflict(f"{to} is already connected")
        self.state = "handshake"

    def _on_element(self, el: _E) -> bool:
        tag = el.tag
        if tag == "{%s}handshake" % ns.COMPONENT and self.state == "handshake":
            self._handshake((el.text or "").strip().lower())
            return False
        if tag in ("{%s}%s" % (ns.COMPONENT, n) for n in STANZA_NAMES):
            if self.state != "open":
                raise StreamError.not_authorized("the handshake comes first")
            self._stanza(el)
            return False
        raise StreamError.unsupported_stanza_type(f"unexpected element {tag}")

    def _handshake(self, digest: str) -> None:
        assert self.domain is not None
        secret = self.settings.secret_for(self.domain) or ""
        expected = hashlib.sha1((self.stream_id + secret).encode()).hexdigest()
        if not hmac.compare_digest(digest.encode(), expected.encode()):
            raise StreamError.not_authorized("wrong handshake")
        if self.settings.connected(self.domain):
            raise StreamError.conflict(f"{self.domain} is already connected")
        self._out.append(b"<handshake/>")
        self.state = "open"
        self._authenticated_now()
        self._events.append(HandshakeDone(self.domain))

    def _stanza(self, el: _E) -> None:
        converted, sender, _to = self._checked_stanza(el)
        if sender.domain != self.domain:
            raise StreamError("invalid-from", f"a component may only send from {self.domain}")
        self._events.append(Stanza(converted))
