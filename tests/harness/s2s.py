# tests: tests/core/test_s2s_incoming.py, tests/core/test_s2s_outgoing.py, tests/core/test_component_stream.py
"""Helpers for the sans-IO s2s and component stream tests: read what a stream wrote with a
plain lxml pull parser (header, top-level elements, close), and build peer headers."""
from __future__ import annotations

import base64
from typing import Any

from lxml import etree

from stanzas import ns

_E = etree._Element
Q = {"tls": ns.TLS, "sasl": ns.SASL, "stream": ns.STREAMS, "db": ns.DIALBACK,
     "dbf": ns.DIALBACK_FEATURE, "bidi": ns.BIDI, "bidif": ns.BIDI_FEATURE, "s": ns.SERVER,
     "c": ns.CLIENT, "err": ns.STREAM_ERRORS, "stanza": ns.STANZA_ERRORS,
     "comp": ns.COMPONENT}


def q(name: str) -> str:
    """'sasl:auth' -> '{urn:ietf:params:xml:ns:xmpp-sasl}auth'."""
    prefix, local = name.split(":")
    return "{%s}%s" % (Q[prefix], local)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def s2s_header(*, to: str | None, from_: str | None, version: str | None = "1.0",
               dialback: bool = True, stream_id: str | None = None,
               xmlns: str = ns.SERVER) -> str:
    attrs = "".join(f" {k}='{v}'" for k, v in (("to", to), ("from", from_),
                                                ("version", version), ("id", stream_id)) if v)
    db = f" xmlns:db='{ns.DIALBACK}'" if dialback else ""
    return (f"<?xml version='1.0'?><stream:stream xmlns='{xmlns}' "
            f"xmlns:stream='{ns.STREAMS}'{db}{attrs}>")


class Reader:
    """The peer's view of what a stream wrote: a header, top-level elements, the close."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.parser = etree.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.header: _E | None = None

    def feed(self, data: bytes) -> list[Any]:
        self.parser.feed(data)
        items: list[Any] = []
        for event, el in self.parser.read_events():
            assert isinstance(el, etree._Element)
            if event == "start":
                self.depth += 1
                if self.depth == 1:
                    self.header = el
                    items.append("<stream>")
                continue
            self.depth -= 1
            if self.depth == 1:
                items.append(el)
            elif self.depth == 0:
                items.append("</stream>")
        return items


def stream_error(items: list[Any]) -> str | None:
    """The condition of the `<stream:error/>` among `items`, if any."""
    for item in items:
        if isinstance(item, etree._Element) and item.tag == q("stream:error"):
            return next(etree.QName(c).localname for c in item)
    return None


def names(items: list[Any]) -> list[str]:
    """Items as short names: '<stream>', 'tls:proceed', ... (for readable asserts)."""
    out = []
    rev = {v: k for k, v in Q.items()}
    for item in items:
        if isinstance(item, str):
            out.append(item)
        else:
            qn = etree.QName(item)
            out.append(f"{rev.get(qn.namespace or '', qn.namespace)}:{qn.localname}")
    return out
