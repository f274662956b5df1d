# tests: modules/muc/, storage/muc.py, xmppd/router.py
"""Group chats (XEP-0045) driven by slixmpp's xep_0045, xep_0249 and xep_0313 plugins over
real TCP + STARTTLS, on both backend pairs: a members-only persistent group where every member
gets every message once, the refusals, history, kick and ban, both kinds of invitation, a
temporary room's archive, configuration-change notices, members told of affiliation changes
of people not in the room, ghosts removed on a delivery error, a password that protects, and a
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
        self.config_notices: asyncio.Queue[Any] = asyncio.Queue()
        self.affiliation_notices: asyncio.Queue[Any] = asyncio.Queue()
        self.add_event_handler("groupchat_message", self.groupchat.put_nowait)
        self.add_event_handler("groupchat_config_status", self.config_notices.put_nowait)
        self.add_event_handler("groupchat_affiliation_change",
                               self.affiliation_notices.put_nowait)
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


def submit_form(owner: Member, **fields: Any) -> Any:
    """A muc#roomconfig form holding only `fields` (as some clients send: what they changed)."""
    form = owner.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/muc#roomconfig")
    for var, value in fields.items():
        form.add_field(var=var, ftype="boolean" if isinstance(value, bool) else "text-single",
                       value=value)
    return form


async def archive_bodies(member: Member, room: str) -> list[str]:
    result = await member.plugin["xep_0313"].retrieve(jid=room, timeout=10)
    return [r["mam_result"]["forwarded"]["stanza"]["body"] for r in result["mam"]["results"]]


def test_temporary_room_keeps_an_archive_that_goes_with_it(server: RunningServer) -> None:
    """Issue 11 §2: archiving turned on with Prosody's field (ejabberd's is `mam`) in a room
    that is not persistent; the archive answers, and is gone with the room."""
    room = f"adhoc@{SERVICE}"

    async def go() -> None:
        alice, bob = await start(server, "alice", "bob")
        pres, _, _, _ = await alice.join(room)
        assert 201 in pres["muc"]["status_codes"]
        await alice.muc.set_room_config(
            room, submit_form(alice, **{"muc#roomconfig_enablearchiving": True}), timeout=10)
        pres, _, _, _ = await bob.join(room)
        assert 170 in pres["muc"]["status_codes"]                  # XEP-0045 §7.2.12
        alice.send_message(mto=room, mbody="said in passing", mtype="groupchat")
        await asyncio.wait_for(bob.groupchat.get(), 10)
        assert await archive_bodies(bob, room) == ["said in passing"]
        for m in (alice, bob):
            m.muc.leave_muc(room, m.user)
            await m.settle()
        # The room went away with its last occupant, and its archive with it: the same name
        # is a brand new room with an empty archive.
        pres, _, _, _ = await alice.join(room)
        assert 201 in pres["muc"]["status_codes"]
        await alice.muc.set_room_config(room, submit_form(alice, mam=True), timeout=10)
        assert await archive_bodies(alice, room) == []
        await alice.muc.set_room_config(room, submit_form(alice, mam=False), timeout=10)
        with pytest.raises(IqError) as refused:
            await archive_bodies(alice, room)
        assert refused.value.condition == "service-unavailable"
        await stop(alice, bob)
    run(go())


def test_configuration_changes_are_announced_from_the_start(server: RunningServer) -> None:
    """Issue 11 §3, XEP-0045 §10.2.1: 104 whenever the configuration changes while occupants
    are present, with 170-173 for privacy changes, including the first configuration."""
    room = f"notices@{SERVICE}"

    async def go() -> None:
        alice, bob = await start(server, "alice", "bob")
        await alice.join(room)
        form = await alice.muc.get_room_config(room, timeout=10)
        form.field["muc#roomconfig_whois"]["value"] = "anyone"
        await alice.muc.set_room_config(room, form, timeout=10)
        notice = await asyncio.wait_for(alice.config_notices.get(), 10)
        assert notice["from"] == room and notice["type"] == "groupchat"
        assert notice["muc"]["status_codes"] == {104, 170, 172}   # now logged, non-anonymous
        await bob.join(room)
        await alice.muc.set_room_config(
            room, submit_form(alice, **{"muc#roomconfig_roomname": "Notices"}), timeout=10)
        for m in (alice, bob):
            notice = await asyncio.wait_for(m.config_notices.get(), 10)
            assert notice["muc"]["status_codes"] == {104}
        await alice.muc.set_room_config(
            room, submit_form(alice, **{"muc#roomconfig_whois": "moderators"}), timeout=10)
        notice = await asyncio.wait_for(bob.config_notices.get(), 10)
        assert notice["muc"]["status_codes"] == {104, 173}
        await stop(alice, bob)
    run(go())


def test_members_see_who_was_added_or_removed(server: RunningServer) -> None:
    """Issue 11 §4: a private group (members-only, non-anonymous, as Conversations makes them):
    its occupants hear of affiliation changes of people who are not in the room."""
    room = f"private@{SERVICE}"

    async def go() -> None:
        alice, bob = await start(server, "alice", "bob")
        await create_group(alice, room, members=("bob",), **{"muc#roomconfig_whois": "anyone"})
        await alice.settle()
        added = alice.drain(alice.affiliation_notices)          # bob made a member, outside
        assert [(str(m["muc"]["jid"]), m["muc"]["affiliation"]) for m in added] == \
            [("bob@localhost", "member")]
        await bob.join(room)
        await alice.muc.set_affiliation(room, "member", jid="carol@localhost", timeout=10)
        for m in (alice, bob):
            added = await asyncio.wait_for(m.affiliation_notices.get(), 10)
            assert added["from"] == room
            assert (str(added["muc"]["jid"]), added["muc"]["affiliation"]) == \
                ("carol@localhost", "member")
        await alice.muc.set_affiliation(room, "none", jid="carol@localhost", timeout=10)
        removed = await asyncio.wait_for(bob.affiliation_notices.get(), 10)
        assert (str(removed["muc"]["jid"]), removed["muc"]["affiliation"]) == \
            ("carol@localhost", "none")
        # A change to an occupant is its presence, not such a message.
        await alice.muc.set_affiliation(room, "admin", jid="bob@localhost", timeout=10)
        await bob.presence_with(110)
        await bob.settle()
        assert bob.drain(bob.affiliation_notices) == []
        await stop(alice, bob)
    run(go())


def test_an_occupant_whose_messages_bounce_is_removed(server: RunningServer) -> None:
    """Issue 11 §5, XEP-0045 §18.1.2 "Ghost Users": a delivery error in answer to a groupchat
    message removes the occupant, with status 333 to everyone."""
    room = f"ghosts@{SERVICE}"

    async def go() -> None:
        alice, bob, carol = await start(server, "alice", "bob", "carol")
        await create_group(alice, room, **{"muc#roomconfig_membersonly": False})
        await bob.join(room)
        await carol.join(room)

        def bounce(msg: Any) -> None:
            if msg["mucnick"] == "alice":
                err = msg.reply(clear=False)        # to the room, as clients answer
                err["type"] = "error"
                err["id"] = msg["id"]
                err["error"]["type"] = "cancel"
                err["error"]["condition"] = "recipient-unavailable"
                err.send()
        bob.add_event_handler("groupchat_message", bounce)
        alice.send_message(mto=room, mbody="anyone there?", mtype="groupchat")
        for m in (alice, carol):
            gone = await m.presence_with(333)
            assert gone["from"].resource == "bob" and gone["type"] == "unavailable"
            assert gone["muc"]["role"] == "none"
        # bob is out: the next message reaches the others only (once carol has it, bob's copy,
        # had there been one, would have come before the answer to his ping).
        bob.del_event_handler("groupchat_message", bounce)
        await bob.settle()
        bob.drain(bob.groupchat)
        alice.send_message(mto=room, mbody="just us", mtype="groupchat")

        async def next_body(m: Member, body: str) -> None:
            while (await m.groupchat.get())["body"] != body:
                pass
        await asyncio.wait_for(next_body(carol, "just us"), 10)
        await bob.settle()
        assert [m["body"] for m in bob.drain(bob.groupchat)] == []
        await stop(alice, bob, carol)
    run(go())


def test_a_room_secret_protects_the_room(server: RunningServer) -> None:
    """Issue 11 §6: the owner fills in the password and leaves "Password Required to
    Enter?" as offered (off): the room is password-protected all the same."""
    room = f"secret@{SERVICE}"

    async def go() -> None:
        alice, erin = await start(server, "alice", "erin")
        await create_group(alice, room, **{"muc#roomconfig_membersonly": False,
                                           "muc#roomconfig_roomsecret": "open sesame"})
        values = (await alice.muc.get_room_config(room, timeout=10)).get_values()
        assert values["muc#roomconfig_passwordprotectedroom"] is True
        with pytest.raises(PresenceError) as refused:
            await erin.join(room)
        assert refused.value.condition == "not-authorized"            # XEP-0045 §7.2.6
        pres, _, _, _ = await erin.join(room, password="open sesame")
        assert pres["muc"]["role"] == "participant"
        # Turning protection off explicitly is honoured.
        form = await alice.muc.get_room_config(room, timeout=10)
        form.field["muc#roomconfig_passwordprotectedroom"]["value"] = False
        await alice.muc.set_room_config(room, form, timeout=10)
        erin.muc.leave_muc(room, "erin")
        await erin.settle()
        await erin.join(room)
        await stop(alice, erin)
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
