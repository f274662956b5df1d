# tests: tests/core/test_xmlstream.py
"""Namespaces in XML §3 for the stream parser (xmppd/xmlstream.py): the declarations libxml2
only notes and drops, found in the bytes.

- Refused (`<not-well-formed/>`, RFC 6120 §4.9.3.13 covers [XML-NAMES]): the `xml` prefix
  bound to anything but http://www.w3.org/XML/1998/namespace (or undeclared), the `xmlns`
  prefix declared, either reserved namespace bound to another prefix or made the default.
- Cheap first: memchr tests, then one regex for `xmlns:xml`, a quoted reserved URI, or a `&`
  early in a quoted value (a URI spelt with references); only then is the start tag read, from
  its '<' (in this read, or in the bytes since the last '<' the parser keeps, up to 4 KiB: a
  declaration deeper in a longer start tag changes nothing libxml2 builds).
- `NS_TAIL`: the end of a read that may be an unfinished such declaration; the parser holds it
  back for the next read, as it does a cut `&ref`.
"""
from __future__ import annotations

import re

from stanzas.errors import StreamError

_XML_NS = b"http://www.w3.org/XML/1998/namespace"
_XMLNS_NS = b"http://www.w3.org/2000/xmlns/"
# Where a reserved-namespace declaration may be (see the module docstring); the rest is exact.
_NS_HINT = re.compile(rb"""xmlns:xml|['"](?:http://www\.w3\.org/(?:XML/1998/namespace|2000/xmlns/)"""
                      rb"""['"]|[^'"<&]{0,40}&)""")
# The end of a read that may be an unfinished declaration of the above: held for the next.
NS_TAIL = re.compile(rb"(?:x(?:m(?:l(?:n(?:s(?::(?:x(?:m(?:l"         # any start of xmlns:xml
                     rb"""[^'"<>]{0,64}(?:['"][^'"<>]{0,400}['"]?)?"""     # = 'value'
                     rb")?)?)?)?)?)?)?)?"
                     rb"""|=\s{0,64}(?:['"][^'"<>]{0,400}['"]?)?)\Z""")   # or ='a value'
_START_TAG = rb"""<[^\s<>/!?'"=]+(?:\s+[^\s<>/'"=]+\s*=\s*(?:'[^'<]*'|"[^"<]*"))*\s+"""
_AT_ATTRIBUTE = re.compile(_START_TAG + rb"\Z")                       # an attribute name next
_AT_VALUE = re.compile(_START_TAG + rb"""([^\s<>/'"=]+)\s*=\s*\Z""")  # that attribute's value
_NS_DECL = re.compile(rb"""xmlns:(xml|xmlns)(?=[\s=])\s*=\s*(?:'([^'<]*)'|"([^"<]*)")""")
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


def reserved_namespace_declaration(chunk: bytes, tail: bytes | None, within: int | None = None
                                   ) -> tuple[int, StreamError] | None:
    """The first declaration in `chunk` that Namespaces in XML §3 forbids: (offset, error).
    `tail`: the bytes since the last '<' before `chunk` (None: more than 4 KiB); `within`:
    only declarations that begin before this offset (the rest of `chunk` is what follows the
    slice in the same read, there to see a declaration whole)."""
    for m in _NS_HINT.finditer(chunk):
        i = m.start()
        if within is not None and i >= within:
            break
        lt = chunk.rfind(b"<", 0, i)
        if lt >= 0:
            before = chunk[lt:i]
        elif tail is not None and tail.startswith(b"<"):
            before = tail + chunk[:i]
        else:
            continue            # text, or deep in a start tag over 4 KiB (docstring)
        if chunk[i] == 0x78:    # 'x': xmlns:xml / xmlns:xmlns as an attribute name
            decl = _NS_DECL.match(chunk, i)
            if decl is None or _AT_ATTRIBUTE.fullmatch(before) is None:
                continue
            value = decl.group(2) if decl.group(2) is not None else decl.group(3)
            if decl.group(1) == b"xmlns":
                return i, StreamError.not_well_formed("the xmlns prefix cannot be declared")
            if _decoded(value) != _XML_NS.decode():
                return i, StreamError.not_well_formed(
                    "the xml prefix is bound to its own namespace only")
            continue
        at = _AT_VALUE.fullmatch(before)
        name = at.group(1) if at is not None else b""
        if name != b"xmlns" and not name.startswith(b"xmlns:"):
            continue
        quoted = _QUOTED.match(chunk, i)
        if quoted is None:
            continue
        uri = _decoded(quoted.group(1) if quoted.group(1) is not None else quoted.group(2))
        if uri == _XMLNS_NS.decode() or (uri == _XML_NS.decode() and name != b"xmlns:xml"):
            return i, StreamError.not_well_formed(
                "a reserved namespace is bound to another prefix")
    return None
