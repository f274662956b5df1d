# tests: modules/offline.py, modules/receipts.py, modules/carbons.py, modules/mam/, modules/stream_mgmt/, modules/csi.py
"""Reliable messaging driven by slixmpp and its XEP plugins (0198, 0184, 0333, 0280, 0313,
0352, 0203) against the real server, on both backend pairs:

- 100 messages to an offline user arrive in order after login, each with a delay stamp, and
  the store is empty once the client acknowledged them; a client that drops its socket in the
  middle of the delivery without acknowledging gets them again at its next login;
- a receipt and a displayed marker that come back while the sender is offline reach it at
  login;
- carbons across three resources: received and sent copies, none for private messages;
- MAM: 500 messages paged forward and backward, filtered by contact and by time (the pages
  are computed from what was sent, so both backends must give the same answer);
- XEP-0198: an abrupt socket drop in the middle of 1,000 messages each way, then resumption:
  every message arrives exactly once;
- CSI: a presence flood is held while inactive, a chat message is delivered at once.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from slixmpp import JID

from storage.db import Database
from storage.offline import SqlOfflineStore
from storage.runner import ImmediateRunner
from tests.harness.backends import resolve
from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import RunningServer, ServerFactory
from stanzas.jid import JID as OurJID

D = "localhost"
USERS = ("ann", "ben", "cal", "dee", "eva", "fin", "gus", "hal", "ivy", "joe", "kim", "lou",
         "max", "ned", "oli", "pam", "quin", "ray")


@dataclass
class Env:
    server: RunningServer
    storage_url: str

    @property
    def port(self) -> int:
        return self.server.port

    def offline_count(self, user: str) -> int:
        db = Database(self.storage_url, runner=ImmediateRunner())
        try:
            return resolve(SqlOfflineStore(db).count(OurJID.parse(f"{user}@{D}")))
        finally:
            db.close()

    async def offline_emptied(self, user: str, timeout: float = 10) -> int:
        """The user's stored count once it is 0, or when `timeout` is up: acknowledged
        messages are deleted by a group commit after the ack, not before the next stanza."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (n := self.offline_count(user)) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        return n


@pytest.fixture(scope="module")
def env(server_factory: ServerFactory) -> Env:
    srv = server_factory(users=USERS)
    return Env(srv, srv.storage_url)


class Client(XmppClient):
    """A messaging client: stream management, receipts, markers, carbons, MAM, CSI, delay."""

    def __init__(self, user: str, resource: str = "r", *, resume: bool = True) -> None:
        super().__init__(f"{user}@{D}/{resource}", f"{user}-pw",
                         plugins=("xep_0198", "xep_0184", "xep_0333", "xep_0280", "xep_0313",
                                  "xep_0352", "xep_0203", "xep_0059"))
        self.plugin["xep_0198"].allow_resume = resume
        self.plugin["xep_0184"].auto_ack = False
        self.roster.auto_authorize = None       # subscriptions: the test answers (befriend)
        self.roster.auto_subscribe = False
        self.presences: list[Any] = []
        self._waits: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self.add_event_handler("presence", self._presence)
        for event in ("message", "stanza_acked"):
            self.add_event_handler(event, lambda _: self._check())

    def _presence(self, p: Any) -> None:
        self.presences.append(p)
        self._check()

    def _check(self) -> None:
        for pred, fut in list(self._waits):
            if not fut.done() and pred():
                fut.set_result(None)

    async def until(self, pred: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait for `pred`, checked at every message, presence and ack (no polling)."""
        if pred():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (pred, fut)
        self._waits.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
        finally:
            self._waits.remove(entry)

    async def all_acked(self) -> None:
        """Everything sent is handled by the server: XEP-0198 acks come only once it is
        durable (stored offline, archived) or delivered."""
        await self.waiting_queue.join()
        sm = self.plugin["xep_0198"]
        sm.request_ack()
        await self.until(lambda: not sm.unacked_queue)

    async def messages(self, n: int, timeout: float = 30.0) -> list[Any]:
        return [await self.next_message(timeout) for _ in range(n)]

    async def sync_presence(self, text: str) -> None:
        """Send a presence and wait for the server's echo of it: everything the server did
        for the earlier presence (offline delivery) is done by then (RFC 6121 §4.4.2)."""
        self.send_presence(pstatus=text)
        await self.until(lambda: any(p["from"] == self.boundjid and p["status"] == text
                                     for p in self.presences))

    def acknowledge(self) -> None:
        self.plugin["xep_0198"].send_ack()


async def online(*clients: Client, port: int) -> None:
    for c in clients:
        assert await c.start(port)


# -- offline storage ----------------------------------------------------------------------------

def test_offline_messages_arrive_in_order_with_a_delay_and_are_deleted_once_acked(
        env: Env) -> None:
    async def go() -> None:
        ann = Client("ann")
        await online(ann, port=env.port)
        for i in range(100):
            ann.send_message(mto=f"ben@{D}", mbody=f"offline {i}", mtype="chat")
        await ann.all_acked()                   # each ack after its commit (DESIGN.md ✓)
        assert env.offline_count("ben") == 100
        ben = Client("ben", "phone")
        ben.remove_handler("Stream Management Request Ack")  # acks only when the test says
        await online(ben, port=env.port)
        got = await ben.messages(100)
        assert [m["body"] for m in got] == [f"offline {i}" for i in range(100)]
        for m in got:
            assert m["delay"]["from"] == D and m["delay"]["stamp"] is not None
            assert str(m["from"]) == f"ann@{D}/r"
        assert env.offline_count("ben") == 100  # not acknowledged yet
        ben.acknowledge()
        again = Client("ben", "laptop")
        await online(again, port=env.port)
        await again.sync_presence("checked")
        assert again.inbox.empty()
        assert await env.offline_emptied("ben") == 0
        for c in (ann, ben, again):
            await c.stop()
    run(go())


@pytest.mark.parametrize("resume", [False, True], ids=["not-resumable", "resumable"])
def test_a_client_dropping_mid_delivery_without_acks_gets_them_again(env: Env,
                                                                   resume: bool) -> None:
    sender, user = ("cal", "dee") if resume else ("eva", "fin")

    async def go() -> None:
        s = Client(sender)
        await online(s, port=env.port)
        for i in range(100):
            s.send_message(mto=f"{user}@{D}", mbody=f"m{i}", mtype="chat")
        await s.all_acked()
        first = Client(user, "phone", resume=resume)
        first.remove_handler("Stream Management Request Ack")      # never acknowledges
        await online(first, port=env.port)
        got = await first.messages(30)
        assert [m["body"] for m in got] == [f"m{i}" for i in range(30)]
        first.transport.abort()                                     # the socket just goes
        await asyncio.wait_for(first.gone.wait(), 10)
        # a fresh login (same resource: a resumable leftover is replaced) gets all again
        second = Client(user, "phone")
        await online(second, port=env.port)
        got = await second.messages(100)
        assert [m["body"] for m in got] == [f"m{i}" for i in range(100)]
        second.acknowledge()
        await second.sync_presence("done")
        third = Client(user, "tablet")
        await online(third, port=env.port)
        await third.sync_presence("checked")
        assert third.inbox.empty() and await env.offline_emptied(user) == 0
        for c in (s, second, third):
            await c.stop()
    run(go())


# -- receipts and markers ---------------------------------------------------------------------

def test_receipt_and_displayed_marker_reach_an_offline_sender_at_login(env: Env) -> None:
    async def go() -> None:
        gus, hal = Client("gus"), Client("hal")
        await online(gus, hal, port=env.port)
        msg = gus.make_message(mto=f"hal@{D}", mbody="did you get this?", mtype="chat")
        msg["request_receipt"] = True
        msg.enable("markable")
        msg.send()
        await gus.all_acked()
        await gus.stop()                                     # gus leaves before the ticks
        got = await hal.next_message()
        assert got["body"] == "did you get this?" and got["request_receipt"]
        hal.plugin["xep_0184"].ack(got)
        hal.plugin["xep_0333"].send_marker(mto=got["from"], id=got["id"],
                                           marker="displayed", mtype="chat")
        await hal.all_acked()                                # both stored for gus
        back = Client("gus", "phone")
        receipts: list[str] = []
        displayed: list[str] = []
        back.add_event_handler("receipt_received", lambda m: (
            receipts.append(m["receipt"]), back._check()))
        back.add_event_handler("marker_displayed", lambda m: (
            displayed.append(m["displayed"]["id"]), back._check()))
        await online(back, port=env.port)
        await back.until(lambda: bool(receipts and displayed))
        assert receipts == [msg["id"]] and displayed == [msg["id"]]
        for c in (hal, back):
            await c.stop()
    run(go())


# -- carbons ------------------------------------------------------------------------------------

def test_carbons_across_three_resources(env: Env) -> None:
    async def go() -> None:
        r1, r2, r3 = (Client("ivy", r) for r in ("r1", "r2", "r3"))
        joe = Client("joe")
        await online(r1, r2, r3, joe, port=env.port)
        for c in (r1, r2, r3):
            await c.plugin["xep_0280"].enable()
        copies: dict[str, list[tuple[str, str]]] = {"r1": [], "r2": [], "r3": []}
        for name, c in (("r1", r1), ("r2", r2), ("r3", r3)):
            c.add_event_handler("carbon_received", lambda m, n=name, c=c: (copies[n].append(
                ("received", m["carbon_received"]["body"])), c._check()))
            c.add_event_handler("carbon_sent", lambda m, n=name, c=c: (copies[n].append(
                ("sent", m["carbon_sent"]["body"])), c._check()))
        joe.send_message(mto=f"ivy@{D}/r1", mbody="to r1", mtype="chat")
        assert (await r1.next_message())["body"] == "to r1"
        private = r1.make_message(mto=f"joe@{D}/r", mbody="private", mtype="chat")
        private.append(_element("<private xmlns='urn:xmpp:carbons:2'/>"))
        private.append(_element("<no-copy xmlns='urn:xmpp:hints'/>"))
        private.send()
        back = joe.make_message(mto=f"ivy@{D}/r1", mbody="private back", mtype="chat")
        back.append(_element("<private xmlns='urn:xmpp:carbons:2'/>"))
        back.append(_element("<no-copy xmlns='urn:xmpp:hints'/>"))
        back.send()
        assert (await r1.next_message())["body"] == "private back"
        r1.send_message(mto=f"joe@{D}", mbody="from r1", mtype="chat")
        for c in (r2, r3):
            await c.until(lambda c=c: len(copies[c.boundjid.resource]) >= 2)
        expected = [("received", "to r1"), ("sent", "from r1")]     # nothing private
        assert copies["r2"] == expected and copies["r3"] == expected
        assert [(await joe.next_message())["body"] for _ in range(2)] == ["private", "from r1"]
        assert copies["r1"] == []                            # the sender gets no copy
        for c in (r1, r2, r3, joe):
            await c.stop()
    run(go())


def _element(xml: str) -> Any:
    from xml.etree import ElementTree
    return ElementTree.fromstring(xml)


# -- MAM ----------------------------------------------------------------------------------------

def test_mam_500_messages_paged_forward_backward_by_contact_and_by_time(env: Env) -> None:
    async def go() -> None:
        kim, lou, max_ = Client("kim"), Client("lou"), Client("max")
        await online(kim, lou, max_, port=env.port)
        sent: list[tuple[str, str]] = []                     # (peer, body) in archive order
        peers = {"lou": lou, "max": max_}
        for block in range(50):                             # 10 messages from one sender
            if block % 2 == 0:
                sender = kim
                for i in range(block * 10, block * 10 + 10):
                    peer = "max" if i % 5 == 0 else "lou"
                    kim.send_message(mto=f"{peer}@{D}/r", mbody=f"#{i}", mtype="chat")
                    sent.append((peer, f"#{i}"))
            else:
                peer = "max" if block % 5 == 1 else "lou"
                sender = peers[peer]
                for i in range(block * 10, block * 10 + 10):
                    sender.send_message(mto=f"kim@{D}/r", mbody=f"#{i}", mtype="chat")
                    sent.append((peer, f"#{i}"))
            await sender.all_acked()    # archived: the next sender's messages come after
        mam = kim.plugin["xep_0313"]

        forward: list[Any] = []
        async for page in mam.iterate(rsm={"max": 40}):
            forward.append(page)
        assert [m["mam_result"]["forwarded"]["stanza"]["body"] for m in forward] == \
            [b for _, b in sent]
        ids = [m["mam_result"]["id"] for m in forward]
        stamps = [m["mam_result"]["forwarded"]["delay"]["stamp"] for m in forward]
        assert len(set(ids)) == 500 and stamps == sorted(stamps)

        backward: list[str] = []
        completes: list[bool] = []
        async for page in mam.retrieve(rsm={"max": 50}, iterator=True, reverse=True):
            bodies = [m["mam_result"]["forwarded"]["stanza"]["body"]
                      for m in page["mam"]["results"]]
            backward = bodies + backward                    # each page is chronological
            completes.append(page["mam_fin"]["complete"] in (True, "true"))
        assert backward == [b for _, b in sent]
        assert completes == [False] * 9 + [True]            # complete at the oldest page

        with_max: list[Any] = []
        async for msg in mam.iterate(with_jid=JID(f"max@{D}"), rsm={"max": 30}):
            with_max.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
        assert with_max == [b for p, b in sent if p == "max"]

        window: list[str] = []
        async for msg in mam.iterate(start=stamps[100], end=stamps[219], rsm={"max": 50}):
            window.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
        assert window == [b for _, b in sent[100:220]]
        first = await mam.retrieve(start=stamps[100], end=stamps[219], rsm={"max": 50})
        assert first["mam_fin"]["rsm"]["count"] == "120"     # the server caps a page at 50
        assert len(first["mam"]["results"]) == 50 and not first["mam_fin"]["complete"]
        for c in (kim, lou, max_):
            await c.stop()
    run(go())


# -- stream management ------------------------------------------------------------------------

def test_resumption_after_an_abrupt_drop_delivers_every_message_exactly_once(env: Env) -> None:
    n = 1000

    async def go() -> None:
        ned, oli = Client("ned"), Client("oli")
        await online(ned, oli, port=env.port)
        resumed = asyncio.Event()
        ned.add_event_handler("session_resumed", lambda _: resumed.set())
        got_ned: list[str] = []
        got_oli: list[str] = []
        ned.add_event_handler("message", lambda m: (got_ned.append(m["body"]), ned._check()))
        oli.add_event_handler("message", lambda m: (got_oli.append(m["body"]), oli._check()))

        async def send(c: Client, to: str, prefix: str, pause_at: int | None = None) -> None:
            for i in range(n):
                if i == pause_at:
                    await resumed.wait()
                c.send_message(mto=to, mbody=f"{prefix}{i}", mtype="chat")
                if i % 50 == 0:
                    await asyncio.sleep(0)                  # let the other side run
        from_oli = asyncio.ensure_future(send(oli, f"ned@{D}/r", "o"))
        from_ned = asyncio.ensure_future(send(ned, f"oli@{D}/r", "n", pause_at=n // 2))
        await oli.until(lambda: len(got_oli) >= n // 4)     # in the middle of both streams
        ned.transport.abort()                               # no </stream:stream>
        await asyncio.wait_for(ned.gone.wait(), 10)
        ned.connect(host="127.0.0.1", port=env.port)        # resumes (slixmpp has the SM-ID)
        await asyncio.wait_for(resumed.wait(), 15)
        await asyncio.gather(from_oli, from_ned)
        await ned.until(lambda: len(got_ned) >= n)
        await oli.until(lambda: len(got_oli) >= n)
        await ned.all_acked()
        await oli.all_acked()
        await ned.sync_presence("end")                      # anything late would be here
        await oli.sync_presence("end")
        assert sorted(got_ned) == sorted(f"o{i}" for i in range(n)) and len(got_ned) == n
        assert sorted(got_oli) == sorted(f"n{i}" for i in range(n)) and len(got_oli) == n
        assert got_ned == [f"o{i}" for i in range(n)]       # and in order
        for c in (ned, oli):
            await c.stop()
    run(go())


# -- CSI ----------------------------------------------------------------------------------------

def test_csi_holds_a_presence_flood_and_delivers_a_chat_message_at_once(env: Env) -> None:
    async def go() -> None:
        pam, quin = Client("pam"), Client("quin")
        await online(pam, quin, port=env.port)
        await befriend(pam, quin)
        pam.plugin["xep_0352"].send_inactive()
        await pam.plugin["xep_0199"].ping(D, timeout=10)    # the nonza is processed
        before = len(pam.presences)
        for i in range(50):
            quin.send_presence(pstatus=f"status {i}")
        await quin.sync_presence("last")                    # the flood went through
        quin.send_message(mto=f"pam@{D}/r", mbody="wake up", mtype="chat")
        msg = await pam.next_message()
        assert msg["body"] == "wake up"
        flood = [p for p in pam.presences[before:] if p["from"] == quin.boundjid]
        assert [p["status"] for p in flood] == ["last"]     # held: only the newest, first
        pam.plugin["xep_0352"].send_active()
        quin.send_presence(pstatus="active again")
        await pam.until(lambda: pam.presences[-1]["status"] == "active again")
        for c in (pam, quin):
            await c.stop()
    run(go())


async def befriend(a: Client, b: Client) -> None:
    """Mutual presence subscription through the protocol."""
    for asker, approver in ((a, b), (b, a)):
        asker.send_presence(pto=approver.boundjid.bare, ptype="subscribe")
        await approver.until(lambda: any(p["type"] == "subscribe" for p in approver.presences))
        approver.send_presence(pto=asker.boundjid.bare, ptype="subscribed")
        await asker.until(lambda: any(p["type"] == "subscribed" for p in asker.presences))
        approver.presences.clear()
        asker.presences.clear()
