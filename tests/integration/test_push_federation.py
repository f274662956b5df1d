# tests: modules/push.py, xmppd/s2s/
"""XEP-0357 push to an app server on another server, over federation: two xmppd in the lab
(tests/harness/fedlab.py, dialback with self-signed certificates); the app server's push
service is a slixmpp client of the second one. The notification crosses the federation, and
the app server's error (crossing back) removes the registration."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.harness.backends import skip_or_fail
from tests.harness.fedlab import Lab, lab_available
from tests.harness.fedservers import XmppdServer, logs_of
from tests.integration.federation_checks import Client, Side

ONE, TWO = "xmppd.example", "xmppd2.example"
PUBSUB, PUSH, XDATA = "http://jabber.org/protocol/pubsub", "urn:xmpp:push:0", "jabber:x:data"


@pytest.fixture(scope="module")
def fed() -> Iterator[tuple[Side, Side]]:
    why = lab_available()
    if why:
        skip_or_fail(why)
    lab = Lab(ca=False)
    one = two = None
    try:
        one = XmppdServer(lab, ONE, lab.addr(1), extra='[modules.push]\ndelay = "1 s"\n')
        two = XmppdServer(lab, TWO, lab.addr(2))
        lab.add_domain(ONE, lab.addr(1), srv=[(0, 0, 5269, ONE)])
        lab.add_domain(TWO, lab.addr(2), srv=[(0, 0, 5269, TWO)])
        for user in ("alice", "carol"):
            one.register(user, f"{user}-pw")
        two.register("appserver", "appserver-pw")
        one.start()
        two.start()
        yield Side(one, "carol", "alice"), Side(two, "appserver", "appserver")
    except BaseException:
        if one is not None and two is not None:
            print(logs_of(one, two))
        raise
    finally:
        lab.close()


class RemoteAppServer(Client):
    def __init__(self, side: Side) -> None:
        super().__init__(f"appserver@{TWO}/push", "appserver-pw", side.server.address)
        self.published: asyncio.Queue[Any] = asyncio.Queue()
        self.fail: str | None = None
        self.register_handler(Callback("publish", MatchXPath(
            f"{{jabber:client}}iq/{{{PUBSUB}}}pubsub"), self._publish))

    def _publish(self, iq: Any) -> None:
        self.published.put_nowait((str(iq["from"]), iq.xml.find(f"{{{PUBSUB}}}pubsub")))
        reply = iq.reply()
        if self.fail is not None:
            reply["error"]["type"] = "cancel"
            reply["error"]["condition"] = self.fail
        reply.send()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_notifications_cross_the_federation(fed: tuple[Side, Side]) -> None:
    ours, theirs = fed

    async def go() -> None:
        app = RemoteAppServer(theirs)
        await app.login()
        phone = await ours.client("alice", "phone").login()
        iq = phone.make_iq_set()
        iq.append(ET.fromstring(f"<enable xmlns='{PUSH}' jid='{app.boundjid.full}' node='n'/>"))
        await iq.send(timeout=20)
        await phone.stop()
        carol = await ours.client("carol", "desk").login()
        carol.send_message(mto=f"alice@{ONE}", mbody="over there?", mtype="chat")
        who, pubsub = await asyncio.wait_for(app.published.get(), 30)
        assert who == f"alice@{ONE}"
        fields = {f.get("var"): f.findtext(f"{{{XDATA}}}value")
                  for f in pubsub.find(f".//{{{PUSH}}}notification/{{{XDATA}}}x")}
        assert fields["message-count"] == "1"
        assert fields["last-message-sender"] == f"carol@{ONE}/desk"
        app.fail = "item-not-found"
        carol.send_message(mto=f"alice@{ONE}", mbody="again", mtype="chat")
        await asyncio.wait_for(app.published.get(), 30)
        carol.send_message(mto=f"alice@{ONE}", mbody="and again", mtype="chat")
        with pytest.raises(asyncio.TimeoutError):       # the error removed it
            await asyncio.wait_for(app.published.get(), 4)
        await carol.stop()
        await app.stop()
    run(go())
