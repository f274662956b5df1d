# tests: tests/bot/test_runner.py, tests/bot/test_settings.py
"""Errors a bot author can act on. Each message is one line, phrased for the author, and the
runner prints it without a traceback (`xmppd-bot: error: <message>`).

Exit codes: 2 for configuration errors (nothing was tried), 1 for everything found at run time.
"""
from __future__ import annotations


class BotError(Exception):
    """Base class: `str(e)` is one line saying what is wrong and, where possible, what to do."""

    exit_code = 1


class ConfigError(BotError):
    """Missing or invalid settings, or a bot file the runner cannot use."""

    exit_code = 2


class AuthError(BotError):
    """The server refused the login (wrong password, no such account, no common mechanism)."""


class ConnectError(BotError):
    """The server could not be reached, or closed the stream before the bot was online."""


class TlsError(ConnectError):
    """The server's certificate was not trusted."""


class ReplacedError(BotError):
    """Another session with the bot's JID and resource took over (the bot runs twice)."""


class RoomError(BotError):
    """Joining a group chat (XEP-0045) failed: unknown room, not allowed, nickname taken."""


class RequestError(BotError):
    """The server answered a request with an error (RFC 6120 §8.3), or did not answer in time.

    Attributes:
        condition: the defined condition, e.g. "item-not-found", or "remote-server-timeout".
    """

    def __init__(self, what: str, condition: str, text: str = "") -> None:
        self.condition = condition
        self.text = text
        detail = f"{condition}: {text}" if text else condition
        super().__init__(f"{what} failed ({detail})")


class UploadError(BotError):
    """Sending a file through HTTP File Upload (XEP-0363) failed."""


class OfflineError(BotError):
    """A request needs the connection, and the bot is offline or reconnecting."""
