# tests: xmppd/config.py
"""Listener types "c2s_tls" and "http" in the config: defaults and the keys each may have."""
from __future__ import annotations

from typing import Any

import pytest

from xmppd.config import ConfigError, from_dict


def listeners(*tables: dict[str, Any]) -> Any:
    return from_dict({"listeners": list(tables)}).listeners


def test_ports_default_by_type() -> None:
    got = listeners({"type": "c2s"}, {"type": "c2s_tls"}, {"type": "http"},
                    {"type": "http", "tls": True}, {"type": "http", "port": 8080})
    assert [lst.port for lst in got] == [5222, 5223, 5280, 5443, 8080]


def test_http_defaults() -> None:
    (lst,) = listeners({"type": "http"})
    assert (lst.websocket_path, lst.bosh_path, lst.upload_path) == (
        "/xmpp-websocket", "/http-bind", "/upload")
    assert lst.cors_origins == () and lst.public_url == "" and lst.tls is False


@pytest.mark.parametrize("table, message", [
    ({"type": "c2s", "cors_origins": ["*"]}, "listeners[0].cors_origins: only for type = \"http\""),
    ({"type": "c2s_tls", "tls": True}, "listeners[0].tls: only for type = \"http\""),
    ({"type": "http", "starttls": "off"}, "listeners[0].starttls: only for type = \"c2s\""),
    ({"type": "c2s_tls", "starttls": "off"}, "listeners[0].starttls: only for type = \"c2s\""),
    ({"type": "http", "bosh_path": "http-bind"}, "listeners[0].bosh_path: expected a path"),
    ({"type": "http", "websocket_path": "/a b"}, "listeners[0].websocket_path: expected a path"),
    ({"type": "http", "public_url": "ftp://x"}, "listeners[0].public_url: expected an http"),
    ({"type": "http", "cors_origins": ["https://a.example/path"]},
     "listeners[0].cors_origins[0]: expected \"*\" or an origin"),
    ({"type": "http", "tls": "yes"}, "listeners[0].tls: expected true or false"),
])
def test_bad_listener_keys_are_named(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        listeners(table)
    assert message in str(e.value)
