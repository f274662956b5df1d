# tests: tests/bot/test_component.py, tests/bot/test_bot.py
"""The two slixmpp streams a bot's connection can be: a client (`ClientStream`, slixmpp's
ClientXMPP, logging in to an account), or an external component (XEP-0114, below).

- A component's connection is slixmpp's `ComponentXMPP`: the component's domain, its secret, the
  server's component listener. No TLS, no SASL, no roster, no XEP-0198 (the protocol has
  none); the handshake is SHA-1(stream id + secret) (XEP-0114 §3).
- A component owns its whole domain: a message to "weather.bot.example.org" or to
  "anyone@weather.bot.example.org" reaches it, and it answers from the address that was
  written to (`Message.to`); a stanza it starts itself comes from the domain.
- A refused handshake is a one-line error for the author: <not-authorized/> (wrong secret),
  <host-unknown/> (the server has no such component configured), <conflict/> (another
  connection already is that component).
Not here: the connection's common behaviour (client.py), the settings (settings.py).
"""
from __future__ import annotations

from collections.abc import Callable

import slixmpp

from xmppd_bot.errors import AuthError, BotError, ReplacedError
from xmppd_bot.settings import Settings

__all__ = ["ClientStream", "ComponentStream", "refusal"]


class ClientStream(slixmpp.ClientXMPP):
    """slixmpp's client with its reconnect scheduling turned into a callback."""

    def __init__(self, jid: str, password: str, on_unreachable: Callable[[], None]) -> None:
        super().__init__(jid, password)
        self._on_unreachable = on_unreachable

    def reschedule_connection_attempt(self) -> None:
        # slixmpp would retry forever with its own backoff; report instead (the bot retries).
        self._current_connection_attempt = None
        self._on_unreachable()


class ComponentStream(slixmpp.ComponentXMPP):
    """slixmpp's component, with its reconnect scheduling turned into a callback."""

    def __init__(self, settings: Settings, on_unreachable: Callable[[], None]) -> None:
        assert settings.server is not None, "settings require a server for components"
        super().__init__(str(settings.jid), settings.password,  # type: ignore[no-untyped-call]
                         settings.server.host, settings.server.port)
        self._on_unreachable = on_unreachable

    def reschedule_connection_attempt(self) -> None:
        # slixmpp would retry forever with its own backoff; report instead (the bot retries).
        self._current_connection_attempt = None
        self._on_unreachable()


def refusal(condition: str, settings: Settings) -> BotError | None:
    """The author-facing error for a stream error that ends a component's handshake."""
    where, domain = settings.describe_server(), settings.jid
    if condition.startswith("not-authorized"):
        return AuthError(f"the server {where} refused the component {domain}: wrong secret "
                         "(not-authorized)")
    if condition.startswith("host-unknown"):
        return AuthError(f"the server {where} has no component {domain} configured "
                         "(host-unknown): add it to the server's [[components]]")
    if condition.startswith("conflict"):
        return ReplacedError(f"another connection already serves the component {domain} "
                             "(conflict): is the bot running twice?")
    return None
