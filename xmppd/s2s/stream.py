# tests: tests/core/test_s2s_incoming.py, tests/core/test_s2s_outgoing.py, tests/core/test_component_stream.py
"""What server-to-server and component streams share, sans-IO: bytes in with
`receive(data, now)`, bytes out with `data_to_send()`, `Event`s out with `events()`, and the
deadline the shell should wake it at with `next_deadline()` (as xmppd/c2s.py does).

- One restricted parser (xmppd/xmlstream.py) with the c2s pre-authentication limits until the
  stream is authenticated, then `[limits] max_stanza_size`.
- The peer's `<stream:error/>` ends the stream (its condition is kept for the logs), as does
  its `</stream:stream>`, which we answer with ours (RFC 6120 §4.4).
- Stanzas cross the server in the jabber:client namespace: `to_client` rewrites a stanza from a
  jabber:server (or component) stream, `serialize_as` writes one out in the stream's namespace.
  Only the stanza and its direct children change namespace: a forwarded
  `<message xmlns='jabber:client'/>` deeper inside (carbons, MAM) keeps its own.
- Addresses of stanzas between servers (RFC 6120 §8.1.1.2, §8.1.2.2): both `to` and `from`,
  valid JIDs, else `<improper-addressing/>`.
- Deadlines: authentication within `auth_timeout` of the connection (`<connection-timeout/>`),
  then `idle_timeout` of silence closes the stream cleanly (if set).
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Union

from lxml import etree

from stanzas import ns
from stanzas.errors import StreamError, escape_attr
from stanzas.jid import JID, JIDError
from xmppd.s2s.certs import PeerCertificate
from xmppd.xmlstream import StreamClose, StreamOpen, XmlStreamParser, serialize

_E = etree._Element
_Item = Union[StreamOpen, StreamClose, _E, StreamError]
STANZA_NAMES = ("message", "presence", "iq")


# -- events for the shell --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StartTLS:
    """Write out pending data, start TLS, then call `tls_started(peer certificate)`."""


@dataclass(frozen=True, slots=True)
class Stanza:
    """A checked stanza from the peer, in jabber:client, `from`/`to` as sent."""
    stanza: _E


@dataclass(frozen=True, slots=True)
class Closed:
    """The stream is over: close the transport once pending data is written. `error` is what
    we sent; `peer_error` the condition of the peer's `<stream:error/>`, if any."""
    error: StreamError | None = None
    peer_error: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    max_stanza_size: int = 262144
    max_depth: int = 64
    preauth_stanza_size: int = 8192
    preauth_elements: int = 32
    auth_timeout: float = 60.0
    idle_timeout: float | None = 600.0


class BaseStream:
    """Parser, output, events, close and deadlines; subclasses negotiate."""

    content_ns = ns.SERVER

    def __init__(self, limits: Limits, *, now: float, secure: bool = False) -> None:
        self.limits = limits
        self.secure = secure
        self.peer: PeerCertificate | None = None
        self.state = "header"
        self.stream_id = ""
        self.authenticated = False
        self.last_activity = now
        self.opened_at = now
        self._out: list[bytes] = []
        self._events: list[object] = []
        self._header_sent = False
        self.parser = XmlStreamParser(max_stanza_size=limits.preauth_stanza_size,
                                      max_depth=limits.max_depth,
                                      max_elements=limits.preauth_elements,
                                      content_ns=self.content_ns)

    # -- I/O surface -----------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> None:
        if self.state == "closed":
            return
        self.last_activity = now
        events, error = self.parser.feed_until_error(data)
        items: list[_Item] = [*events, error] if error is not None else list(events)
        for item in items:
            if self.state == "closed":
                return
            try:
                if isinstance(item, StreamError):
                    raise item
                if isinstance(item, StreamOpen):
                    self._on_header(item)
                elif isinstance(item, StreamClose):
                    self.close()
                elif item.tag == "{%s}error" % ns.STREAMS:
                    self._peer_error(item)
                elif self._on_element(item):
                    return          # the rest of this read belongs to an old stream document
            except StreamError as e:
                self.close(e)

    def data_to_send(self) -> bytes:
        out, self._out = b"".join(self._out), []
        return out

    def events(self) -> list[object]:
        ev, self._events = self._events, []
        return ev

    def next_deadline(self) -> float | None:
        if self.state == "closed":
            return None
        if not self.authenticated:
            return self.opened_at + self.limits.auth_timeout
        if self.limits.idle_timeout is None:
            return None
        return self.last_activity + self.limits.idle_timeout

    def on_timeout(self, now: float) -> None:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return
        if self.authenticated:
            self.close()                # idle: a clean close, the next stanza reconnects
        else:
            self.close(StreamError.connection_timeout("authentication took too long"))

    def close(self, error: StreamError | None = None, *, peer_error: str | None = None) -> None:
        """Close our side: stream error (if any), `</stream:stream>`, then the transport."""
        if self.state == "closed":
            return
        if self.state != "connecting":
            if not self._header_sent:
                self._send_header()
            if error is not None:
                self._out.append(error.to_bytes())
            self._out.append(b"</stream:stream>")
        self.state = "closed"
        self._events.append(Closed(error, peer_error))

    def send_stanza(self, el: _E, now: float) -> None:
        """Write a jabber:client stanza in this stream's namespace."""
        if self.state == "closed":
            return
        self.last_activity = now
        self._out.append(serialize_as(el, self.content_ns))

    # -- for subclasses --------------------------------------------------------------------
    def _on_header(self, header: StreamOpen) -> None:
        raise NotImplementedError

    def _on_element(self, el: _E) -> bool:
        raise NotImplementedError

    def _send_header(self) -> None:
        raise NotImplementedError

    def _authenticated_now(self) -> None:
        """Lift the pre-authentication limits (DESIGN.md: pre-auth state is tightly bounded)."""
        self.authenticated = True
        self.parser.max_stanza_size = self.limits.max_stanza_size
        self.parser.max_elements = None

    def _new_stream_id(self) -> str:
        self.stream_id = secrets.token_hex(16)
        return self.stream_id

    def _peer_error(self, el: _E) -> None:
        condition = next((etree.QName(c).localname for c in el
                          if isinstance(c.tag, str) and etree.QName(c).namespace
                          == ns.STREAM_ERRORS and etree.QName(c).localname != "text"),
                         "undefined-condition")
        self.close(peer_error=condition)

    def _checked_stanza(self, el: _E) -> tuple[_E, JID, JID]:
        """The stanza in jabber:client with its parsed `from` and `to` (§8.1.1.2, §8.1.2.2)."""
        try:
            sender = JID.parse(el.get("from") or "")
            to = JID.parse(el.get("to") or "")
        except JIDError:
            raise StreamError("improper-addressing",
                              "a stanza between servers needs valid 'to' and 'from'") from None
        return to_client(el, self.content_ns), sender, to


def header_bytes(content_ns: str, *, from_: str | None, to: str | None, stream_id: str | None,
                 version: bool = True, dialback: bool = True) -> bytes:
    attrs = "".join(" %s='%s'" % (k, escape_attr(v)) for k, v in
                    (("from", from_), ("to", to), ("id", stream_id)) if v)
    db = " xmlns:db='%s'" % ns.DIALBACK if dialback else ""
    ver = " version='1.0'" if version else ""
    return ("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s'%s%s%s "
            "xml:lang='en'>" % (content_ns, ns.STREAMS, db, attrs, ver)).encode()


def version_of(header: StreamOpen) -> tuple[int, int]:
    """RFC 6120 §4.7.5: "major.minor", no version is 0.9, unreadable (0, 0)."""
    m = re.fullmatch(r"([0-9]{1,9})\.([0-9]{1,9})", (header.attrs.get("version") or "0.9").strip())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def domain_of(value: str | None) -> str | None:
    """A header or dialback address that must be a bare domain, prepared; None if not one."""
    if not value:
        return None
    try:
        jid = JID.parse(value)
    except JIDError:
        return None
    if jid.local is not None or jid.resource is not None:
        return None
    return jid.domain


def to_client(el: _E, source_ns: str) -> _E:
    """`el` (a stanza in `source_ns`) rebuilt in jabber:client; `el` itself is consumed."""
    return _renamed(el, "{%s}" % source_ns, ns.CLIENT)


def serialize_as(el: _E, content_ns: str) -> bytes:
    """A jabber:client stanza's bytes in `content_ns`; `el` is left as it was."""
    if content_ns == ns.CLIENT:
        return serialize(el)
    return serialize(_renamed(el.__copy__(), "{%s}" % ns.CLIENT,  # type: ignore[attr-defined]
                              content_ns))


def _renamed(el: _E, source: str, target_ns: str) -> _E:
    tag = el.tag
    assert isinstance(tag, str)
    local = tag[len(source):] if tag.startswith(source) else etree.QName(el).localname
    new = etree.Element("{%s}%s" % (target_ns, local), attrib=_attrs(el),
                        nsmap={None: target_ns})  # type: ignore[dict-item]
    new.text = el.text
    for child in list(el):
        ctag = child.tag
        if isinstance(ctag, str) and ctag.startswith(source):
            moved = etree.SubElement(new, "{%s}%s" % (target_ns, ctag[len(source):]),
                                     attrib=_attrs(child))
            moved.text, moved.tail = child.text, child.tail
            for grandchild in list(child):
                moved.append(grandchild)
        else:
            new.append(child)
    return new


def _attrs(el: _E) -> dict[str, str]:
    return {str(k): str(v) for k, v in el.attrib.items()}
