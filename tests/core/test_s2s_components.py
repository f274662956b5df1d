# tests: xmppd/s2s/service.py, xmppd/s2s/component.py, xmppd/listeners/s2s.py
"""Components (XEP-0114) on an in-memory server over iosim: the handshake through the shell,
the component's domain as a service domain while it is connected, stanzas both ways, and
federation from a component's domain."""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from twisted.internet import protocol

from stanzas import ns
from tests.harness.s2s import Reader, s2s_header, stream_error
from tests.harness.s2s_net import Net
from xmppd.s2s.srv import Target

COMP = "bots.a.example"


class RawComponent(protocol.Protocol):
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.reader = Reader()
        self.items: list[Any] = []
        self.lost = False

    def connectionMade(self) -> None:
        self.transport.write(s2s_header(to=COMP, from_=None, version=None, dialback=False,
                                        xmlns=ns.COMPONENT).encode())

    def dataReceived(self, data: bytes) -> None:
        items = self.reader.feed(data)
        if items[:1] == ["<stream>"] and self.reader.header is not None:
            sid = self.reader.header.get("id") or ""
            digest = hashlib.sha1((sid + self.secret).encode()).hexdigest()
            self.transport.write(f"<handshake>{digest}</handshake>".encode())
        self.items += items

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True

    def send(self, xml: str) -> None:
        self.transport.write(xml.encode())

    def stanzas(self) -> list[etree._Element]:
        out = [i for i in self.items if isinstance(i, etree._Element)
               and i.tag != "{%s}handshake" % ns.COMPONENT]
        self.items = [i for i in self.items if i is not None and i not in out]
        return out


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    n = Net(tmp_path)
    yield n
    n.close()


def connect(net: Net, secret: str = "s3cret") -> RawComponent:
    comp = RawComponent(secret)
    net.connect(net.listeners[("a.example", 5347)], comp)
    net.pump()
    return comp


def test_a_connected_component_gets_its_stanzas_and_speaks_for_its_domain(net: Net) -> None:
    a = net.server("a.example", components=[{"domain": COMP, "secret": "s3cret"}])
    alice = a.login("alice@a.example/phone")
    alice.send(f"<message to='echo@{COMP}' type='chat' id='1'><body>hi</body></message>")
    [err] = alice.received()            # not connected yet
    assert err[0][0].tag.endswith("service-unavailable")
    comp = connect(net)
    assert a.server.s2s.component_domains() == [COMP]
    assert COMP in a.server.router.services
    alice.send(f"<message to='echo@{COMP}' type='chat' id='2'><body>hi</body></message>")
    net.pump()
    [msg] = comp.stanzas()
    assert msg.tag == "{%s}message" % ns.COMPONENT
    assert (msg.get("from"), msg.findtext("{%s}body" % ns.COMPONENT)) == (
        "alice@a.example/phone", "hi")
    comp.send(f"<message from='echo@{COMP}/x' to='alice@a.example/phone' type='chat'>"
              "<body>back</body></message>")
    net.pump()
    alice.expect(f"<message from='echo@{COMP}/x' to='alice@a.example/phone' type='chat'>"
                 "<body>back</body></message>")


def test_a_wrong_secret_is_refused_and_registers_nothing(net: Net) -> None:
    a = net.server("a.example", components=[{"domain": COMP, "secret": "s3cret"}])
    comp = connect(net, "wrong")
    assert stream_error(comp.items) == "not-authorized" and comp.lost
    assert a.server.s2s.component_domains() == [] and COMP not in a.server.router.services


def test_spoofed_from_closes_the_component(net: Net) -> None:
    a = net.server("a.example", components=[{"domain": COMP, "secret": "s3cret"}])
    alice = a.login("alice@a.example/phone")
    comp = connect(net)
    comp.send("<message from='admin@a.example' to='alice@a.example/phone'><body>x</body>"
              "</message>")
    net.pump()
    alice.expect_nothing()
    assert stream_error(comp.items) == "invalid-from" and comp.lost
    assert COMP not in a.server.router.services


def test_a_second_connection_is_a_conflict(net: Net) -> None:
    net.server("a.example", components=[{"domain": COMP, "secret": "s3cret"}])
    first = connect(net)
    second = connect(net)
    assert stream_error(second.items) == "conflict" and not first.lost


def test_components_reach_remote_servers(net: Net) -> None:
    net.server("a.example", components=[{"domain": COMP, "secret": "s3cret"}])
    b = net.server("b.example")
    net.routes[COMP] = [Target("a.example", 5269)]   # its DNS points at a.example's server
    bob = b.login("bob@b.example/pc")
    comp = connect(net)
    comp.send(f"<message from='weather@{COMP}' to='bob@b.example/pc'><body>sun</body>"
              "</message>")
    net.pump()
    bob.expect(f"<message from='weather@{COMP}' to='bob@b.example/pc'><body>sun</body>"
               "</message>")
    bob.send(f"<message to='weather@{COMP}' id='r'><body>thanks</body></message>")
    net.pump()
    [msg] = comp.stanzas()
    assert msg.get("from") == "bob@b.example/pc" and msg.get("id") == "r"
