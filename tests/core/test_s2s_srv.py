# tests: xmppd/s2s/srv.py
"""SRV target order (RFC 6120 §3.2, RFC 2782, XEP-0368 §3)."""
from __future__ import annotations

import random
from collections import Counter

from xmppd.s2s.srv import SrvRecord, Target, order, targets

DOMAIN = "example.net"


def test_no_records_fall_back_to_the_domain_on_5269() -> None:
    assert targets(DOMAIN, None, None) == [Target(DOMAIN, 5269, False)]
    assert targets(DOMAIN, [], []) == [Target(DOMAIN, 5269, False)]


def test_both_services_are_mixed_by_priority() -> None:
    got = targets(DOMAIN, [SrvRecord(20, 0, 5269, "b.example.net.")],
                  [SrvRecord(10, 0, 5270, "a.example.net.", True)])
    assert got == [Target("a.example.net", 5270, True), Target("b.example.net", 5269, False)]


def test_a_dot_target_means_no_service() -> None:
    assert targets(DOMAIN, [SrvRecord(0, 0, 0, ".")], None) == []
    # direct TLS refused, STARTTLS offered: use the STARTTLS records
    assert targets(DOMAIN, [SrvRecord(0, 0, 5269, "x.example.net")],
                   [SrvRecord(0, 0, 0, ".")]) == [Target("x.example.net", 5269)]
    # XEP-0368 §3: no A/AAAA fallback once SRV is in use
    assert targets(DOMAIN, None, [SrvRecord(0, 0, 0, ".")]) == []


def test_weights_share_the_first_place_in_proportion() -> None:
    rng = random.Random(7)
    recs = [SrvRecord(0, 90, 1, "heavy"), SrvRecord(0, 10, 2, "light"), SrvRecord(0, 0, 3, "zero")]
    firsts = Counter(order(recs, rng)[0].target for _ in range(4000))
    assert 3300 < firsts["heavy"] < 3800
    assert 250 < firsts["light"] < 550
    assert firsts["zero"] < 60          # weight 0: picked first only when the draw is 0
    assert all(len(order(recs, rng)) == 3 for _ in range(20))


def test_lower_priority_always_comes_first() -> None:
    rng = random.Random(1)
    recs = [SrvRecord(5, 100, 1, "later"), SrvRecord(1, 1, 2, "first")]
    assert all(order(recs, rng)[0].target == "first" for _ in range(50))
