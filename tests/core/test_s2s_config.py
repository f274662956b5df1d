# tests: xmppd/s2s/options.py, xmppd/config.py
"""The [s2s] table, [[components]] and the federation listener types (xmppd/s2s/options.py)."""
from __future__ import annotations

import re
from typing import Any

import pytest

from xmppd.config import ConfigError, from_dict
from xmppd.s2s.options import domain_listed, federation_allowed


def error(match: str) -> Any:
    return pytest.raises(ConfigError, match=re.escape(match))


def test_defaults() -> None:
    s2s = from_dict({}).s2s
    assert (s2s.require_valid_certificates, s2s.ca_file, s2s.allow, s2s.deny) == (
        False, "", (), ())
    assert (s2s.connect_timeout, s2s.idle_timeout, s2s.max_queue, s2s.routes) == (
        30.0, 600.0, 1000, {})
    assert from_dict({}).components == ()


def test_listener_types_have_their_default_ports() -> None:
    listeners = from_dict({"listeners": [{"type": "s2s"}, {"type": "s2s_tls"},
                                         {"type": "component"}]}).listeners
    assert [(lst.type, lst.port) for lst in listeners] == [
        ("s2s", 5269), ("s2s_tls", 5270), ("component", 5347)]
    assert from_dict({"listeners": [{"type": "s2s", "starttls": "optional"}]}
                     ).listeners[0].starttls == "optional"


def test_routes_take_host_port_pairs() -> None:
    s2s = from_dict({"s2s": {"routes": {"a.example": "10.0.0.2:5269", "b.example": "[::1]:15269",
                                        "c.example": "xmpp.c.example"}}}).s2s
    assert s2s.routes == {"a.example": ("10.0.0.2", 5269), "b.example": ("::1", 15269),
                          "c.example": ("xmpp.c.example", 5269)}


@pytest.mark.parametrize(("raw", "message"), [
    ({"s2s": {"route": {}}}, "s2s: unknown key 'route'"),
    ({"s2s": {"routes": "a:1"}}, 's2s.routes: expected a table of domain = "host:port"'),
    ({"s2s": {"routes": {"a.example": "h:99999"}}}, 's2s.routes.a.example: expected "host:port"'),
    ({"s2s": {"routes": {"a.example": 5269}}}, 's2s.routes.a.example: expected "host:port"'),
    ({"s2s": {"routes": {"A..example": "h:1"}}}, "s2s.routes.A..example: 'A..example' is not a"),
    ({"s2s": {"deny": ["Evil.Example"]}}, "s2s.deny[0]: 'Evil.Example' is not a valid domain"),
    ({"s2s": {"connect_timeout": "0 s"}}, "s2s.connect_timeout: must be at least 1"),
    ({"s2s": {"require_valid_certificates": "yes"}},
     "s2s.require_valid_certificates: expected true or false"),
    ({"s2s": []}, "s2s: expected a table"),
    ({"components": {}}, "components: expected an array of tables"),
    ({"components": [{"domain": "x.localhost"}]}, "components[0]: missing required key 'secret'"),
    ({"components": [{"domain": "x.localhost", "secret": ""}]},
     "components[0].secret: must not be empty"),
    ({"components": [{"domain": "localhost", "secret": "s"}]},
     "components[0].domain: localhost is already served here"),
    ({"components": [{"domain": "x.localhost", "secret": "s"},
                     {"domain": "x.localhost", "secret": "t"}]},
     "components[1].domain: x.localhost is already served here"),
    ({"listeners": [{"type": "component", "starttls": "off"}]},
     "listeners[0].starttls: only for type"),
    ({"listeners": [{"type": "s2s_tls", "starttls": "off"}]}, "listeners[0].starttls: only for"),
])
def test_bad_values_name_the_key(raw: dict[str, Any], message: str) -> None:
    with error(message):
        from_dict(raw)


def test_allow_and_deny_cover_subdomains() -> None:
    assert domain_listed("muc.evil.example", ("evil.example",))
    assert not domain_listed("notevil.example", ("evil.example",))
    deny = from_dict({"s2s": {"deny": ["evil.example"]}}).s2s
    assert not federation_allowed(deny, "evil.example")
    assert federation_allowed(deny, "good.example")
    allow = from_dict({"s2s": {"allow": ["friend.example"], "deny": ["x.friend.example"]}}).s2s
    assert federation_allowed(allow, "muc.friend.example")
    assert not federation_allowed(allow, "x.friend.example")       # deny wins
    assert not federation_allowed(allow, "stranger.example")
