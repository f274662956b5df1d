# tests: tests/core/test_xmlstream.py, tests/core/test_fuzz_parser.py
"""Incremental XML stream parser for XMPP (RFC 6120 §4, §11), sans-IO.

- Fed bytes in any split; returns the stream header, each top-level element (an lxml element,
  the source of truth from here on) and the stream end, in order. Every split of the same bytes
  gives the same events, or the same error condition.
- Restricted XML (RFC 6120 §11.1) and reserved namespaces (Namespaces in XML §3) are
  judged on the bytes before libxml2 sees them (xmppd/xmlscan.py, xmppd/xmlreserved.py).
- Malformed XML → `<not-well-formed/>`; a wrong stream namespace or root element →
  `<invalid-namespace/>`; an encoding other than UTF-8 → `<unsupported-encoding/>`; a stanza
  nested deeper than `max_depth` or with more than `max_elements` elements → `<policy-violation/>`.
- A stanza larger than `max_stanza_size` bytes → `<policy-violation/>`, checked while bytes
  arrive, in slices of at most `max_stanza_size / 8`, so nothing large is buffered. The count is
  exact for a stanza that begins after a clean boundary (a slice that ended in a complete tag
  between stanzas, or in whitespace after one) and ends a slice. libxml2 does not say where in
  a slice a stanza ended, so a slice that also holds the end of the previous stanza, or the
  start of the next, counts only towards the stanzas it certainly belongs to: the cut-off may
  come up to two slices (a quarter of the limit) late, never early. Bytes outside stanzas that
  are not whitespace after a complete tag (a start tag that never ends, text at the stream
  level) are counted the same way, so they cannot pile up.

lxml's push parser, with each finished stanza copied out (see `_detach`), beat Expat building
lxml elements from Python callbacks about 2× in `bench/parser_bench.py` (numbers in
docs/PERFORMANCE.md), so libxml2 builds the elements in C.
Whitespace between stanzas accumulates as the root's text in libxml2, so after every MiB the
parser is rebuilt at a clean boundary (no stanza open, no partial markup fed) with a synthetic
header declaring the client's own namespace prefixes (memory stays flat).
Framings (RFC 7395, XEP-0206): the same parser, restricted scan and limits serve every entry
point (Prosody's CVE-2022-0217 was a WebSocket-only gap).
- `framing="websocket"`: each `feed_message()` is one WebSocket message holding one element
  (RFC 7395 §3.3.3; xmppd/xmlframes.py).
- `parse_document()`: one whole document with a given root (a BOSH `<body/>`, XEP-0124 §4):
  the root's attributes as `StreamOpen`, its children as stanzas, each under the limits.
Not here: what the header's attributes mean (xmppd/c2s.py).
"""
from __future__ import annotations

from typing import Iterator, Literal
from xml.sax.saxutils import quoteattr

from lxml import etree

from stanzas import ns
from stanzas.errors import StreamError
from stanzas.wire import serialize
from xmppd.xmlreserved import ns_suspect, reserved_namespace_declaration
from xmppd.xmlevents import Event, StreamClose, StreamOpen, header_attrs
from xmppd.xmlframes import FRAMING_NS, WebSocketMessages
from xmppd.xmlscan import _BOM, _CONTROL, _CONTROLS, _SUSPECT, _UTF8, _WS, ByteScan

_E = etree._Element
_STREAM_TAG = "{%s}stream" % ns.STREAMS
_FRAMED_ROOT = b"<ws-frames>"     # never seen by clients: each message is one child of it
_LANG = "{%s}lang" % ns.XML
_RESTART_AFTER = 1 << 20
_MIN_SLICE = 512


class XmlStreamParser(ByteScan, WebSocketMessages):
    """One parser per stream; call `reset()` on a stream restart (after STARTTLS or SASL).

    `max_stanza_size`, `max_depth` and `max_elements` may be changed between feeds (the c2s
    stream raises them after authentication). `restarts` counts the internal rebuilds.
    """

    _root: _E | None          # the stream (or synthetic) root, once parsed

    def __init__(self, *, max_stanza_size: int = 262144, max_depth: int = 64,
                 content_ns: str = ns.CLIENT, max_elements: int | None = None,
                 framing: Literal["stream", "websocket"] = "stream",
                 root_tag: str = _STREAM_TAG) -> None:
        self.max_stanza_size = max_stanza_size
        self.max_depth = max_depth
        self.max_elements = max_elements
        self.content_ns = content_ns
        self.framing = framing
        self.root_tag = root_tag
        self.restarts = 0
        self.reset()

    def reset(self) -> None:
        """Start afresh after a stream restart: the next bytes begin a new XML document."""
        self.closed = False
        self._failed: StreamError | None = None
        self._opened = False
        self._held = b""
        self._synthetic = b""
        self._compacted = False
        self._new_parser()
        self._framed_open = False
        if self.framing == "websocket":
            # One neutral root for all messages: it declares no namespace, so every message
            # must declare its own (RFC 7395 §3.3.3), and it is never announced as a header.
            self._opened = True
            self._synthetic = _FRAMED_ROOT
            self._parser.feed(_FRAMED_ROOT)
            for _, el in self._events():
                self._root, self._depth = el, 1

    def _new_parser(self) -> None:
        self._parser = etree.XMLPullParser(
            events=("start", "end"), encoding="utf-8", resolve_entities=False, no_network=True,
            load_dtd=False, huge_tree=False, remove_comments=False, remove_pis=False)
        self._root = None
        self._depth = 0
        self._elements = 0
        self._pending = 0           # bytes counted against max_stanza_size (module docstring)
        self._clean = True          # libxml2 holds no partial markup and no stanza is open
        self._ended = 0             # stanzas completed in the current slice
        self._opened_now = False    # the stream opened in the current slice
        self._tail: bytes | None = b""  # the bytes since the last '<' (see _track_tail)
        self._tail_len = 0
        self._doc_head = b""        # the document's first bytes, to place an XML declaration
        self._doc_fed = 0
        self._started = False       # a byte other than a BOM or whitespace was seen
        self._utf8 = _UTF8()        # validity across slices (libxml2 reports it lazily)
        self._since_restart = 0

    def _restart_clean(self) -> None:
        """Rebuild libxml2's state between stanzas (see the module docstring)."""
        self._new_parser()
        self.restarts += 1
        self._parser.feed(self._synthetic)
        for _, el in self._events():
            self._root, self._depth = el, 1

    def compact(self) -> bool:
        """Free libxml2's parser state (about 10 KiB) between stanzas of an idle stream; the
        next feed rebuilds it with the synthetic header, as the 1 MiB restart does. False
        (nothing done) unless the stream is open and at a clean stanza boundary."""
        if (self._compacted or not self._opened or self.closed or self._failed is not None
                or self._held or not self._clean or self._depth != 1 or not self._synthetic):
            return False
        self._parser = None  # type: ignore[assignment]
        self._root = None
        self._compacted = True
        return True

    @property
    def compacted(self) -> bool:
        """The parser state is freed (see `compact`) until the next byte."""
        return self._compacted

    @property
    def in_stanza(self) -> bool:
        return self._depth > 1

    def feed(self, data: bytes) -> list[Event]:
        """Parse `data`; return what completed. Raises StreamError on bad input (and drops
        whatever completed before it in `data`: see `feed_until_error`)."""
        events, error = self.feed_until_error(data)
        if error is not None:
            raise error
        return events

    def feed_until_error(self, data: bytes) -> tuple[list[Event], StreamError | None]:
        """Parse `data`; return what completed before any error, and the error.

        A stanza that was complete before the bad bytes counts, as it would had the bad bytes
        come in a later read. After an error the parser stays failed until `reset()`.
        """
        if self._failed is not None:
            return [], self._failed
        out: list[Event] = []
        try:
            self._feed(data, out)
        except StreamError as e:
            self._failed = e
            return out, e
        return out, None

    def _feed(self, data: bytes, out: list[Event]) -> None:
        if self.closed:
            return
        if self._held:
            data, self._held = self._held + data, b""
        if self._compacted:
            self._compacted = False
            self._restart_clean()
        step = max(_MIN_SLICE, self.max_stanza_size // 8)
        pos, size = 0, len(data)
        while pos < size and not self.closed:
            start, end = pos, min(pos + step, size)
            chunk = data[pos:end]
            keep = self._complete_prefix(chunk)
            if keep < len(chunk):
                # An `&ref`, `<!`, `<?` or `<` cut by the slice or read boundary is scanned whole
                # with what follows: in the next slice, or held for the next feed.
                if end == size:
                    self._held = chunk[keep:]
                    chunk = chunk[:keep]
                elif keep > 0:
                    chunk = chunk[:keep]
                    end = pos + keep
            pos = end
            if chunk:
                # What follows in this read lets a declaration the cut went through be judged
                # whole now (xmppd/xmlreserved.py).
                after = start + len(chunk)
                self._feed_slice(chunk, out, data[after:after + 1024])

    def _feed_slice(self, chunk: bytes, out: list[Event], ahead: bytes = b"") -> None:
        was_clean = self._clean
        self._ended = 0
        self._opened_now = False
        refused = self._scan(chunk) if _SUSPECT.search(chunk) is not None else None
        if len(chunk.translate(None, _CONTROLS)) != len(chunk):
            # C0 controls but TAB, LF, CR are never XML (1.0 §2.2); libxml2 reports them only
            # once the text around them ends, so split reads disagreed on what came first.
            at = _CONTROL.search(chunk)
            assert at is not None
            if refused is None or at.start() < refused[0]:
                refused = at.start(), StreamError.not_well_formed(
                    "a control character is not an XML character")
        bad_utf8 = self._utf8_error(chunk)
        if bad_utf8 is not None and (refused is None or bad_utf8[0] < refused[0]):
            refused = bad_utf8
        if not self._opened and not self._started:
            early = self._document_start(chunk)
            if early is not None and (refused is None or early[0] < refused[0]):
                refused = early
        if ns_suspect(chunk + ahead if ahead else chunk):
            bad_ns = reserved_namespace_declaration(chunk + ahead, self._tail, within=len(chunk),
                                                    tail_len=self._tail_len)
            if bad_ns is not None and (refused is None or bad_ns[0] < refused[0]):
                refused = bad_ns
        if refused is not None:
            # libxml2 still reads what precedes the refused construct, so the outcome is the one
            # byte-by-byte reads give: an earlier error wins, and `</stream:stream>` before it is
            # a clean close.
            chunk = chunk[:max(0, refused[0])]
        try:
            self._parser.feed(chunk)
            self._drain(out)
            root = self._root
            if root is not None and len(root) > 1:
                # Earlier stanzas' shells, all copied by now (see _detach). Not while draining:
                # libxml2 may have built several stanzas of this slice already, and one deleted
                # before its copy is made loses its namespace context (`<ns0:message
                # xmlns:ns0="jabber:client">`).
                del root[:-1]
        except etree.XMLSyntaxError as e:
            # What libxml2 parsed before the error still happened: `</stream:stream>` followed
            # by junk in the same read is a close, as it is when the junk comes later.
            self._drain(out)
            if not self.closed:
                raise StreamError.not_well_formed(str(e.msg or "")[:200]) from None
        if self.closed:
            return
        if refused is not None:
            raise refused[1]
        if self._doc_fed < len(_BOM):
            self._doc_head = (self._doc_head + chunk)[:len(_BOM)]
        self._doc_fed += len(chunk)
        self._track_tail(chunk)
        clean_end = self._depth <= 1 and self._ends_clean(chunk, was_clean)
        if self._opened_now or self._ended > 1 or (self._ended == 1 and not clean_end):
            # A boundary at an unknown offset in the slice: what follows it is counted from the
            # next slice on (see the module docstring). Stanzas that ended here were counted
            # up to this slice, and any that started here too are smaller than a slice.
            self._pending = 0
        else:
            # The whole slice belongs to one stanza (or one stretch of stream-level bytes).
            size = len(chunk)
            if was_clean:
                size -= len(chunk) - len(chunk.lstrip(_WS))    # whitespace before the stanza
            if clean_end:
                size -= len(chunk) - len(chunk.rstrip(_WS))    # whitespace after it
            size += self._pending
            if size > self.max_stanza_size:
                raise StreamError.policy_violation(
                    f"stanza larger than {self.max_stanza_size} bytes")
            self._pending = 0 if clean_end else size
        self._clean = clean_end
        self._since_restart += len(chunk)
        if clean_end and self._depth == 1 and self._since_restart > _RESTART_AFTER:
            self._restart_clean()

    def _events(self) -> Iterator[tuple[str, _E]]:
        # With events=("start", "end") every item is an element (lxml-stubs allow for more).
        return self._parser.read_events()  # type: ignore[return-value]

    def _drain(self, out: list[Event]) -> None:
        for event, el in self._events():
            if event == "start":
                depth = self._depth = self._depth + 1
                if depth > 1:
                    _check_prefixes(el)
                if depth == 1:
                    self._root = el
                    self._opened_now = True
                    if not self._opened:
                        out.append(self._open_stream(el))
                elif depth == 2:
                    self._elements = 1
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
                self._ended += 1
                out.append(self._detach(el))
            elif depth == 1:
                self.closed = True
                out.append(StreamClose())
                return

    def _open_stream(self, root: _E) -> StreamOpen:
        self._opened = True
        if root.tag != self.root_tag:
            name = etree.QName(self.root_tag).localname
            raise StreamError.invalid_namespace(f"the root element must be <{name}/>")
        default_ns = root.nsmap.get(None)
        if default_ns != self.content_ns:
            raise StreamError.invalid_namespace(
                f"the stream's content namespace must be {self.content_ns}")
        attrs = header_attrs(root)
        # The rebuilt parser must know every prefix the client declared on its header (stanzas
        # may use them) and the prefix its `</…:stream>` will use.
        decls = " ".join("xmlns%s=%s" % (":" + p if p else "", quoteattr(uri))
                         for p, uri in root.nsmap.items())
        self._synthetic = ("<%s:stream %s>" % (root.prefix, decls)).encode()
        return StreamOpen(attrs, default_ns, {p or "": uri for p, uri in root.nsmap.items()})

    def _detach(self, el: _E) -> _E:
        """A copy of the finished stanza that outlives the stream document.

        The parsed original stays in libxml2's tree and is deleted once its slice is drained and
        a later stanza has started: unlinking the *last* child (and its tail text) while libxml2
        may still append text to it is unsafe; deleting earlier siblings is what lxml documents
        as safe. The copy declares only the namespaces it uses, its own as default
        (`<message xmlns="jabber:client">`).
        """
        # lxml's __copy__ copies the whole subtree, like deepcopy without copy.deepcopy's ~40 %.
        home: _E = el.__copy__()  # type: ignore[attr-defined]
        home.tail = None
        # The copy's document would keep a reference to this stream's parser (lxml hands the
        # parser on to copies), and with it libxml2's parser state and the stream document:
        # about 11 KiB for as long as any stanza of the stream is kept (a session's presence,
        # a cached PEP item, a stream-management queue), even after `compact()` or the end of
        # the stream. Moved through a document of lxml's default parser, it keeps none (1 µs).
        holder = etree.Element("detached")
        holder.append(home)
        holder.remove(home)
        return home


def parse_document(data: bytes, *, root_tag: str, content_ns: str, max_stanza_size: int,
                   max_depth: int, max_elements: int | None = None
                   ) -> tuple[StreamOpen, list[_E]]:
    """One whole document (a BOSH `<body/>`): its root's attributes and its child elements,
    through the same restricted parser and per-child limits as a stream. Raises StreamError;
    a document that does not end with its root is `<not-well-formed/>`."""
    parser = XmlStreamParser(max_stanza_size=max_stanza_size, max_depth=max_depth,
                             content_ns=content_ns, max_elements=max_elements,
                             root_tag=root_tag)
    events = parser.feed(data)
    if not parser.closed or not events or not isinstance(events[0], StreamOpen) \
            or not isinstance(events[-1], StreamClose):
        raise StreamError.not_well_formed("the document is incomplete")
    children = [e for e in events[1:-1] if isinstance(e, etree._Element)]
    return events[0], children


def _check_prefixes(el: _E) -> None:
    """Refuse a name whose prefix was never declared (Namespaces in XML §5: such a document is
    not namespace-well-formed). libxml2 only warns and keeps "foo:bar" unqualified; re-serialised
    as is, it would break every recipient's parser (their client drops the stream), so it is
    stopped here as <not-well-formed/>."""
    tag = el.tag
    if tag[0] != "{" and ":" in tag:
        raise StreamError.not_well_formed(f"undeclared namespace prefix in <{tag}>")
    for name in el.keys():
        if name[0] != "{" and ":" in name:
            raise StreamError.not_well_formed("undeclared namespace prefix in an attribute")


__all__ = ["FRAMING_NS", "Event", "StreamClose", "StreamOpen", "XmlStreamParser", "parse_document", "serialize"]
