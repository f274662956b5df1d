# tests: xmppd/limits.py
"""Connection slots, the fd-derived caps and read shaping, without sockets (a fake clock and a
fake transport)."""
from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from twisted.internet.task import Clock as TwistedClock

from xmppd.clock import Clock
from xmppd.config import LimitsSection
from xmppd.limits import ConnectionLimits, ReadGate, ReadShaper, TokenBucket, connection_limits


def limits(**kw: Any) -> ConnectionLimits:
    base: dict[str, Any] = dict(per_ip=4, unauthenticated_per_ip=2, max_unauthenticated=5,
                                max_total=100)
    base.update(kw)
    return ConnectionLimits(**base)


def test_strangers_per_address_then_in_total() -> None:
    lim = limits()
    a = [lim.open("192.0.2.1"), lim.open("192.0.2.1")]
    assert all(a) and lim.open("192.0.2.1") is None
    assert lim.refused == {"max_unauthenticated_per_ip": 1}
    b = [lim.open("192.0.2.2"), lim.open("192.0.2.2"), lim.open("192.0.2.3")]
    assert all(b) and lim.unauthenticated == 5
    assert lim.open("192.0.2.4") is None                # max_unauthenticated
    assert lim.refused["max_unauthenticated"] == 1


def test_authenticated_connections_leave_the_stranger_counts_but_not_the_address_total() -> None:
    lim = limits()
    first, second = lim.open("192.0.2.1"), lim.open("192.0.2.1")
    assert first and second
    first.authenticate()
    second.authenticate()
    assert lim.unauthenticated == 0 and lim.connections_from("192.0.2.1") == (2, 0)
    assert lim.open("192.0.2.1") and lim.open("192.0.2.1")          # 4 = per_ip
    assert lim.open("192.0.2.1") is None
    assert lim.refused == {"max_connections_per_ip": 1}


def test_closing_gives_everything_back_once() -> None:
    lim = limits()
    s = lim.open("192.0.2.1")
    t = lim.open("192.0.2.1")
    assert s and t
    t.authenticate()
    s.close()
    s.close()
    t.close()
    t.authenticate()                # after close: nothing
    assert (lim.total, lim.unauthenticated) == (0, 0)
    assert lim.connections_from("192.0.2.1") == (0, 0)


def test_exempt_networks_are_not_counted_per_address() -> None:
    lim = limits(exempt=(ipaddress.ip_network("10.0.0.0/8"),))
    assert all(lim.open("10.1.2.3") for _ in range(5))
    assert lim.open("10.1.2.3") is None                 # still within max_unauthenticated


def test_caps_are_kept_below_the_descriptor_limit() -> None:
    cfg = LimitsSection()
    lim = connection_limits(cfg, fd_limit=200)
    assert (lim.max_total, lim.max_unauthenticated) == (136, 68)
    lim = connection_limits(cfg, fd_limit=1 << 20)
    assert lim.max_unauthenticated == cfg.max_unauthenticated == 4096
    slots = [lim.open(f"192.0.2.{i % 200}") for i in range(4097)]
    assert slots[-1] is None and all(slots[:-1])


def test_token_bucket_burst_then_rate_and_debt() -> None:
    b = TokenBucket(rate=100.0, burst=50.0, now=0.0)
    assert b.take(50, 0.0) == 0.0
    assert b.take(100, 0.0) == 1.0          # 100 in debt at 100/s
    assert b.take(0, 0.5) == 0.5
    assert b.take(0, 10.0) == 0.0 and b.tokens == 50.0
    b.reconfigure(rate=1000.0, burst=500.0, now=10.0)
    assert b.tokens == 500.0


class Transport:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False


def shaper(**cfg: Any) -> tuple[ReadShaper, Transport, TwistedClock]:
    clock = TwistedClock()
    server: Any = type("S", (), {})()
    server.clock = Clock(clock)
    server.config = type("C", (), {"limits": dataclasses.replace(LimitsSection(), **cfg)})()
    transport = Transport()
    return ReadShaper(server, ReadGate(lambda: transport)), transport, clock


def test_reading_pauses_for_the_debt_and_resumes() -> None:
    s, t, clock = shaper(preauth_rate=1000.0, preauth_burst=2000)
    s.data(1500)
    assert not t.paused
    s.data(1500)                            # 1000 in debt: one second
    assert t.paused
    clock.advance(0.99)
    assert t.paused
    clock.advance(0.01)
    assert not t.paused and s.paused_for == 1.0


def test_more_debt_while_paused_extends_the_pause() -> None:
    s, t, clock = shaper(stanza_rate=10.0, stanza_burst=1)
    for _ in range(6):
        s.stanza()                          # 5 in debt: half a second
    assert t.paused and t.pauses == 1
    clock.advance(0.5)
    assert not t.paused


def test_authentication_switches_to_the_users_rate() -> None:
    s, t, clock = shaper(preauth_rate=100.0, preauth_burst=1024, c2s_rate=None)
    s.authenticated()
    s.data(10 ** 7)
    assert not t.paused                     # c2s_rate = "off"
    s2, t2, _ = shaper(preauth_rate=100.0, preauth_burst=1024, c2s_rate=10000.0,
                       c2s_burst=100000)
    s2.authenticated()
    s2.data(100000)
    assert not t2.paused
    s2.data(10000)
    assert t2.paused


def test_a_closed_connection_is_not_resumed() -> None:
    s, t, clock = shaper(preauth_rate=100.0, preauth_burst=1024)
    s.data(2024)
    assert t.paused
    s.close()
    clock.advance(100)
    assert t.paused and not clock.getDelayedCalls()


def test_the_gate_reads_again_only_once_no_holder_holds_it() -> None:
    t = Transport()
    gate = ReadGate(lambda: t)
    gate.hold(ReadGate.SHAPED)
    gate.hold(ReadGate.UNHANDLED)           # the session's storage backlog too
    assert t.paused and t.pauses == 1
    gate.release(ReadGate.SHAPED)           # the shaper's debt is paid: still held
    assert t.paused and gate.paused
    gate.release(ReadGate.SHAPED)           # a second release of the same holder: nothing
    assert t.paused
    gate.release(ReadGate.UNHANDLED)
    assert not t.paused and not gate.paused
