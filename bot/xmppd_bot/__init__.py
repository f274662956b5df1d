# tests: tests/bot/test_tutorial.py, tests/bot/test_distribution.py
"""xmppd_bot — write a chat bot for xmppd (or any XMPP server) in twenty lines.

    from xmppd_bot import Bot, Message

    bot = Bot("echo@example.org", "secret")

    @bot.command("echo")
    def echo(msg: Message, args: str) -> str:
        \"\"\"Say it back.\"\"\"
        return args

    if __name__ == "__main__":
        bot.run()

A thin, typed layer over slixmpp; see docs/bot-tutorial.md.
"""
from xmppd_bot.bot import Bot, Scheduled
from xmppd_bot.errors import (AuthError, BotError, ConfigError, ConnectError, OfflineError,
                              ReplacedError, RequestError, RoomError, TlsError, UploadError)
from xmppd_bot.jid import JID
from xmppd_bot.message import Contact, Message
from xmppd_bot.timing import parse_duration

__all__ = ["AuthError", "Bot", "BotError", "ConfigError", "ConnectError", "Contact", "JID",
           "Message", "OfflineError", "ReplacedError", "RequestError", "RoomError", "Scheduled",
           "TlsError", "UploadError", "parse_duration"]
