# tests: tests/bot/test_commands.py, tests/bot/test_examples.py
"""The `Message` a handler receives: who sent what, and the two things a bot does with it —
answer (`reply`) and say it was read (`mark_read`, XEP-0333)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from xmppd_bot.jid import JID

__all__ = ["Contact", "Message", "Outbox"]

Kind = Literal["chat", "normal", "groupchat"]
Subscription = Literal["none", "to", "from", "both"]


@dataclass(frozen=True, slots=True)
class Contact:
    """A roster item (RFC 6121 §2.1.2).

    Attributes:
        jid: the contact's bare JID.
        name: the name the bot gave it ("" if none).
        subscription: "both": each sees the other's presence; "from": the contact sees the
            bot's; "to": the bot sees the contact's; "none".
        pending_out: the bot asked to see the contact's presence and awaits an answer.
        groups: roster groups.
    """

    jid: JID
    name: str = ""
    subscription: Subscription = "none"
    pending_out: bool = False
    groups: tuple[str, ...] = ()


class Outbox(Protocol):
    """What a Message needs from the connection (implemented by the bot's client)."""

    def send_text(self, to: JID, text: str, kind: Kind, thread: str | None) -> None: ...

    def send_displayed(self, to: JID, ref: str, kind: Kind, thread: str | None) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One incoming message with a body.

    Attributes:
        sender: who sent it: a full JID in one-to-one chats, the occupant JID
            (room@service/nick) in a group chat.
        body: the text.
        thread: the conversation thread (XEP-0201), if the sender set one; replies keep it.
        id: the sender's message id, if any.
        is_group: True for a message in a group chat (XEP-0045) the bot joined.
        room: the room's bare JID, in a group chat.
        nick: the sender's nickname in the room, in a group chat.
        markable: the sender asked to be told when the message is read (XEP-0333).
    """

    sender: JID
    body: str
    thread: str | None = None
    id: str | None = None
    is_group: bool = False
    room: JID | None = None
    nick: str | None = None
    markable: bool = False
    kind: Kind = "chat"
    room_stanza_id: str | None = field(default=None, repr=False)
    outbox: Outbox | None = field(default=None, repr=False, compare=False)

    def reply(self, text: str) -> None:
        """Answer in the same conversation: to the sender in a one-to-one chat (same thread),
        to the room in a group chat. Sent later if the bot is reconnecting."""
        if self.outbox is None:
            raise RuntimeError("this Message is not attached to a bot")
        if self.is_group and self.room is not None:
            self.outbox.send_text(self.room, text, "groupchat", self.thread)
        else:
            self.outbox.send_text(self.sender, text, self.kind, self.thread)

    def mark_read(self) -> bool:
        """Send a XEP-0333 <displayed/> marker for this message; True if one was sent.

        In one-to-one chats only messages that carry <markable/> get one (XEP-0333 §4.1: the
        sender asks; opportunistic markers in 1:1 chats are NOT RECOMMENDED, §5). In a group
        chat the marker goes to the room and names the room's XEP-0359 stanza-id (§4.3, "clients
        MUST always use the MUC-assigned id"), falling back to the message id.
        """
        if self.outbox is None:
            raise RuntimeError("this Message is not attached to a bot")
        if self.is_group and self.room is not None:
            ref = self.room_stanza_id or self.id
            if ref is None:
                return False
            self.outbox.send_displayed(self.room, ref, "groupchat", self.thread)
            return True
        if not self.markable or self.id is None:
            return False
        self.outbox.send_displayed(self.sender, self.id, self.kind, self.thread)
        return True
