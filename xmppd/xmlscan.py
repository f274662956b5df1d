# tests: tests/core/test_xmlstream.py, tests/fuzz/
"""The byte-level half of the stream parser (xmppd/xmlstream.py): what must be judged on the
bytes themselves, before or beside libxml2, so that every way TCP splits a stream gives the same
answer — restricted XML (RFC 6120 §11.1: no entity references, comments, DTDs or processing
instructions), UTF-8 validity (§11.6), the document's first bytes, and where a read can be cut
without leaving libxml2 inside an unfinished construct.
"""
from __future__ import annotations

import codecs
import re

from stanzas.errors import StreamError
from xmppd.xmlreserved import held_from

_SUSPECT = re.compile(rb"&|<[!?]")
_CONTROLS = bytes(c for c in range(0x20) if c not in b"\t\n\r")
_CONTROL = re.compile(b"[" + re.escape(_CONTROLS) + b"]")
_UTF8 = codecs.getincrementaldecoder("utf-8")
_GOOD_REF = re.compile(rb"&(?:lt|gt|amp|apos|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_REF_PREFIX = re.compile(rb"&(?:[a-z]{0,4}|#[0-9]{0,7}|#x[0-9a-fA-F]{0,6})\Z")
_XML_DECL = re.compile(rb"<\?xml\s[^<>]*?\?>")
_DECL_ENCODING = re.compile(rb"encoding\s*=\s*['\"]([^'\"]*)['\"]")
_CDATA = b"<![CDATA["
_BOM = b"\xef\xbb\xbf"
_BLANK = re.compile(rb"[ \t\r\n]*\Z")
_WS = b" \t\r\n"
_TAIL_MAX = 4096
# The last tag of a slice, complete and followed by whitespace only: an end tag (group 1), an
# empty-element tag (2) or a start tag (3). Attribute values must be closed, so a '>' inside an
# unfinished value does not pass for the end of the tag.
_LAST_TAG = re.compile(
    rb"""(</[^<>'"]*>)[ \t\r\n]*\Z"""
    rb"""|<[^\s<>/!?'"=]+(?:\s+[^\s<>/'"=]+\s*=\s*(?:'[^'<]*'|"[^"<]*"))*\s*(?:(/>)|(>))"""
    rb"""[ \t\r\n]*\Z""")


class ByteScan:
    """Mixed into XmlStreamParser; the attributes are the parser's."""

    _opened: bool
    _opened_now: bool
    _started: bool
    _tail: bytes | None
    _tail_len: int
    _doc_head: bytes
    _doc_fed: int
    _utf8: codecs.IncrementalDecoder

    def _complete_prefix(self, chunk: bytes) -> int:
        """Length of `chunk` without an incomplete reserved-namespace declaration
        (xmppd/xmlreserved.py), `&ref`, `<`, `<![CDATA[` or XML declaration (see the module
        docstring).

        Holding back one may leave another unfinished at the new end: `&` before a held
        `xmlns`, scanned alone, looked like a bare '&' (not-well-formed) rather than the entity
        reference it begins (restricted-xml). So the markup cuts are repeated until what is fed
        ends complete, and every split judges each construct on the same bytes."""
        keep = held_from(chunk, self._tail, self._tail_len)
        while keep > 0:
            cut = self._markup_cut(chunk, keep)
            if cut == keep:
                break
            keep = cut
        return keep

    def _markup_cut(self, chunk: bytes, end: int) -> int:
        """Where `chunk[:end]` ends complete; the earliest incomplete construct wins."""
        keep = end
        amp = chunk.rfind(b"&", max(0, end - 12), end)
        if amp >= 0 and _REF_PREFIX.match(chunk, amp, end):
            keep = amp
        if chunk[end - 1:end] == b"<":
            keep = min(keep, end - 1)
        lt = chunk.rfind(b"<!", max(0, end - 9), end)
        if lt >= 0 and _CDATA.startswith(chunk[lt:end]):
            keep = min(keep, lt)
        if not self._opened:
            # An XML declaration split across reads: scan it whole (it is short).
            lt = chunk.rfind(b"<?", 0, end)
            if lt >= 0 and chunk.find(b">", lt, end) < 0 and end - lt < 1024:
                keep = min(keep, lt)
        return keep

    def _ends_clean(self, chunk: bytes, was_clean: bool) -> bool:
        """Whether libxml2 has consumed all markup fed so far: the bytes end in a complete tag
        (and whitespace), or `chunk` is all whitespace after a clean boundary."""
        if was_clean and b"<" not in chunk:
            return _BLANK.match(chunk) is not None
        tail = self._tail
        if tail is None:
            return False
        m = _LAST_TAG.match(tail)
        if m is None:
            return False
        # A start tag can only end a slice cleanly at depth 1 if it is the stream header.
        return m.group(3) is None or self._opened_now

    def _track_tail(self, chunk: bytes) -> None:
        """Keep the bytes from the last '<' on (if short), so a tag cut across slices is seen
        whole when it completes, and count them (`_tail_len`, before shortening whitespace)."""
        # Trailing whitespace is kept as one space: it means the same to _LAST_TAG, and a run
        # of it (keepalives after a stanza whose end tag was cut) must not push the tag out.
        body = chunk.rstrip(_WS)
        ws = b" " if len(body) < len(chunk) else b""
        lt = body.rfind(b"<")
        if lt >= 0:
            self._tail_len = len(chunk) - lt
            self._tail = body[lt:] + ws if len(body) - lt <= _TAIL_MAX else None
        else:
            self._tail_len += len(chunk)
            if self._tail is not None:
                tail = (self._tail + body).rstrip(_WS) + ws if body else self._tail.rstrip(_WS) + ws
                self._tail = tail if len(tail) <= _TAIL_MAX else None

    def _scan(self, chunk: bytes) -> tuple[int, StreamError] | None:
        """The first restricted or malformed construct the byte scan finds: (offset, error)."""
        for m in _SUSPECT.finditer(chunk):
            i = m.start()
            nxt = chunk[i + 1:i + 2]
            if chunk[i] == 0x26:      # '&'
                if _GOOD_REF.match(chunk, i):
                    continue
                if nxt.isalpha() or nxt in (b"_", b":") or nxt >= b"\x80":
                    # A name after '&' is an entity reference (or the start of one), whatever
                    # follows it: the same condition however the bytes were split.
                    return i, StreamError.restricted_xml("entity references are not allowed")
                return i, StreamError.not_well_formed("'&' must start a character reference")
            if nxt == b"!":
                if chunk.startswith(_CDATA, i):
                    continue
                if chunk.startswith(b"<!--", i):
                    return i, StreamError.restricted_xml("comments are not allowed")
                return i, StreamError.restricted_xml("document type declarations are not allowed")
            decl = _XML_DECL.match(chunk, i)
            if decl is None or self._opened or not self._at_document_start(chunk, i):
                return i, StreamError.restricted_xml("processing instructions are not allowed")
            enc = _DECL_ENCODING.search(decl.group(0))
            if enc is not None and enc.group(1).lower() not in (b"utf-8", b"utf8"):
                return i, StreamError("unsupported-encoding", "only UTF-8 (RFC 6120 §11.6)")
        return None

    def _utf8_error(self, chunk: bytes) -> tuple[int, StreamError] | None:
        """Where `chunk` stops being UTF-8 (RFC 6120 §11.6), judged with the bytes before it:
        libxml2 finds bad bytes only once more follow them, so split reads disagreed on which
        error came first."""
        if chunk.isascii() and not self._utf8.getstate()[0]:
            return None
        held = len(self._utf8.getstate()[0])
        try:
            self._utf8.decode(chunk)
        except UnicodeDecodeError as e:
            self._utf8.reset()
            # Negative when the bad sequence began in an earlier slice: it comes first.
            return e.start - held, StreamError.not_well_formed("invalid UTF-8")
        return None

    def _document_start(self, chunk: bytes) -> tuple[int, StreamError] | None:
        """Before the root: after a BOM and whitespace the document must begin with '<'.
        libxml2 judges other first bytes by how many it got at once (four NULs may be UTF-32);
        deciding here gives every split the same answer."""
        pos = 0
        if self._doc_fed < len(_BOM) and self._doc_head == _BOM[:self._doc_fed]:
            rest = _BOM[self._doc_fed:]
            if rest.startswith(chunk):
                return None         # all of it may still be a BOM
            if chunk.startswith(rest):
                pos = len(rest)
        body = chunk[pos:].lstrip(_WS)
        if not body:
            return None
        self._started = True
        if body[:1] != b"<" or body[1:2] == b"/":
            return len(chunk) - len(body), StreamError.not_well_formed(
                "an XML document starts with '<'")
        return None

    def _at_document_start(self, chunk: bytes, i: int) -> bool:
        """Whether position `i` of `chunk` is the start of the document (after a BOM, if any)."""
        return self._doc_fed + i <= len(_BOM) and self._doc_head + chunk[:i] in (b"", _BOM)
