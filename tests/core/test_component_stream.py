# tests: xmppd/s2s/component.py
"""ComponentStream (XEP-0114), sans-IO: header, handshake, conflicts, `from` rules."""
from __future__ import annotations

import hashlib
from typing import Any

import pytest

from stanzas import ns
from tests.harness.s2s import Reader, names, q, s2s_header, stream_error
from tests.harness.server import parse
from xmppd.s2s.component import ComponentSettings, ComponentStream, HandshakeDone
from xmppd.s2s.stream import Closed, Limits, Stanza

DOMAIN = "bots.example.org"
SECRET = "sesame"


class Component:
    def __init__(self, connected: set[str] | None = None) -> None:
        up = connected if connected is not None else set()
        self.stream = ComponentStream(ComponentSettings(
            limits=Limits(auth_timeout=20, preauth_stanza_size=2048),
            secret_for=lambda d: SECRET if d == DOMAIN else None,
            connected=lambda d: d in up), now=0.0)
        self.reader = Reader()

    def send(self, data: str) -> None:
        self.stream.receive(data.encode(), 1.0)

    def recv(self) -> list[Any]:
        return self.reader.feed(self.stream.data_to_send())

    def open(self, to: str = DOMAIN) -> list[Any]:
        self.send(s2s_header(to=to, from_=None, version=None, dialback=False,
                             xmlns=ns.COMPONENT))
        return self.recv()

    def handshake(self, secret: str = SECRET) -> list[Any]:
        self.open()
        sid = self.reader.header.get("id") if self.reader.header is not None else ""
        digest = hashlib.sha1(((sid or "") + secret).encode()).hexdigest()
        self.send(f"<handshake>{digest}</handshake>")
        return self.recv()


def test_header_names_the_component_and_has_no_features() -> None:
    c = Component()
    assert c.open() == ["<stream>"]
    h = c.reader.header
    assert h is not None and h.get("from") == DOMAIN and h.get("version") is None
    assert h.nsmap[None] == ns.COMPONENT and len(h.get("id") or "") >= 16


def test_unknown_component_is_host_unknown() -> None:
    c = Component()
    items = c.open("stranger.example.org")
    assert items[0] == "<stream>" and stream_error(items) == "host-unknown"


def test_second_connection_for_a_domain_is_a_conflict() -> None:
    c = Component(connected={DOMAIN})
    assert stream_error(c.open()) == "conflict"


def test_good_handshake_is_answered_and_reported() -> None:
    c = Component()
    assert names(c.handshake()) == ["comp:handshake"]
    assert c.stream.events() == [HandshakeDone(DOMAIN)]
    assert c.stream.next_deadline() is None


def test_bad_secret_is_not_authorized() -> None:
    c = Component()
    assert stream_error(c.handshake("wrong")) == "not-authorized"
    assert isinstance(c.stream.events()[-1], Closed)


def test_stanzas_before_the_handshake_are_refused() -> None:
    c = Component()
    c.open()
    c.send(f"<message from='x@{DOMAIN}' to='a@example.org'/>")
    assert stream_error(c.recv()) == "not-authorized"


@pytest.mark.parametrize(("stanza", "condition"), [
    ("<message from='x@example.org' to='a@example.org'/>", "invalid-from"),
    (f"<message from='x@sub.{DOMAIN}' to='a@example.org'/>", "invalid-from"),
    ("<message to='a@example.org'/>", "improper-addressing"),
    (f"<message from='x@{DOMAIN}'/>", "improper-addressing"),
    ("<handshake>again</handshake>", "unsupported-stanza-type"),
])
def test_stanzas_that_may_not_pass(stanza: str, condition: str) -> None:
    c = Component()
    c.handshake()
    c.stream.events()
    c.send(stanza)
    assert stream_error(c.recv()) == condition


def test_stanzas_from_any_jid_of_the_domain_pass_in_jabber_client() -> None:
    c = Component()
    c.handshake()
    c.stream.events()
    c.send(f"<message from='weather@{DOMAIN}/x' to='a@example.org'><body>sun</body></message>"
           f"<presence from='{DOMAIN}' to='a@example.org'/>")
    a, b = c.stream.events()
    assert isinstance(a, Stanza) and isinstance(b, Stanza)
    assert a.stanza.find("{%s}body" % ns.CLIENT).text == "sun"


def test_stanzas_to_the_component_are_written_in_its_namespace() -> None:
    c = Component()
    c.handshake()
    c.stream.send_stanza(parse(f"<message from='a@example.org/r' to='x@{DOMAIN}'>"
                               "<body>hi</body></message>"), 2.0)
    [msg] = c.recv()
    assert msg.tag == q("comp:message") and msg.find(q("comp:body")).text == "hi"


def test_the_handshake_has_a_deadline() -> None:
    c = Component()
    c.open()
    c.stream.on_timeout(20.0)
    assert stream_error(c.recv()) == "connection-timeout"
