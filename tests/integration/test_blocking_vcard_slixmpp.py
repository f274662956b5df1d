# tests: modules/blocking.py, modules/vcard.py, storage/kv.py
"""XEP-0191 blocking and XEP-0054/0153 vCards driven by slixmpp's xep_0191, xep_0054 and
xep_0153 plugins over real TCP + STARTTLS, on both backend pairs."""
from __future__ import annotations

import asyncio
import hashlib

import pytest
from slixmpp.exceptions import IqError

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import RunningServer, ServerFactory
from tests.integration.presence_helpers import Watcher, befriend


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    """The default test server, with users for every test here."""
    return server_factory(users=("alice", "bob", "carol", "dave", "erin", "frank", "grace"))


class Client(XmppClient):
    """An XmppClient that also queues blocking pushes."""

    def __init__(self, jid: str, password: str, plugins: tuple[str, ...] = ()) -> None:
        super().__init__(jid, password, plugins=("xep_0030", "xep_0191", "xep_0054") + plugins)
        self.pushes: asyncio.Queue[tuple[str, set[str]]] = asyncio.Queue()
        self.add_event_handler("blocked", lambda iq: self.pushes.put_nowait(
            ("block", {str(i["jid"]) for i in iq["block"]})))
        self.add_event_handler("unblocked", lambda iq: self.pushes.put_nowait(
            ("unblock", {str(i["jid"]) for i in iq["unblock"]})))

    async def next_push(self, timeout: float = 10.0) -> tuple[str, set[str]]:
        return await asyncio.wait_for(self.pushes.get(), timeout)


async def roundtrip(c: XmppClient) -> None:
    """Everything the server sent this client before now has arrived."""
    await c.plugin["xep_0199"].ping("localhost", timeout=10)


def test_block_and_unblock_with_pushes_and_enforcement(server: RunningServer) -> None:
    async def go() -> None:
        phone = Client("alice@localhost/phone", "alice-pw")
        laptop = Client("alice@localhost/laptop", "alice-pw")
        bob = Client("bob@localhost/pc", "bob-pw")
        for c in (phone, laptop, bob):
            assert await c.start(server.port)
        xep = phone.plugin["xep_0191"]
        assert await xep.get_blocked_jids(timeout=10) == set()
        await laptop.plugin["xep_0191"].get_blocked_jids(timeout=10)   # asks for pushes too

        await xep.block("bob@localhost", timeout=10)
        for c in (phone, laptop):
            assert await c.next_push() == ("block", {"bob@localhost"})
        assert await laptop.plugin["xep_0191"].get_blocked_jids(timeout=10) == {"bob@localhost"}

        # bob -> alice: refused as if she were offline (XEP-0191 §3.3)
        bob.send_message(mto="alice@localhost/phone", mbody="hello?", mtype="chat")
        err = await bob.next_message()
        assert err["type"] == "error" and err["error"]["condition"] == "service-unavailable"
        await roundtrip(phone)
        assert phone.inbox.empty()

        # alice -> bob: refused with <not-acceptable/><blocked/>
        phone.send_message(mto="bob@localhost", mbody="Can you hear me now?", mtype="chat")
        err = await phone.next_message()
        assert err["type"] == "error" and err["error"]["condition"] == "not-acceptable"
        assert err.xml.find("{jabber:client}error/{urn:xmpp:blocking:errors}blocked") is not None
        await roundtrip(bob)
        assert bob.inbox.empty()

        await laptop.plugin["xep_0191"].unblock("bob@localhost", timeout=10)
        for c in (phone, laptop):
            assert await c.next_push() == ("unblock", {"bob@localhost"})
        bob.send_message(mto="alice@localhost/phone", mbody="there you are", mtype="chat")
        got = await phone.next_message()
        assert got["body"] == "there you are" and got["type"] == "chat"
        for c in (phone, laptop, bob):
            await c.stop()
    run(go())


def test_blocklist_survives_a_restart(server: RunningServer) -> None:
    async def go_block() -> None:
        carol = Client("carol@localhost/x", "carol-pw")
        assert await carol.start(server.port)
        await carol.plugin["xep_0191"].block(["spam@example.net", "example.com"], timeout=10)
        await carol.stop()

    async def go_check() -> None:
        carol = Client("carol@localhost/x", "carol-pw")
        assert await carol.start(server.port)
        xep = carol.plugin["xep_0191"]
        assert await xep.get_blocked_jids(timeout=10) == {"spam@example.net", "example.com"}
        iq = carol.make_iq_set()
        iq.enable("unblock")                 # an empty <unblock/>: unblock everyone (§3.5)
        await iq.send(timeout=10)
        assert await xep.get_blocked_jids(timeout=10) == set()
        await carol.stop()
    run(go_block())
    server.restart()
    run(go_check())


def test_vcard_publish_and_read_by_a_contact(server: RunningServer) -> None:
    async def go() -> None:
        alice = Client("alice@localhost/phone", "alice-pw")
        bob = Client("bob@localhost/pc", "bob-pw")
        assert await alice.start(server.port) and await bob.start(server.port)
        card = alice.plugin["xep_0054"].make_vcard()
        card["FN"] = "Alice Liddell"
        card["NICKNAME"] = "alice"
        card["DESC"] = "Curiouser and curiouser"
        await alice.plugin["xep_0054"].publish_vcard(card, timeout=10)

        got = await bob.plugin["xep_0054"].get_vcard("alice@localhost", timeout=10)
        assert got["from"] == "alice@localhost"
        assert got["vcard_temp"]["FN"] == "Alice Liddell"
        assert got["vcard_temp"]["DESC"] == "Curiouser and curiouser"
        mine = await alice.plugin["xep_0054"].get_vcard("alice@localhost", timeout=10)
        assert mine["vcard_temp"]["NICKNAME"] == ["alice"]      # slixmpp: a list

        # someone without a vCard, and someone who does not exist: the same answer (§3.3)
        for who in ("carol@localhost", "nobody@localhost"):
            try:
                await bob.plugin["xep_0054"].get_vcard(who, timeout=10)
                raise AssertionError(f"{who} has no vCard")
            except IqError as e:
                assert e.iq["error"]["condition"] == "service-unavailable"
        await alice.stop()
        await bob.stop()
    run(go())


def test_avatar_set_with_xep_0153_is_served_with_its_hash(server: RunningServer) -> None:
    image = bytes(range(256)) * 8

    async def go() -> None:
        alice = Client("alice@localhost/avatar", "alice-pw", plugins=("xep_0153",))
        bob = Client("bob@localhost/pc", "bob-pw")
        assert await alice.start(server.port) and await bob.start(server.port)
        await alice.plugin["xep_0153"].set_avatar(avatar=image, mtype="image/png", timeout=10)
        got = await bob.plugin["xep_0054"].get_vcard("alice@localhost", timeout=10)
        assert got["vcard_temp"]["PHOTO"]["BINVAL"] == image
        assert got["vcard_temp"]["PHOTO"]["TYPE"] == "image/png"
        # too big for the server's 64 KiB limit: refused, the old card stays
        big = alice.plugin["xep_0054"].make_vcard()
        big["PHOTO"]["BINVAL"] = bytes(70 * 1024)
        try:
            await alice.plugin["xep_0054"].publish_vcard(big, timeout=10)
            raise AssertionError("a 70 KiB vCard was accepted")
        except IqError as e:
            assert e.iq["error"]["condition"] == "not-acceptable"
        got = await bob.plugin["xep_0054"].get_vcard("alice@localhost", timeout=10)
        assert hashlib.sha1(got["vcard_temp"]["PHOTO"]["BINVAL"]).hexdigest() == \
            hashlib.sha1(image).hexdigest()
        await alice.stop()
        await bob.stop()
    run(go())


def test_blocked_contact_sees_the_user_offline_until_unblocked(server: RunningServer) -> None:
    async def go() -> None:
        dave = Client("dave@localhost/phone", "dave-pw")
        erin = Client("erin@localhost/pc", "erin-pw")
        wd, we = Watcher(dave), Watcher(erin)
        assert await dave.start(server.port) and await erin.start(server.port)
        await befriend(dave, wd, erin, we)

        await dave.plugin["xep_0191"].block("erin@localhost", timeout=10)
        await we.wait_for("unavailable", "dave@localhost/phone")         # §3.3
        await roundtrip(dave)
        _drain(wd)                      # what the subscription dance left in the queues
        _drain(we)
        dave.send_presence(pstatus="busy, but not for erin")
        await roundtrip(dave)
        await roundtrip(erin)
        assert all(f != "dave@localhost/phone" for _, f, _ in _drain(we)), \
            "a blocked contact saw presence"
        erin.send_presence(pstatus="still there?")
        await roundtrip(erin)
        await roundtrip(dave)
        assert all(f != "erin@localhost/pc" for _, f, _ in _drain(wd))

        await dave.plugin["xep_0191"].unblock("erin@localhost", timeout=10)
        back = await we.wait_for("available", "dave@localhost/phone")    # §3.4
        assert back["status"] == "busy, but not for erin"
        await dave.stop()
        await erin.stop()
    run(go())


def test_contacts_get_the_avatar_hash_in_presence(server: RunningServer) -> None:
    image = b"\x89PNG" + bytes(range(256)) * 4
    digest = hashlib.sha1(image).hexdigest()

    async def go() -> None:
        frank = Client("frank@localhost/phone", "frank-pw", plugins=("xep_0153",))
        grace = Client("grace@localhost/pc", "grace-pw", plugins=("xep_0153",))
        wf, wg = Watcher(frank), Watcher(grace)
        assert await frank.start(server.port) and await grace.start(server.port)
        await befriend(frank, wf, grace, wg)
        avatars: asyncio.Queue[str] = asyncio.Queue()
        grace.add_event_handler("vcard_avatar_update", lambda p: avatars.put_nowait(
            p["vcard_temp_update"]["photo"]) if str(p["from"]) == "frank@localhost/plain"
            else None)

        await frank.plugin["xep_0153"].set_avatar(avatar=image, mtype="image/png", timeout=10)
        # a second device whose client knows nothing of avatars: the server stamps its presence
        plain = Client("frank@localhost/plain", "frank-pw")
        assert await plain.start(server.port)                  # sends <presence/> at start
        assert await asyncio.wait_for(avatars.get(), 10) == digest
        card = await grace.plugin["xep_0054"].get_vcard("frank@localhost", timeout=10)
        assert hashlib.sha1(card["vcard_temp"]["PHOTO"]["BINVAL"]).hexdigest() == digest
        for c in (plain, frank, grace):
            await c.stop()
    run(go())


def _drain(w: Watcher) -> list[tuple[str, str, object]]:
    out = []
    while not w.queue.empty():
        out.append(w.queue.get_nowait())
    return out
