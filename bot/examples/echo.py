# tests: tests/bot/test_examples.py
"""Echo bot: says back what you say, and marks it read.

Run:  XMPPD_BOT_JID=echo@localhost XMPPD_BOT_PASSWORD=secret xmppd-bot echo.py
"""
from xmppd_bot import Bot, Message

bot = Bot()  # settings from XMPPD_BOT_* variables or --config bot.toml


@bot.command("echo")
def echo(msg: Message, args: str) -> str:
    """Say the text back."""
    return args or "Echo what? Try: !echo hello"


@bot.command("whoami")
def whoami(msg: Message, args: str) -> str:
    """Tell you your address."""
    return f"You are {msg.sender}."


@bot.on_message
def parrot(msg: Message) -> str:
    msg.mark_read()
    return msg.body


if __name__ == "__main__":
    bot.run()
