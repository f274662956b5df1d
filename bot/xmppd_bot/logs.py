# tests: tests/bot/test_runner.py, tests/bot/test_bot.py
"""Log lines to standard error for `bot.run()` and `xmppd-bot`, with slixmpp kept quiet:
its errors that the bot reports better itself (as a one-line `BotError`) are dropped, and SASL
payloads are hidden from debug stream logs (PLAIN carries the password, base64-encoded)."""
from __future__ import annotations

import logging
import sys

__all__ = ["setup_logging"]

# slixmpp errors that the bot reports better itself, as its one-line BotError.
_REPORTED_BY_THE_BOT = ("No appropriate login method.", "CERT: Invalid certificate trust chain.")


def setup_logging(verbose: bool = False) -> None:
    """Log lines to standard error, unless the program configured logging itself."""
    root = logging.getLogger()
    if root.handlers:
        return
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("slixmpp").setLevel(logging.WARNING)
    for handler in root.handlers:
        handler.addFilter(_slixmpp_filter)


def _slixmpp_filter(record: logging.LogRecord) -> bool:
    if not record.name.startswith("slixmpp"):
        return True
    if record.msg in _REPORTED_BY_THE_BOT:
        return False
    if record.levelno <= logging.DEBUG and "urn:ietf:params:xml:ns:xmpp-sasl" in str(record.args):
        record.msg, record.args = "%s", ("<SASL exchange hidden>",)
    return True
