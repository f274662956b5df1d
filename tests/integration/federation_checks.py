# tests: tests/integration/test_federation_xmppd.py, tests/integration/test_federation_prosody.py, tests/integration/test_federation_ejabberd.py
"""What every federation test module checks, whatever the other server is: users on both sides
(slixmpp clients) exchanging messages, receipts, offline messages, presence subscriptions and
group chats across the federation (tests/harness/fedlab.py runs the servers)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tests.harness.clients import XmppClient
from tests.harness.clients import run as run  # the test modules call checks.run(...)
from tests.harness.fedservers import LabServer


@dataclass
class Side:
    server: LabServer
    online: str         # a user who logs in for each test
    offline: str        # a user who is offline until a test logs them in

    def client(self, user: str, resource: str = "r", plugins: tuple[str, ...] = ()) -> Client:
        return Client(f"{user}@{self.server.domain}/{resource}", self.server.users[user],
                      self.server.address, plugins)


class Client(XmppClient):
    def __init__(self, jid: str, password: str, address: str,
                 plugins: tuple[str, ...] = ()) -> None:
        super().__init__(jid, password, plugins=("xep_0030", "xep_0184", "xep_0203",
                                                 *plugins))
        self.address = address
        self.receipts: asyncio.Queue[Any] = asyncio.Queue()
        self.presences: asyncio.Queue[Any] = asyncio.Queue()
        self.groupchat: asyncio.Queue[Any] = asyncio.Queue()
        self.add_event_handler("receipt_received", self.receipts.put_nowait)
        self.add_event_handler("presence_available", self.presences.put_nowait)
        self.add_event_handler("groupchat_message", self.groupchat.put_nowait)

    async def login(self) -> Client:
        assert await self.start(5222, host=self.address, timeout=20), f"{self.boundjid} login"
        return self

    async def chat(self, timeout: float = 20.0) -> Any:
        """The next chat/normal message with a body (receipts and errors are not skipped)."""
        while True:
            msg = await self.next_message(timeout)
            if msg["type"] == "error" or msg["body"]:
                return msg


async def messages_both_ways(ours: Side, theirs: Side) -> None:
    a, b = await ours.client(ours.online).login(), await theirs.client(theirs.online).login()
    try:
        a.send_message(mto=b.boundjid.full, mbody="hello from xmppd", mtype="chat")
        got = await b.chat()
        assert (str(got["from"]), got["body"], got["type"]) == (
            a.boundjid.full, "hello from xmppd", "chat"), got
        b.send_message(mto=a.boundjid.bare, mbody=f"hello from {theirs.server.name}",
                       mtype="chat")
        got = await a.chat()
        assert (str(got["from"]), got["body"]) == (b.boundjid.full,
                                                   f"hello from {theirs.server.name}"), got
    finally:
        await a.stop()
        await b.stop()


async def receipts_both_ways(ours: Side, theirs: Side) -> None:
    """XEP-0184: each side's client acknowledges; the receipt crosses back."""
    a, b = await ours.client(ours.online).login(), await theirs.client(theirs.online).login()
    try:
        for sender, recipient in ((a, b), (b, a)):
            msg = sender.make_message(mto=recipient.boundjid.full, mbody="ack me",
                                      mtype="chat")
            msg["request_receipt"] = True
            msg["id"] = f"receipt-{sender.boundjid.user}"
            msg.send()
            got = await recipient.chat()
            assert got["body"] == "ack me"
            receipt = await asyncio.wait_for(sender.receipts.get(), 20)
            assert receipt["receipt"] == msg["id"]
            assert str(receipt["from"]) == recipient.boundjid.full
    finally:
        await a.stop()
        await b.stop()


async def offline_across(sender_side: Side, recipient_side: Side, body: str) -> None:
    """A message to a user who is offline on the other server waits there (XEP-0160) and
    comes with a delay stamp (XEP-0203) when they log in."""
    sender = await sender_side.client(sender_side.online).login()
    witness = await recipient_side.client(recipient_side.online, "witness").login()
    try:
        to = f"{recipient_side.offline}@{recipient_side.server.domain}"
        sender.send_message(mto=to, mbody=body, mtype="chat")
        # Same stream, same order: once the witness has the next message, the remote server
        # has taken the first one.
        sender.send_message(mto=witness.boundjid.full, mbody="after " + body, mtype="chat")
        got = await witness.chat()
        assert got["body"] == "after " + body, got
        assert sender.inbox.empty(), sender.inbox.get_nowait()      # no bounce
        recipient = await recipient_side.client(recipient_side.offline, "later").login()
        try:
            got = await recipient.chat()
            assert (got["body"], str(got["from"].bare)) == (body, sender.boundjid.bare), got
            assert got["delay"]["stamp"] is not None
        finally:
            await recipient.stop()
    finally:
        await sender.stop()
        await witness.stop()


async def presence_subscription(ours: Side, theirs: Side) -> None:
    """RFC 6121 §3: ours subscribes to theirs, theirs approves (slixmpp auto-authorizes and
    subscribes back); each then sees the other's presence."""
    a, b = await ours.client(ours.online).login(), await theirs.client(theirs.online).login()
    try:
        a.send_presence_subscription(pto=b.boundjid.bare)
        seen = await _presence_from(a, b.boundjid.bare)
        assert str(seen["from"]) == b.boundjid.full
        seen = await _presence_from(b, a.boundjid.bare)
        assert str(seen["from"]) == a.boundjid.full
    finally:
        await a.stop()
        await b.stop()


async def subscription_states(ours: Side, theirs: Side) -> None:
    """After a mutual subscription both rosters say 'both' (RFC 6121 §3.1, Appendix A): the
    user's server tracks outbound subscription requests to remote contacts too."""
    a, b = await ours.client(ours.online, "roster").login(), \
        await theirs.client(theirs.online, "roster").login()
    try:
        a.send_presence_subscription(pto=b.boundjid.bare)
        await _presence_from(a, b.boundjid.bare)
        await _presence_from(b, a.boundjid.bare)
        # pings over the same streams: what was sent before them has been processed
        await a.plugin["xep_0199"].ping(theirs.server.domain, timeout=10)
        await b.plugin["xep_0199"].ping(ours.server.domain, timeout=10)
        await a.get_roster()
        await b.get_roster()
        states = (a.client_roster[b.boundjid.bare]["subscription"],
                  b.client_roster[a.boundjid.bare]["subscription"])
        assert states == ("both", "both"), states
    finally:
        await a.stop()
        await b.stop()


async def _presence_from(client: Client, bare: str, timeout: float = 20.0) -> Any:
    async def find() -> Any:
        while True:
            p = await client.presences.get()
            if str(p["from"].bare) == bare:
                return p
    return await asyncio.wait_for(find(), timeout)


async def muc_across(host: Side, guest: Side, room_name: str) -> None:
    """A user of `guest` joins a room on `host`'s MUC service; messages reach both."""
    owner = await host.client(host.online, "muc", plugins=("xep_0045",)).login()
    visitor = await guest.client(guest.online, "muc", plugins=("xep_0045",)).login()
    room = f"{room_name}@{host.server.muc}"
    try:
        muc = owner.plugin["xep_0045"]
        pres, _, _, _ = await muc.join_muc_wait(room, "owner", timeout=20)
        if 201 in pres["muc"]["status_codes"]:       # a new room: accept the default config
            form = await muc.get_room_config(room, timeout=20)
            await muc.set_room_config(room, form, timeout=20)
        await visitor.plugin["xep_0045"].join_muc_wait(room, "guest", timeout=20)
        visitor.send_message(mto=room, mbody="hi room", mtype="groupchat")
        for c in (owner, visitor):
            async def mine(c: Client = c) -> Any:
                while True:
                    m = await c.groupchat.get()
                    if m["body"] == "hi room":
                        return m
            got = await asyncio.wait_for(mine(), 20)
            assert str(got["from"]) == f"{room}/guest"
    finally:
        await owner.stop()
        await visitor.stop()
