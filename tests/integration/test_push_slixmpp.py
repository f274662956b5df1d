# tests: modules/push.py, modules/muc/service.py, xmppd/s2s/component.py
"""XEP-0357 push against the real server, on both backend pairs: the app server's XMPP push
service is a slixmpp ComponentXMPP on the component listener (XEP-0114), the phone and its
friends are slixmpp clients. An offline message gives one notification with the summary form,
a burst of 20 gives one, an app server error removes the registration, XEP-0198-detached and
XEP-0352-inactive phones are notified, and a mention in a members-only group reaches a member
who is offline."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
import slixmpp
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import DEFAULT_MODULES, RunningServer, ServerFactory

APP, SECRET = "push.localhost", "app-s3rver"
PUSH = "urn:xmpp:push:0"
PUBSUB = "http://jabber.org/protocol/pubsub"
XDATA = "jabber:x:data"
ROOM = "family@conference.localhost"
USERS = ("alice", "bob", "carol", "dave", "erin", "fay")


@pytest.fixture(scope="module")
def srv(server_factory: ServerFactory) -> RunningServer:
    return server_factory(
        DEFAULT_MODULES | {"push": {"delay": "1 s", "inactive_after": "2 s",
                                    "include_body": True}},
        users=USERS, listeners={"component": {"type": "component", "bind": "127.0.0.1"}},
        components=[{"domain": APP, "secret": SECRET}])


class AppServer(slixmpp.ComponentXMPP):  # type: ignore[misc]
    """The app server's push service: every publish lands in `published`; `fail` answers
    with that stanza error instead of a result."""

    def __init__(self) -> None:
        super().__init__(APP, SECRET)
        self.published: asyncio.Queue[Any] = asyncio.Queue()
        self.fail: str | None = None
        self.started = asyncio.Event()
        self.add_event_handler("session_start", lambda _: self.started.set())
        self.register_handler(Callback("push publish", MatchXPath(
            f"{{jabber:component:accept}}iq/{{{PUBSUB}}}pubsub"), self._publish))

    def _publish(self, iq: Any) -> None:
        pubsub = iq.xml.find(f"{{{PUBSUB}}}pubsub")
        self.published.put_nowait((iq["from"].bare, pubsub))
        if self.fail is None:
            iq.reply().send()
        else:
            reply = iq.reply()
            reply["error"]["type"] = "cancel"
            reply["error"]["condition"] = self.fail
            reply.send()

    async def next(self, timeout: float = 15.0) -> tuple[str, dict[str, str], dict[str, str]]:
        """(publisher, summary fields, publish-options fields) of the next notification."""
        who, pubsub = await asyncio.wait_for(self.published.get(), timeout)
        def fields(x: Any) -> dict[str, str]:
            return {f.get("var"): f.findtext(f"{{{XDATA}}}value") for f in x}
        summary = pubsub.find(f".//{{{PUSH}}}notification/{{{XDATA}}}x")
        options = pubsub.find(f"{{{PUBSUB}}}publish-options/{{{XDATA}}}x")
        return str(who), fields(summary), fields(options) if options is not None else {}

    async def nothing(self, wait: float = 4.0) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(self.published.get(), wait)


async def app_server(srv: RunningServer) -> AppServer:
    app = AppServer()
    app.connect("127.0.0.1", srv.ports["component"])
    await asyncio.wait_for(app.started.wait(), 15)
    return app


async def online(user: str, srv: RunningServer, resource: str = "phone",
                 plugins: tuple[str, ...] = ()) -> XmppClient:
    c = XmppClient(f"{user}@localhost/{resource}", f"{user}-pw", plugins=plugins)
    assert await c.start(srv.port)
    return c


async def enable_push(c: XmppClient, node: str) -> None:
    """What Conversations sends after registering with its app server (§5)."""
    iq = c.make_iq_set()
    enable = ET.fromstring(
        f"<enable xmlns='{PUSH}' jid='{APP}' node='{node}'><x xmlns='{XDATA}' type='submit'>"
        f"<field var='FORM_TYPE'><value>{PUBSUB}#publish-options</value></field>"
        f"<field var='secret'><value>{node}-secret</value></field></x></enable>")
    iq.append(enable)
    await iq.send(timeout=10)


async def phone_enables_push_then_goes(srv: RunningServer, user: str) -> None:
    phone = await online(user, srv)
    await enable_push(phone, f"{user}-node")
    await phone.stop()


def test_offline_message_then_a_burst_then_an_app_server_error(srv: RunningServer) -> None:
    async def go() -> None:
        app = await app_server(srv)
        await phone_enables_push_then_goes(srv, "alice")
        bob = await online("bob", srv, "desk")
        bob.send_message(mto="alice@localhost", mbody="are you there?", mtype="chat")
        who, summary, options = await app.next()
        assert who == "alice@localhost"
        assert summary == {"FORM_TYPE": "urn:xmpp:push:summary", "message-count": "1",
                           "last-message-sender": "bob@localhost/desk",
                           "last-message-body": "are you there?"}
        assert options["secret"] == "alice-node-secret"
        await app.nothing(2.5)                          # one message, one notification
        for i in range(20):
            bob.send_message(mto="alice@localhost", mbody=f"burst {i}", mtype="chat")
        _, summary, _ = await app.next()
        assert summary["message-count"] == "20" and summary["last-message-body"] == "burst 19"
        await app.nothing(2.5)                          # 20 messages, one notification
        app.fail = "item-not-found"                     # the app uninstalled: node gone
        bob.send_message(mto="alice@localhost", mbody="hello?", mtype="chat")
        await app.next()
        bob.send_message(mto="alice@localhost", mbody="anyone?", mtype="chat")
        await app.nothing()                             # the registration was removed
        await bob.stop()
        app.disconnect()
    run(go())


def test_a_detached_phone_is_notified(srv: RunningServer) -> None:
    async def go() -> None:
        app = await app_server(srv)
        phone = await online("carol", srv, plugins=("xep_0198",))
        await enable_push(phone, "carol-node")
        sm = phone.plugin["xep_0198"]
        assert sm.enabled_out
        phone.transport.abort()                 # the radio dies: no </stream:stream>
        await asyncio.wait_for(phone.gone.wait(), 10)
        bob = await online("bob", srv, "desk2")
        bob.send_message(mto="carol@localhost", mbody="ring ring", mtype="chat")
        who, summary, _ = await app.next()
        assert who == "carol@localhost" and summary["message-count"] == "1"
        await bob.stop()
        app.disconnect()
    run(go())


def test_an_inactive_phone_is_notified_once_it_had_time_to_sleep(srv: RunningServer) -> None:
    async def go() -> None:
        app = await app_server(srv)
        phone = await online("dave", srv, plugins=("xep_0352",))
        await enable_push(phone, "dave-node")
        phone.plugin["xep_0352"].send_inactive()    # screen off; the socket stays open
        bob = await online("bob", srv, "desk3")
        got = asyncio.Event()
        phone.add_event_handler("message", lambda m: got.set())
        bob.send_message(mto="dave@localhost", mbody="psst", mtype="chat")
        await asyncio.wait_for(got.wait(), 10)          # it is delivered to the socket...
        who, summary, _ = await app.next()              # ...and the sleeping app is woken
        assert who == "dave@localhost" and summary["last-message-body"] == "psst"
        phone.plugin["xep_0352"].send_active()
        await asyncio.sleep(0.2)
        bob.send_message(mto="dave@localhost", mbody="awake now", mtype="chat")
        await app.nothing(3.5)
        await bob.stop()
        await phone.stop()
        app.disconnect()
    run(go())


def test_a_mention_in_a_members_only_group_notifies_an_offline_member(
        srv: RunningServer) -> None:
    async def go() -> None:
        app = await app_server(srv)
        await phone_enables_push_then_goes(srv, "fay")
        erin = await online("erin", srv, "desk", plugins=("xep_0030", "xep_0045"))
        muc = erin.plugin["xep_0045"]
        pres, *_ = await muc.join_muc_wait(ROOM, "erin", timeout=10)
        form = await muc.get_room_config(ROOM, timeout=10)
        for var, value in (("muc#roomconfig_persistentroom", True),
                           ("muc#roomconfig_membersonly", True)):
            form.field[var]["value"] = value
        await muc.set_room_config(ROOM, form, timeout=10)
        await muc.set_affiliation(ROOM, "member", jid="fay@localhost", timeout=10)
        erin.send_message(mto=ROOM, mbody="fay: dinner is at 8", mtype="groupchat")
        who, summary, _ = await app.next()
        assert who == "fay@localhost"
        assert summary["last-message-sender"] == f"{ROOM}/erin"
        assert summary["last-message-body"] == "fay: dinner is at 8"
        await erin.stop()
        app.disconnect()
    run(go())
