# tests: tests/core/test_xmlstream.py
"""Namespaces in XML §3 for the stream parser (xmppd/xmlstream.py): the declarations libxml2
only notes and drops, found in the bytes.

- Refused (`<not-well-formed/>`, RFC 6120 §4.9.3.13 covers [XML-NAMES]): the `xml` prefix
  bound to anything but http://www.w3.org/XML/1998/namespace (or undeclared), the `xmlns`
  prefix declared, either reserved namespace bound to another prefix or made the default.
- Cheap first: memchr tests, then one regex for `xmlns:xml`, a quoted reserved URI, or a `&`
  early in a quoted value (a URI spelt with references); only then is the start tag read, from
  its '<' (in this read, or in the bytes since the last '<' the parser keeps). A declaration
  more than 4 KiB after its tag's '<' is not judged, however the reads were cut: it changes
  nothing libxml2 builds.
- Every split judges a declaration on the same bytes: `held_from` finds the end of a read that
  is an unfinished declaration, in a start tag, and the parser holds it back for the next read,
  as it does a cut `&ref`; a slice is judged with the rest of its read after it (up to 1 KiB).
  An `xmlns:xml`/`xmlns:xmlns` declaration is judged on its first 480 bytes: if it has not
  ended by then it is refused (the longest honest one, the namespace spelt with references,
  has 372), so nothing longer is ever held. A reserved URI is at most 360 bytes, however spelt.
"""
from __future__ import annotations

import re

from stanzas.errors import StreamError

_XML_NS = b"http://www.w3.org/XML/1998/namespace"
_XMLNS_NS = b"http://www.w3.org/2000/xmlns/"
# Where a reserved-namespace declaration may be (see the module docstring); the rest is exact.
_NS_HINT = re.compile(rb"""xmlns:xml|['"](?:http://www\.w3\.org/(?:XML/1998/namespace|2000/xmlns/)"""
                      rb"""['"]|[^'"<&]{0,40}&)""")
_CONTEXT_MAX = 4096     # bytes from a tag's '<' to a declaration judged in it
_DECL_MAX = 480         # an xml-prefix declaration not ended within this is refused
# Candidates for `held_from`: a start of `xmlns:xml` or `xmlns:xmlns` and its declaration up to
# an unfinished value (which may hold '>' and the other quote), or an unfinished quoted value
# short enough to be a reserved URI.
_TAIL = re.compile(rb"(?:x(?:m(?:l(?:n(?:s(?::(?:x(?:m(?:l"
                   rb"""(?:n|(?:ns)?\s*(?:=\s*(?:'[^'<]*|"[^"<]*)?)?)?"""
                   rb")?)?)?)?)?)?)?)?"
                   rb"""|['"][^'"<>]{0,400})\Z""")
_START_TAG = rb"""<[^\s<>/!?'"=]+(?:\s+[^\s<>/'"=]+\s*=\s*(?:'[^'<]*'|"[^"<]*"))*\s+"""
_AT_ATTRIBUTE = re.compile(_START_TAG + rb"\Z")                       # an attribute name next
_AT_VALUE = re.compile(_START_TAG + rb"""([^\s<>/'"=]+)\s*=\s*\Z""")  # that attribute's value
_NS_DECL = re.compile(rb"""xmlns:(xml|xmlns)(?=[\s=])\s*=\s*(?:'([^'<]*)'|"([^"<]*)")""")
_NS_DECL_START = re.compile(rb"""xmlns:(xml|xmlns)(?=[\s=])\s*(?:=\s*(?:'[^'<]*|"[^"<]*)?)?""")
_QUOTED = re.compile(rb"'([^'<]*)'" + rb'|"([^"<]*)"')
_CHAR_REF = re.compile(r"&(?:#x([0-9a-fA-F]+)|#([0-9]+)|(lt|gt|amp|apos|quot));")
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "apos": "'", "quot": '"'}


def ns_suspect(chunk: bytes) -> bool:
    """Whether `chunk` may hold a reserved-namespace declaration (memchr-fast tests first)."""
    return (b"xmlns:xml" in chunk or b"w3.org/" in chunk or b"&" in chunk) \
        and _NS_HINT.search(chunk) is not None


def _decoded(value: bytes) -> str:
    """An attribute value with its character and entity references replaced."""
    def one(m: re.Match[str]) -> str:
        if m.group(3) is not None:
            return _ENTITIES[m.group(3)]
        code = int(m.group(1), 16) if m.group(1) is not None else int(m.group(2))
        return chr(code) if code <= 0x10FFFF else "\ufffd"
    text = value.decode("utf-8", "replace")
    return _CHAR_REF.sub(one, text) if "&" in text else text


def _tag_before(data: bytes, i: int, tail: bytes | None, tail_len: int) -> bytes | None:
    """The start tag from its '<' up to offset `i` of `data`, or None: not in a tag, or more
    than 4 KiB after its '<' (module docstring). `tail`, `tail_len`: the bytes since the last
    '<' before `data` (whitespace at slice ends shortened; None past 4 KiB) and how many bytes
    that was, so that the distance is the same in every split."""
    lt = data.rfind(b"<", 0, i)
    if lt >= 0:
        return data[lt:i] if i - lt <= _CONTEXT_MAX else None
    if tail is None or not tail.startswith(b"<") or tail_len + i > _CONTEXT_MAX:
        return None
    return tail + data[:i]


def _ns_attribute(name: bytes) -> bool:
    return name == b"xmlns" or name.startswith(b"xmlns:")


def held_from(chunk: bytes, tail: bytes | None, tail_len: int) -> int:
    """Where the unfinished reserved-namespace declaration that ends `chunk` begins, to be
    judged whole with the next read (len(chunk): none): a start of `xmlns:xml` where an
    attribute name begins, up to an unfinished value, or a namespace declaration's unfinished
    value. Within the last 480 bytes; `tail`, `tail_len` as for `reserved_namespace_declaration`.
    Each candidate is checked against its start tag: a quote that closes a value, or
    `xmlns:xml='` inside another value, is no declaration, and holding it would delay the
    stanza it ends."""
    pos = max(0, len(chunk) - _DECL_MAX)
    while (m := _TAIL.search(chunk, pos)) is not None:
        i = m.start()
        before = _tag_before(chunk, i, tail, tail_len)
        if before is not None:
            if chunk[i] == 0x78:    # 'x'
                if _AT_ATTRIBUTE.fullmatch(before) is not None:
                    return i
            else:
                at = _AT_VALUE.fullmatch(before)
                if at is not None and _ns_attribute(at.group(1)):
                    return i
        pos = i + 1
    return len(chunk)


def reserved_namespace_declaration(data: bytes, tail: bytes | None, within: int | None = None,
                                   tail_len: int = 0) -> tuple[int, StreamError] | None:
    """The first declaration in `data` that Namespaces in XML §3 forbids: (offset, error).
    `tail`: the bytes since the last '<' before `data` (None: more than 4 KiB), `tail_len`
    their number before whitespace was shortened; `within`: only declarations that begin
    before this offset (the rest of `data` is what follows the slice in the same read, there
    to see a declaration whole)."""
    for m in _NS_HINT.finditer(data):
        i = m.start()
        if within is not None and i >= within:
            break
        before = _tag_before(data, i, tail, tail_len)
        if before is None:
            continue            # text, or deep in a long start tag (module docstring)
        if data[i] == 0x78:     # 'x': xmlns:xml / xmlns:xmlns as an attribute name
            if _AT_ATTRIBUTE.fullmatch(before) is None:
                continue
            decl = _NS_DECL.match(data, i)
            if decl is None or decl.end() - i > _DECL_MAX:
                start = _NS_DECL_START.match(data, i)
                if start is None or (decl is None and start.end() - i <= _DECL_MAX):
                    continue    # no declaration (libxml2 refuses it), or held until it ends
                prefix = start.group(1)
            else:
                prefix = decl.group(1)
                value = decl.group(2) if decl.group(2) is not None else decl.group(3)
                if prefix == b"xml" and _decoded(value) == _XML_NS.decode():
                    continue
            if prefix == b"xmlns":
                return i, StreamError.not_well_formed("the xmlns prefix cannot be declared")
            return i, StreamError.not_well_formed(
                "the xml prefix is bound to its own namespace only")
        at = _AT_VALUE.fullmatch(before)
        if at is None or not _ns_attribute(at.group(1)):
            continue
        name = at.group(1)
        quoted = _QUOTED.match(data, i)
        if quoted is None:
            continue
        uri = _decoded(quoted.group(1) if quoted.group(1) is not None else quoted.group(2))
        if uri == _XMLNS_NS.decode() or (uri == _XML_NS.decode() and name != b"xmlns:xml"):
            return i, StreamError.not_well_formed(
                "a reserved namespace is bound to another prefix")
    return None
