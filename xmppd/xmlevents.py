# tests: tests/core/test_xmlstream.py
"""What the stream parser hands out (xmppd/xmlstream.py): the stream header, its end, and
between them each top-level element."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from lxml import etree

from stanzas import ns

_E = etree._Element
_LANG = "{%s}lang" % ns.XML


@dataclass(frozen=True, slots=True)
class StreamOpen:
    attrs: dict[str, str]       # header attributes; xml:lang as "xml:lang"
    default_ns: str | None      # the content namespace declared on the header (jabber:client)
    # every namespace the header declares, by prefix ("" for the default); s2s reads the
    # dialback declaration (XEP-0220 §2.4.1: xmlns:db signals dialback support)
    namespaces: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class StreamClose:
    pass


Event = Union[StreamOpen, StreamClose, _E]


def header_attrs(root: _E) -> dict[str, str]:
    """A header's attributes: plain names as they are, xml:lang as "xml:lang", other
    namespaced ones in Clark notation (BOSH's `{urn:xmpp:xbosh}restart`)."""
    attrs: dict[str, str] = {}
    for k, v in root.items():
        key, value = str(k), str(v)     # str at run time; the stubs say str | bytes
        attrs["xml:lang" if key == _LANG else key] = value
    return attrs
