# tests: tests/core/test_web_framing.py, tests/core/test_xmlstream.py
"""RFC 7395 framing for the stream parser (xmppd/xmlstream.py, `framing="websocket"`): each
`feed_message()` is one WebSocket message, parsed inside a neutral synthetic root. It must hold
exactly one element, declaring its own namespaces (§3.3.3; a leading XML declaration is allowed
but must name UTF-8); anything else is `<not-well-formed/>`. `<open/>` and `<close/>` in
urn:ietf:params:xml:ns:xmpp-framing come out as `StreamOpen`/`StreamClose` (§3.4, §3.6); an
element before `<open/>` is `<invalid-namespace/>` (as a TCP document not rooted at
`<stream:stream/>`), a second `<open/>` before a restart `<bad-format/>`. The same restricted
scan and limits as TCP apply (Prosody's CVE-2022-0217 was a WebSocket-only gap).
"""
from __future__ import annotations

from typing import Callable

from lxml import etree

from stanzas import ns
from stanzas.errors import StreamError
from xmppd.xmlevents import Event, StreamClose, StreamOpen, header_attrs
from xmppd.xmlreserved import ns_suspect, reserved_namespace_declaration
from xmppd.xmlscan import _BOM, _DECL_ENCODING, _SUSPECT, _WS, _XML_DECL

FRAMING_NS = ns.FRAMING      # RFC 7395 §3.3.2
_OPEN_TAG = "{%s}open" % FRAMING_NS
_CLOSE_TAG = "{%s}close" % FRAMING_NS
_RESTART_AFTER = 1 << 20


class WebSocketMessages:
    """Mixed into XmlStreamParser; the attributes and helpers are the parser's."""

    framing: str
    closed: bool
    max_stanza_size: int
    _failed: StreamError | None
    _framed_open: bool
    _compacted: bool
    _depth: int
    _root: etree._Element | None
    _since_restart: int
    _parser: etree.XMLPullParser
    _restart_clean: Callable[[], None]
    _scan: Callable[[bytes], "tuple[int, StreamError] | None"]
    _drain: Callable[[list[Event]], None]

    def feed_message(self, data: bytes) -> tuple[list[Event], StreamError | None]:
        """Parse one whole WebSocket message (`framing="websocket"`)."""
        assert self.framing == "websocket"
        if self._failed is not None:
            return [], self._failed
        if self.closed:
            return [], None
        try:
            return self._message(data), None
        except StreamError as e:
            self._failed = e
            return [], e

    def _message(self, data: bytes) -> list[Event]:
        body = data.strip(_WS)
        if body.startswith(_BOM):
            body = body[len(_BOM):].lstrip(_WS)
        if body.startswith(b"<?xml"):
            # §3.3.3: an XML declaration is NOT RECOMMENDED but allowed; only UTF-8.
            decl = _XML_DECL.match(body)
            if decl is None:
                raise StreamError.restricted_xml("processing instructions are not allowed")
            enc = _DECL_ENCODING.search(decl.group(0))
            if enc is not None and enc.group(1).lower() not in (b"utf-8", b"utf8"):
                raise StreamError("unsupported-encoding", "only UTF-8 (RFC 6120 §11.6)")
            body = body[decl.end():].lstrip(_WS)
        if len(body) > self.max_stanza_size:
            raise StreamError.policy_violation(f"stanza larger than {self.max_stanza_size} bytes")
        if not body.startswith(b"<") or not body.endswith(b">"):
            raise StreamError.not_well_formed("a message must hold one XML element (RFC 7395)")
        raw: list[Event] = []
        self._feed_whole(body, raw)
        if len(raw) != 1 or self._depth != 1:
            raise StreamError.not_well_formed("a message must hold one XML element (RFC 7395)")
        el = raw[0]
        assert isinstance(el, etree._Element)
        if el.tag == _OPEN_TAG:
            if self._framed_open:
                raise StreamError.bad_format("<open/> on an open stream")
            self._framed_open = True
            return [StreamOpen(header_attrs(el), FRAMING_NS)]
        if not self._framed_open:
            raise StreamError.invalid_namespace(
                "the stream must start with <open xmlns='%s'/>" % FRAMING_NS)
        if el.tag == _CLOSE_TAG:
            self.closed = True
            return [StreamClose()]
        return [el]

    def _feed_whole(self, body: bytes, out: list[Event]) -> None:
        """One whole message: no slicing, partial-markup or size tracking is needed (its size
        was checked and it ends in '>'), only the restricted scan, libxml2 and the limits."""
        if self._compacted:
            self._compacted = False
            self._restart_clean()
        refused = self._scan(body) if _SUSPECT.search(body) is not None else None
        if refused is None and ns_suspect(body):
            refused = reserved_namespace_declaration(body, b"")
        if refused is not None:
            raise refused[1]
        try:
            self._parser.feed(body)
            self._drain(out)
        except etree.XMLSyntaxError as e:
            raise StreamError.not_well_formed(str(e.msg or "")[:200]) from None
        root = self._root
        if root is not None and len(root) > 1:
            del root[:-1]       # earlier messages' shells (see _feed_slice)
        self._since_restart += len(body)
        if self._depth == 1 and self._since_restart > _RESTART_AFTER:
            self._restart_clean()
