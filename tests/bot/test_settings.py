"""Settings (arguments > environment > config file), durations and the reconnect backoff."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from xmppd_bot import ConfigError, parse_duration
from xmppd_bot.settings import Address, parse_address, resolve
from xmppd_bot.timing import Backoff

ENV = {"XMPPD_BOT_JID": "env@example.org", "XMPPD_BOT_PASSWORD": "env-pw",
       "XMPPD_BOT_SERVER": "10.0.0.1:5333", "XMPPD_BOT_TLS_VERIFY": "no"}


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1h30m", 5400),
    ("90", 90), ("1.5h", 5400), ("5 min", 300), ("2 hours", 7200), ("1h 30m", 5400),
    (45, 45), (0.5, 0.5), ("0s", 0)])
def test_durations_people_type_are_understood(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "m10", "10m5", "-5s", "1e3s", "10 m m",
                                  "5 5", -1, True])
def test_things_that_are_not_durations_are_refused(text: str | float) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text, address", [
    ("example.org", Address("example.org", 5222)),
    ("127.0.0.1:5333", Address("127.0.0.1", 5333)),
    ("[::1]:5222", Address("::1", 5222)),
    ("[::1]", Address("::1", 5222)),
    ("::1", Address("::1", 5222)),
    (" xmpp.example.org:443 ", Address("xmpp.example.org", 443))])
def test_server_addresses_parse(text: str, address: Address) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "host:", "host:0", "host:70000", "host:http", ":5222",
                                  "[::1", "[nothost]:5222", "a b:5222", "user@host:5222",
                                  "1:2:3:zz"])
def test_bad_server_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_arguments_win_over_environment_which_wins_over_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text('[bot]\njid = "file@example.org"\npassword = "file-pw"\n'
                   'server = "file.example.org"\nkeepalive = "2 min"\n[mine]\nx = 1\n')
    s, doc = resolve({"jid": "arg@example.org/r"}, ENV, cfg)
    assert str(s.jid) == "arg@example.org/r" and s.origins["jid"] == "argument"
    assert s.password == "env-pw" and s.origins["password"] == "XMPPD_BOT_PASSWORD"
    assert s.server == Address("10.0.0.1", 5333) and s.tls_verify is False
    assert s.keepalive == 120 and "bot.toml" in s.origins["keepalive"]
    assert doc["mine"] == {"x": 1}
    s, _ = resolve({}, {}, cfg)
    assert str(s.jid) == "file@example.org/bot"        # default resource
    assert s.server == Address("file.example.org", 5222) and s.tls_verify is True


def test_defaults_without_a_server_use_the_domain() -> None:
    s, doc = resolve({"jid": "a@example.org", "password": "p"}, {}, None)
    assert s.server is None and s.describe_server() == "example.org (DNS)"
    assert (s.reconnect_min_delay, s.reconnect_max_delay, s.connect_timeout) == (1, 60, 30)
    assert s.receipts == "everyone" and doc == {}


@pytest.mark.parametrize("explicit, env, message", [
    ({}, {}, "no JID configured"),
    ({"jid": "a@example.org"}, {}, "no password configured for a@example.org"),
    ({"jid": "example.org", "password": "p"}, {}, "has no user part"),
    ({"jid": "a@b@c", "password": "p"}, {}, "invalid JID"),
    ({"jid": "a@example.org", "password": "p"}, {"XMPPD_BOT_SERVER": "host:99999"},
     "XMPPD_BOT_SERVER: bad server address 'host:99999': port must be 1..65535"),
    ({"jid": "a@example.org", "password": "p"}, {"XMPPD_BOT_TLS_VERIFY": "maybe"},
     "XMPPD_BOT_TLS_VERIFY: expected true or false, got 'maybe'"),
    ({"jid": "a@example.org", "password": "p", "receipts": "some"}, {},
     "argument: expected \"everyone\", \"contacts\" or \"off\""),
])
def test_missing_or_invalid_settings_name_the_setting(explicit: dict[str, object],
                                                      env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        resolve(explicit, env, None)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text, message", [
    ('[bot]\npasswrd = "x"\n', "unknown key 'passwrd' in [bot]"),
    ('[bot\n', "invalid TOML"),
    ('bot = 3\n', "[bot] must be a table"),
    ('[bot]\ntls_verify = "sometimes"\n', "tls_verify: expected true or false"),
    ('[bot]\nreconnect_min_delay = "soon"\n', "reconnect_min_delay: not a duration"),
    ('[bot]\nreconnect_min_delay = 0\n', "must be more than 0 s"),
    ('[bot]\nreconnect_min_delay = 10\nreconnect_max_delay = 5\n',
     "must be at least reconnect_min_delay"),
    ('[bot]\nserver = 5222\n', "expected \"host:port\""),
])
def test_bad_config_files_are_refused_with_the_key(tmp_path: Path, text: str,
                                                   message: str) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as e:
        resolve({"jid": "a@example.org", "password": "p"}, {}, cfg)
    assert message in str(e.value) and str(cfg) in str(e.value)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        resolve({}, {}, tmp_path / "nope.toml")


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    b = Backoff(1, 20, random.Random(7))
    delays = [b.next() for _ in range(8)]
    caps = [1, 2, 4, 8, 16, 20, 20, 20]
    for d, cap in zip(delays, caps):
        assert cap / 2 <= d <= cap
    assert len(set(delays)) == len(delays)          # jittered, not lock-step
    b.reset()
    assert 0.5 <= b.next() <= 1


def test_backoff_jitter_spreads_bots_that_lost_the_server_together() -> None:
    firsts = {round(Backoff(4, 60, random.Random(seed)).next(), 6) for seed in range(50)}
    assert len(firsts) == 50 and min(firsts) >= 2 and max(firsts) <= 4
