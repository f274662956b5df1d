"""Features across nodes with real clients (slixmpp): each user on another node of three, and
every feature works as on one node (docs/CLUSTER.md)."""
from __future__ import annotations

import asyncio
import os

from tests.cluster.clients import D, Client, online, run
from tests.harness.cluster_proc import RunningCluster


def test_a_thousand_messages_each_way_arrive_once_in_order(cluster: RunningCluster) -> None:
    async def go() -> None:
        alice, bob = Client("alice"), Client("bob")
        await online(cluster.nodes[0].port, alice)
        await online(cluster.nodes[1].port, bob)
        for i in range(1000):
            alice.send_message(mto=f"bob@{D}", mbody=f"a{i}", mtype="chat")
            bob.send_message(mto=f"alice@{D}", mbody=f"b{i}", mtype="chat")
        await asyncio.gather(alice.all_acked(), bob.all_acked())
        to_bob = await bob.messages(1000)
        to_alice = await alice.messages(1000)
        assert [m["body"] for m in to_bob] == [f"a{i}" for i in range(1000)]
        assert [m["body"] for m in to_alice] == [f"b{i}" for i in range(1000)]
        await asyncio.sleep(0.5)
        assert alice.inbox.empty() and bob.inbox.empty()        # nothing doubled
        for c in (alice, bob):
            await c.stop()
    run(go())


def test_subscription_presence_roster_pushes_and_last_seen(cluster: RunningCluster) -> None:
    async def go() -> None:
        carol, dave = Client("carol"), Client("dave")
        await online(cluster.nodes[0].port, carol)
        await online(cluster.nodes[2].port, dave)
        for c in (carol, dave):
            await c.get_roster(timeout=10)          # roster pushes wanted (RFC 6121 §2.1.6)
        carol.send_presence_subscription(pto=f"dave@{D}")
        await carol.until(lambda: (f"dave@{D}", "none") in carol.pushes)
        await dave.until(lambda: dave.saw("subscribe", f"carol@{D}"))
        dave.send_presence(pto=f"carol@{D}", ptype="subscribed")
        await dave.until(lambda: (f"carol@{D}", "from") in dave.pushes)
        await carol.until(lambda: (f"dave@{D}", "to") in carol.pushes)
        await carol.until(lambda: carol.saw("available", f"dave@{D}/r"))
        # last seen (XEP-0012): dave leaves; carol sees him go and asks when
        await dave.stop()
        await carol.until(lambda: carol.saw("unavailable", f"dave@{D}/r"))
        last = await carol.plugin["xep_0012"].get_last_activity(f"dave@{D}", timeout=10)
        assert 0 <= int(last["last_activity"]["seconds"]) < 60
        await carol.stop()
    run(go())


def test_carbons_reach_a_users_resources_on_other_nodes(cluster: RunningCluster) -> None:
    async def go() -> None:
        phone, laptop, frank = Client("erin", "phone"), Client("erin", "laptop"), Client("frank")
        await online(cluster.nodes[0].port, phone)
        await online(cluster.nodes[1].port, laptop)
        await online(cluster.nodes[2].port, frank)
        for c in (phone, laptop):
            await c.plugin["xep_0280"].enable(timeout=10)
        frank.send_message(mto=f"erin@{D}/phone", mbody="to the phone", mtype="chat")
        got = await phone.next_message()
        assert got["body"] == "to the phone"
        await laptop.until(lambda: len(laptop.carbons) == 1)
        assert laptop.carbons[0]["carbon_received"]["body"] == "to the phone"
        phone.send_message(mto=f"frank@{D}", mbody="from the phone", mtype="chat")
        assert (await frank.next_message())["body"] == "from the phone"
        await laptop.until(lambda: len(laptop.carbons) == 2)
        assert laptop.carbons[1]["carbon_sent"]["body"] == "from the phone"
        for c in (phone, laptop, frank):
            await c.stop()
    run(go())


def test_a_second_login_with_the_same_resource_elsewhere_replaces_the_first(
        cluster: RunningCluster) -> None:
    async def go() -> None:
        first, second = Client("alice", "same"), Client("alice", "same")
        await online(cluster.nodes[0].port, first)
        await online(cluster.nodes[2].port, second)
        await asyncio.wait_for(first.gone.wait(), 10)
        assert first.stream_errors == ["conflict"]      # RFC 6120 §7.7.2.2
        bob = Client("bob")
        await online(cluster.nodes[1].port, bob)
        bob.send_message(mto=f"alice@{D}/same", mbody="still there?", mtype="chat")
        assert (await second.next_message())["body"] == "still there?"
        for c in (second, bob):
            await c.stop()
    run(go())


def test_resumption_on_another_node_resends_exactly_the_unacknowledged(
        cluster: RunningCluster) -> None:
    async def go() -> None:
        ned, oli = Client("dave", "mobile"), Client("carol", "desk")
        await online(cluster.nodes[0].port, ned)
        await online(cluster.nodes[1].port, oli)
        resumed = asyncio.Event()
        ned.add_event_handler("session_resumed", lambda _: resumed.set())
        for i in range(10):
            oli.send_message(mto=f"dave@{D}/mobile", mbody=f"m{i}", mtype="chat")
        got = [m["body"] for m in await ned.messages(10)]
        assert got == [f"m{i}" for i in range(10)]
        await ned.all_acked()                   # and ned told the server what it has
        ned.plugin["xep_0198"].send_ack()
        await oli.plugin["xep_0199"].ping(f"dave@{D}/mobile", timeout=10)
        ned.transport.abort()                   # the phone loses its network
        await asyncio.wait_for(ned.gone.wait(), 10)
        for i in range(10, 20):                 # these wait on n1, unacknowledged
            oli.send_message(mto=f"dave@{D}/mobile", mbody=f"m{i}", mtype="chat")
        await oli.all_acked()
        ned.connect(host="127.0.0.1", port=cluster.nodes[2].port)   # comes back elsewhere
        await asyncio.wait_for(resumed.wait(), 15)
        got = [m["body"] for m in await ned.messages(10)]
        assert got == [f"m{i}" for i in range(10, 20)]              # exactly those, once
        oli.send_message(mto=f"dave@{D}/mobile", mbody="after", mtype="chat")
        assert (await ned.next_message())["body"] == "after"         # routed to n3 now
        await ned.plugin["xep_0199"].ping(D, timeout=10)
        assert ned.inbox.empty()
        for c in (ned, oli):
            await c.stop()
    run(go())


def test_a_room_with_occupants_on_all_three_nodes(cluster: RunningCluster) -> None:
    room = "cross@conference.localhost"

    async def go() -> None:
        users = [Client(u, "muc", plugins=("xep_0045",)) for u in ("alice", "bob", "carol")]
        heard: dict[str, list[str]] = {c.boundjid.user: [] for c in users}
        joined: set[str] = set()                    # occupants alice saw come in
        users[0].add_event_handler("groupchat_presence", lambda p: (
            joined.add(p["muc"]["nick"]), users[0]._check()))
        for i, c in enumerate(users):
            c.add_event_handler("groupchat_message", lambda m, c=c: (
                heard[c.boundjid.user].append(f"{m['mucnick']}:{m['body']}"), c._check()))
            await online(cluster.nodes[i].port, c)
        muc = users[0].plugin["xep_0045"]
        await muc.join_muc_wait(room, "alice", timeout=10)          # creates it (§10.1)
        await muc.set_room_config(room, await muc.get_room_config(room, timeout=10),
                                  timeout=10)                       # an instant room
        for c in users[1:]:
            await c.plugin["xep_0045"].join_muc_wait(room, c.boundjid.user, timeout=10)
        roster = muc.get_roster(room)
        await users[0].until(lambda: {"bob", "carol"} <= joined)
        assert len(muc.get_roster(room)) == 3
        for c in users:
            c.send_message(mto=room, mbody=f"hello from {c.boundjid.user}", mtype="groupchat")
        want = sorted(f"{u}:hello from {u}" for u in ("alice", "bob", "carol"))
        for c in users:
            await c.until(lambda c=c: len(heard[c.boundjid.user]) >= 3)
        await asyncio.sleep(0.3)
        assert all(sorted(h) == want for h in heard.values()), heard
        assert roster is not None
        for c in users:
            await c.stop()
    run(go())


def test_pep_notifications_reach_contacts_on_other_nodes(cluster: RunningCluster) -> None:
    from tests.integration.presence_helpers import Watcher, befriend
    from tests.integration.test_pep_slixmpp import PepClient, tune

    async def go() -> None:
        frank = PepClient("frank", "pep")
        erin = PepClient("erin", "pep", nodes=("http://jabber.org/protocol/tune",))
        assert await frank.start(cluster.nodes[2].port)
        assert await erin.start(cluster.nodes[0].port)
        await befriend(frank, Watcher(frank), erin, Watcher(erin))
        await frank.plugin["xep_0060"].publish(f"frank@{D}", "http://jabber.org/protocol/tune",
                                               id="t1", payload=tune("Nina Simone"), timeout=10)
        sender, node, _, item = await erin.next_event()
        assert (sender, node) == (f"frank@{D}", "http://jabber.org/protocol/tune")
        artist = item.find("{http://jabber.org/protocol/tune}tune/"
                           "{http://jabber.org/protocol/tune}artist")
        assert artist is not None and artist.text == "Nina Simone"
        # a new resource of erin on a third node gets the last item at its initial presence
        late = PepClient("erin", "late", nodes=("http://jabber.org/protocol/tune",))
        assert await late.start(cluster.nodes[1].port)
        sender, node, _, _ = await late.next_event()
        assert (sender, node) == (f"frank@{D}", "http://jabber.org/protocol/tune")
        for c in (frank, erin, late):
            await c.stop()
    run(go())


def test_an_upload_made_through_one_node_is_served_by_another(cluster: RunningCluster) -> None:
    import aiohttp
    from slixmpp.jid import JID as SlixJID

    data = os.urandom(300_000)
    ports = [n.ports["http"] for n in cluster.nodes]

    async def go() -> None:
        alice = Client("alice", "up", plugins=("xep_0363",))
        await online(cluster.nodes[0].port, alice)
        iq = await alice.plugin["xep_0363"].request_slot(
            SlixJID("upload.localhost"), "photo.jpg", len(data), "image/jpeg", timeout=10)
        url = str(iq["http_upload_slot"]["put"]["url"])
        assert f":{ports[0]}/" in url
        on = [url.replace(f":{ports[0]}/", f":{p}/") for p in ports]
        async with aiohttp.ClientSession() as http:
            async with http.put(on[2], data=data, headers={"Content-Type": "image/jpeg"}) as r:
                assert r.status == 201                          # the slot is in PostgreSQL
            for u in on:
                async with http.get(u) as r:
                    assert r.status == 200 and await r.read() == data
        await alice.stop()
    run(go())
