# tests: tests/bot/test_runner.py
"""`python -m xmppd_bot path/to/bot.py` — the same as `xmppd-bot`."""
from xmppd_bot.runner import main

main()
