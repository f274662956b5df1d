# tests: tests/core/test_xmlstream.py
"""Incremental XML stream parser for XMPP (RFC 6120 §4, §11), sans-IO.

- Fed bytes in any split; returns the stream header, each top-level element (an lxml element,
  the source of truth from here on) and the stream end, in order.
- Restricted XML (RFC 6120 §11.1): a DTD, entity references beyond the five predefined ones,
  processing instructions and comments raise `<restricted-xml/>`. They are caught by a byte scan
  *before* libxml2 sees them (every such construct starts with `<!`, `<?` or `&`, which cannot
  occur literally in well-formed character data), so no DTD or entity is ever processed.
  CDATA sections are allowed; `&`, `<!` or `<?` inside one are refused too (no client sends them).
- Malformed XML → `<not-well-formed/>`; a stanza larger than `max_stanza_size` bytes or deeper
  than `max_depth` → `<policy-violation/>` (checked while bytes arrive, in slices of at most
  `max_stanza_size / 8`, so nothing large is buffered); a wrong stream namespace →
  `<invalid-namespace/>`; an encoding other than UTF-8 → `<unsupported-encoding/>`.

lxml's push parser, with each finished stanza copied out (see `_detach`), beat Expat building
lxml elements from Python callbacks about 2× in `bench/parser_bench.py` (numbers in
docs/PERFORMANCE.md), so libxml2 builds the elements in C.
Whitespace between stanzas accumulates as the root's text in libxml2, so after every MiB the
parser is rebuilt at a clean stanza boundary with a synthetic header (memory stays flat).
Not here: what the header's attributes mean (xmppd/c2s.py).
"""
from __future__ import annotations

import re
from copy import deepcopy as _deepcopy
from dataclasses import dataclass
from typing import Union

from lxml import etree

from stanzas import ns
from stanzas.errors import StreamError

_E = etree._Element
_STREAM_TAG = "{%s}stream" % ns.STREAMS
_LANG = "{%s}lang" % ns.XML
_RESTART_AFTER = 1 << 20
_GIVE_UP_AFTER = 64 << 20
_SUSPECT = re.compile(rb"&|<[!?]")
_GOOD_REF = re.compile(rb"&(?:lt|gt|amp|apos|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_REF_PREFIX = re.compile(rb"&(?:[a-z]{0,4}|#[0-9]{0,7}|#x[0-9a-fA-F]{0,6})\Z")
_NAMED_REF = re.compile(rb"&[A-Za-z_:][-A-Za-z0-9._:]*;")
_XML_DECL = re.compile(rb"<\?xml\s[^>]*?\?>")
_DECL_ENCODING = re.compile(rb"encoding\s*=\s*['\"]([^'\"]*)['\"]")
_CDATA = b"<![CDATA["


@dataclass(frozen=True, slots=True)
class StreamOpen:
    attrs: dict[str, str]       # header attributes; xml:lang as "xml:lang"
    default_ns: str | None      # the content namespace declared on the header (jabber:client)


@dataclass(frozen=True, slots=True)
class StreamClose:
    pass


Event = Union[StreamOpen, StreamClose, _E]


class XmlStreamParser:
    """One parser per stream; call `reset()` on a stream restart (after STARTTLS or SASL)."""

    def __init__(self, *, max_stanza_size: int = 262144, max_depth: int = 64,
                 content_ns: str = ns.CLIENT, max_elements: int | None = None) -> None:
        self.max_stanza_size = max_stanza_size
        self.max_depth = max_depth
        self.max_elements = max_elements
        self.content_ns = content_ns
        self._synthetic = ("<stream:stream xmlns='%s' xmlns:stream='%s'>"
                           % (content_ns, ns.STREAMS)).encode()
        self.reset()

    def reset(self) -> None:
        """Start afresh after a stream restart: the next bytes begin a new XML document."""
        self.closed = False
        self._opened = False
        self._held = b""
        self._new_parser()

    def _new_parser(self) -> None:
        self._parser = etree.XMLPullParser(
            events=("start", "end"), encoding="utf-8", resolve_entities=False, no_network=True,
            load_dtd=False, huge_tree=False, remove_comments=False, remove_pis=False)
        self._root: _E | None = None
        self._depth = 0
        self._stanza_bytes = 0
        self._elements = 0
        self._since_restart = 0

    def _restart_clean(self) -> None:
        """Rebuild libxml2's state between stanzas (see the module docstring)."""
        self._new_parser()
        self._parser.feed(self._synthetic)
        for _, el in self._parser.read_events():
            self._root, self._depth = el, 1

    @property
    def in_stanza(self) -> bool:
        return self._depth > 1

    def feed(self, data: bytes) -> list[Event]:
        """Parse `data`; return what completed. Raises StreamError on bad input."""
        if self.closed:
            return []
        if self._held:
            data, self._held = self._held + data, b""
        out: list[Event] = []
        step = max(512, self.max_stanza_size // 8)
        for start in range(0, len(data), step):
            chunk = data[start:start + step]
            if start + step >= len(data):
                chunk = self._hold_back(chunk)
            if _SUSPECT.search(chunk) is not None:
                self._scan(chunk)
            try:
                self._parser.feed(chunk)
                self._drain(out)
            except etree.XMLSyntaxError as e:
                raise StreamError.not_well_formed(str(e.msg or "")[:200]) from None
            if self.closed:
                break
            if self._depth > 1:
                self._stanza_bytes += len(chunk)
                if self._stanza_bytes > self.max_stanza_size:
                    raise StreamError.policy_violation(
                        f"stanza larger than {self.max_stanza_size} bytes")
            else:
                self._stanza_bytes = 0
            self._since_restart += len(chunk)
            if self._since_restart > _RESTART_AFTER and self._depth == 1:
                if chunk.rstrip()[-1:] == b">" and not self._held:
                    self._restart_clean()
                elif self._since_restart > _GIVE_UP_AFTER:
                    raise StreamError.policy_violation("no stanza boundary in 64 MiB")
        return out

    def _hold_back(self, chunk: bytes) -> bytes:
        """Keep an incomplete `&ref` or `<!`/`<?` at the end for the next feed, to scan it whole."""
        amp = chunk.rfind(b"&", -12)
        if amp >= 0 and _REF_PREFIX.match(chunk, amp):
            self._held = chunk[amp:]
            return chunk[:amp]
        if chunk[-1:] == b"<":
            self._held = b"<"
            return chunk[:-1]
        lt = chunk.rfind(b"<!", -9)
        if lt >= 0 and _CDATA.startswith(chunk[lt:]):
            self._held = chunk[lt:]
            return chunk[:lt]
        if not self._opened:
            # An XML declaration split across reads: scan it whole (it is short).
            lt = chunk.rfind(b"<?")
            if lt >= 0 and chunk.find(b">", lt) < 0 and len(chunk) - lt < 1024:
                self._held = chunk[lt:]
                return chunk[:lt]
        return chunk

    def _scan(self, chunk: bytes) -> None:
        for m in _SUSPECT.finditer(chunk):
            i = m.start()
            if chunk[i] == 0x26:      # '&'
                if _GOOD_REF.match(chunk, i):
                    continue
                if _NAMED_REF.match(chunk, i):
                    raise StreamError.restricted_xml("entity references are not allowed")
                raise StreamError.not_well_formed("'&' must start a character reference")
            nxt = chunk[i + 1:i + 2]
            if nxt == b"!":
                if chunk.startswith(_CDATA, i):
                    continue
                if chunk.startswith(b"<!--", i):
                    raise StreamError.restricted_xml("comments are not allowed")
                raise StreamError.restricted_xml("document type declarations are not allowed")
            if nxt == b"?":
                decl = _XML_DECL.match(chunk, i)
                if decl is None or self._opened or self._root is not None:
                    raise StreamError.restricted_xml("processing instructions are not allowed")
                enc = _DECL_ENCODING.search(decl.group(0))
                if enc is not None and enc.group(1).lower() not in (b"utf-8", b"utf8"):
                    raise StreamError("unsupported-encoding", "only UTF-8 (RFC 6120 §11.6)")

    def _drain(self, out: list[Event]) -> None:
        for event, el in self._parser.read_events():
            if event == "start":
                depth = self._depth = self._depth + 1
                if depth == 1:
                    self._root = el
                    if not self._opened:
                        out.append(self._open_stream(el))
                elif depth == 2:
                    self._elements = 1
                    root = self._root
                    if root is not None and len(root) > 1:
                        del root[:-1]       # earlier stanzas' shells (see _detach)
                else:
                    if depth > self.max_depth:
                        raise StreamError.policy_violation(
                            f"elements nested deeper than {self.max_depth}")
                    self._elements += 1
                    if self.max_elements is not None and self._elements > self.max_elements:
                        raise StreamError.policy_violation("too many elements in one stanza")
                continue
            depth = self._depth
            self._depth = depth - 1
            if depth == 2:
                out.append(self._detach(el))
            elif depth == 1:
                self.closed = True
                out.append(StreamClose())
                return

    def _open_stream(self, root: _E) -> StreamOpen:
        self._opened = True
        if root.tag != _STREAM_TAG:
            raise StreamError.invalid_namespace("the root element must be <stream:stream/>")
        default_ns = root.nsmap.get(None)
        if default_ns != self.content_ns:
            raise StreamError.invalid_namespace(
                f"the stream's content namespace must be {self.content_ns}")
        attrs: dict[str, str] = {}
        for k, v in root.attrib.items():
            if k == _LANG:
                attrs["xml:lang"] = v
            elif k[0] != "{":
                attrs[k] = v
        return StreamOpen(attrs, default_ns)

    def _detach(self, el: _E) -> _E:
        """A copy of the finished stanza that outlives the stream document.

        The parsed original stays in libxml2's tree and is deleted when the next stanza starts:
        unlinking the *last* child (and its tail text) while libxml2 may still append text to it
        is unsafe; deleting earlier siblings is what lxml documents as safe. The copy declares
        only the namespaces it uses, its own as default (`<message xmlns="jabber:client">`).
        """
        home = _deepcopy(el)
        home.tail = None
        return home

def serialize(el: _E) -> bytes:
    """One stanza as bytes, re-serialised (never a client's raw bytes: stanza smuggling)."""
    return etree.tostring(el)
