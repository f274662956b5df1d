"""The operations keys of the config: admins, logs, the admin socket, shutdown, the metrics
listener (README "Config reference")."""
from __future__ import annotations

from typing import Any

import pytest

from xmppd.config import ConfigError, from_dict


def test_defaults() -> None:
    server = from_dict({}).server
    assert server.admins == ()
    assert (server.log_format, server.log_ip) == ("text", "plain")
    assert server.admin_socket == "" and server.admin_socket_mode == 0o600
    assert server.shutdown_timeout == 15.0


def test_metrics_listener_defaults_to_loopback_port_5281() -> None:
    lst = from_dict({"listeners": [{"type": "metrics"}]}).listeners[0]
    assert (lst.type, lst.bind, lst.port) == ("metrics", "127.0.0.1", 5281)


@pytest.mark.parametrize(("raw", "message"), [
    ({"server": {"admins": ["admin@localhost/phone"]}},
     "server.admins[0]: expected a bare JID such as \"admin@localhost\", got 'admin@localhost/phone'"),
    ({"server": {"admins": ["localhost"]}}, "server.admins[0]: expected a bare JID"),
    ({"server": {"admins": ["a@@b"]}}, "server.admins[0]: 'a@@b' is not a JID"),
    ({"server": {"admin_socket_mode": 0o1777}}, "server.admin_socket_mode: must be between"),
    ({"server": {"log_format": "xml"}}, "server.log_format: expected one of 'text', 'json'"),
    ({"server": {"log_ip": "secret"}}, "server.log_ip: expected one of 'plain', 'hashed', 'off'"),
    ({"server": {"shutdown_timeout": "0.5 s"}}, "server.shutdown_timeout: must be at least 1 s"),
    ({"listeners": [{"type": "metrics", "starttls": "off"}]},
     "listeners[0].starttls: only for type = \"c2s\" and \"s2s\" listeners"),
    ({"listeners": [{"type": "metrics", "cors_origins": ["*"]}]},
     "listeners[0].cors_origins: only for type = \"http\" listeners"),
])
def test_bad_values_are_named(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        from_dict(raw)
    assert message in str(e.value)


def test_admins_are_bare_jids() -> None:
    cfg = from_dict({"server": {"admins": ["Admin@localhost"]}})
    assert cfg.server.admins == ("Admin@localhost",)


def test_readme_documents_every_server_key_and_listener_type() -> None:
    import dataclasses
    import typing
    from pathlib import Path

    from xmppd.config import ListenerConfig, ServerSection
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for f in dataclasses.fields(ServerSection):
        assert f"`server.{f.name}`" in readme, f.name
    for kind in typing.get_args(typing.get_type_hints(ListenerConfig)["type"]):
        assert f'`"{kind}"`' in readme, kind
    for name in ("adhoc", "admin_commands"):
        assert f"| `{name}` |" in readme
