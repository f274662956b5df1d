# tests: modules/pep/, modules/caps.py, modules/private.py, modules/bookmarks.py, storage/pubsub.py
"""PEP, entity capabilities, avatars, OMEMO device lists and bookmarks driven by slixmpp's
xep_0060/0084/0115/0163/0048/0049/0402 plugins against the real server, on both backend pairs:
the acceptance of issue 6."""
from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0048.stanza import Bookmarks
from slixmpp.plugins.xep_0402.stanza import Conference
from slixmpp.xmlstream import ET

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import RunningServer, ServerFactory
from tests.integration.presence_helpers import Watcher, befriend

D = "localhost"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "kim", "leo")
DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"
AXOLOTL = "eu.siacs.conversations.axolotl"
TUNE = "http://jabber.org/protocol/tune"
BOOKMARKS = "urn:xmpp:bookmarks:1"
ERRORS = "http://jabber.org/protocol/pubsub#errors"
EVENT = "http://jabber.org/protocol/pubsub#event"


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(users=USERS)


class PepClient(XmppClient):
    """A client with caps (xep_0115) that registers '+notify' interest (xep_0163) in `nodes`
    before its initial presence, as Conversations and Gajim do, and queues PEP events."""

    def __init__(self, user: str, resource: str = "r", nodes: tuple[str, ...] = (),
                 plugins: tuple[str, ...] = ()) -> None:
        super().__init__(f"{user}@{D}/{resource}", f"{user}-pw",
                         plugins=("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163")
                         + plugins)
        self.nodes = nodes
        self.events: asyncio.Queue[tuple[str, str, str, Any]] = asyncio.Queue()
        self.add_event_handler("pubsub_publish", self._event)
        self.add_event_handler("pubsub_retract", self._event)

    def _started(self, _: Any) -> None:
        async def begin() -> None:
            for node in self.nodes:
                self.plugin["xep_0163"].add_interest(node)
            await self.plugin["xep_0115"].update_caps(broadcast=False)
            self.send_presence()
            if not self._ready.done():
                self._ready.set_result(True)
        asyncio.ensure_future(begin())

    def _event(self, msg: Any) -> None:
        # slixmpp calls this while it iterates the notification's items, and its stanza
        # objects share one iteration index: read the XML (one item per notification here).
        items = msg.xml.find(f"{{{EVENT}}}event/{{{EVENT}}}items")
        if items is None:
            return
        for item in items:
            self.events.put_nowait((str(msg["from"]), items.get("node"), item.get("id"), item))

    async def next_event(self, timeout: float = 10.0) -> tuple[str, str, str, Any]:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def sync(self) -> None:
        """A round trip: whatever the server sent before has arrived."""
        await self.plugin["xep_0199"].ping(D, timeout=10)

    def options(self, **fields: str) -> Any:
        form = self.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden",
                       value="http://jabber.org/protocol/pubsub#publish-options")
        for var, value in fields.items():
            form.add_field(var=f"pubsub#{var}", value=value)
        return form


async def friends(a: PepClient, b: PepClient) -> None:
    wa, wb = Watcher(a), Watcher(b)
    await befriend(a, wa, b, wb)


def devicelist(*ids: int) -> Any:
    el = ET.Element(f"{{{AXOLOTL}}}list")
    for i in ids:
        ET.SubElement(el, f"{{{AXOLOTL}}}device", id=str(i))
    return el


def tune(artist: str) -> Any:
    el = ET.Element(f"{{{TUNE}}}tune")
    ET.SubElement(el, f"{{{TUNE}}}artist").text = artist
    return el


def test_avatar_published_with_xep_0084_is_read_by_a_contact(server: RunningServer) -> None:
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    digest = hashlib.sha1(image).hexdigest()

    async def go() -> None:
        alice = PepClient("alice", plugins=("xep_0084",))
        bob = PepClient("bob", nodes=("urn:xmpp:avatar:metadata",), plugins=("xep_0084",))
        assert await alice.start(server.port) and await bob.start(server.port)
        await friends(alice, bob)
        await alice.plugin["xep_0084"].publish_avatar(image, timeout=10)
        await alice.plugin["xep_0084"].publish_avatar_metadata(
            {"id": digest, "type": "image/png", "bytes": len(image)}, timeout=10)
        sender, node, item_id, item = await bob.next_event()
        assert (sender, node, item_id) == (f"alice@{D}", "urn:xmpp:avatar:metadata", digest)
        info = item.find("{urn:xmpp:avatar:metadata}metadata/{urn:xmpp:avatar:metadata}info")
        assert info.get("id") == digest and int(info.get("bytes")) == len(image)
        got = await bob.plugin["xep_0084"].retrieve_avatar(f"alice@{D}", digest, timeout=10)
        data = got["pubsub"]["items"]["item"]["avatar_data"]["value"]
        assert data == image
        for c in (alice, bob):
            await c.stop()
    run(go())


def test_notify_interest_in_caps_decides_who_gets_the_event(server: RunningServer) -> None:
    async def go() -> None:
        carol = PepClient("carol")
        dave = PepClient("dave", nodes=(TUNE,))        # +notify in its caps
        erin = PepClient("erin")                        # caps, but no interest
        for c in (carol, dave, erin):
            assert await c.start(server.port)
        await friends(carol, dave)
        await friends(carol, erin)
        await carol.plugin["xep_0060"].publish(f"carol@{D}", TUNE, id="t1",
                                               payload=tune("Finzi"), timeout=10)
        sender, node, item_id, item = await dave.next_event()
        assert (sender, node, item_id) == (f"carol@{D}", TUNE, "t1")
        assert item.find(f"{{{TUNE}}}tune/{{{TUNE}}}artist").text == "Finzi"
        await erin.sync()
        await carol.sync()
        assert erin.events.empty() and carol.events.empty()
        for c in (carol, dave, erin):
            await c.stop()
    run(go())


def test_omemo_device_list_reaches_a_contact_and_a_stranger(server: RunningServer) -> None:
    async def go() -> None:
        frank = PepClient("frank", nodes=(DEVICELIST,))
        grace = PepClient("grace", nodes=(DEVICELIST,))
        heidi = PepClient("heidi", nodes=(DEVICELIST,))     # a stranger
        for c in (frank, grace, heidi):
            assert await c.start(server.port)
        await friends(frank, grace)
        frank.events = asyncio.Queue()                      # his own list is not the point
        await frank.plugin["xep_0060"].publish(
            f"frank@{D}", DEVICELIST, id="current", payload=devicelist(1234, 5678),
            options=frank.options(access_model="open"), timeout=10)
        sender, node, item_id, item = await grace.next_event()
        assert (sender, node, item_id) == (f"frank@{D}", DEVICELIST, "current")
        assert sorted(d.get("id") for d in item.iter(f"{{{AXOLOTL}}}device")) == \
            ["1234", "5678"]
        got = await heidi.plugin["xep_0060"].get_items(f"frank@{D}", DEVICELIST, timeout=10)
        ids = [d.get("id") for d in got.xml.iter(f"{{{AXOLOTL}}}device")]
        assert sorted(ids) == ["1234", "5678"]
        await heidi.sync()
        assert heidi.events.empty()                          # no subscription: no push
        for c in (frank, grace, heidi):
            await c.stop()
    run(go())


def test_presence_access_refuses_a_stranger(server: RunningServer) -> None:
    async def go() -> None:
        ivan = PepClient("ivan")
        judy = PepClient("judy")
        assert await ivan.start(server.port) and await judy.start(server.port)
        await ivan.plugin["xep_0060"].publish(f"ivan@{D}", TUNE, id="t1", payload=tune("x"),
                                              timeout=10)
        try:
            await judy.plugin["xep_0060"].get_items(f"ivan@{D}", TUNE, timeout=10)
            raise AssertionError("a stranger read a presence-access node")
        except IqError as e:
            # XEP-0060 §6.5.6
            assert e.iq["error"]["condition"] == "not-authorized"
            assert e.iq["error"]["type"] == "auth"
            assert e.iq.xml.find(f".//{{{ERRORS}}}presence-subscription-required") is not None
        for c in (ivan, judy):
            await c.stop()
    run(go())


def test_bookmarks_through_xep_0402_and_xep_0049(server: RunningServer) -> None:
    async def go() -> None:
        new = PepClient("kim", "new", nodes=(BOOKMARKS,), plugins=("xep_0402", "xep_0048"))
        old = PepClient("kim", "old", plugins=("xep_0048", "xep_0049"))
        assert await new.start(server.port) and await old.start(server.port)
        # XEP-0402 publish ...
        conf = Conference()
        conf["name"] = "Council of Oberon"
        conf["autojoin"] = True
        conf["nick"] = "Puck"
        await new.plugin["xep_0060"].publish(
            f"kim@{D}", BOOKMARKS, id="council@conference.underhill.org", payload=conf,
            options=new.options(persist_items="true", max_items="max",
                                send_last_published_item="never", access_model="whitelist"),
            timeout=10)
        # ... seen through XEP-0049
        got = await old.plugin["xep_0048"].get_bookmarks(method="xep_0049", timeout=10)
        rooms = {str(c["jid"]): c for c in got["private"]["bookmarks"]["conferences"]}
        assert set(rooms) == {"council@conference.underhill.org"}
        assert rooms["council@conference.underhill.org"]["nick"] == "Puck"
        assert rooms["council@conference.underhill.org"]["autojoin"] is True
        # and the reverse: XEP-0049 storage ...
        new.events = asyncio.Queue()
        storage = Bookmarks()
        storage.add_conference("council@conference.underhill.org", "Puck",
                               name="Council of Oberon", autojoin=True)
        storage.add_conference("orchard@conference.shakespeare.lit", "Romeo",
                               name="The Orchard", autojoin=False)
        await old.plugin["xep_0048"].set_bookmarks(storage, method="xep_0049", timeout=10)
        # ... is pushed to and read by the XEP-0402 client (only the new room changed)
        sender, node, item_id, _ = await new.next_event()
        assert (sender, node, item_id) == (f"kim@{D}", BOOKMARKS,
                                           "orchard@conference.shakespeare.lit")
        items = await new.plugin["xep_0060"].get_items(f"kim@{D}", BOOKMARKS, timeout=10)
        found = {i["id"]: i["conference"] for i in items["pubsub"]["items"]}
        assert set(found) == {"council@conference.underhill.org",
                              "orchard@conference.shakespeare.lit"}
        assert found["orchard@conference.shakespeare.lit"]["nick"] == "Romeo"
        assert found["orchard@conference.shakespeare.lit"]["name"] == "The Orchard"
        for c in (new, old):
            await c.stop()
    run(go())


def test_items_survive_a_restart(server: RunningServer) -> None:
    async def publish() -> None:
        leo = PepClient("leo")
        assert await leo.start(server.port)
        await leo.plugin["xep_0060"].publish(
            f"leo@{D}", DEVICELIST, id="current", payload=devicelist(42),
            options=leo.options(access_model="open"), timeout=10)
        await leo.plugin["xep_0060"].publish(f"leo@{D}", TUNE, id="t9", payload=tune("Elgar"),
                                             timeout=10)
        await leo.stop()

    async def check() -> None:
        stranger = PepClient("alice", "restart")
        me = PepClient("leo", "again", nodes=(TUNE,))       # own last item on login
        assert await stranger.start(server.port)
        got = await stranger.plugin["xep_0060"].get_items(f"leo@{D}", DEVICELIST, timeout=10)
        assert [d.get("id") for d in got.xml.iter(f"{{{AXOLOTL}}}device")] == ["42"]
        assert await me.start(server.port)
        sender, node, item_id, item = await me.next_event()
        assert (sender, node, item_id) == (f"leo@{D}", TUNE, "t9")
        assert item.find(f"{{{TUNE}}}tune/{{{TUNE}}}artist").text == "Elgar"
        for c in (stranger, me):
            await c.stop()
    run(publish())
    server.restart()
    run(check())
