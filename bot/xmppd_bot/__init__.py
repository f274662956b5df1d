# tests: tests/bot/
"""xmppd.bot — write a chat bot for xmppd (or any XMPP server) in twenty lines.

    from xmppd.bot import Bot, Message

    bot = Bot("echo@example.org", "secret")

    @bot.command("echo")
    def echo(msg: Message, args: str) -> str:
        \"\"\"Say it back.\"\"\"
        return args

    if __name__ == "__main__":
        bot.run()

A thin, typed layer over slixmpp; see docs/bot-tutorial.md.
"""
from xmppd.bot.bot import Bot, Scheduled
from xmppd.bot.errors import (AuthError, BotError, ConfigError, ConnectError, OfflineError,
                              ReplacedError, RequestError, RoomError, TlsError, UploadError)
from xmppd.bot.message import Contact, Message
from xmppd.bot.timing import parse_duration
from stanzas.jid import JID

__all__ = ["AuthError", "Bot", "BotError", "ConfigError", "ConnectError", "Contact", "JID",
           "Message", "OfflineError", "ReplacedError", "RequestError", "RoomError", "Scheduled",
           "TlsError", "UploadError", "parse_duration"]
