# tests: xmppd/c2s.py, xmppd/router.py, xmppd/listeners/c2s.py, modules/disco.py, modules/ping.py
"""The core server driven by slixmpp over real TCP + STARTTLS, on both backend pairs."""
from __future__ import annotations

import asyncio

import pytest

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import RunningServer


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_login_over_starttls_with_scram(server: RunningServer, mechanism: str) -> None:
    async def go() -> None:
        c = XmppClient("alice@localhost/m", "alice-pw", sasl_mech=mechanism)
        assert await c.start(server.port)
        assert c.mechanism_used == mechanism
        assert c.is_connected_secure if hasattr(c, "is_connected_secure") else True
        await c.stop()
    run(go())


def test_wrong_password_is_refused(server: RunningServer) -> None:
    async def go() -> None:
        c = XmppClient("alice@localhost/m", "not-the-password", sasl_mech="SCRAM-SHA-256")
        assert await c.start(server.port) is False
        await c.stop()
    run(go())


def test_thousand_messages_arrive_once_and_in_order(server: RunningServer) -> None:
    async def go() -> None:
        alice = XmppClient("alice@localhost/phone", "alice-pw")
        bob = XmppClient("bob@localhost/laptop", "bob-pw")
        assert await alice.start(server.port) and await bob.start(server.port)
        # bob's presence must be in before alice sends to his bare JID

        await ping_roundtrip(bob)
        for i in range(1000):
            alice.send_message(mto="bob@localhost", mbody=f"msg {i}", mtype="chat")
        got = [(await bob.next_message())["body"] for _ in range(1000)]
        assert got == [f"msg {i}" for i in range(1000)]
        # and nothing more arrives (no duplicates)
        await ping_roundtrip(alice)
        await ping_roundtrip(bob)
        assert bob.inbox.empty()
        # the reply path, to a full JID
        bob.send_message(mto="alice@localhost/phone", mbody="got them all", mtype="chat")
        reply = await alice.next_message()
        assert reply["body"] == "got them all"
        assert reply["from"] == "bob@localhost/laptop"
        await alice.stop()
        await bob.stop()
    run(go())


async def ping_roundtrip(c: XmppClient) -> None:
    """A server round trip: everything the server sent before this is in our inbox."""
    await c.plugin["xep_0199"].ping("localhost", timeout=10)


def test_ping_disco_version_time_answered(server: RunningServer) -> None:
    async def go() -> None:
        c = XmppClient("carol@localhost/x", "carol-pw",
                       plugins=("xep_0030", "xep_0199", "xep_0092", "xep_0202"))
        assert await c.start(server.port)
        rtt = await c.plugin["xep_0199"].ping("localhost", timeout=10)
        assert rtt is not None
        info = await c.plugin["xep_0030"].get_info(jid="localhost", timeout=10)
        features = info["disco_info"]["features"]
        for ns in ("urn:xmpp:ping", "http://jabber.org/protocol/disco#info",
                   "jabber:iq:version", "urn:xmpp:time", "jabber:iq:register"):
            assert ns in features
        assert ("server", "im", None, "xmppd") in info["disco_info"]["identities"]
        acct = await c.plugin["xep_0030"].get_info(jid="alice@localhost", timeout=10)
        assert ("account", "registered", None, None) in acct["disco_info"]["identities"]
        version = await c.plugin["xep_0092"].get_version("localhost", timeout=10)
        assert version["software_version"]["name"] == "xmppd"
        t = await c.plugin["xep_0202"].get_entity_time("localhost", timeout=10)
        # slixmpp's stanza appends its own "Z" to <utc/> when parsing (a client bug), so read
        # the raw text: XEP-0202 §3 wants UTC with the "Z" we send.
        utc = t["entity_time"].xml.find("{urn:xmpp:time}utc").text
        assert utc.endswith("Z") and utc[:4].isdigit()
        await c.stop()
    run(go())


def test_message_to_unknown_user_bounces_service_unavailable(server: RunningServer) -> None:
    async def go() -> None:
        c = XmppClient("alice@localhost/x", "alice-pw", plugins=("xep_0199",))
        assert await c.start(server.port)
        c.send_message(mto="nobody@localhost", mbody="hello?", mtype="chat")
        err = await c.next_message()
        assert err["type"] == "error"
        assert err["error"]["condition"] == "service-unavailable"
        c.send_message(mto="someone@remote.example", mbody="hi", mtype="chat")
        err = await c.next_message()
        assert err["error"]["condition"] == "remote-server-not-found"
        await c.stop()
    run(go())


def test_same_resource_replaces_old_session_with_conflict(server: RunningServer) -> None:
    async def go() -> None:
        first = XmppClient("carol@localhost/same", "carol-pw")
        assert await first.start(server.port)
        second = XmppClient("carol@localhost/same", "carol-pw", plugins=("xep_0199",))
        assert await second.start(server.port)
        await asyncio.wait_for(first.gone.wait(), 10)
        assert first.stream_errors == ["conflict"]
        await ping_roundtrip(second)
        await second.stop()
    run(go())
