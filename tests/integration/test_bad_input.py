# tests: xmppd/xmlstream.py, xmppd/c2s.py, xmppd/listeners/c2s.py
"""Bad input closes only the offending stream, with the RFC 6120 stream error; everyone else
keeps being served (shown by two slixmpp clients chatting before and after each attack)."""
from __future__ import annotations

import pytest

from tests.harness.clients import XmppClient, run
from tests.harness.raw import RawClient
from tests.harness.server_proc import RunningServer

BILLION_LAUGHS = (
    "<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY lol 'lol'>"
    "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
    "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='localhost' version='1.0'>&lol3;")


async def attack_malformed(port: int) -> bytes:
    c = await RawClient.connect(port)
    await c.open()
    await c.send("<message to='bob@localhost'><body>unclosed</message>")
    return await c.read_to_close()


async def attack_dtd(port: int) -> bytes:
    c = await RawClient.connect(port)
    await c.send(BILLION_LAUGHS)
    return await c.read_to_close()


async def attack_oversized(port: int) -> bytes:
    c = await RawClient.connect(port)
    await c.login("carol", "carol-pw", resource="big")
    await c.send("<message to='bob@localhost' type='chat'><body>" + "A" * (300 * 1024)
                 + "</body></message>")
    return await c.read_to_close()


async def attack_oversized_preauth(port: int) -> bytes:
    c = await RawClient.connect(port)
    await c.open()
    await c.send("<iq type='get' id='x'><query xmlns='jabber:iq:register'>" + "B" * 20000)
    return await c.read_to_close()


ATTACKS = [
    (attack_malformed, "not-well-formed"),
    (attack_dtd, "restricted-xml"),
    (attack_oversized, "policy-violation"),
    (attack_oversized_preauth, "policy-violation"),
]


@pytest.mark.parametrize("attack,condition", ATTACKS, ids=[a.__name__ for a, _ in ATTACKS])
def test_bad_stream_is_closed_and_others_are_served(server: RunningServer, attack, condition):  # type: ignore[no-untyped-def]
    async def go() -> None:
        alice = XmppClient("alice@localhost/chat", "alice-pw")
        bob = XmppClient("bob@localhost/chat", "bob-pw")
        assert await alice.start(server.port) and await bob.start(server.port)
        await bob.plugin["xep_0199"].ping("localhost", timeout=10)
        alice.send_message(mto="bob@localhost", mbody="before", mtype="chat")
        assert (await bob.next_message())["body"] == "before"

        data = await attack(server.port)
        assert f"<{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>".encode() in data
        assert data.rstrip().endswith(b"</stream:stream>")

        alice.send_message(mto="bob@localhost", mbody="after", mtype="chat")
        assert (await bob.next_message())["body"] == "after"
        bob.send_message(mto="alice@localhost/chat", mbody="still here", mtype="chat")
        assert (await alice.next_message())["body"] == "still here"
        await alice.stop()
        await bob.stop()
    run(go(), 60)
