# tests: xmppd/throttle.py
"""The failed-login throttle and the sign-up counters, sans-IO (time is a number)."""
from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from xmppd.config import LimitsSection
from xmppd.throttle import AuthThrottle, MemoryCounters, RegistrationThrottle, Throttled

CFG = dataclasses.replace(LimitsSection(), auth_window=600.0, auth_delay_after=3,
                          auth_max_delay=5.0, auth_max_failures_per_ip=10,
                          auth_max_failures_per_account=20, auth_ban_time=900.0)


def fail(t: AuthThrottle, n: int, ip: str | None, account: str, now: float = 0.0) -> None:
    for _ in range(n):
        t.failed(ip, account, now)


def test_no_delay_until_the_threshold_then_doubling_up_to_the_cap() -> None:
    t = AuthThrottle(CFG)
    delays = []
    for _ in range(9):
        delays.append(t.verdict("192.0.2.1", "alice@example.org", 0.0))
        t.failed("192.0.2.1", "alice@example.org", 0.0)
    assert delays == [0.0, 0.0, 0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0]


def test_the_delay_follows_the_address_for_any_account() -> None:
    t = AuthThrottle(CFG)
    for i in range(5):
        t.failed("192.0.2.1", f"user{i}@example.org", 0.0)      # one guess per account
    assert t.verdict("192.0.2.1", "someone@example.org", 0.0) == 1.0
    assert t.verdict("192.0.2.2", "someone@example.org", 0.0) == 0.0


def test_an_address_is_refused_at_the_limit_even_with_the_right_password_until_the_ban_ends(
        ) -> None:
    t = AuthThrottle(CFG)
    fail(t, 10, "192.0.2.1", "alice@example.org", now=100.0)
    with pytest.raises(Throttled):
        t.verdict("192.0.2.1", "bob@example.org", 101.0)
    t.succeeded("192.0.2.1", "bob@example.org")     # a success does not lift it
    with pytest.raises(Throttled):
        t.verdict("192.0.2.1", "bob@example.org", 999.0)
    assert t.verdict("192.0.2.1", "bob@example.org", 1000.0) == 0.0     # 100 + 900


def test_an_account_is_refused_except_from_addresses_it_logged_in_from() -> None:
    t = AuthThrottle(CFG)
    t.succeeded("198.51.100.7", "alice@example.org")
    for i in range(20):                     # a botnet: one guess from each of 20 addresses
        t.failed(f"192.0.2.{i}", "alice@example.org", 0.0)
    with pytest.raises(Throttled):
        t.verdict("203.0.113.1", "alice@example.org", 1.0)
    assert t.verdict("198.51.100.7", "alice@example.org", 1.0) == 5.0   # delayed, not refused
    assert t.verdict("203.0.113.1", "bob@example.org", 1.0) == 0.0


def test_failures_are_forgotten_after_the_window() -> None:
    t = AuthThrottle(CFG)
    fail(t, 5, "192.0.2.1", "alice@example.org", now=0.0)
    assert t.verdict("192.0.2.1", "alice@example.org", 599.0) > 0
    assert t.verdict("192.0.2.1", "alice@example.org", 600.0) == 0.0


def test_exempt_networks_are_not_refused_per_address_but_accounts_still_are() -> None:
    cfg = dataclasses.replace(CFG, exempt_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    t = AuthThrottle(cfg)
    for i in range(15):
        t.failed("10.1.1.1", f"user{i}@example.org", 0.0)
    assert t.verdict("10.1.1.1", "new@example.org", 0.0) == 0.0
    fail(t, 20, "10.1.1.1", "alice@example.org")
    with pytest.raises(Throttled):
        t.verdict("10.1.1.1", "alice@example.org", 0.0)


def test_counters_are_bounded_oldest_first() -> None:
    c = MemoryCounters(max_keys=3)
    for key in ("a", "b", "c", "d"):
        c.add(key, 0.0, 60.0)
        c.ban(key, 100.0)
    assert c.count("a", 1.0, 60.0) == 0 and c.count("d", 1.0, 60.0) == 1
    assert c.banned_until("a", 1.0) is None and c.banned_until("d", 1.0) == 100.0
    assert c.banned_until("d", 100.0) is None


def test_registrations_per_address_and_in_total() -> None:
    r = RegistrationThrottle()
    for ip in ("192.0.2.1", "192.0.2.1", "192.0.2.2"):
        assert r.allowed(ip, 0.0, window=3600, per_ip=2, total=3) is None
        r.registered(ip, 0.0, window=3600)
    assert r.allowed("192.0.2.1", 1.0, window=3600, per_ip=2, total=0) == "ip"
    assert r.allowed("192.0.2.3", 1.0, window=3600, per_ip=2, total=3) == "total"
    assert r.allowed("192.0.2.1", 3600.0, window=3600, per_ip=2, total=3) is None
    assert r.allowed("192.0.2.1", 1.0, window=3600, per_ip=0, total=0) is None
