# tests: tests/bot/test_examples.py
"""Moderator bot: watches a group chat for banned words; warns once, kicks on repeat.

The bot must be a moderator of the room (make it an admin or owner, XEP-0045 §9).
  MODERATOR_ROOM   the room, default lounge@conference.localhost
  MODERATOR_WORDS  comma-separated banned words, default "spam,scam"
"""
import os
import re
from collections import Counter

from xmppd_bot import Bot, BotError, Message

bot = Bot()
ROOM = os.environ.get("MODERATOR_ROOM", "lounge@conference.localhost")
WORDS = {w.strip().lower() for w in os.environ.get("MODERATOR_WORDS", "spam,scam").split(",")
         if w.strip()}
strikes: Counter[str] = Counter()
bot.join(ROOM, nick="moderator")


@bot.on_group_message
async def watch(msg: Message) -> None:
    said = set(re.findall(r"\w+", msg.body.lower()))
    if not said & WORDS or msg.nick is None:
        return
    strikes[msg.nick] += 1
    if strikes[msg.nick] == 1:
        msg.reply(f"{msg.nick}: please mind your language; next time you are out.")
        return
    try:
        await bot.kick(ROOM, msg.nick, reason="banned words, after a warning")
        msg.reply(f"{msg.nick} was kicked for repeated banned words.")
    except BotError as e:
        msg.reply(f"I could not kick {msg.nick}: {e}")


@bot.command("words")
def words(msg: Message, args: str) -> str:
    """List the banned words."""
    return "Banned: " + ", ".join(sorted(WORDS))


if __name__ == "__main__":
    bot.run()
