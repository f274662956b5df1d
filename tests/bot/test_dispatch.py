"""Which incoming messages reach which handler, and what goes back (no server: a recording
connection stands in; the same paths run against the real server in test_examples/test_bot).
Group-chat rules are here because the server's MUC arrives with issue 5."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from xmppd_bot import JID, Bot, Message
from xmppd_bot.client import Incoming

ROOM = JID.parse("lounge@conference.example.org")


@dataclass
class Recorder:
    """The part of `Connection` the dispatcher uses, recording what it sends."""

    jid: JID = JID.parse("bot@example.org/bot")
    rooms: dict[JID, str] = field(default_factory=lambda: {ROOM: "botnick"})
    contacts: set[JID] = field(default_factory=set)
    online: bool = True
    sent: list[tuple[Any, ...]] = field(default_factory=list)

    def send_text(self, to: JID, text: str, kind: str, thread: str | None,
                  oob_url: str | None = None) -> None:
        self.sent.append(("text", str(to), text, kind))

    def send_receipt(self, to: JID, ref: str, kind: str) -> None:
        self.sent.append(("receipt", str(to), ref, kind))

    def send_displayed(self, to: JID, ref: str, kind: str, thread: str | None) -> None:
        self.sent.append(("displayed", str(to), ref, kind))

    def send_presence(self, to: JID | None = None, kind: str | None = None,
                      status: str | None = None) -> None:
        self.sent.append(("presence", str(to), kind))

    def subscribed_to_us(self, who: JID) -> bool:
        return who.bare in self.contacts


def incoming(sender: str, body: str = "hi", kind: str = "chat", **kw: Any) -> Incoming:
    values: dict[str, Any] = dict(kind=kind, sender=JID.parse(sender), id="m1", body=body,
                                  thread=None, wants_receipt=False, markable=False,
                                  delayed=False, stanza_ids=())
    values.update(kw)
    return Incoming(**values)


def deliver(bot: Bot, *messages: Incoming, receipts: str = "everyone") -> Recorder:
    conn = Recorder(contacts={JID.parse("friend@example.org")})

    async def go() -> None:
        for m in messages:
            bot._dispatcher.incoming(conn, m, receipts)  # type: ignore[arg-type]
        await asyncio.gather(*bot._dispatcher.tasks)
    asyncio.run(go())
    return conn


def group_bot() -> tuple[Bot, list[Message]]:
    bot = Bot("bot@example.org", "p")
    seen: list[Message] = []

    @bot.on_group_message
    def room(msg: Message) -> None:
        seen.append(msg)

    @bot.command("ping")
    def ping(msg: Message, args: str) -> str:
        return "pong"
    return bot, seen


def test_group_messages_reach_group_handlers_with_room_and_nick() -> None:
    bot, seen = group_bot()
    conn = deliver(bot, incoming(f"{ROOM}/alice", "hello room", "groupchat", id="c1",
                                 stanza_ids=(("other.example", "x"), (str(ROOM), "r1"))))
    (msg,) = seen
    assert (msg.is_group, msg.room, msg.nick, msg.body, msg.kind) == \
        (True, ROOM, "alice", "hello room", "groupchat")
    assert msg.room_stanza_id == "r1"           # XEP-0333 §4.3: the room's own stanza-id
    assert conn.sent == []                      # no receipts in rooms (XEP-0184 §5.3)


def test_own_echo_history_notices_and_strange_rooms_are_not_handled() -> None:
    bot, seen = group_bot()
    deliver(bot,
            incoming(f"{ROOM}/botnick", kind="groupchat"),               # our own, reflected
            incoming(f"{ROOM}/alice", kind="groupchat", delayed=True),   # history on join
            incoming(str(ROOM), kind="groupchat"),                       # the room itself
            incoming("other@conference.example.org/alice", kind="groupchat"))
    assert seen == []


def test_commands_work_in_rooms_and_unknown_ones_stay_quiet_there() -> None:
    bot, seen = group_bot()
    conn = deliver(bot, incoming(f"{ROOM}/alice", "!ping", "groupchat"),
                   incoming(f"{ROOM}/alice", "!nope", "groupchat"))
    assert conn.sent == [("text", str(ROOM), "pong", "groupchat")]
    assert [m.body for m in seen] == ["!nope"]


def test_one_to_one_rules_receipts_own_account_headlines_errors() -> None:
    bot = Bot("bot@example.org", "p")
    seen: list[str] = []
    bot.on_message(lambda msg: seen.append(msg.body))
    conn = deliver(bot,
                   incoming("alice@example.org/phone", "a", wants_receipt=True, id="r1"),
                   incoming("alice@example.org/phone", "b", "normal", wants_receipt=True,
                            id="r2"),
                   incoming("alice@example.org/phone", "c", wants_receipt=True, id=None),
                   incoming("bot@example.org/other", "d"),      # our own account
                   incoming("news@example.org", "e", "headline"),
                   incoming("alice@example.org/phone", "f", "error"))
    assert seen == ["a", "b", "c"]
    assert conn.sent == [("receipt", "alice@example.org/phone", "r1", "chat"),
                         ("receipt", "alice@example.org/phone", "r2", "normal")]


def test_receipts_contacts_policy_asks_the_roster() -> None:
    bot = Bot("bot@example.org", "p")
    bot.on_message(lambda msg: None)
    conn = deliver(bot, incoming("friend@example.org/x", wants_receipt=True, id="f"),
                   incoming("stranger@example.org/x", wants_receipt=True, id="s"),
                   receipts="contacts")
    assert conn.sent == [("receipt", "friend@example.org/x", "f", "chat")]


def test_subscription_requests_follow_the_handler_or_stay_pending() -> None:
    bot = Bot("bot@example.org", "p")
    conn = Recorder()

    async def go(b: Bot) -> None:
        b._dispatcher.subscription(conn, JID.parse("alice@example.org"))  # type: ignore[arg-type]
        await asyncio.gather(*b._dispatcher.tasks)
    asyncio.run(go(bot))
    assert conn.sent == []                                   # no handler: pending
    bot.on_subscription_request(lambda jid: jid.local == "alice")
    asyncio.run(go(bot))

    async def refuse() -> None:
        mallory = JID.parse("mallory@example.org")
        bot._dispatcher.subscription(conn, mallory)  # type: ignore[arg-type]
        await asyncio.gather(*bot._dispatcher.tasks)
    asyncio.run(refuse())
    assert conn.sent == [("presence", "alice@example.org", "subscribed"),
                         ("presence", "mallory@example.org", "unsubscribed")]
