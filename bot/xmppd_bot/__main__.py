# tests: tests/bot/test_runner.py
"""`python -m xmppd.bot path/to/bot.py` — the same as `xmppd-bot`."""
from xmppd.bot.runner import main

main()
