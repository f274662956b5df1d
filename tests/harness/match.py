# tests: tests/modules/, tests/core/test_router.py
"""XML as tests write it: stanzas without xmlns are jabber:client, compared semantically
(attribute order and whitespace ignored) with an `{any}` wildcard for attribute values and text.
"""
from __future__ import annotations

from lxml import etree

ANY = "{any}"
CLIENT_NS = "jabber:client"


def parse(xml: str) -> etree._Element:
    """Parse a stanza written without xmlns as jabber:client (what a client stream means)."""
    wrapped = f"<wrap xmlns='{CLIENT_NS}'>{xml}</wrap>"
    el = etree.fromstring(wrapped)[0]
    el.tail = None
    return etree.fromstring(etree.tostring(el))


def matches(expected: etree._Element, actual: etree._Element) -> str | None:
    """None if `actual` matches `expected` ({any} wildcards in attributes and text)."""
    if expected.tag != actual.tag:
        return f"tag {actual.tag} != {expected.tag}"
    for k, v in expected.attrib.items():
        if k not in actual.attrib:
            return f"<{etree.QName(actual).localname}> lacks {k}"
        if v != ANY and actual.get(k) != v:
            return f"<{etree.QName(actual).localname} {k}={actual.get(k)!r}> != {v!r}"
    extra = set(actual.attrib) - set(expected.attrib)
    if extra:
        return f"<{etree.QName(actual).localname}> has unexpected {sorted(extra)}"
    et, at = (expected.text or "").strip(), (actual.text or "").strip()
    if et != ANY and et != at:
        return f"text {at!r} != {et!r}"
    ek = [c for c in expected if isinstance(c.tag, str)]
    ak = [c for c in actual if isinstance(c.tag, str)]
    if len(ek) != len(ak):
        return (f"<{etree.QName(actual).localname}> has {len(ak)} children, "
                f"expected {len(ek)}: {etree.tostring(actual)!r}")
    for e, a in zip(ek, ak):
        why = matches(e, a)
        if why:
            return why
    return None
