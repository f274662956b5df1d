# tests: tests/bot/test_settings.py
"""Where a bot's connection settings come from, and their validation.

Each setting is taken from the first of these that has it:
  1. an argument to `Bot(...)`;
  2. the environment: XMPPD_BOT_JID, XMPPD_BOT_PASSWORD, XMPPD_BOT_SERVER (host:port),
     XMPPD_BOT_TLS_VERIFY (true/false);
  3. the `[bot]` table of a TOML file: `Bot(config=...)`, `xmppd-bot --config FILE`, or
     $XMPPD_BOT_CONFIG.

A missing JID or password, an invalid JID, a server address that does not parse, a bad value or
an unknown key in `[bot]` is a `ConfigError` with a one-line message naming the setting and
where it came from. Other tables in the file are left to the bot's own use (`Bot.config`).
"""
from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xmppd_bot.errors import ConfigError
from xmppd_bot.jid import JID, JIDError
from xmppd_bot.timing import parse_duration

__all__ = ["Address", "Settings", "parse_address", "resolve", "Receipts"]

Receipts = Literal["everyone", "contacts", "off"]
_RECEIPTS: dict[str, Receipts] = {"everyone": "everyone", "contacts": "contacts", "off": "off"}

ENV = {"jid": "XMPPD_BOT_JID", "password": "XMPPD_BOT_PASSWORD",
       "server": "XMPPD_BOT_SERVER", "tls_verify": "XMPPD_BOT_TLS_VERIFY"}
ENV_CONFIG = "XMPPD_BOT_CONFIG"
DEFAULT_RESOURCE = "bot"
DEFAULT_PORT = 5222

# key: (default, description) — the [bot] table's schema; None = required or derived.
KEYS: dict[str, tuple[object, str]] = {
    "jid": (None, "the bot's account, e.g. \"echo@example.org\" (resource defaults to /bot)"),
    "password": (None, "the account's password"),
    "server": (None, "\"host:port\" to connect to; default: DNS SRV of the JID's domain"),
    "tls_verify": (True, "verify the server's certificate (false for a self-signed dev server)"),
    "reconnect_min_delay": ("1 s", "first reconnect delay; doubles on each failure"),
    "reconnect_max_delay": ("60 s", "cap on the reconnect delay"),
    "connect_timeout": ("30 s", "give up on a connection attempt after this long"),
    "keepalive": ("60 s", "time between pings that check the link to the server; 0 = off"),
    "receipts": ("everyone", "XEP-0184 receipts: \"everyone\", \"contacts\" or \"off\""),
}


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Settings:
    jid: JID                      # always with a resource
    password: str
    server: Address | None        # None: DNS SRV records of the domain, then domain:5222
    tls_verify: bool
    reconnect_min_delay: float
    reconnect_max_delay: float
    connect_timeout: float
    keepalive: float
    receipts: Receipts
    origins: Mapping[str, str]    # setting -> "argument", "XMPPD_BOT_JID", "bot.toml", "default"

    def describe_server(self) -> str:
        return str(self.server) if self.server else f"{self.jid.domain} (DNS)"


def parse_address(text: str) -> Address:
    """"host", "host:port", "[v6]:port" or a bare IPv6 literal; the port defaults to 5222.

    Raises:
        ValueError: naming what is wrong.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty server address (expected host:port)")
    port_text: str | None = None
    if s.startswith("["):
        host, sep, rest = s[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad server address {text!r} (expected [v6-address]:port)")
        port_text = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"bad server address {text!r}: {host!r} is not an IPv6 address")
    elif s.count(":") > 1:
        host = s                    # a bare IPv6 literal
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"bad server address {text!r} (write IPv6 as [addr]:port)")
    else:
        host, sep, port_text_ = s.partition(":")
        port_text = port_text_ if sep else None
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise ValueError(f"bad server address {text!r}: bad host name")
    port = DEFAULT_PORT
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad server address {text!r}: port must be 1..65535")
        port = int(port_text)
    return Address(host, port)


def _bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _duration(value: object, where: str) -> float:
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where}: expected a duration such as \"30 s\", got {value!r}")
    try:
        return parse_duration(value)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


def load_file(path: Path) -> dict[str, Any]:
    """The whole TOML document; its `[bot]` table is checked by `resolve`."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: invalid TOML: {e}") from None


def config_path(explicit: str | os.PathLike[str] | None,
                env: Mapping[str, str]) -> Path | None:
    if explicit is not None:
        return Path(explicit)
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG])
    return None


def resolve(explicit: Mapping[str, object], env: Mapping[str, str],
            path: Path | None) -> tuple[Settings, dict[str, Any]]:
    """Settings from arguments, environment and file (in that order of precedence), and the
    parsed file (empty without one).

    Raises:
        ConfigError: one line naming the setting, where it came from and what was expected.
    """
    document: dict[str, Any] = load_file(path) if path is not None else {}
    table = document.get("bot", {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [bot] must be a table")
    for key in table:
        if key not in KEYS:
            raise ConfigError(f"config file {path}: unknown key {key!r} in [bot] "
                              f"(expected one of: {', '.join(KEYS)})")

    values: dict[str, object] = {}
    origins: dict[str, str] = {}
    for key, (default, _) in KEYS.items():
        if explicit.get(key) is not None:
            values[key], origins[key] = explicit[key], "argument"
        elif key in ENV and env.get(ENV[key], "") != "":
            values[key], origins[key] = env[ENV[key]], ENV[key]
        elif key in table:
            values[key], origins[key] = table[key], f"{path} [bot] {key}"
        elif default is not None:
            values[key], origins[key] = default, "default"

    def where(key: str) -> str:
        return origins.get(key, key)

    if "jid" not in values:
        raise ConfigError("no JID configured: pass Bot(\"name@example.org\", ...), set "
                          "XMPPD_BOT_JID, or put jid = \"...\" in the [bot] table of a "
                          "config file")
    if not isinstance(values["jid"], str):
        raise ConfigError(f"{where('jid')}: expected a JID string, got {values['jid']!r}")
    try:
        jid = JID.parse(values["jid"].strip())
    except JIDError as e:
        raise ConfigError(f"{where('jid')}: invalid JID {values['jid']!r}: {e}") from None
    if jid.local is None:
        raise ConfigError(f"{where('jid')}: {values['jid']!r} has no user part; a bot logs "
                          "in to an account such as \"echo@example.org\"")
    if jid.resource is None:
        jid = jid.with_resource(DEFAULT_RESOURCE)

    if "password" not in values:
        raise ConfigError(f"no password configured for {jid.bare}: pass Bot(jid, password), "
                          "set XMPPD_BOT_PASSWORD, or put password = \"...\" in the [bot] "
                          "table of a config file")
    password = values["password"]
    if not isinstance(password, str) or not password:
        raise ConfigError(f"{where('password')}: expected a non-empty string")

    server: Address | None = None
    if "server" in values:
        raw = values["server"]
        if not isinstance(raw, str):
            raise ConfigError(f"{where('server')}: expected \"host:port\", got {raw!r}")
        try:
            server = parse_address(raw)
        except ValueError as e:
            raise ConfigError(f"{where('server')}: {e}") from None

    tls_verify = _bool(values["tls_verify"], where("tls_verify"))
    lo = _duration(values["reconnect_min_delay"], where("reconnect_min_delay"))
    hi = _duration(values["reconnect_max_delay"], where("reconnect_max_delay"))
    if lo <= 0:
        raise ConfigError(f"{where('reconnect_min_delay')}: must be more than 0 s")
    if hi < lo:
        raise ConfigError(f"{where('reconnect_max_delay')}: must be at least "
                          f"reconnect_min_delay ({lo:g} s)")
    timeout = _duration(values["connect_timeout"], where("connect_timeout"))
    if timeout <= 0:
        raise ConfigError(f"{where('connect_timeout')}: must be more than 0 s")
    keepalive = _duration(values["keepalive"], where("keepalive"))
    receipts = _RECEIPTS.get(str(values["receipts"]))
    if receipts is None:
        raise ConfigError(f"{where('receipts')}: expected \"everyone\", \"contacts\" or "
                          f"\"off\", got {values['receipts']!r}")
    settings = Settings(jid=jid, password=password, server=server, tls_verify=tls_verify,
                        reconnect_min_delay=lo, reconnect_max_delay=hi,
                        connect_timeout=timeout, keepalive=keepalive,
                        receipts=receipts,
                        origins=origins)
    return settings, document
