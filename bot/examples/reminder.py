# tests: tests/bot/test_examples.py
"""Reminder bot: `!remind 10m call mum` answers "call mum" in ten minutes.

Durations: 30s, 10m, 2h, 1d, or combined like 1h30m. Reminders live in memory: a restart
forgets them.
"""
from xmppd_bot import Bot, Message, parse_duration

bot = Bot()
pending: dict[str, int] = {}    # who -> number of reminders waiting


def fire(msg: Message, text: str) -> None:
    who = str(msg.sender.bare)
    pending[who] -= 1
    msg.reply(f"⏰ Reminder: {text}")


@bot.command("remind", usage="<duration> <text>")
def remind(msg: Message, args: str) -> str:
    """Remind you of something later, e.g. !remind 10m call mum"""
    when, _, text = args.partition(" ")
    try:
        seconds = parse_duration(when)
    except ValueError:
        return "Usage: !remind <duration> <text>, e.g. !remind 10m call mum"
    if not text.strip() or seconds <= 0:
        return "Usage: !remind <duration> <text>, e.g. !remind 10m call mum"
    who = str(msg.sender.bare)
    pending[who] = pending.get(who, 0) + 1
    bot.after(seconds, fire, msg, text.strip())
    return f"OK, I'll remind you in {when}."


@bot.command("pending")
def show_pending(msg: Message, args: str) -> str:
    """How many of your reminders are waiting."""
    n = pending.get(str(msg.sender.bare), 0)
    return f"You have {n} reminder{'' if n == 1 else 's'} waiting."


if __name__ == "__main__":
    bot.run()
