# tests: tests/core/test_xmlstream.py
"""XmlStreamParser: the incremental, restricted XML framer (RFC 6120 §4, §11), sans-IO.

Every input is fed in several splits (whole, byte by byte, odd sizes): results and error
conditions must not depend on how TCP cut the bytes.
"""
from __future__ import annotations

import base64
import random
from typing import Any

import pytest

from stanzas.errors import StreamError
from xmppd.xmlstream import StreamClose, StreamOpen, XmlStreamParser, serialize

STREAMS = "http://etherx.jabber.org/streams"
OPEN = (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
        b"to='example.org' version='1.0' xml:lang='de'>")
HEADER = b"<?xml version='1.0'?>" + OPEN

SPLITS = ["whole", "bytes", "by3", "by7", "by64", "by1000"]


def split(data: bytes, how: str) -> list[bytes]:
    if how == "whole":
        return [data]
    size = 1 if how == "bytes" else int(how[2:])
    return [data[i:i + size] for i in range(0, len(data), size)]


def render(event: Any) -> Any:
    if isinstance(event, StreamOpen):
        return event
    if isinstance(event, StreamClose):
        return "</stream:stream>"
    return serialize(event).decode()


def parse(data: bytes, how: str = "whole", **limits: Any) -> list[Any]:
    """Feed `data` in the given split; the rendered events (stanzas as serialised text)."""
    parser = XmlStreamParser(**limits)
    events: list[Any] = []
    for chunk in split(data, how):
        events += parser.feed(chunk)
    return [render(e) for e in events]


def stanzas(data: bytes, how: str = "whole", **limits: Any) -> list[Any]:
    """Like `parse`, for input after HEADER, without the StreamOpen."""
    events = parse(HEADER + data, how, **limits)
    assert isinstance(events[0], StreamOpen)
    return events[1:]


def condition(data: bytes, how: str = "whole", **limits: Any) -> str | None:
    """The stream error condition `data` raises, or None."""
    try:
        parse(data, how, **limits)
    except StreamError as e:
        return e.condition
    return None


# --- the stream header -----------------------------------------------------------------------


def test_header_gives_attributes_lang_and_default_namespace() -> None:
    [opened] = parse(HEADER)
    assert opened == StreamOpen(
        attrs={"to": "example.org", "version": "1.0", "xml:lang": "de"}, default_ns="jabber:client")


@pytest.mark.parametrize("prolog", [b"", b"<?xml version='1.0'?>", b'<?xml version="1.0" encoding="UTF-8"?>',
                                    b"\xef\xbb\xbf", b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?>"],
                         ids=["none", "declaration", "utf8-declaration", "bom", "bom-declaration"])
@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_header_with_or_without_utf8_declaration_is_accepted(prolog: bytes, how: str) -> None:
    [opened, message] = parse(prolog + OPEN + b"<message/>", how)
    assert opened.attrs["to"] == "example.org"
    assert message == '<message xmlns="jabber:client"/>'


def test_header_alone_in_pieces_opens_only_when_complete() -> None:
    parser = XmlStreamParser()
    assert parser.feed(HEADER[:-1]) == []
    [opened] = parser.feed(HEADER[-1:])
    assert isinstance(opened, StreamOpen)


# --- stanzas, in every split -----------------------------------------------------------------

STREAM = (
    b"<message to='romeo@example.net' id='m1' type='chat'><body>Wherefore art thou? \xf0\x9f\x8c\xb9 "
    b"a &lt; b &amp;&amp; c &gt; d &apos;q&apos; &quot;Q&quot; &#65;&#x42;</body>"
    b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>\n"
    b"<presence><show>away</show><status>\xc3\xa9t\xc3\xa9</status></presence> \r\n\t"
    b"<iq type='get' id='i1' to='example.org'><query xmlns='jabber:iq:roster'/></iq>"
    b"<message id='a&amp;b' note='1 &gt; 0 and 2 > 1'><body><![CDATA[ <b>bold</b> ]]></body></message>"
    b"<iq type='set' id='i2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony"
    b"</resource></bind></iq>"
    b"</stream:stream>"
)
EXPECTED = [
    '<message xmlns="jabber:client" to="romeo@example.net" id="m1" type="chat"><body>Wherefore '
    'art thou? \U0001f339 a &lt; b &amp;&amp; c &gt; d \'q\' "Q" AB</body>'
    '<active xmlns="http://jabber.org/protocol/chatstates"/></message>',
    '<presence xmlns="jabber:client"><show>away</show><status>été</status></presence>',
    '<iq xmlns="jabber:client" type="get" id="i1" to="example.org">'
    '<query xmlns="jabber:iq:roster"/></iq>',
    '<message xmlns="jabber:client" id="a&amp;b" note="1 &gt; 0 and 2 &gt; 1">'
    '<body> &lt;b&gt;bold&lt;/b&gt; </body></message>',
    '<iq xmlns="jabber:client" type="set" id="i2"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind">'
    '<resource>balcony</resource></bind></iq>',
    "</stream:stream>",
]


@pytest.mark.parametrize("how", SPLITS)
def test_stanzas_are_identical_in_every_split(how: str) -> None:
    assert stanzas(STREAM, how) == EXPECTED


def random_reads(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    reads, i = [], 0
    while i < len(data):
        n = rng.choice([1, 2, rng.randint(1, 40), rng.randint(1, largest)])
        reads.append(data[i:i + n])
        i += n
    return reads


@pytest.mark.parametrize("seed", range(20))
def test_stanzas_are_identical_in_random_splits(seed: int) -> None:
    parser = XmlStreamParser()
    events: list[Any] = []
    for r in random_reads(HEADER + STREAM, random.Random(seed), 300):
        events += parser.feed(r)
    assert [render(e) for e in events[1:]] == EXPECTED


def test_stanza_is_returned_as_soon_as_its_last_byte_arrives() -> None:
    parser = XmlStreamParser()
    parser.feed(HEADER)
    message = b"<message><body>hi</body></message>"
    for i in range(len(message) - 1):
        assert parser.feed(message[i:i + 1]) == []
    [el] = parser.feed(message[-1:])
    assert serialize(el) == b'<message xmlns="jabber:client"><body>hi</body></message>'


def test_stanza_serialises_with_jabber_client_as_default_namespace() -> None:
    [message] = stanzas(b"<message to='a@example.org'><body>x</body></message>")
    assert message == '<message xmlns="jabber:client" to="a@example.org"><body>x</body></message>'
    assert "ns0" not in message and "xmlns:stream" not in message


def test_stanzas_pipelined_in_one_read_keep_the_default_namespace() -> None:
    # Regression: pruning the stream document while draining one read's events detached later
    # stanzas before they were copied, which then serialised as <ns0:message xmlns:ns0=...>.
    out = stanzas(b"<message><body>1</body></message> <presence/><iq type='get' id='x'/>")
    assert out == ['<message xmlns="jabber:client"><body>1</body></message>',
                   '<presence xmlns="jabber:client"/>',
                   '<iq xmlns="jabber:client" type="get" id="x"/>']


def test_stanzas_are_independent_of_the_stream_document() -> None:
    parser = XmlStreamParser()
    [_, first] = parser.feed(HEADER + b"<message><body>1</body></message>")
    parser.feed(b"<presence/>" * 50 + b"</stream:stream>")
    first.set("from", "a@example.org/r")
    assert serialize(first) == (b'<message xmlns="jabber:client" from="a@example.org/r">'
                                b"<body>1</body></message>")
    assert first.getparent() is None and first.tail is None


def test_payload_namespaces_are_declared_where_used() -> None:
    [iq] = stanzas(b"<iq type='result' id='r'><query xmlns='jabber:iq:roster'>"
                   b"<item jid='b@example.org'/></query></iq>")
    assert iq == ('<iq xmlns="jabber:client" type="result" id="r"><query xmlns="jabber:iq:roster">'
                  '<item jid="b@example.org"/></query></iq>')


def test_prefix_declared_on_the_header_travels_with_the_stanza() -> None:
    header = OPEN.replace(b"xmlns='jabber:client'", b"xmlns='jabber:client' xmlns:x='urn:example:x'")
    [_, message] = parse(header + b"<message><x:data a='1'/></message>")
    assert message == '<message xmlns="jabber:client" xmlns:x="urn:example:x"><x:data a="1"/></message>'


def test_prefixed_stanza_keeps_its_prefix() -> None:
    [message] = stanzas(b"<c:message xmlns:c='jabber:client'><c:body>x</c:body></c:message>")
    assert message == '<c:message xmlns:c="jabber:client"><c:body>x</c:body></c:message>'


@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_whitespace_keepalives_produce_no_events(how: str) -> None:
    assert stanzas(b" \n \r\n\t " * 20 + b"<presence/>" + b" " * 30, how) == [
        '<presence xmlns="jabber:client"/>']


@pytest.mark.parametrize("how", SPLITS)
def test_predefined_and_numeric_references_are_accepted(how: str) -> None:
    out = stanzas(b"<message id='&lt;&#x26;&#38;&gt;'><body>&amp;&lt;&gt;&apos;&quot;&#233;"
                  b"&#x1F600;&#0000065;</body></message>", how)
    assert out == ['<message xmlns="jabber:client" id="&lt;&amp;&amp;&gt;"><body>&amp;&lt;&gt;\'"'
                   "é\U0001f600A</body></message>"]


@pytest.mark.parametrize("how", SPLITS)
def test_cdata_section_is_accepted(how: str) -> None:
    assert stanzas(b"<message><body><![CDATA[if (a < b) { x = '>'; }]]></body></message>", how) == [
        '<message xmlns="jabber:client"><body>if (a &lt; b) { x = \'&gt;\'; }</body></message>']


# --- closing and restarting ------------------------------------------------------------------


def test_stream_close_is_the_last_event() -> None:
    parser = XmlStreamParser()
    events = parser.feed(HEADER + b"<presence/></stream:stream>")
    assert isinstance(events[-1], StreamClose)
    assert parser.closed
    assert parser.feed(b"<message/>") == []


@pytest.mark.parametrize("trailer", [b"  \n", b"<junk/>", b"garbage & <<<"])
def test_close_followed_by_anything_in_the_same_read_is_a_close(trailer: bytes) -> None:
    # The same bytes in two reads give a close; so must one read (what follows is never read).
    assert stanzas(b"<presence/></stream:stream>" + trailer) == [
        '<presence xmlns="jabber:client"/>', "</stream:stream>"]


def test_close_with_another_prefix_is_a_close() -> None:
    header = (b"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' "
              b"to='example.org' version='1.0'>")
    [_, presence, close] = parse(header + b"<presence/></s:stream>")
    assert (presence, close) == ('<presence xmlns="jabber:client"/>', "</stream:stream>")


def test_reset_starts_a_new_document() -> None:
    parser = XmlStreamParser()
    parser.feed(HEADER + b"<presence/><message><bo")       # a restart drops the partial stanza
    parser.reset()
    [opened, message] = parser.feed(HEADER + b"<message/>")
    assert isinstance(opened, StreamOpen)
    assert serialize(message) == b'<message xmlns="jabber:client"/>'


def test_reset_reopens_a_closed_parser() -> None:
    parser = XmlStreamParser()
    parser.feed(HEADER + b"</stream:stream>")
    parser.reset()
    assert not parser.closed
    assert isinstance(parser.feed(HEADER)[0], StreamOpen)


# --- restricted XML, malformed XML and namespaces: (input, condition) in every split ---------

DOCTYPE_BILLION_LAUGHS = (
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    b"<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
    b"<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
    + OPEN + b"<message><body>&lol3;</body></message>")

BAD: list[tuple[str, bytes, str]] = [
    # RFC 6120 §11.1: no DTD, no entity declarations or references beyond the five, no PIs,
    # no comments -> <restricted-xml/>.
    ("doctype_with_internal_subset_and_entity", b"<?xml version='1.0'?><!DOCTYPE stream:stream "
     b"[<!ENTITY x 'y'>]>" + OPEN, "restricted-xml"),
    ("doctype_without_subset", b"<!DOCTYPE stream:stream>" + OPEN, "restricted-xml"),
    ("doctype_inside_the_stream", HEADER + b"<!DOCTYPE x [<!ENTITY e 'f'>]>", "restricted-xml"),
    ("external_entity", b"<!DOCTYPE s [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>" + OPEN
     + b"<message><body>&xxe;</body></message>", "restricted-xml"),
    ("billion_laughs", DOCTYPE_BILLION_LAUGHS, "restricted-xml"),
    ("entity_reference_in_text", HEADER + b"<message><body>&foo;</body></message>", "restricted-xml"),
    ("long_entity_reference_in_text", HEADER + b"<message><body>&foobarbaz;</body></message>",
     "restricted-xml"),
    ("html_entity_in_text", HEADER + b"<message><body>&Eacute;t&eacute;</body></message>",
     "restricted-xml"),
    ("entity_reference_in_attribute", HEADER + b"<message to='&foo;'/>", "restricted-xml"),
    ("entity_reference_in_header", b"<stream:stream xmlns='jabber:client' xmlns:stream="
     b"'http://etherx.jabber.org/streams' to='&host;'>", "restricted-xml"),
    ("prefix_of_predefined_entity", HEADER + b"<message><body>&ltx;</body></message>",
     "restricted-xml"),
    ("comment_between_stanzas", HEADER + b"<presence/><!-- hello --><presence/>", "restricted-xml"),
    ("comment_inside_stanza", HEADER + b"<message><!-- x --><body/></message>", "restricted-xml"),
    ("comment_before_header", b"<!-- hi -->" + OPEN, "restricted-xml"),
    ("processing_instruction", HEADER + b"<?php echo 1; ?>", "restricted-xml"),
    ("processing_instruction_inside_stanza", HEADER + b"<message><?pi x?></message>",
     "restricted-xml"),
    ("processing_instruction_before_header", b"<?xml-stylesheet href='s.xsl'?>" + OPEN,
     "restricted-xml"),
    ("xml_declaration_mid_stream", HEADER + b"<presence/><?xml version='1.0'?>", "restricted-xml"),
    ("xml_declaration_right_after_header", HEADER + b"<?xml version='1.0'?>", "restricted-xml"),
    ("xml_declaration_after_whitespace", b" <?xml version='1.0'?>" + OPEN, "restricted-xml"),
    ("second_xml_declaration", b"<?xml version='1.0'?><?xml version='1.0'?>" + OPEN,
     "restricted-xml"),
    ("marked_section_other_than_cdata", HEADER + b"<message><![INCLUDE[x]]></message>",
     "restricted-xml"),
    # RFC 6120 §11.6: UTF-8 only.
    ("latin1_declaration", b"<?xml version='1.0' encoding='ISO-8859-1'?>" + OPEN,
     "unsupported-encoding"),
    ("utf16_declaration", b'<?xml version="1.0" encoding="UTF-16"?>' + OPEN, "unsupported-encoding"),
    # Malformed XML -> <not-well-formed/>.
    ("mismatched_tags", HEADER + b"<message><body>x</message>", "not-well-formed"),
    ("end_tag_without_start", HEADER + b"</message>", "not-well-formed"),
    ("unquoted_attribute", HEADER + b"<message to=juliet/>", "not-well-formed"),
    ("mixed_attribute_quotes", HEADER + b"<message to='juliet\"/><presence/>'/>",
     "not-well-formed"),
    ("duplicate_attribute", HEADER + b"<message id='1' id='2'/>", "not-well-formed"),
    ("lt_in_attribute", HEADER + b"<message id='a<b'/>", "not-well-formed"),
    ("bare_ampersand", HEADER + b"<message><body>fish & chips</body></message>", "not-well-formed"),
    ("bad_numeric_reference", HEADER + b"<message><body>&#xZZ;</body></message>", "not-well-formed"),
    ("reference_to_nul", HEADER + b"<message><body>&#0;</body></message>", "not-well-formed"),
    ("reference_to_surrogate", HEADER + b"<message><body>&#xD800;</body></message>",
     "not-well-formed"),
    ("control_character", HEADER + b"<message><body>\x01</body></message>", "not-well-formed"),
    # libxml2 reports bad text once more bytes follow it, as they do in a live stream.
    ("binary_garbage", HEADER + b"\x00\x01\x02\xff\xfe\x80<presence/>", "not-well-formed"),
    ("binary_garbage_instead_of_header", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
     "not-well-formed"),
    ("invalid_utf8_sequence", HEADER + b"<message><body>\xc3\x28</body></message>",
     "not-well-formed"),
    ("lone_utf8_continuation_byte", HEADER + b"<message><body>\x80</body></message>",
     "not-well-formed"),
    ("overlong_utf8", HEADER + b"<message><body>\xc0\xaf</body></message>", "not-well-formed"),
    ("utf8_encoded_surrogate", HEADER + b"<message><body>\xed\xa0\x80</body></message>",
     "not-well-formed"),
    ("undeclared_element_prefix", HEADER + b"<message><foo:bar/></message>", "not-well-formed"),
    ("undeclared_attribute_prefix", HEADER + b"<message foo:bar='1'/>", "not-well-formed"),
    ("undeclared_prefix_on_stanza", HEADER + b"<x:message/>", "not-well-formed"),
    ("http_request", b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n", "not-well-formed"),
    # RFC 6120 §4.9.3.10: wrong streams namespace, root, or content namespace.
    ("wrong_stream_namespace", b"<stream:stream xmlns='jabber:client' "
     b"xmlns:stream='http://example.com/streams' to='example.org'>", "invalid-namespace"),
    ("wrong_root_element", b"<stream:features xmlns='jabber:client' "
     b"xmlns:stream='http://etherx.jabber.org/streams'>", "invalid-namespace"),
    ("stanza_as_root", b"<message xmlns='jabber:client' to='a@example.org'/>", "invalid-namespace"),
    ("missing_content_namespace", b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
     b"to='example.org'>", "invalid-namespace"),
    ("server_content_namespace", b"<stream:stream xmlns='jabber:server' "
     b"xmlns:stream='http://etherx.jabber.org/streams' to='example.org'>", "invalid-namespace"),
    ("undeclared_stream_prefix", b"<stream:stream xmlns='jabber:client' to='example.org'>",
     "invalid-namespace"),
    # Namespaces in XML §3 (issue 13 §6): xml bound elsewhere, xmlns declared, the reserved
    # namespaces bound to other prefixes or made the default. libxml2 drops these silently.
    ("xml_prefix_rebound_on_stanza", HEADER + b"<message xmlns:xml='urn:evil' xml:lang='en'/>",
     "not-well-formed"),
    ("xml_prefix_rebound_on_payload", HEADER + b"<message><body xmlns:xml='urn:evil'>x</body>"
     b"</message>", "not-well-formed"),
    ("xml_prefix_rebound_on_header", b"<stream:stream xmlns='jabber:client' xmlns:xml='urn:e' "
     b"xmlns:stream='http://etherx.jabber.org/streams' to='example.org'>", "not-well-formed"),
    ("xml_prefix_rebound_double_quotes", HEADER + b'<message xmlns:xml = "urn:evil"/>',
     "not-well-formed"),
    ("xml_prefix_undeclared", HEADER + b"<message xmlns:xml=''/>", "not-well-formed"),
    ("xml_prefix_rebound_after_long_attribute", HEADER + b"<message id='" + b"i" * 3000
     + b"' xmlns:xml='urn:evil'/>", "not-well-formed"),
    ("xmlns_prefix_declared", HEADER + b"<message xmlns:xmlns='urn:x'/>", "not-well-formed"),
    ("xml_namespace_other_prefix", HEADER + b"<message xmlns:foo='http://www.w3.org/XML/1998/"
     b"namespace'/>", "not-well-formed"),
    ("xml_namespace_as_default", HEADER + b"<message><x xmlns='http://www.w3.org/XML/1998/"
     b"namespace'/></message>", "not-well-formed"),
    ("xmlns_namespace_as_default", HEADER + b"<message><x xmlns='http://www.w3.org/2000/"
     b"xmlns/'/></message>", "not-well-formed"),
    ("xmlns_namespace_spelt_with_references", HEADER + b"<message><x xmlns='&#104;ttp://www.w3"
     b".org/2000/xmlns&#x2F;'/></message>", "not-well-formed"),
]

RESERVED_NAMESPACES_USED_RIGHT = [
    # Namespaces in XML §3: the xml prefix "MAY, but need not, be declared" (to its namespace).
    b"<message><body xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'>x</body>"
    b"</message>",
    b"<message><body xmlns:xml='http://www.w3.org/XML/1998/namespac&#101;'>x</body></message>",
    # ... and a prefix that merely starts with "xml" is an ordinary one.
    b"<message xmlns:xmlfoo='urn:ok'><xmlfoo:x/></message>",
    # Chat about them is text, and values with references are fine.
    b"<message><body>xmlns:xml='urn:evil' or xmlns='http://www.w3.org/2000/xmlns/'? "
    b"It's &amp; that</body></message>",
    b"<message><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org"
    b"/1999/xhtml'><a href='https://example.org/?a=1&amp;b=xmlns:xml'>link</a></body></html>"
    b"</message>",
    b"<message><x a='&apos;' b=\"xmlns:xml='urn:evil'\"/></message>",
]


@pytest.mark.parametrize("how", ["whole", "bytes", "by7"])
@pytest.mark.parametrize(("data", "expected"), [(d, c) for _, d, c in BAD],
                         ids=[name for name, _, _ in BAD])
def test_bad_input_gives_its_stream_error_in_every_split(data: bytes, expected: str,
                                                         how: str) -> None:
    assert condition(data, how) == expected


@pytest.mark.parametrize("how", SPLITS)
@pytest.mark.parametrize("data", RESERVED_NAMESPACES_USED_RIGHT)
def test_reserved_namespaces_used_as_allowed_and_look_alikes_pass(data: bytes, how: str) -> None:
    assert len(stanzas(data, how)) == 1


@pytest.mark.parametrize("cut", range(1, 60))
def test_a_rebound_xml_prefix_is_refused_wherever_the_read_is_cut(cut: int) -> None:
    data = HEADER + b"<message to='a@example.org'><body xmlns:xml='urn:evil'>x</body></message>"
    at = len(HEADER) + cut
    parser = XmlStreamParser()
    with pytest.raises(StreamError) as e:
        parser.feed(data[:at])
        parser.feed(data[at:])
    assert e.value.condition == "not-well-formed"


# Found by the hypothesis fuzz test (tests/core/test_fuzz_parser.py): a read ending inside an
# `xmlns:xml` value that held a '>' was not held back (the hold-back pattern stopped at '>'), so
# the declaration was never seen whole and passed, while fed whole it was refused. Values may
# hold '>' and the other quote, values and whitespace may be long: every shape, every cut.
REBOUND_SHAPES = {
    "gt_in_value": b"xmlns:xml=']]>'",
    "other_quote_in_value": b'xmlns:xml="it\'s"',
    "both_quotes": b"xmlns:xml='say \"hi\" >'",
    "long_value": b"xmlns:xml='" + b"v" * 500 + b"'",
    "long_value_of_gts": b'xmlns:xml="' + b">" * 450 + b'"',
    "spaces_before_eq": b"xmlns:xml" + b" " * 100 + b"='urn:evil'",
    "spaces_after_eq": b"xmlns:xml=" + b" " * 100 + b"'urn:evil'",
    "xmlns_prefix_gt_in_value": b"xmlns:xmlns='a>b'",
    "reserved_uri_after_spaces": b"xmlns:foo=" + b" " * 500 + b"'http://www.w3.org/XML/1998/namespace'",
}


@pytest.mark.parametrize("where", ["stanza", "header"])
@pytest.mark.parametrize("decl", REBOUND_SHAPES.values(), ids=REBOUND_SHAPES.keys())
def test_a_reserved_declaration_of_any_shape_is_refused_wherever_the_read_is_cut(
        decl: bytes, where: str) -> None:
    if where == "stanza":
        data = HEADER + b"<message><body " + decl + b">x</body></message>"
    else:
        data = OPEN.replace(b"to=", decl + b" to=") + b"<presence/>"
    assert condition(data) == "not-well-formed"
    for at in range(1, len(data)):
        parser = XmlStreamParser()
        with pytest.raises(StreamError) as e:
            parser.feed(data[:at])
            parser.feed(data[at:])
        assert e.value.condition == "not-well-formed", at


def test_an_xml_prefix_declaration_longer_than_480_bytes_is_refused_even_to_its_namespace() -> None:
    # Judged on its first 480 bytes in every split, so that nothing longer is ever held back.
    right = b"xmlns:xml='http://www.w3.org/XML/1998/namespace'"
    assert len(stanzas(b"<message><body " + right + b">x</body></message>")) == 1
    padded = right.replace(b"=", b" " * 440 + b"=")
    assert condition(HEADER + b"<message><body " + padded + b">x</body></message>", "by7") \
        == "not-well-formed"


@pytest.mark.parametrize("length", [3000, 5000])
def test_a_declaration_deep_in_a_long_start_tag_is_judged_alike_in_every_split(length: int
                                                                              ) -> None:
    # Judged up to 4 KiB after the tag's '<' (xmppd/xmlreserved.py), counted in bytes: fed
    # whole (one slice holds the '<') and cut (the '<' in an earlier read) agree.
    data = HEADER + b"<message id='" + b"i" * length + b"' xmlns:xml='urn:evil'/><presence/>"
    expected = "not-well-formed" if length < 4096 else None
    for at in range(len(HEADER), len(data), 97):
        parser = XmlStreamParser()
        _, error = parser.feed_until_error(data[:at])
        if error is None:
            _, error = parser.feed_until_error(data[at:])
        assert (error.condition if error else None) == expected, at


@pytest.mark.parametrize("stanza", [
    b"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' "
    b"ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>",
    b"<message><x xmlns='urn:x' a='xmlns:xml='/></message>",
    b"<message><x xmlns='urn:x' a=\"xmlns:xml='\"/></message>",
    b"<message><x xmlns='urn:x' xmlns:y='a>b'/></message>",
    b"<message><body>xmlns:xml='a></body></message>",
])
def test_a_stanza_that_ends_a_read_is_not_held_for_looking_like_a_declaration(stanza: bytes
                                                                             ) -> None:
    # A quote that closes a value, or `xmlns:xml='` inside one, begins no declaration.
    parser = XmlStreamParser()
    parser.feed(HEADER)
    assert len(parser.feed(stanza)) == 1


def test_websocket_message_with_a_rebound_xml_prefix_is_refused() -> None:
    p = XmlStreamParser(framing="websocket")
    events, error = p.feed_message(b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' "
                                   b"to='example.org' version='1.0'/>")
    assert error is None
    events, error = p.feed_message(b"<message xmlns='jabber:client' xmlns:xml='urn:evil'/>")
    assert error is not None and error.condition == "not-well-formed"


def test_stanzas_before_an_error_in_the_same_read_are_returned_with_it() -> None:
    # As if the bad bytes had come in a later read.
    parser = XmlStreamParser()
    events, error = parser.feed_until_error(HEADER + b"<presence/><message/><!-- x --><iq/>")
    assert [render(e) for e in events[1:]] == ['<presence xmlns="jabber:client"/>',
                                               '<message xmlns="jabber:client"/>']
    assert error is not None and error.condition == "restricted-xml"


def test_parser_stays_failed_until_reset() -> None:
    parser = XmlStreamParser()
    _, error = parser.feed_until_error(HEADER + b"<a></b>")
    assert error is not None and error.condition == "not-well-formed"
    assert parser.feed_until_error(b"<presence/>") == ([], error)
    with pytest.raises(StreamError):
        parser.feed(b"<presence/>")
    parser.reset()
    assert len(parser.feed(HEADER + b"<presence/>")) == 2


def test_feed_without_error_reports_none() -> None:
    events, error = XmlStreamParser().feed_until_error(HEADER + b"<presence/>")
    assert len(events) == 2 and error is None


def test_no_entity_is_ever_expanded() -> None:
    with pytest.raises(StreamError) as e:
        parse(DOCTYPE_BILLION_LAUGHS)
    assert e.value.condition == "restricted-xml"
    assert "lol" not in str(e.value)


def test_restricted_construct_is_refused_before_the_stanza_completes() -> None:
    # The scan runs on arrival: a DTD never reaches libxml2, whatever follows it.
    parser = XmlStreamParser()
    parser.feed(HEADER + b"<message><body>")
    with pytest.raises(StreamError, match="restricted-xml"):
        parser.feed(b"&xxe;")


# Found by fuzzing (tests/core/test_fuzz_atheris.py): `&xmlns` in the header. A read ending in
# `xmlns` is held back (it may begin a reserved-namespace declaration), which left the `&`
# before it at the end of what was scanned: alone, it was judged a bare '&' (not-well-formed)
# instead of the entity reference it begins (restricted-xml, as when fed whole).
AMP_BEFORE_HELD_XMLNS = base64.b64decode(
    "PHN0cmVhbTpzdHJlYW0gJnhtbG5zPSdqYWJiZXI6Y2xpZW50JyB4bWxuczp4bWw9JyB4bWxuczpzdHJlYW09J2h0"
    "dHA6ci5vcmcvc3RyZWFtcycgdG89J2V4YW1wbGUub3JnJyB2ZXJzaW9uPScxLjAnPg==")


def test_entity_reference_before_a_held_namespace_declaration_whole_or_in_7_byte_reads() -> None:
    assert AMP_BEFORE_HELD_XMLNS.startswith(b"<stream:stream &xmlns=")
    assert condition(AMP_BEFORE_HELD_XMLNS, "whole") == "restricted-xml"
    assert condition(AMP_BEFORE_HELD_XMLNS, "by7") == "restricted-xml"


@pytest.mark.parametrize("size", range(1, 40))
def test_entity_reference_before_a_held_namespace_declaration_in_any_read_size(size: int
                                                                              ) -> None:
    parser = XmlStreamParser()
    with pytest.raises(StreamError) as e:
        for i in range(0, len(AMP_BEFORE_HELD_XMLNS), size):
            parser.feed(AMP_BEFORE_HELD_XMLNS[i:i + size])
    assert e.value.condition == "restricted-xml"


@pytest.mark.parametrize("text", [b"&xmlns", b"&xmlns:x", b"&xm", b"a&xmlns:xml"])
def test_entity_reference_before_xmlns_in_text_whatever_the_cut(text: bytes) -> None:
    data = HEADER + b"<message><body>" + text + b"</body></message>"
    for cut in range(len(HEADER), len(data)):
        parser = XmlStreamParser()
        with pytest.raises(StreamError) as e:
            parser.feed(data[:cut])
            parser.feed(data[cut:])
        assert e.value.condition == "restricted-xml", cut


def test_entity_reference_cut_at_a_slice_boundary_is_scanned_whole() -> None:
    # Regression: in one large read, a reference straddling the internal slice boundary
    # (max_stanza_size / 8) was scanned in two halves and refused as not-well-formed.
    parser = XmlStreamParser(max_stanza_size=8192)         # slices of 1 KiB
    parser.feed(HEADER)
    head = b"<message><body>"
    for cut in range(1, 5):
        body = b"y" * (1024 - len(head) - cut) + b"&amp;" + b"z" * 10
        [el] = parser.feed(head + body + b"</body></message>")
        assert el[0].text == "y" * (1024 - len(head) - cut) + "&" + "z" * 10


# --- limits ------------------------------------------------------------------------------------

LIMIT = 4096                 # max_stanza_size in these tests: slices of 512 bytes


def message_of(size: int) -> bytes:
    """A <message/> of exactly `size` bytes."""
    head, tail = b"<message><body>", b"</body></message>"
    return head + b"x" * (size - len(head) - len(tail)) + tail


def feed_limited(reads: list[bytes], limit: int = LIMIT) -> list[Any]:
    parser = XmlStreamParser(max_stanza_size=limit)
    events: list[Any] = []
    for r in reads:
        events += parser.feed(r)
    return [render(e) for e in events]


# How a stanza can arrive after the header: alone in one read, after whitespace, dribbled.
CLEAN_ARRIVALS = {
    "alone": lambda s: [HEADER, s],
    "after_whitespace": lambda s: [HEADER, b"\n  " + s],
    "after_a_stanza_read": lambda s: [HEADER, b"<presence/>", s],
    "dribbled_by_100": lambda s: [HEADER] + split(s, "by100"),
    "byte_by_byte": lambda s: [HEADER] + split(s, "bytes"),
}
ALL_ARRIVALS = {
    **CLEAN_ARRIVALS,
    "with_header_in_one_read": lambda s: [HEADER + s],
    "after_a_stanza_in_one_read": lambda s: [HEADER, b"<presence/>" + s],
    "split_mid_stanza_after_another": lambda s: [HEADER, b"<presence/>" + s[:700], s[700:]],
}


@pytest.mark.parametrize("arrival", ALL_ARRIVALS)
def test_stanza_at_the_size_limit_passes(arrival: str) -> None:
    stanza = message_of(LIMIT)
    events = feed_limited(ALL_ARRIVALS[arrival](stanza))
    assert events[-1] == serialize_text(stanza)


@pytest.mark.parametrize("arrival", CLEAN_ARRIVALS)
def test_stanza_one_byte_over_the_limit_is_a_policy_violation(arrival: str) -> None:
    with pytest.raises(StreamError, match="policy-violation"):
        feed_limited(CLEAN_ARRIVALS[arrival](message_of(LIMIT + 1)))


@pytest.mark.parametrize("arrival", ALL_ARRIVALS)
def test_stanza_twice_the_limit_is_a_policy_violation(arrival: str) -> None:
    with pytest.raises(StreamError, match="policy-violation"):
        feed_limited(ALL_ARRIVALS[arrival](message_of(2 * LIMIT)))


@pytest.mark.parametrize("seed", range(10))
def test_stanzas_within_the_limit_pass_in_random_splits(seed: int) -> None:
    # Never early: however the reads fall, no stanza within the limit is refused.
    rng = random.Random(seed)
    sizes = [rng.choice([40, LIMIT, rng.randint(40, LIMIT)]) for _ in range(30)]
    data = b"".join(message_of(n) + b" " * rng.choice([0, 1, 3, 2000]) for n in sizes)
    events = feed_limited(random_reads(HEADER + data, rng, 3 * LIMIT))
    assert len(events) == 1 + len(sizes)


@pytest.mark.parametrize("seed", range(10))
def test_stanza_over_the_limit_by_two_slices_fails_in_random_splits(seed: int) -> None:
    # At most two slices (2 * LIMIT / 8, here 1 KiB) late: the slices where it starts and ends
    # may be shared with its neighbours.
    rng = random.Random(seed)
    data = message_of(LIMIT) * rng.randint(0, 3) + message_of(LIMIT + 1024 + 1) + message_of(50)
    with pytest.raises(StreamError, match="policy-violation"):
        feed_limited(random_reads(HEADER + data, rng, 3 * LIMIT))


def test_keepalives_after_a_cut_end_tag_do_not_count_towards_the_next_stanza() -> None:
    # Regression: the end tag's bytes were remembered with the whitespace after them, which
    # pushed them out and left the stream "unclean", so the keepalives counted.
    first = message_of(100)
    reads = [HEADER, first[:-3], first[-3:] + b" " * 3000, message_of(LIMIT)]
    assert len(feed_limited(reads)) == 3


def test_huge_stanza_in_one_read_is_refused_without_parsing_it_all() -> None:
    parser = XmlStreamParser(max_stanza_size=LIMIT)
    with pytest.raises(StreamError, match="policy-violation"):
        parser.feed(HEADER + message_of(8 << 20))


def test_huge_stanza_dribbled_is_refused_within_a_slice_of_the_limit() -> None:
    parser = XmlStreamParser(max_stanza_size=LIMIT)
    parser.feed(HEADER)
    stanza, fed = message_of(1 << 20), 0
    with pytest.raises(StreamError, match="policy-violation"):
        for piece in split(stanza, "by100"):
            fed += len(piece)
            parser.feed(piece)
    assert LIMIT < fed <= LIMIT + 100


@pytest.mark.parametrize("offset", [1, 100, 200])
def test_small_stanzas_split_mid_stanza_never_add_up_to_the_limit(offset: int) -> None:
    # Regression: when every read ended inside a stanza, the count never restarted, so a steady
    # flow of small stanzas hit the limit after LIMIT bytes.
    message = message_of(250)
    data = message * 100
    reads = [HEADER, data[:offset]] + split(data[offset:], f"by{len(message)}")
    assert len(feed_limited(reads)) == 1 + 100


def test_start_tag_that_never_ends_is_a_policy_violation() -> None:
    parser = XmlStreamParser(max_stanza_size=LIMIT)
    parser.feed(HEADER + b"<message ")
    with pytest.raises(StreamError, match="policy-violation"):
        for i in range(100):
            parser.feed(b"a%d='%s' " % (i, b"x" * 100))


def test_header_that_never_ends_is_a_policy_violation() -> None:
    parser = XmlStreamParser(max_stanza_size=LIMIT)
    parser.feed(b"<stream:stream xmlns='jabber:client' ")
    with pytest.raises(StreamError, match="policy-violation"):
        for i in range(100):
            parser.feed(b"a%d='%s' " % (i, b"x" * 100))


def test_text_at_stream_level_cannot_pile_up() -> None:
    parser = XmlStreamParser(max_stanza_size=LIMIT)
    parser.feed(HEADER + b"<presence/>")
    with pytest.raises(StreamError, match="policy-violation"):
        for _ in range(100):
            parser.feed(b"text " * 20)


def test_limit_can_be_raised_between_feeds() -> None:
    parser = XmlStreamParser(max_stanza_size=LIMIT)
    parser.feed(HEADER)
    parser.max_stanza_size = 4 * LIMIT
    [el] = parser.feed(message_of(3 * LIMIT))
    assert len(el[0].text) > 2 * LIMIT


def nested(levels: int) -> bytes:
    """A <message/> whose innermost element is `levels` below the message itself."""
    return b"<message>" + b"<x>" * levels + b"</x>" * levels + b"</message>"


@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_nesting_at_max_depth_passes(how: str) -> None:
    # Depth counts the stream element as 1 and the stanza as 2.
    assert len(stanzas(nested(8 - 2), how, max_depth=8)) == 1


@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_nesting_deeper_than_max_depth_is_a_policy_violation(how: str) -> None:
    with pytest.raises(StreamError, match="policy-violation"):
        stanzas(nested(8 - 1), how, max_depth=8)


def test_very_deep_nesting_is_refused_early() -> None:
    parser = XmlStreamParser(max_depth=64)
    parser.feed(HEADER + b"<message>")
    with pytest.raises(StreamError, match="policy-violation"):
        parser.feed(b"<x>" * 100_000)


@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_max_elements_counts_the_stanza_and_its_descendants(how: str) -> None:
    ok = b"<message>" + b"<x/>" * 31 + b"</message>"
    assert len(stanzas(ok, how, max_elements=32)) == 1
    with pytest.raises(StreamError, match="policy-violation"):
        stanzas(b"<message>" + b"<x/>" * 32 + b"</message>", how, max_elements=32)


def test_max_elements_applies_per_stanza() -> None:
    assert len(stanzas((b"<message>" + b"<x/>" * 31 + b"</message>") * 5, max_elements=32)) == 5


# --- memory: the parser rebuilds itself at clean boundaries -----------------------------------

MIB = 1 << 20


def test_whitespace_flood_rebuilds_the_parser_and_keeps_parsing() -> None:
    parser = XmlStreamParser()
    parser.feed(HEADER + b"<presence/>")
    for _ in range(3 * MIB // 4096):
        assert parser.feed(b" " * 4096) == []
    assert parser.restarts >= 2
    [el] = parser.feed(b"<message><body>after</body></message>")
    assert serialize(el) == b'<message xmlns="jabber:client"><body>after</body></message>'
    assert isinstance(parser.feed(b"</stream:stream>")[0], StreamClose)


@pytest.mark.parametrize("how", ["aligned", "by1000", "by65536"])
def test_many_stanzas_parse_the_same_across_rebuilds(how: str) -> None:
    message = message_of(500)
    data = message * (2 * MIB // 500 + 1) + b"</stream:stream>"
    reads = split(data, f"by{len(message) * 8}" if how == "aligned" else how)
    parser = XmlStreamParser()
    events = parser.feed(HEADER)
    for r in reads:
        events += parser.feed(r)
    assert len(events) == 1 + 2 * MIB // 500 + 1 + 1
    assert {serialize(e) for e in events[1:-1]} == {serialize_text(message).encode()}
    assert isinstance(events[-1], StreamClose)
    if how == "aligned":
        assert parser.restarts >= 1


def test_rebuild_keeps_the_clients_own_prefixes() -> None:
    header = (b"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' "
              b"xmlns:x='urn:example:x' to='example.org' version='1.0'>")
    parser = XmlStreamParser()
    parser.feed(header + b"<presence/>" + b" " * (MIB + 10) + b"<presence/>")
    assert parser.restarts == 1
    [el] = parser.feed(b"<message><x:y/></message>")
    assert serialize(el) == b'<message xmlns="jabber:client" xmlns:x="urn:example:x"><x:y/></message>'
    assert isinstance(parser.feed(b"</s:stream>")[0], StreamClose)


def test_no_rebuild_inside_a_tag_cut_after_a_gt_in_an_attribute() -> None:
    # '>' may appear literally in an attribute value; a read ending there is not a boundary.
    parser = XmlStreamParser()
    parser.feed(HEADER + b"<presence/>" + b" " * (MIB + 10))
    assert parser.restarts == 1
    parser.feed(b" " * (MIB + 10) + b"<message note='a >")
    assert parser.restarts == 1
    [el] = parser.feed(b" b'><body>x</body></message>")
    assert serialize(el) == (b'<message xmlns="jabber:client" note="a &gt; b"><body>x</body>'
                             b"</message>")


def serialize_text(stanza: bytes) -> str:
    """How `stanza` (written without namespaces) looks re-serialised."""
    name_end = stanza.index(b">") if b" " not in stanza[:stanza.index(b">")] else stanza.index(b" ")
    return (stanza[:name_end] + b' xmlns="jabber:client"' + stanza[name_end:]).decode()


def test_compact_frees_the_parser_and_parsing_continues() -> None:
    from xmppd.xmlstream import XmlStreamParser, serialize as ser
    p = XmlStreamParser()
    p.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
           b" to='example.org' version='1.0'><message><body>a</body></message>")
    assert p.compact()
    assert not p.compact()                     # already compacted
    got = p.feed(b"<message to='x@y'><body>b</body></message>  <presence/>")
    assert [ser(e) for e in got] == [
        b'<message xmlns="jabber:client" to="x@y"><body>b</body></message>',
        b'<presence xmlns="jabber:client"/>']
    assert p.feed(b"</stream:stream>")[-1].__class__.__name__ == "StreamClose"


def test_compact_refuses_inside_a_stanza() -> None:
    from xmppd.xmlstream import XmlStreamParser
    p = XmlStreamParser()
    p.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
           b" to='example.org' version='1.0'><message><body>a")
    assert not p.compact()
    assert len(p.feed(b"</body></message>")) == 1


def test_restricted_xml_still_refused_after_compact() -> None:
    from stanzas.errors import StreamError
    from xmppd.xmlstream import XmlStreamParser
    p = XmlStreamParser()
    p.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
           b" to='example.org' version='1.0'>")
    assert p.compact()
    try:
        p.feed(b"<!-- hi -->")
    except StreamError as e:
        assert e.condition == "restricted-xml"
    else:
        raise AssertionError("comment accepted after compact")


def test_a_kept_stanza_does_not_keep_the_stream_parser_alive() -> None:
    # lxml hands a copied element's document the parser it came from: each kept stanza (a
    # session's presence, a cached item) held its stream's whole libxml2 state (~11 KiB), even
    # after compact() or the end of the stream.
    import gc
    from lxml import etree

    def pull_parsers() -> int:
        gc.collect()
        return sum(isinstance(o, etree.XMLPullParser) for o in gc.get_objects())
    before = pull_parsers()
    parser = XmlStreamParser()
    parser.feed(HEADER)
    [presence] = parser.feed(b"<presence><show>away</show></presence>")
    assert pull_parsers() == before + 1
    assert parser.compact()
    assert pull_parsers() == before
    assert render(presence) == '<presence xmlns="jabber:client"><show>away</show></presence>'
    assert presence.getparent() is None
