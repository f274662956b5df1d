# tests: xmppd/xmlstream.py, xmppd/c2s.py, xmppd/listeners/bosh.py
"""Sans-IO tests of the web framings: RFC 7395 messages through the restricted parser and the
C2S stream in "websocket" framing, BOSH bodies (XEP-0124) through `parse_document`, and the
BOSH session's rid order, window, resends, hold/wait, acks, inactivity and termination."""
from __future__ import annotations

from typing import Any

import pytest
from lxml import etree
from twisted.internet.task import Clock as TwistedClock

from stanzas.errors import StreamError
from xmppd import c2s
from xmppd.clock import Clock
from xmppd.listeners import bosh, bosh_http
from xmppd.xmlstream import (FRAMING_NS, StreamClose, StreamOpen, XmlStreamParser, parse_document,
                             serialize)

OPEN = b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>"
HB = "http://jabber.org/protocol/httpbind"


def ws_parser() -> XmlStreamParser:
    return XmlStreamParser(framing="websocket")


# -- RFC 7395 messages ---------------------------------------------------------------------
def test_open_message_becomes_a_stream_header() -> None:
    p = ws_parser()
    events, error = p.feed_message(OPEN)
    assert error is None
    assert events == [StreamOpen({"to": "example.org", "version": "1.0"}, FRAMING_NS)]


def test_each_message_is_one_namespaced_stanza_and_close_ends_the_stream() -> None:
    p = ws_parser()
    p.feed_message(OPEN)
    events, error = p.feed_message(b"<message xmlns='jabber:client' to='a@b'><body>x &amp; y"
                                   b"</body></message>")
    assert error is None and len(events) == 1
    assert events[0].tag == "{jabber:client}message"
    assert events[0].findtext("{jabber:client}body") == "x & y"
    assert p.feed_message(b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>") == (
        [StreamClose()], None)


def test_a_message_without_its_namespace_is_not_in_jabber_client() -> None:
    # §3.3.3: each message declares its namespaces; nothing is inherited from a stream header.
    p = ws_parser()
    p.feed_message(OPEN)
    events, error = p.feed_message(b"<message to='a@b'/>")
    assert error is None and events[0].tag == "message"


def test_xml_declaration_is_allowed_on_a_message() -> None:
    p = ws_parser()
    events, error = p.feed_message(b"<?xml version='1.0' encoding='UTF-8'?>" + OPEN)
    assert error is None and isinstance(events[0], StreamOpen)


@pytest.mark.parametrize("message, condition", [
    # CVE-2022-0217 class: the <open/> goes through the same restricted scan as TCP bytes
    (b"<!DOCTYPE open [<!ENTITY x 'y'>]>" + OPEN, "restricted-xml"),
    (b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='&x;'/>", "restricted-xml"),
    (b"<!-- hi -->" + OPEN, "restricted-xml"),
    (b"<?php ?>" + OPEN, "restricted-xml"),
    (b"<?xml version='1.0' encoding='ISO-8859-1'?>" + OPEN, "unsupported-encoding"),
    (OPEN + OPEN, "not-well-formed"),
    (b"hello" + OPEN, "not-well-formed"),
    (b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'", "not-well-formed"),
    (b"<message xmlns='jabber:client'/>", "invalid-namespace"),
    (b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>", "invalid-namespace"),
    (b"<foo:open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", "not-well-formed"),
])
def test_bad_first_messages_are_stream_errors(message: bytes, condition: str) -> None:
    events, error = ws_parser().feed_message(message)
    assert events == [] and error is not None and error.condition == condition


@pytest.mark.parametrize("message, condition", [
    (b"<message xmlns='jabber:client'><body>&lol;</body></message>", "restricted-xml"),
    (b"<message xmlns='jabber:client'/><message xmlns='jabber:client'/>", "not-well-formed"),
    (b"<message xmlns='jabber:client'>", "not-well-formed"),
    (b"<message xmlns='jabber:client'/>trailing", "not-well-formed"),
    (OPEN, "bad-format"),
])
def test_bad_later_messages_are_stream_errors(message: bytes, condition: str) -> None:
    p = ws_parser()
    p.feed_message(OPEN)
    events, error = p.feed_message(message)
    assert events == [] and error is not None and error.condition == condition
    assert p.feed_message(b"<presence xmlns='jabber:client'/>")[1] is error   # stays failed


def test_oversized_message_is_a_policy_violation() -> None:
    p = XmlStreamParser(framing="websocket", max_stanza_size=1024)
    p.feed_message(OPEN)
    big = b"<message xmlns='jabber:client'><body>" + b"x" * 2000 + b"</body></message>"
    error = p.feed_message(big)[1]
    assert error is not None and error.condition == "policy-violation"


def test_restart_expects_a_new_open() -> None:
    p = ws_parser()
    p.feed_message(OPEN)
    p.reset()
    assert p.feed_message(b"<iq xmlns='jabber:client'/>")[1].condition == "invalid-namespace"
    q = ws_parser()
    q.feed_message(OPEN)
    q.reset()
    assert isinstance(q.feed_message(OPEN)[0][0], StreamOpen)


# -- the C2S stream in websocket framing -----------------------------------------------------
def ws_stream(**kw: Any) -> c2s.C2SStream:
    settings = c2s.C2SSettings(hosts=frozenset({"example.org"}), tls="off", tls_available=False,
                               framing="websocket", **kw)
    return c2s.C2SStream(settings, now=0.0, secure=True)


def test_open_is_answered_with_open_and_standalone_features_without_starttls() -> None:
    s = ws_stream()
    s.receive(OPEN, 0.0)
    units = s.take_output()
    head = etree.fromstring(units[0])
    assert head.tag == "{%s}open" % FRAMING_NS
    assert head.get("from") == "example.org" and head.get("version") == "1.0"
    assert head.get("id") == s.stream_id
    features = etree.fromstring(units[1])        # parses alone: its prefix is declared
    assert features.tag == "{http://etherx.jabber.org/streams}features"
    assert b"starttls" not in units[1]
    assert b"<mechanism>PLAIN</mechanism>" in units[1]        # secure (wss://)


def test_close_is_answered_with_close() -> None:
    s = ws_stream()
    s.receive(OPEN, 0.0)
    s.take_output()
    s.receive(b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", 1.0)
    assert s.take_output() == [b"<close xmlns='%s'/>" % FRAMING_NS.encode()]
    assert s.events() == [c2s.Closed(None)]


def test_stream_error_is_a_standalone_element_then_close() -> None:
    s = ws_stream()
    s.receive(b"<!DOCTYPE x>" + OPEN, 0.0)
    units = s.take_output()
    assert etree.fromstring(units[0]).tag == "{%s}open" % FRAMING_NS
    err = etree.fromstring(units[1])
    assert err.tag == "{http://etherx.jabber.org/streams}error"
    assert err[0].tag == "{urn:ietf:params:xml:ns:xmpp-streams}restricted-xml"
    assert units[2] == b"<close xmlns='%s'/>" % FRAMING_NS.encode()


def test_starttls_is_refused_on_a_websocket() -> None:
    s = ws_stream()
    s.receive(OPEN, 0.0)
    s.take_output()
    s.receive(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", 0.0)
    out = b"".join(s.take_output())
    assert b"<failure" in out and out.endswith(b"<close xmlns='%s'/>" % FRAMING_NS.encode())


# -- BOSH bodies -----------------------------------------------------------------------------
def parse_body(data: bytes) -> tuple[StreamOpen, list[Any]]:
    return parse_document(data, root_tag="{%s}body" % HB, content_ns=HB,
                          max_stanza_size=4096, max_depth=16)


def test_body_attributes_and_children() -> None:
    head, children = parse_body(
        b"<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' "
        b"rid='7' sid='s' xmpp:restart='true'><message xmlns='jabber:client' to='a@b'/>"
        b"<iq xmlns='jabber:client' type='get' id='1'/></body>")
    assert head.attrs == {"rid": "7", "sid": "s", "{urn:xmpp:xbosh}restart": "true"}
    assert [c.tag for c in children] == ["{jabber:client}message", "{jabber:client}iq"]


@pytest.mark.parametrize("data, condition", [
    (b"<!DOCTYPE body [<!ENTITY a 'aaaa'>]><body xmlns='%s'/>" % HB.encode(), "restricted-xml"),
    (b"<body xmlns='%s'><message xmlns='jabber:client'>&a;</message></body>" % HB.encode(),
     "restricted-xml"),
    (b"<body xmlns='%s'><?pi x?></body>" % HB.encode(), "restricted-xml"),
    (b"<body xmlns='%s'><message xmlns='jabber:client'>" % HB.encode(), "not-well-formed"),
    (b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='%s'/>"
     % HB.encode(), "invalid-namespace"),
    (b"<body xmlns='jabber:client'/>", "invalid-namespace"),
    (b"<body xmlns='%s'><message xmlns='jabber:client'><body>%s</body></message></body>"
     % (HB.encode(), b"x" * 8000), "policy-violation"),
])
def test_bad_bodies_are_refused_by_the_restricted_parser(data: bytes, condition: str) -> None:
    with pytest.raises(StreamError) as e:
        parse_body(data)
    assert e.value.condition == condition


# -- BOSH sessions ---------------------------------------------------------------------------
class FakeClient:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.closed = False
        self.lost = False
        self.paused = False

    def items_received(self, items: list[Any]) -> None:
        self.items.extend(items)

    def close(self, error: StreamError | None = None) -> None:
        self.closed = True

    def connection_lost(self) -> None:
        self.lost = True

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False


class Reply:
    def __init__(self) -> None:
        self.data: bytes | None = None
        self.code = 0

    def respond(self, data: bytes, code: int = 200) -> None:
        assert self.data is None, "answered twice"
        self.data, self.code = data, code

    @property
    def body(self) -> etree._Element:
        assert self.data is not None
        return etree.fromstring(self.data)


def msg(n: int) -> etree._Element:
    return etree.fromstring(f"<message xmlns='jabber:client' id='m{n}'/>")


class Bosh:
    def __init__(self, *, wait: int = 30, hold: int = 1, inactivity: float = 60) -> None:
        self.tclock = TwistedClock()
        self.ended: list[bosh.BoshSession] = []
        self.s = bosh.BoshSession("sid1", clock=Clock(self.tclock), host="example.org", rid=100,
                                  wait=wait, hold=hold,
                                  settings=bosh.BoshSettings(inactivity=inactivity, polling=2),
                                  on_end=self.ended.append)
        self.client = FakeClient()
        self.s.client = self.client

    def req(self, rid: int, *children: etree._Element, **attrs: str) -> Reply:
        r = Reply()
        self.s.request({"rid": str(rid), "sid": "sid1", **attrs}, list(children), r)
        return r


def test_requests_are_held_and_answered_with_output_in_rid_order() -> None:
    b = Bosh()
    r101 = b.req(101)
    assert r101.data is None                      # held: nothing to send yet
    b.s.send([b"<message xmlns='jabber:client' id='out1'/>"])
    assert r101.body[0].get("id") == "out1"
    assert r101.body.get("ack") is None           # §9.1: not when ack would equal the rid


def test_a_second_request_releases_the_first_with_hold_1() -> None:
    b = Bosh()
    r101 = b.req(101)
    r102 = b.req(102, msg(1))
    assert r101.data is not None and len(r101.body) == 0
    assert r101.body.get("ack") == "102"          # §9.1: we already have 102
    assert r102.data is None
    assert [e.get("id") for e in b.client.items] == ["m1"]


def test_payloads_are_forwarded_in_rid_order_whatever_arrives_first() -> None:
    b = Bosh(hold=2)
    r103 = b.req(103, msg(3))
    r102 = b.req(102, msg(2))
    assert b.client.items == []                   # 101 is missing
    r101 = b.req(101, msg(1))
    assert [e.get("id") for e in b.client.items] == ["m1", "m2", "m3"]
    assert r101.data is not None                  # only `hold` (2) may wait: the oldest goes
    assert r102.data is None and r103.data is None


def test_rid_beyond_the_window_ends_the_session() -> None:
    b = Bosh()
    r = b.req(103)                                # window = requests (2): 101..102
    assert r.body.get("type") == "terminate" and r.body.get("condition") == "item-not-found"
    assert b.ended and b.client.lost


def test_resent_rid_gets_the_same_response_again() -> None:
    b = Bosh()
    r101 = b.req(101)
    b.s.send([b"<message xmlns='jabber:client' id='out1'/>"])
    again = b.req(101)                            # §14.3: the answer was lost on the way
    assert again.data == r101.data


def test_resent_rid_still_held_answers_the_old_request_with_a_recoverable_error() -> None:
    b = Bosh()
    old = b.req(101)
    new = b.req(101)
    assert old.body.get("type") == "error"
    b.s.send([b"<message xmlns='jabber:client' id='x'/>"])
    assert new.body[0].get("id") == "x"


def test_client_ack_trims_the_resend_cache() -> None:
    b = Bosh()
    b.req(101)
    b.req(102)
    assert 101 in b.s.cache
    b.req(103, ack="102")
    assert 101 not in b.s.cache and 102 in b.s.cache
    assert b.req(101).body.get("condition") == "item-not-found"


def test_wait_expiry_answers_an_empty_body() -> None:
    b = Bosh(wait=30)
    r = b.req(101)
    b.tclock.advance(29)
    assert r.data is None
    b.tclock.advance(1)
    assert r.data is not None and len(r.body) == 0


def test_inactivity_ends_the_session_silently() -> None:
    b = Bosh(wait=10, inactivity=60)
    b.req(101)
    b.tclock.advance(10)                          # answered empty; nothing held any more
    b.tclock.advance(59)
    assert not b.ended
    b.tclock.advance(1)
    assert b.ended and b.client.lost


def test_a_new_request_stops_the_inactivity_clock() -> None:
    b = Bosh(wait=10, inactivity=60)
    b.req(101)
    b.tclock.advance(50)
    b.req(102)
    b.tclock.advance(50)
    assert not b.ended


def test_polling_faster_than_allowed_is_a_policy_violation() -> None:
    b = Bosh(hold=0)                              # a polling session (§12), polling = 2 s
    first = b.req(101)
    assert first.data is not None                 # nothing may be held: answered at once
    b.tclock.advance(3)
    assert b.req(102).data is not None            # slow enough
    b.tclock.advance(1)
    r = b.req(103)
    assert r.body.get("condition") == "policy-violation" and b.ended


def test_restart_feeds_a_new_stream_header() -> None:
    b = Bosh()
    b.req(101, **{"{urn:xmpp:xbosh}restart": "true", "xml:lang": "de"})
    assert b.client.items == [StreamOpen({"to": "example.org", "version": "1.0",
                                          "xml:lang": "de"}, None)]


def test_terminate_forwards_payloads_closes_the_stream_and_answers_terminate() -> None:
    b = Bosh()
    held = b.req(101)
    r = b.req(102, msg(9), type="terminate")
    assert [e.get("id") for e in b.client.items] == ["m9"] and b.client.closed
    # §13: the terminal body on the oldest request, an empty body on the others
    assert held.body.get("type") == "terminate"
    assert r.data is not None and r.body.get("type") is None
    assert b.ended and b.client.lost


def test_stream_error_from_the_server_is_a_remote_stream_error() -> None:
    b = Bosh()
    r = b.req(101)
    b.s.send([b"<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
              b"<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"])
    # the error went out with the held request already; a later close still terminates
    b.s.close()
    assert r.data is not None
    nxt = b.req(102)
    assert nxt.body.get("type") == "terminate" or b.ended


def test_stream_error_with_no_request_held_waits_for_the_next_one() -> None:
    b = Bosh(wait=5)
    b.req(101)
    b.tclock.advance(5)
    b.s.send([b"<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
              b"<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"])
    b.s.close()
    r = b.req(102)
    assert r.body.get("type") == "terminate"
    assert r.body.get("condition") == "remote-stream-error"
    assert r.body[0].tag == "{http://etherx.jabber.org/streams}error"
    assert b.ended


class Manager:
    def __init__(self) -> None:
        self.tclock = TwistedClock()
        self.clients: list[FakeClient] = []
        server: Any = type("S", (), {"clock": Clock(self.tclock)})()
        settings = c2s.C2SSettings(hosts=frozenset({"example.org"}), framing="bosh")
        self.m = bosh_http.BoshManager(server, settings, bosh.BoshSettings(max_wait=60, max_hold=1),
                                  make_client=self.make)

    def make(self, session: bosh.BoshSession, **_: Any) -> FakeClient:
        c = FakeClient()
        self.clients.append(c)
        return c

    def post(self, data: bytes) -> Reply:
        r = Reply()
        self.m.handle(data, r, peer_ip="127.0.0.1", secure=True)
        return r


def test_session_creation_answers_the_negotiated_attributes() -> None:
    m = Manager()
    r = m.post(b"<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' "
               b"rid='5000' to='example.org' wait='600' hold='3' ver='1.6' xmpp:version='1.0'/>")
    b = r.body
    assert b.get("wait") == "60" and b.get("hold") == "1" and b.get("requests") == "2"
    assert b.get("ver") == "1.6" and b.get("ack") == "5000" and b.get("from") == "example.org"
    assert b.get("{urn:xmpp:xbosh}version") == "1.0"
    assert len(b.get("sid")) >= 24 and b.get("sid") in m.m.sessions
    assert m.clients[0].items == [StreamOpen({"to": "example.org", "version": "1.0",
                                              "xml:lang": "en"}, None)]


@pytest.mark.parametrize("data, condition, code", [
    (b"<body xmlns='%s' rid='1' to='other.org' wait='5' hold='1'/>", "host-unknown", 200),
    (b"<body xmlns='%s' rid='x' to='example.org' wait='5' hold='1'/>", "bad-request", 400),
    (b"<body xmlns='%s' rid='1' to='example.org' hold='1'/>", "bad-request", 400),
    (b"<body xmlns='%s' rid='1' sid='nope'/>", "item-not-found", 200),
    (b"<body xmlns='%s' rid='1'>&ent;</body>", "bad-request", 400),
])
def test_bad_requests_get_terminal_conditions(data: bytes, condition: str, code: int) -> None:
    r = Manager().post(data % HB.encode())
    assert r.body.get("type") == "terminate" and r.body.get("condition") == condition
    assert r.code == code


# -- RFC 6455 frames (xmppd/listeners/websocket.py) ------------------------------------------
from xmppd.listeners.websocket import FrameError, WsFramer, close_frame, frame  # noqa: E402


def client_frame(payload: bytes, opcode: int = 1, fin: bool = True,
                 mask: bytes = b"\x12\x34\x56\x78") -> bytes:
    n = len(payload)
    head = bytes(((0x80 if fin else 0) | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 65536:
        head += bytes((0x80 | 126,)) + n.to_bytes(2, "big")
    else:
        head += bytes((0x80 | 127,)) + n.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def test_masked_text_frames_in_any_split_give_whole_messages() -> None:
    msgs = [b"<a/>", "<b>é</b>".encode(), b"x" * 300, b"y" * 70000]
    data = b"".join(client_frame(m) for m in msgs)
    for step in (1, 7, 1000, len(data)):
        f = WsFramer(max_message=100000)
        got = []
        for i in range(0, len(data), step):
            got += f.receive(data[i:i + step])
        assert got == [("text", m) for m in msgs]


def test_fragments_join_and_control_frames_may_come_between() -> None:
    f = WsFramer(max_message=100)
    data = (client_frame(b"<mes", fin=False) + client_frame(b"hi", opcode=9)
            + client_frame(b"sage/>", opcode=0))
    assert f.receive(data) == [("ping", b"hi"), ("text", b"<message/>")]


def test_close_frame_carries_its_code() -> None:
    f = WsFramer(max_message=100)
    assert f.receive(client_frame((1000).to_bytes(2, "big") + b"bye", opcode=8)) == [
        ("close", 1000)]
    assert WsFramer(100).receive(client_frame(b"", opcode=8)) == [("close", 1005)]


@pytest.mark.parametrize("data, code", [
    (b"\x81\x05hello", 1002),                                   # unmasked
    (client_frame(b"x")[:0] + bytes((0xC1,)) + client_frame(b"x")[1:], 1002),   # RSV1
    (client_frame(b"x", opcode=0), 1002),                       # continuation, no start
    (client_frame(b"x", opcode=3), 1002),                       # reserved opcode
    (client_frame(b"x", opcode=9, fin=False), 1002),            # fragmented ping
    (client_frame(b"x" * 126, opcode=9), 1002),                 # long ping
    (client_frame(b"<a", fin=False) + client_frame(b"<b/>"), 1002),   # new message inside
    (client_frame(b"\xff\xfe"), 1007),                           # not UTF-8
    (client_frame(b"x" * 200), 1009),                            # too large
    (bytes((0x81, 0xFF)) + (1 << 40).to_bytes(8, "big"), 1009),  # refused from the header
])
def test_protocol_violations_have_their_close_codes(data: bytes, code: int) -> None:
    with pytest.raises(FrameError) as e:
        WsFramer(max_message=100).receive(data)
    assert e.value.code == code


def test_server_frames_are_unmasked_with_the_shortest_length() -> None:
    assert frame(b"abc") == b"\x81\x03abc"
    assert frame(b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert frame(b"x" * 70000)[:2] == b"\x81\x7f"
    assert close_frame(1009) == b"\x88\x02\x03\xf1"


def test_framed_parser_is_rebuilt_after_a_mib_and_keeps_parsing() -> None:
    p = ws_parser()
    p.feed_message(OPEN)
    msg = b"<message xmlns='jabber:client'><body>" + b"x" * 500 + b"</body></message>"
    for i in range(3000):
        events, error = p.feed_message(msg)
        assert error is None and len(events) == 1, i
    assert p.restarts >= 1
    assert p.feed_message(b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>") == (
        [StreamClose()], None)


def test_a_quiet_websocket_stream_frees_its_parser_and_keeps_going() -> None:
    # xmppd/listeners/idle_parsers.py compacts the framing parser of a quiet stream too.
    p = XmlStreamParser(framing="websocket")
    p.feed_message(OPEN)
    [presence], error = p.feed_message(b"<presence xmlns='jabber:client'/>")
    assert error is None and p.compact() and p.compacted
    events, error = p.feed_message(b"<message xmlns='jabber:client' to='a@b'><body>hi</body>"
                                   b"</message>")
    assert error is None and not p.compacted
    assert serialize(events[0]) == (b'<message xmlns="jabber:client" to="a@b"><body>hi</body>'
                                    b'</message>')
    assert serialize(presence) == b'<presence xmlns="jabber:client"/>'
