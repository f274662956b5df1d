"""Command parsing, `!help` text, handler validation and the `Message` context (no server:
a recording outbox stands in for the connection)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from xmppd_bot import JID, Bot, ConfigError, Message
from xmppd_bot.commands import help_text, make_command, parse_command


@pytest.mark.parametrize("body, parsed", [
    ("!echo hello world", ("echo", "hello world")),
    ("/echo  spaced  out ", ("echo", "spaced  out")),
    ("!ECHO Caps", ("echo", "Caps")),
    ("  !help", ("help", "")),
    ("!remind 10m call\nmum", ("remind", "10m call\nmum")),
    ("!help\nmore", ("help", "more")),
    ("!", None), ("/", None), ("hello", None), ("! echo", None), ("/usr/bin", None),
    ("!a+b", None), ("", None)])
def test_commands_are_bang_or_slash_then_a_name(body: str, parsed: tuple[str, str] | None) -> None:
    assert parse_command(body) == parsed


def add(msg: Message, args: str) -> str:
    """Add numbers up.

    Example: !add 2 3
    """
    return ""


def shout(msg: Message, args: str) -> str:
    """Say it louder."""
    return ""


def bare(msg: Message, args: str) -> str:
    return ""


def test_help_lists_commands_by_name_with_their_first_docstring_line() -> None:
    cmds = {c.name: c for c in (make_command("shout", shout, None),
                                make_command("add", add, "<n> <n> ..."),
                                make_command("!bare", bare, None))}
    assert help_text(cmds) == ("Commands:\n"
                               "  !add <n> <n> ... — Add numbers up.\n"
                               "  !bare\n"
                               "  !shout — Say it louder.\n"
                               "  !help [command] — Show this list, or one command's help.")
    assert help_text(cmds, "add") == "!add <n> <n> ...\nAdd numbers up.\n\nExample: !add 2 3"
    assert help_text(cmds, "!shout") == "!shout\nSay it louder."
    assert help_text(cmds, "nope") == "No command !nope. Send !help for the list."


def test_handlers_with_the_wrong_shape_are_refused_where_they_are_defined() -> None:
    bot = Bot("b@example.org", "p")

    def no_args(msg: Message) -> str:
        return ""
    with pytest.raises(ConfigError, match=r"@bot.command no_args \(test_commands.py:\d+\) "
                                          r"must accept \(msg, args\)"):
        bot.command("x")(no_args)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"must accept \(msg\)"):
        bot.on_message(add)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"must accept \(\)"):
        bot.every(5)(add)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"must accept \(jid\)"):
        bot.on_subscription_request(add)  # type: ignore[arg-type]


def test_registration_mistakes_are_config_errors() -> None:
    bot = Bot("b@example.org", "p")
    bot.command("add")(add)
    with pytest.raises(ConfigError, match="registered twice"):
        bot.command("ADD")(shout)
    with pytest.raises(ConfigError, match="bad command name"):
        bot.command("two words")(shout)
    with pytest.raises(ConfigError, match="must be more than 0"):
        bot.every(0)
    with pytest.raises(ConfigError, match="not a duration"):
        bot.every("often")
    with pytest.raises(ConfigError, match="expected room@service"):
        bot.join("conference.example.org")
    with pytest.raises(ConfigError, match="expected room@service"):
        bot.join("room@conference.example.org/nick")


def test_describe_summarises_the_bot_and_needs_a_handler() -> None:
    bot = Bot("b@example.org", "p", server="127.0.0.1:5222", tls_verify=False)
    with pytest.raises(ConfigError, match="has no handlers"):
        bot.describe()
    bot.command("add")(add)
    bot.every("1m")(lambda: None)
    bot.join("lounge@conference.example.org")
    text = bot.describe()
    assert "bot: b@example.org/bot (from argument)" in text
    assert "server: 127.0.0.1:5222, TLS certificate NOT verified" in text
    assert "commands: !add, !help" in text and "every 60 s:" in text
    assert "room: lounge@conference.example.org as b" in text


@dataclass
class Recorder:
    sent: list[tuple[str, str, str, str, str | None]] = field(default_factory=list)

    def send_text(self, to: JID, text: str, kind: str, thread: str | None) -> None:
        self.sent.append(("text", str(to), text, kind, thread))

    def send_displayed(self, to: JID, ref: str, kind: str, thread: str | None) -> None:
        self.sent.append(("displayed", str(to), ref, kind, thread))


def test_reply_keeps_the_conversation_and_its_thread() -> None:
    out = Recorder()
    msg = Message(sender=JID.parse("alice@example.org/phone"), body="hi", thread="t1",
                  id="m1", kind="normal", outbox=out)
    msg.reply("hello")
    room = Message(sender=JID.parse("lounge@conference.example.org/alice"), body="hi",
                   is_group=True, room=JID.parse("lounge@conference.example.org"),
                   nick="alice", kind="groupchat", outbox=out)
    room.reply("hello all")
    assert out.sent == [("text", "alice@example.org/phone", "hello", "normal", "t1"),
                        ("text", "lounge@conference.example.org", "hello all", "groupchat",
                         None)]


def test_mark_read_only_for_markable_one_to_one_messages() -> None:
    out = Recorder()
    sender = JID.parse("alice@example.org/phone")
    assert Message(sender=sender, body="x", id="m1", outbox=out).mark_read() is False
    assert Message(sender=sender, body="x", markable=True, outbox=out).mark_read() is False
    assert Message(sender=sender, body="x", id="m2", markable=True, outbox=out).mark_read()
    # XEP-0333 §4.3: in a room the marker names the room's stanza-id, sent to the room
    room = JID.parse("lounge@conference.example.org")
    assert Message(sender=room.with_resource("bob"), body="x", id="client-id", is_group=True,
                   room=room, nick="bob", kind="groupchat", room_stanza_id="room-id",
                   outbox=out).mark_read()
    assert out.sent == [("displayed", "alice@example.org/phone", "m2", "chat", None),
                        ("displayed", "lounge@conference.example.org", "room-id", "groupchat",
                         None)]


def test_a_message_is_frozen() -> None:
    msg = Message(sender=JID.parse("a@example.org/x"), body="x")
    with pytest.raises(AttributeError):
        msg.body = "y"  # type: ignore[misc]
