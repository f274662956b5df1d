# tests: xmppd/s2s/component.py, xmppd/s2s/service.py, xmppd/listeners/s2s.py, xmppd/listeners/federation.py
"""External components (XEP-0114) with slixmpp's ComponentXMPP against the real server: the
handshake, a wrong secret refused with <not-authorized/>, messages both ways between a
component and a user, and the domain free again once the component leaves."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import slixmpp

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import RunningServer, ServerFactory

COMPONENT, SECRET = "bots.localhost", "c0mp0nent-s3cret"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with ServerFactory("sqlite+memory", lambda: tmp_path_factory.mktemp("xmppd")) as factory:
        yield factory(users=("alice",),
                      listeners={"component": {"type": "component", "bind": "127.0.0.1"}},
                      components=[{"domain": COMPONENT, "secret": SECRET}])


def component_port(srv: RunningServer) -> int:
    return srv.ports["component"]


class Component(slixmpp.ComponentXMPP):  # type: ignore[misc]
    def __init__(self, secret: str = SECRET) -> None:
        super().__init__(COMPONENT, secret)
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.started = asyncio.Event()
        self.gone = asyncio.Event()
        self.stream_errors: list[str] = []
        self.add_event_handler("session_start", lambda _: self.started.set())
        self.add_event_handler("message", self.inbox.put_nowait)
        self.add_event_handler("disconnected", lambda _: self.gone.set())
        self.add_event_handler("stream_error",
                               lambda e: self.stream_errors.append(e["condition"]))

    async def stop(self) -> None:
        if not self.gone.is_set():
            self.disconnect()
            await asyncio.wait_for(self.gone.wait(), 10)


def test_handshake_then_messages_both_ways(server: RunningServer) -> None:
    async def go() -> None:
        comp = Component()
        comp.connect("127.0.0.1", component_port(server))
        await asyncio.wait_for(comp.started.wait(), 15)
        alice = XmppClient("alice@localhost/phone", "alice-pw", plugins=("xep_0030",))
        assert await alice.start(server.port)
        try:
            items = await alice.plugin["xep_0030"].get_items(jid="localhost", timeout=10)
            assert COMPONENT in [i[0] for i in items["disco_items"]["items"]]   # XEP-0114
            alice.send_message(mto=f"echo@{COMPONENT}", mbody="ping?", mtype="chat")
            got = await asyncio.wait_for(comp.inbox.get(), 10)
            assert (str(got["from"]), got["body"]) == ("alice@localhost/phone", "ping?")
            comp.send_message(mto="alice@localhost/phone", mfrom=f"echo@{COMPONENT}/bot",
                              mbody="pong!", mtype="chat")
            back = await alice.next_message()
            assert (str(back["from"]), back["body"]) == (f"echo@{COMPONENT}/bot", "pong!")
            await comp.stop()
            items = await alice.plugin["xep_0030"].get_items(jid="localhost", timeout=10)
            assert COMPONENT not in [i[0] for i in items["disco_items"]["items"]]
            # gone: its domain answers <service-unavailable/> (XEP-0114 has no offline store)
            alice.send_message(mto=f"echo@{COMPONENT}", mbody="still there?", mtype="chat")
            err = await alice.next_message()
            assert (err["type"], err["error"]["condition"]) == ("error", "service-unavailable")
        finally:
            await alice.stop()
            await comp.stop()
    run(go())
    log = Path(server.tmp / "xmppd.log").read_text()
    assert f"component {COMPONENT} connected" in log
    assert f"component {COMPONENT} disconnected" in log


def test_a_wrong_secret_is_refused(server: RunningServer) -> None:
    async def go() -> None:
        comp = Component("not-the-secret")
        comp.connect("127.0.0.1", component_port(server))
        await asyncio.wait_for(comp.gone.wait(), 15)
        assert not comp.started.is_set()
        assert comp.stream_errors == ["not-authorized"]
    run(go())

