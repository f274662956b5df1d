"""Parser choice benchmark (DESIGN.md): Expat building lxml elements vs lxml's own push parser.

Run: make bench-parser   (or: .venv/bin/python bench/parser_bench.py [N])
Each variant turns a byte stream, fed in 4 KiB reads, into one lxml element per stanza:
- xmlstream: xmppd.xmlstream.XmlStreamParser as the server runs it (lxml push parser, each
  stanza copied out of the stream document, restricted-XML scan and limits included);
- Expat → lxml: stdlib pyexpat with Python callbacks building lxml elements (the candidate we
  measured first; no limits, so it is flattered);
- lxml push + copy: the bare XMLPullParser loop behind xmlstream, without its checks;
- lxml push, no copy: the same without the copy, a lower bound no server can use (a stanza must
  outlive the parser's tree, and unlinking the last child under a live push parser is unsafe).
"""
from __future__ import annotations

import copy
from xml.parsers import expat
import sys
import time
from typing import Callable

from lxml import etree

from xmppd.xmlstream import XmlStreamParser

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
MESSAGE = (b"<message to='bob@localhost/res' id='m-0001' type='chat'><body>Hello Bob, "
           b"see you at eight?</body><request xmlns='urn:xmpp:receipts'/>"
           b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>")


def run_xmlstream(chunks: list[bytes]) -> int:
    p = XmlStreamParser()
    return sum(len(p.feed(c)) for c in chunks)


class ExpatTreeBuilder:
    def __init__(self) -> None:
        p = expat.ParserCreate("UTF-8", namespace_separator="}")
        if hasattr(p, "SetReparseDeferralEnabled"):
            p.SetReparseDeferralEnabled(False)
        p.buffer_text = True
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._text
        self.p, self.depth, self.n = p, 0, 0
        self.stack: list[etree._Element] = []
        self.tags: dict[str, str] = {}

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        if self.depth == 1:
            return
        tag = self.tags.get(name)
        if tag is None:
            tag = self.tags[name] = "{" + name if "}" in name else name
        if self.depth == 2:
            el = etree.Element(tag, attrs, {None: "jabber:client"})
        else:
            el = etree.SubElement(self.stack[-1], tag, attrs)
        self.stack.append(el)

    def _end(self, name: str) -> None:
        self.depth -= 1
        if self.depth >= 1:
            self.stack.pop()
            if self.depth == 1:
                self.n += 1

    def _text(self, data: str) -> None:
        if self.depth > 1:
            el = self.stack[-1]
            if len(el):
                el[-1].tail = (el[-1].tail or "") + data
            else:
                el.text = (el.text or "") + data


def run_expat(chunks: list[bytes]) -> int:
    b = ExpatTreeBuilder()
    for c in chunks:
        b.p.Parse(c, False)
    return b.n


def _run_lxml(chunks: list[bytes], detach: bool) -> int:
    p = etree.XMLPullParser(events=("start", "end"), resolve_entities=False, no_network=True,
                            load_dtd=False)
    depth, n, root = 0, 0, None
    for c in chunks:
        p.feed(c)
        for ev, el in p.read_events():
            if ev == "start":
                depth += 1
                if depth == 1:
                    root = el
                elif depth == 2 and root is not None and len(root) > 1:
                    del root[:-1]
                continue
            depth -= 1
            if depth == 1:
                n += 1
                if detach:
                    copy.deepcopy(el)
    return n


def run_lxml_copy(chunks: list[bytes]) -> int:
    return _run_lxml(chunks, True)


def run_lxml_nocopy(chunks: list[bytes]) -> int:
    return _run_lxml(chunks, False)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    data = HEADER + MESSAGE * n
    chunks = [data[i:i + 4096] for i in range(0, len(data), 4096)]
    variants: list[tuple[str, Callable[[list[bytes]], int]]] = [
        ("xmlstream", run_xmlstream), ("Expat -> lxml", run_expat),
        ("lxml push + copy", run_lxml_copy),
        ("lxml push, no copy", run_lxml_nocopy)]
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    for _ in range(7):                      # interleaved, so machine noise hits all alike
        for name, fn in variants:
            t = time.perf_counter()
            assert fn(chunks) >= n
            times[name].append((time.perf_counter() - t) / n * 1e6)
    for name, ts in times.items():
        ts.sort()
        print(f"{name:20s} best {ts[0]:6.2f} µs/stanza  median {ts[3]:6.2f}  "
              f"({n} stanzas of {len(MESSAGE)} B)")


if __name__ == "__main__":
    main()
