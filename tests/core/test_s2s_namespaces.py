"""Stanzas change namespace at the s2s/component boundary (xmppd/s2s/stream.py): jabber:server
or jabber:component:accept in, jabber:client inside the server, and back out. The byte-level
fast path must give what rebuilding the tree gives, and step aside where it could not."""
from __future__ import annotations

import copy

import pytest
from lxml import etree

from stanzas import ns
from stanzas.wire import serialize
from xmppd.s2s.stream import _redeclared, _renamed, serialize_as, to_client
from xmppd.xmlstream import XmlStreamParser

FWD = ("<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' "
       "from='a@x.example/r' to='b@y.example'><body>inner</body></message></forwarded>")
STANZAS = [
    "<message type='chat' to='b@y.example/r' from='a@x.example/r' id='1' xml:lang='en'>"
    "<body>hi &amp; &lt;bye&gt;</body><thread>t</thread><request xmlns='urn:xmpp:receipts'/>"
    "</message>",
    "<presence from='a@x.example/r' to='b@y.example'><show>away</show><status>out</status>"
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>",
    "<iq type='get' id='q' from='a@x.example/r' to='b@y.example'>"
    "<query xmlns='jabber:iq:last'/></iq>",
    "<message to='b@y.example' from='a@x.example'><body>says \"jabber:client\" and "
    "\"jabber:server\"</body></message>",                  # named in the text: slow path
    f"<message to='b@y.example' from='x.example'><sent xmlns='urn:xmpp:carbons:2'>{FWD}</sent>"
    "</message>",                                           # a forwarded jabber:client stanza
    "<message to='b@y.example' from='a@x.example'><body>emoji 🌹 ünïcode</body></message>",
]


def parsed(xml: str, namespace: str) -> etree._Element:
    """`xml` as our stream parser hands it over from a stream in `namespace`."""
    parser = XmlStreamParser(max_stanza_size=65536, max_depth=32, content_ns=namespace)
    parser.feed(f"<?xml version='1.0'?><stream:stream xmlns='{namespace}' "
                f"xmlns:stream='{ns.STREAMS}' xmlns:db='{ns.DIALBACK}' to='y.example' "
                "version='1.0'>".encode())
    [el] = parser.feed(xml.encode())
    assert isinstance(el, etree._Element)
    return el


def canonical(el: etree._Element) -> tuple[object, ...]:
    """Names (namespace included), attributes, text and children; prefixes left out."""
    return (el.tag, sorted(el.attrib.items()), el.text or "", el.tail or "",
            tuple(canonical(c) for c in el))


@pytest.mark.parametrize("xml", STANZAS)
@pytest.mark.parametrize("stream_ns", [ns.SERVER, ns.COMPONENT])
def test_in_and_out_match_rebuilding_the_tree(xml: str, stream_ns: str) -> None:
    incoming = parsed(xml, stream_ns)
    slow = _renamed(copy.deepcopy(incoming), "{%s}" % stream_ns, ns.CLIENT)
    fast = to_client(copy.deepcopy(incoming), stream_ns)
    assert canonical(fast) == canonical(slow)
    assert fast.tag == "{%s}%s" % (ns.CLIENT, etree.QName(incoming).localname)
    assert fast.nsmap.get(None) == ns.CLIENT            # written unprefixed to clients
    assert serialize(fast).startswith(b"<" + etree.QName(incoming).localname.encode())
    out = serialize_as(fast, stream_ns)
    assert canonical(etree.fromstring(out)) == canonical(incoming)


def test_the_fast_path_steps_aside_when_the_namespace_is_named_twice() -> None:
    client = serialize(parsed(STANZAS[3], ns.CLIENT))
    assert _redeclared(client, ns.CLIENT, ns.SERVER) is None
    carbon = serialize(parsed(STANZAS[4], ns.CLIENT))
    assert _redeclared(carbon, ns.CLIENT, ns.SERVER) is None
    out = etree.fromstring(serialize_as(parsed(STANZAS[4], ns.CLIENT), ns.SERVER))
    inner = out.find(".//{urn:xmpp:forward:0}forwarded/{jabber:client}message")
    assert out.tag == "{jabber:server}message" and inner is not None    # kept jabber:client
    # what our parsers hand over (from a client stream, from a server stream) is fast
    for xml in (STANZAS[0], STANZAS[1], STANZAS[2], STANZAS[5]):
        assert _redeclared(serialize(parsed(xml, ns.CLIENT)), ns.CLIENT, ns.SERVER) is not None
        assert _redeclared(serialize(parsed(xml, ns.SERVER)), ns.SERVER, ns.CLIENT) is not None


def test_a_prefixed_root_takes_the_slow_path() -> None:
    el = etree.Element("{jabber:client}message", nsmap={"c": ns.CLIENT})
    etree.SubElement(el, "{jabber:client}body").text = "x"
    data = serialize(el)
    assert data.startswith(b"<c:message") and _redeclared(data, ns.CLIENT, ns.SERVER) is None
    out = etree.fromstring(serialize_as(el, ns.SERVER))
    assert out.tag == "{jabber:server}message" and out.findtext("{jabber:server}body") == "x"
