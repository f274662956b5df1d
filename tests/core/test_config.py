# tests: tests/core/test_config.py
"""Configuration (xmppd/config.py): typed, validated sections; errors name the key (STYLE §1.7)."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from xmppd.config import (
    Config,
    ConfigError,
    build,
    duration,
    from_dict,
    load,
    networks,
    number,
    parse_duration,
    parse_size,
    size,
)

ROOT = Path(__file__).resolve().parents[2]


def error(match: str) -> Any:
    return pytest.raises(ConfigError, match=re.escape(match))


# --- durations and sizes ----------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [
    (60, 60.0), (1.5, 1.5), (0, 0.0), ("60", 60.0), ("60 s", 60.0), ("60s", 60.0),
    ("1.5 s", 1.5), ("500 ms", 0.5), ("5 min", 300.0), ("5 minutes", 300.0), ("2 h", 7200.0),
    ("1 hour", 3600.0), ("7 d", 604800.0), ("1 day", 86400.0), ("  10 S ", 10.0),
    ("3 seconds", 3.0), ("1 sec", 1.0),
])
def test_durations_in_every_unit(value: object, seconds: float) -> None:
    assert parse_duration(value, "k") == seconds


@pytest.mark.parametrize("value", ["5 weeks", "5 m", "five s", "-5 s", "5 s 3", "", "s", "1e3 s",
                                   True, False, None, [60], {"s": 1}, float("nan"), float("inf"),
                                   -1])
def test_bad_durations_name_the_key_and_the_expectation(value: object) -> None:
    with error("limits.auth_timeout: expected a duration"):
        parse_duration(value, "limits.auth_timeout")


def test_off_is_only_a_duration_where_allowed() -> None:
    assert parse_duration("off", "k", allow_off=True) is None
    assert parse_duration(False, "k", allow_off=True) is None
    with error('k: expected a duration such as "60 s" or "5 min", got \'off\''):
        parse_duration("off", "k")


def test_zero_is_a_duration_not_off() -> None:
    # Regression: `0 in ("off", False)` is true in Python.
    assert parse_duration(0, "k", allow_off=True) == 0.0
    assert parse_duration(0.0, "k", allow_off=True) == 0.0


@pytest.mark.parametrize(("value", "size_"), [
    (1024, 1024), (0, 0), ("1024", 1024), ("100 B", 100), ("100 bytes", 100), ("8 KiB", 8192),
    ("8KiB", 8192), ("8 kib", 8192), ("1 KB", 1000), ("1.5 KiB", 1536), ("10 MiB", 10 << 20),
    ("1 MB", 10**6), ("2 GiB", 2 << 30), ("1 GB", 10**9),
])
def test_sizes_in_every_unit(value: object, size_: int) -> None:
    assert parse_size(value, "k") == size_


@pytest.mark.parametrize("value", ["8 K", "8 KiBs", "big", "-1 KiB", "", 1.5, True, None, ["8 KiB"]])
def test_bad_sizes_name_the_key_and_the_expectation(value: object) -> None:
    with error('limits.max_stanza_size: expected a size such as "256 KiB" or "10 MiB"'):
        parse_size(value, "limits.max_stanza_size")


# --- the server's own sections ----------------------------------------------------------------


def test_empty_config_gives_the_defaults() -> None:
    cfg = from_dict({})
    assert isinstance(cfg, Config)
    assert cfg.server.hosts == ("localhost",)
    assert cfg.server.log_level == "info"
    assert cfg.storage.url.startswith("sqlite:")
    assert cfg.storage.threads == 4
    assert cfg.cache.url == "memory"
    assert cfg.tls.generate_self_signed is True
    assert [(lc.type, lc.bind, lc.port, lc.starttls) for lc in cfg.listeners] == [
        ("c2s", "127.0.0.1", 5222, "required")]
    assert cfg.limits.max_stanza_size == 256 * 1024
    assert cfg.limits.preauth_stanza_size == 8192
    assert cfg.limits.preauth_elements == 32
    assert cfg.limits.auth_timeout == 60.0
    assert cfg.auth.mechanisms == ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
                                   "SCRAM-SHA-1", "PLAIN")
    assert (cfg.auth.sasl2, cfg.auth.fast, cfg.auth.fast_token_lifetime) == (True, True,
                                                                             21 * 86400)
    assert cfg.auth.scram_iterations == 4096
    assert cfg.modules == {}


def test_values_are_converted_by_their_declared_type() -> None:
    cfg = from_dict({
        "server": {"hosts": ["example.org", "example.net"], "log_level": "debug"},
        "limits": {"max_stanza_size": "64 KiB", "auth_timeout": "2 min", "max_depth": 32},
        "listeners": [{"port": 5222}, {"port": 5223, "starttls": "off", "bind": "::"}],
        "modules": {"ping": {"keepalive_interval": "60 s"}},
    })
    assert cfg.server.hosts == ("example.org", "example.net")
    assert (cfg.limits.max_stanza_size, cfg.limits.auth_timeout) == (65536, 120.0)
    assert [(lc.port, lc.starttls, lc.bind) for lc in cfg.listeners] == [
        (5222, "required", "127.0.0.1"), (5223, "off", "::")]
    assert cfg.modules == {"ping": {"keepalive_interval": "60 s"}}   # validated by the module


def test_no_listeners_is_allowed() -> None:
    assert from_dict({"listeners": []}).listeners == ()


@pytest.mark.parametrize(("raw", "message"), [
    ({"sever": {}}, "unknown section 'sever' (known: auth, cache, cluster, components, limits, "
                    "listeners, modules, s2s, server, storage, tls)"),
    ({"server": {"host": ["a"]}}, "server: unknown key 'host' (known: admin_socket, "
                                  "admin_socket_mode, admins, hosts, log_file, log_format, "
                                  "log_ip, log_level, pid_file, processes, shutdown_timeout)"),
    ({"limits": {"max_stanza": 1}}, "limits: unknown key 'max_stanza'"),
    ({"listeners": [{"port": 1, "tsl": "on"}]}, "listeners[0]: unknown key 'tsl'"),
    ({"listeners": [{}, {"prot": 1}]}, "listeners[1]: unknown key 'prot'"),
])
def test_unknown_keys_and_sections_are_named(raw: dict[str, Any], message: str) -> None:
    with error(message):
        from_dict(raw)


@pytest.mark.parametrize(("raw", "message"), [
    ({"server": "example.org"}, "server: expected a table, got 'example.org'"),
    ({"server": {"hosts": "example.org"}}, "server.hosts: expected a list, got 'example.org'"),
    ({"server": {"hosts": ["a.example", 5]}}, "server.hosts[1]: expected a string, got 5"),
    ({"server": {"log_level": "verbose"}}, "server.log_level: expected one of 'debug', 'info', "
                                           "'warning', 'error', got 'verbose'"),
    ({"storage": {"threads": "4"}}, "storage.threads: expected an integer, got '4'"),
    ({"storage": {"threads": 4.0}}, "storage.threads: expected an integer, got 4.0"),
    ({"storage": {"threads": True}}, "storage.threads: expected an integer, got True"),
    ({"storage": {"threads": 0}}, "storage.threads: must be between 1 and 64, got 0"),
    ({"storage": {"threads": 65}}, "storage.threads: must be between 1 and 64, got 65"),
    ({"storage": {"url": 5}}, "storage.url: expected a string, got 5"),
    ({"tls": {"generate_self_signed": "yes"}}, "tls.generate_self_signed: expected true or false, "
                                               "got 'yes'"),
    ({"limits": {"max_stanza_size": "lots"}}, "limits.max_stanza_size: expected a size"),
    ({"limits": {"max_stanza_size": "512 B"}}, "limits.max_stanza_size: must be at least 1024 "
                                               "bytes, got '512 B'"),
    ({"limits": {"auth_timeout": "soon"}}, "limits.auth_timeout: expected a duration"),
    ({"limits": {"auth_timeout": "0.5 s"}}, "limits.auth_timeout: must be at least 1 s, got '0.5 s'"),
    ({"limits": {"auth_timeout": "off"}}, "limits.auth_timeout: expected a duration"),
    ({"limits": {"max_depth": 2}}, "limits.max_depth: must be between 4 and 1024, got 2"),
    ({"listeners": {"port": 5222}}, "listeners: expected an array of tables ([[listeners]])"),
    ({"listeners": [{"port": 70000}]}, "listeners[0].port: must be between 0 and 65535, got 70000"),
    ({"listeners": [{"type": "s3s"}]}, "listeners[0].type: expected one of 'c2s', 'c2s_tls', 'http', 's2s', 's2s_tls', 'component', 'metrics', got 's3s'"),
    ({"listeners": [{"starttls": True}]}, "listeners[0].starttls: expected one of 'required', "
                                          "'optional', 'off', got True"),
    ({"modules": {"ping": 1}}, "modules: expected one table per module ([modules.<name>])"),
    ({"modules": ["ping"]}, "modules: expected one table per module ([modules.<name>])"),
    ({"auth": {"scram_iterations": 1000}}, "auth.scram_iterations: must be between 4096 and "
                                           "1000000, got 1000"),
    ({"cache": {"max_entries": float("nan")}}, "cache.max_entries: expected an integer, got nan"),
])
def test_wrong_values_name_the_key_and_the_expectation(raw: dict[str, Any], message: str) -> None:
    with error(message):
        from_dict(raw)


@pytest.mark.parametrize("host", ["Example.org", "user@example.org", "example.org/res", "", "a b",
                                  "example.org."])
def test_invalid_or_unprepared_hosts_are_refused(host: str) -> None:
    with error("server.hosts[1]: " + repr(host) + " is not a valid domain"):
        from_dict({"server": {"hosts": ["example.net", host]}})


@pytest.mark.parametrize("host", ["example.org", "localhost", "xmpp.example.co.uk", "bücher.example",
                                  "127.0.0.1", "[::1]"])
def test_valid_hosts_are_accepted(host: str) -> None:
    assert from_dict({"server": {"hosts": [host]}}).server.hosts == (host,)


def test_at_least_one_host_is_needed() -> None:
    with error("server.hosts: at least one virtual host is needed"):
        from_dict({"server": {"hosts": []}})


def test_unknown_sasl_mechanism_is_named() -> None:
    with error("auth.mechanisms[1]: unknown mechanism 'DIGEST-MD5' (known: PLAIN, SCRAM-SHA-1, "
               "SCRAM-SHA-1-PLUS, SCRAM-SHA-256, SCRAM-SHA-256-PLUS)"):
        from_dict({"auth": {"mechanisms": ["SCRAM-SHA-256", "DIGEST-MD5"]}})


def test_at_least_one_sasl_mechanism_is_needed() -> None:
    with error("auth.mechanisms: at least one SASL mechanism is needed"):
        from_dict({"auth": {"mechanisms": []}})


# --- module options via build() ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inner:
    name: str = "x"


@dataclass(frozen=True, slots=True)
class Options:
    interval: float | None = duration(default=None, minimum=10)
    timeout: float = duration(default="30 s", minimum=1)
    quota: int = size(default="10 MiB", minimum=1024)
    allow_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = networks(
        default=("127.0.0.0/8", "::1"))
    mode: Literal["open", "closed"] = "open"
    retries: int = number(default=3, minimum=0, maximum=10)
    ratio: float = number(default=0.5, minimum=0, maximum=1)
    enabled: bool = True
    label: str = ""
    tags: tuple[str, ...] = ()
    inner: Inner = Inner()


@dataclass(frozen=True, slots=True)
class Required:
    secret: str


def test_module_options_default_when_the_table_is_empty() -> None:
    opts = build(Options, {}, "modules.demo")
    assert opts == Options()
    assert opts.interval is None and opts.timeout == 30.0 and opts.quota == 10 << 20
    assert opts.allow_from == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1"))


def test_module_options_are_converted() -> None:
    opts = build(Options, {
        "interval": "2 min", "timeout": 5, "quota": "1 GiB", "allow_from": ["10.0.0.1", "fd00::/8"],
        "mode": "closed", "retries": 0, "ratio": 1, "enabled": False, "label": "l", "tags": ["a"],
        "inner": {"name": "y"},
    }, "modules.demo")
    assert opts == Options(
        interval=120.0, timeout=5.0, quota=1 << 30,
        allow_from=(ipaddress.ip_network("10.0.0.1/32"), ipaddress.ip_network("fd00::/8")),
        mode="closed", retries=0, ratio=1.0, enabled=False, label="l", tags=("a",),
        inner=Inner("y"))
    assert isinstance(opts.ratio, float)


def test_off_is_accepted_for_a_duration_without_default() -> None:
    assert build(Options, {"interval": "off"}, "modules.demo").interval is None


def test_networks_accept_addresses_with_host_bits() -> None:
    opts = build(Options, {"allow_from": ["192.168.1.7/24"]}, "m")
    assert opts.allow_from == (ipaddress.ip_network("192.168.1.0/24"),)


@pytest.mark.parametrize(("table", "message"), [
    ({"intervall": "1 s"}, "modules.demo: unknown key 'intervall' (known: allow_from, enabled, "
                           "inner, interval, label, mode, quota, ratio, retries, tags, timeout)"),
    ({"interval": "5 s"}, "modules.demo.interval: must be at least 10 s, got '5 s'"),
    ({"interval": "often"}, 'modules.demo.interval: expected a duration such as "60 s" or '
                            '"5 min" or "off", got \'often\''),
    ({"timeout": "off"}, 'modules.demo.timeout: expected a duration such as "60 s" or "5 min", '
                         "got 'off'"),
    ({"quota": "1 KB"}, "modules.demo.quota: must be at least 1024 bytes, got '1 KB'"),
    ({"quota": "huge"}, "modules.demo.quota: expected a size"),
    ({"allow_from": "127.0.0.1"}, "modules.demo.allow_from: expected a list of addresses or "
                                  "networks, got '127.0.0.1'"),
    ({"allow_from": ["localhost"]}, "modules.demo.allow_from: 'localhost' does not appear to be "
                                    "an IPv4 or IPv6 network"),
    ({"allow_from": [1]}, "modules.demo.allow_from: expected a list of addresses or networks"),
    ({"mode": "ajar"}, "modules.demo.mode: expected one of 'open', 'closed', got 'ajar'"),
    ({"retries": 11}, "modules.demo.retries: must be between 0 and 10, got 11"),
    ({"retries": 1.5}, "modules.demo.retries: expected an integer, got 1.5"),
    ({"ratio": "half"}, "modules.demo.ratio: expected a number, got 'half'"),
    ({"ratio": float("inf")}, "modules.demo.ratio: expected a number, got inf"),
    ({"enabled": 1}, "modules.demo.enabled: expected true or false, got 1"),
    ({"label": ["a"]}, "modules.demo.label: expected a string, got ['a']"),
    ({"tags": "a"}, "modules.demo.tags: expected a list, got 'a'"),
    ({"tags": ["a", 2]}, "modules.demo.tags[1]: expected a string, got 2"),
    ({"inner": {"nmae": "z"}}, "modules.demo.inner: unknown key 'nmae' (known: name)"),
    ({"inner": "z"}, "modules.demo.inner: expected a table, got 'z'"),
])
def test_bad_module_options_name_the_key_and_the_expectation(table: dict[str, Any],
                                                             message: str) -> None:
    with error(message):
        build(Options, table, "modules.demo")


def test_module_options_must_be_a_table() -> None:
    with error("modules.demo: expected a table, got 5"):
        build(Options, 5, "modules.demo")


def test_required_module_option_is_named_when_missing() -> None:
    with error("modules.vault: missing required key 'secret'"):
        build(Required, {}, "modules.vault")
    assert build(Required, {"secret": "s"}, "modules.vault") == Required("s")


def test_options_without_fields_refuse_any_key() -> None:
    @dataclass(frozen=True)
    class NoOptions:
        pass
    assert build(NoOptions, {}, "modules.ping") == NoOptions()
    with error("modules.ping: unknown key 'x' (known: none)"):
        build(NoOptions, {"x": 1}, "modules.ping")


# --- files ------------------------------------------------------------------------------------


def test_shipped_development_config_loads() -> None:
    cfg = load(ROOT / "conf" / "xmppd.toml")
    assert cfg.server.hosts == ("localhost",)
    assert cfg.listeners and all(lc.starttls == "required" for lc in cfg.listeners)
    assert all(isinstance(table, dict) for table in cfg.modules.values())


def test_shipped_configs_turn_the_mobile_features_on() -> None:
    """Issue 16: push, SASL2/Bind 2/FAST, external services (a STUN entry) and invitations,
    on in both shipped configs, with options their modules accept."""
    from xmppd.loader import resolve
    for name in ("xmppd.toml", "xmppd.production.toml"):
        cfg = load(ROOT / "conf" / name)
        assert cfg.auth.sasl2 and cfg.auth.fast
        assert "SCRAM-SHA-256-PLUS" in cfg.auth.mechanisms
        options = {cls.name: opts for cls, opts in resolve(cfg.modules)}
        assert {"push", "external_services", "invites", "register"} <= set(options)
        assert any(s.type == "stun" for s in options["external_services"].services)


def test_shipped_production_config_loads() -> None:
    cfg = load(ROOT / "conf" / "xmppd.production.toml")
    assert cfg.storage.url.startswith("postgresql")
    assert cfg.cache.url.startswith("redis://")
    assert cfg.tls.generate_self_signed is False
    assert cfg.listeners and all(lc.starttls == "required" for lc in cfg.listeners)
    assert cfg.path == ROOT / "conf" / "xmppd.production.toml"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with error(f"{tmp_path / 'nope.toml'}: no such config file"):
        load(tmp_path / "nope.toml")


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server\nhosts = 1\n")
    with error(f"{path}: not valid TOML"):
        load(path)


def test_errors_in_a_file_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[limits]\nmax_stanza_size = \"256 KB\"\nauth_timeout = \"1 fortnight\"\n")
    with error("limits.auth_timeout: expected a duration"):
        load(path)


@pytest.mark.parametrize(("value", "per_second"), [("8 KiB/s", 8192.0), ("256 KiB/s", 262144.0),
                                                   ("100/s", 100.0), ("0.5/s", 0.5),
                                                   (1000, 1000.0), ("off", None)])
def test_rates_per_second_or_off(value: object, per_second: float | None) -> None:
    from xmppd.config import from_dict
    assert from_dict({"limits": {"c2s_rate": value}}).limits.c2s_rate == per_second


@pytest.mark.parametrize("value", ["fast", "8 KiB", "0/s", "-1/s", 0, True, "8 parsecs/s"])
def test_bad_rates_name_the_key_and_the_expectation(value: object) -> None:
    from xmppd.config import from_dict
    with pytest.raises(ConfigError, match=r"limits\.stanza_rate: expected a rate such as"):
        from_dict({"limits": {"stanza_rate": value}})


def test_exempt_networks_are_networks() -> None:
    from xmppd.config import from_dict
    cfg = from_dict({"limits": {"exempt_networks": ["10.0.0.0/8", "::1"]}})
    assert ipaddress.ip_address("10.1.2.3") in cfg.limits.exempt_networks[0]
    with pytest.raises(ConfigError, match="limits.exempt_networks"):
        from_dict({"limits": {"exempt_networks": ["proxy"]}})
