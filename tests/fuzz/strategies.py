# tests: tests/core/test_fuzz_parser.py, tests/core/test_fuzz_c2s.py
"""Hypothesis strategies for the fuzz tests: XML-ish byte streams built from the pieces that
matter to the parser and the negotiation, and mutations of the regression corpus; and the
tests' settings (`FUZZ`)."""
from __future__ import annotations

import base64
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.fuzz.targets import corpus

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>")
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"

# FUZZ_EXAMPLES=N runs longer (the default keeps `make test` within its fuzzing budget).
# Under CI=true (tests/harness/backends.py) every build runs the same examples, derived from
# each test, and keeps no example database: a build fails for what its change did, not for
# what a new random seed found that day. Elsewhere each run draws new examples (this is where
# fuzzing finds things) and a failure is replayed from .hypothesis/ until it is fixed.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None,
                derandomize=os.environ.get("CI", "").strip().lower() == "true",
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _auth(mech: str, payload: bytes | None) -> bytes:
    text = base64.b64encode(payload).decode() if payload is not None else ""
    return f"<auth xmlns='{SASL}' mechanism='{mech}'>{text}</auth>".encode()


MARKUP = [
    b"<message>", b"</message>", b"<message to='romeo@example.org' type='chat'>", b"<body>",
    b"</body>", b"<presence/>", b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
    b"<x xmlns='urn:x'>", b"</x>", b"<a:b xmlns:a='urn:a'/>", b"<![CDATA[", b"]]>",
    b"&amp;", b"&#x1F339;", b"&lt;", b"&", b"&foo;", b"<!--", b"-->", b"<?pi?>", b"<!DOCTYPE x>",
    b" xmlns:xml='urn:evil'", b" xmlns:xml='http://www.w3.org/XML/1998/namespace'",
    b" xmlns:xmlns='urn:x'", b" xmlns='http://www.w3.org/2000/xmlns/'",
    b" xmlns:f='http://www.w3.org/XML/1998/namespace'", b"'", b'"', b"=", b" ", b"\n", b">",
    b"/>", b"<", b"text", "é🌹".encode(), b"\xff", b"\x00", b"</stream:stream>", HEADER,
]
MOVES = MARKUP + [
    b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    _auth("PLAIN", b"\0juliet\0correct horse"), _auth("PLAIN", b"\0juliet\0wrong"),
    _auth("PLAIN", b"\0nobody\0x"), _auth("PLAIN", b"romeo\0juliet\0correct horse"),
    _auth("PLAIN", None), _auth("SCRAM-SHA-256", b"n,,n=juliet,r=abc"),
    _auth("SCRAM-SHA-1", b"p=tls-unique,,n=juliet,r=abc"), _auth("NOPE", b"x"),
    f"<response xmlns='{SASL}'>{base64.b64encode(b'c=biws,r=abcX,p=AAAA').decode()}"
    "</response>".encode(),
    f"<response xmlns='{SASL}'>=</response>".encode(), f"<abort xmlns='{SASL}'/>".encode(),
    b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
    b"<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
    b"<enable xmlns='urn:xmpp:sm:3'/>", b"<r xmlns='urn:xmpp:sm:3'/>",
    b"<message from='romeo@example.org/x' to='nurse@example.org'/>",
]


@st.composite
def xml_stream(draw: st.DrawFn, pieces: list[bytes]) -> bytes:
    """A header (usually) and a run of the given pieces, with a few random bytes."""
    parts = [HEADER] if draw(st.integers(0, 9)) else []
    parts += draw(st.lists(st.one_of(st.sampled_from(pieces), st.binary(max_size=6)),
                           max_size=40))
    return b"".join(parts)


@st.composite
def corpus_mutation(draw: st.DrawFn, pieces: list[bytes]) -> bytes:
    """A corpus file with a few pieces inserted, bytes deleted or flipped."""
    data = bytearray(draw(st.sampled_from([d for _, d in corpus()])))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.integers(0, 2))
        if kind == 0:
            data[at:at] = draw(st.sampled_from(pieces))
        elif kind == 1:
            del data[at:at + draw(st.integers(1, 16))]
        elif at < len(data):
            data[at] = draw(st.integers(0, 255))
    return bytes(data)


CUTS = st.lists(st.integers(0, 1 << 16), max_size=10)
