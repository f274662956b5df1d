# tests: modules/muc/, storage/muc.py, xmppd/router.py
"""Group chats (XEP-0045) driven by slixmpp's xep_0045, xep_0249 and xep_0313 plugins over
real TCP + STARTTLS, on both backend pairs: a members-only persistent group where every member
gets every message once, the refusals, history, kick and ban, both kinds of invitation, and a
restart after which the room, its configuration, its members and its archive are back."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from slixmpp.exceptions import IqError, PresenceError

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import RunningServer, ServerFactory

SERVICE = "conference.localhost"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace")


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(users=USERS)


class Member(XmppClient):
    """A client with the MUC plugins that queues room traffic per kind."""

    def __init__(self, user: str, resource: str = "r") -> None:
        super().__init__(f"{user}@localhost/{resource}", f"{user}-pw",
                         plugins=("xep_0030", "xep_0045", "xep_0249", "xep_0313", "xep_0359"))
        self.user = user
        self.groupchat: asyncio.Queue[Any] = asyncio.Queue()
        self.presences: asyncio.Queue[Any] = asyncio.Queue()
        self.invites: asyncio.Queue[Any] = asyncio.Queue()
        self.add_event_handler("groupchat_message", self.groupchat.put_nowait)
        self.add_event_handler("groupchat_presence", self.presences.put_nowait)
        self.add_event_handler("groupchat_invite", self.invites.put_nowait)
        self.add_event_handler("groupchat_direct_invite", self.invites.put_nowait)

    @property
    def muc(self) -> Any:
        return self.plugin["xep_0045"]

    async def join(self, room: str, nick: str | None = None, **kw: Any) -> Any:
        return await self.muc.join_muc_wait(room, nick or self.user, timeout=10, **kw)

    async def settle(self) -> None:
        """Everything the server sent us before now has arrived."""
        await self.plugin["xep_0199"].ping("localhost", timeout=10)

    def drain(self, q: asyncio.Queue[Any]) -> list[Any]:
        out = []
        while not q.empty():
            out.append(q.get_nowait())
        return out

    async def presence_with(self, code: int, timeout: float = 10.0) -> Any:
        async def find() -> Any:
            while True:
                p = await self.presences.get()
                if code in p["muc"]["status_codes"]:
                    return p
        return await asyncio.wait_for(find(), timeout)


async def start(server: RunningServer, *users: str) -> list[Member]:
    clients = [Member(u) for u in users]
    for c in clients:
        assert await c.start(server.port)
    return clients


async def stop(*clients: Member) -> None:
    for c in clients:
        await c.stop()


async def create_group(owner: Member, room: str, *, members: tuple[str, ...] = (),
                       **fields: Any) -> None:
    """Create a reserved room: join (201), fill the configuration form, add members."""
    pres, _, _, _ = await owner.join(room)
    assert 201 in pres["muc"]["status_codes"]
    form = await owner.muc.get_room_config(room, timeout=10)
    values = {"muc#roomconfig_persistentroom": True, "muc#roomconfig_membersonly": True,
              "muc#roomconfig_roomname": room.split("@")[0]}
    values.update(fields)
    for var, value in values.items():
        form.field[var]["value"] = value
    await owner.muc.set_room_config(room, form, timeout=10)
    for user in members:
        await owner.muc.set_affiliation(room, "member", jid=f"{user}@localhost", timeout=10)


def test_members_only_group_everyone_gets_every_message_once(server: RunningServer) -> None:
    room = f"family@{SERVICE}"

    async def go() -> None:
        alice, bob, carol, dave, erin = await start(server, "alice", "bob", "carol", "dave",
                                                    "erin")
        await create_group(alice, room, members=("bob", "carol", "dave"))
        assert set(await alice.muc.get_affiliation_list(room, "member", timeout=10)) == \
            {"bob@localhost", "carol@localhost", "dave@localhost"}
        members = [alice, bob, carol, dave]
        for m in (bob, carol, dave):
            pres, _, occupants, _ = await m.join(room)
            assert pres["muc"]["affiliation"] == "member"
            assert pres["muc"]["role"] == "participant"
        # A non-member is refused with <registration-required/> (XEP-0045 §7.2.7).
        with pytest.raises(PresenceError) as refused:
            await erin.join(room)
        assert refused.value.condition == "registration-required"
        for m in members:
            await m.settle()
            m.drain(m.groupchat)
        sent = []
        for i, m in enumerate(members * 3):
            body = f"{m.user} says {i}"
            m.send_message(mto=room, mbody=body, mtype="groupchat")
            sent.append(body)
        for m in members:
            got = [await asyncio.wait_for(m.groupchat.get(), 10) for _ in sent]
            await m.settle()
            assert m.drain(m.groupchat) == []                       # nothing twice
            assert sorted(g["body"] for g in got) == sorted(sent)
            assert all(g["stanza_id"]["by"] == room for g in got)    # XEP-0359
            assert len({g["stanza_id"]["id"] for g in got}) == len(sent)
        await stop(alice, bob, carol, dave, erin)
    run(go())


def test_history_on_join(server: RunningServer) -> None:
    room = f"history@{SERVICE}"

    async def go() -> None:
        alice, bob = await start(server, "alice", "bob")
        await create_group(alice, room, members=("bob",))
        for i in range(5):
            alice.send_message(mto=room, mbody=f"old {i}", mtype="groupchat")
        await alice.settle()
        _, subject, _, history = await bob.join(room, maxstanzas=3)
        assert [h["body"] for h in history] == ["old 2", "old 3", "old 4"]
        assert all(h["delay"]["from"] == room for h in history)      # XEP-0045 §7.2.15
        assert not subject["subject"]                               # none set yet
        await stop(alice, bob)
    run(go())


def test_kick_and_ban_by_an_admin_refused_for_a_plain_member(server: RunningServer) -> None:
    room = f"strict@{SERVICE}"

    async def go() -> None:
        alice, bob, carol, dave = await start(server, "alice", "bob", "carol", "dave")
        await create_group(alice, room, members=("bob", "carol", "dave"))
        await alice.muc.set_affiliation(room, "admin", jid="bob@localhost", timeout=10)
        for m in (bob, carol, dave):
            await m.join(room)
        # A plain member may neither kick nor ban (§8.2, §9.1: <forbidden/>).
        with pytest.raises(IqError) as refused:
            await carol.muc.set_role(room, "dave", "none", timeout=10)
        assert refused.value.condition == "forbidden"
        with pytest.raises(IqError) as refused:
            await carol.muc.set_affiliation(room, "outcast", jid="dave@localhost", timeout=10)
        assert refused.value.condition == "forbidden"
        # The admin kicks dave (307) ...
        dave.drain(dave.presences)
        await bob.muc.set_role(room, "dave", "none", reason="calm down", timeout=10)
        kicked = await dave.presence_with(307)
        assert kicked["type"] == "unavailable" and 110 in kicked["muc"]["status_codes"]
        seen = await carol.presence_with(307)
        assert seen["from"].resource == "dave"
        # ... who may come back, then bans him (301); he may not.
        await dave.join(room)
        await bob.muc.set_affiliation(room, "outcast", jid="dave@localhost", reason="enough",
                                      timeout=10)
        banned = await dave.presence_with(301)
        assert banned["muc"]["affiliation"] == "outcast"
        with pytest.raises(PresenceError) as refused_entry:
            await dave.join(room)
        assert refused_entry.value.condition == "forbidden"
        # An admin cannot ban the owner (§9.1: <not-allowed/>).
        with pytest.raises(IqError) as refused:
            await bob.muc.set_affiliation(room, "outcast", jid="alice@localhost", timeout=10)
        assert refused.value.condition == "not-allowed"
        await stop(alice, bob, carol, dave)
    run(go())


def test_mediated_and_direct_invitations(server: RunningServer) -> None:
    closed, open_room = f"invited@{SERVICE}", f"open@{SERVICE}"

    async def go() -> None:
        alice, frank, grace = await start(server, "alice", "frank", "grace")
        await create_group(alice, closed)
        # Mediated (XEP-0045 §7.8.2): through the room, which makes frank a member.
        alice.muc.invite(closed, "frank@localhost", reason="join us")
        inv = await asyncio.wait_for(frank.invites.get(), 10)
        assert inv["from"] == closed
        assert inv["muc"]["invite"]["reason"] == "join us"
        pres, _, _, _ = await frank.join(closed)
        assert pres["muc"]["affiliation"] == "member"
        # Direct (XEP-0249): client to client, then grace enters an open room.
        await create_group(alice, open_room, **{"muc#roomconfig_membersonly": False})
        alice.plugin["xep_0249"].send_invitation("grace@localhost", open_room,
                                                 reason="come along")
        direct = await asyncio.wait_for(grace.invites.get(), 10)
        assert direct["from"].bare == "alice@localhost"
        assert direct["groupchat_invite"]["jid"] == open_room
        pres, _, _, _ = await grace.join(direct["groupchat_invite"]["jid"])
        assert pres["muc"]["role"] == "participant"
        await stop(alice, frank, grace)
    run(go())


def test_room_config_affiliations_and_archive_survive_a_restart(server: RunningServer) -> None:
    room = f"lasting@{SERVICE}"

    async def before() -> None:
        alice, bob, carol = await start(server, "alice", "bob", "carol")
        await create_group(alice, room, members=("bob", "carol"),
                           **{"muc#roomconfig_roomname": "Lasting",
                              "muc#roomconfig_whois": "anyone"})
        await bob.join(room)
        alice.send_message(mto=room, mbody="before the restart", mtype="groupchat")
        alice.muc.set_subject(room, "Plans")
        await asyncio.wait_for(bob.groupchat.get(), 10)
        await bob.settle()
        await stop(alice, bob, carol)

    async def after() -> None:
        alice, bob, erin = await start(server, "alice", "bob", "erin")
        form = await alice.muc.get_room_config(room, timeout=10)
        values = form.get_values()
        assert values["muc#roomconfig_roomname"] == "Lasting"
        assert values["muc#roomconfig_membersonly"] is True
        assert values["muc#roomconfig_persistentroom"] is True
        assert values["muc#roomconfig_whois"] == "anyone"
        assert set(await alice.muc.get_affiliation_list(room, "member", timeout=10)) == \
            {"bob@localhost", "carol@localhost"}
        assert await alice.muc.get_affiliation_list(room, "owner", timeout=10) == \
            ["alice@localhost"]
        with pytest.raises(PresenceError) as refused:
            await erin.join(room)
        assert refused.value.condition == "registration-required"
        # MUC MAM (XEP-0313 on the room JID) returns what was said before.
        result = await bob.plugin["xep_0313"].retrieve(jid=room, timeout=10)
        bodies = [r["mam_result"]["forwarded"]["stanza"]["body"]
                  for r in result["mam"]["results"]]
        assert bodies == ["before the restart", ""]                 # and the subject change
        _, subject, _, history = await bob.join(room)
        assert subject["subject"] == "Plans"
        assert [h["body"] for h in history] == ["before the restart"]
        await stop(alice, bob, erin)

    run(before())
    server.restart()
    run(after())
