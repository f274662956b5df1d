"""XEP-0199 §4.1 heartbeat on the in-memory harness: idle clients are pinged, silent ones are
closed with <connection-timeout/>, and any traffic or answer counts as life."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from xmppd.config import ConfigError
from tests.harness.server import HarnessClient, Harness

PING = ("<iq type='get' id='{any}' from='example.org' to='alice@example.org/phone'>"
        "<ping xmlns='urn:xmpp:ping'/></iq>")
MakeHarness = Callable[..., Harness]


def keepalive(make_harness: MakeHarness, interval: str = "60 s",
              timeout: str = "10 s") -> Harness:
    return make_harness(modules={"ping": {"keepalive_interval": interval,
                                          "keepalive_timeout": timeout}})


def answer(session: HarnessClient, ping: Any, kind: str = "result") -> None:
    body = "" if kind == "result" else (
        "<error type='cancel'><service-unavailable "
        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")
    session.send(f"<iq type='{kind}' id='{ping.get('id')}' to='example.org'>{body}</iq>")


def test_silent_client_is_pinged_then_closed(make_harness: MakeHarness) -> None:
    h = keepalive(make_harness)
    alice = h.login("alice@example.org/phone")
    h.clock.advance(59)
    alice.expect_nothing()
    h.clock.advance(1)
    alice.expect(PING)
    h.clock.advance(9.9)
    assert not alice.closed
    h.clock.advance(0.1)
    assert alice.closed_with == "connection-timeout"


def test_result_keeps_the_session_and_the_next_ping_comes_after_another_interval(
        make_harness: MakeHarness) -> None:
    h = keepalive(make_harness)
    alice = h.login("alice@example.org/phone")
    h.clock.advance(60)
    ping = alice.expect(PING)
    h.clock.advance(5)
    answer(alice, ping)
    h.clock.advance(30)
    assert not alice.closed
    alice.expect_nothing()
    h.clock.advance(30)                    # 60 s after the answer, not after the ping
    alice.expect(PING)
    assert not alice.closed


def test_error_reply_counts_as_alive(make_harness: MakeHarness) -> None:
    h = keepalive(make_harness)
    alice = h.login("alice@example.org/phone")
    h.clock.advance(60)
    answer(alice, alice.expect(PING), kind="error")     # §4.1: e.g. <service-unavailable/>
    h.clock.advance(20)
    assert not alice.closed


def test_any_stanza_meanwhile_counts_as_life(make_harness: MakeHarness) -> None:
    h = keepalive(make_harness)
    alice = h.login("alice@example.org/phone")
    h.clock.advance(60)
    alice.expect(PING)
    h.clock.advance(3)
    alice.send("<iq type='get' id='x1' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>")
    alice.expect("<iq type='result' id='x1' from='example.org' to='alice@example.org/phone'/>")
    h.clock.advance(7)                     # the ping's timeout passes unanswered
    assert not alice.closed


def test_whitespace_keepalives_count_as_life(make_harness: MakeHarness) -> None:
    h = keepalive(make_harness)
    alice = h.login("alice@example.org/phone")
    for _ in range(10):                    # 10 minutes of nothing but whitespace every 50 s
        h.clock.advance(50)
        alice.whitespace()
    h.clock.advance(59)
    alice.expect_nothing()
    assert not alice.closed
    h.clock.advance(1)
    alice.expect(PING)
    h.clock.advance(5)
    alice.whitespace()                     # a space is an answer too, if late to the ping
    h.clock.advance(5)
    assert not alice.closed


def test_one_ping_at_a_time(make_harness: MakeHarness) -> None:
    h = keepalive(make_harness, interval="10 s", timeout="25 s")
    alice = h.login("alice@example.org/phone")
    h.clock.advance(10)
    alice.expect(PING)
    h.clock.advance(20)                    # two more idle ticks while the ping waits
    alice.expect_nothing()
    h.clock.advance(5)
    assert alice.closed_with == "connection-timeout"


def test_only_the_silent_session_is_closed(make_harness: MakeHarness) -> None:
    h = keepalive(make_harness)
    alice = h.login("alice@example.org/phone")
    laptop = h.login("alice@example.org/laptop")
    h.clock.advance(30)
    laptop.send("<presence/>")
    h.clock.advance(30)
    alice.expect(PING)
    laptop.received()                      # alice's presence goes nowhere else here
    h.clock.advance(10)
    assert alice.closed_with == "connection-timeout"
    assert not laptop.closed
    h.clock.advance(30)
    ping = laptop.expect(PING.replace("phone", "laptop"))
    answer(laptop, ping)
    assert not laptop.closed


def test_session_closing_during_a_ping_cancels_it(make_harness: MakeHarness) -> None:
    h = keepalive(make_harness)
    alice = h.login("alice@example.org/phone")
    h.clock.advance(60)
    alice.expect(PING)
    alice.close()                          # the client left on its own
    host = h.server.hosts["example.org"]
    assert not host.pending_iqs
    assert not [c for c in h.clock.getDelayedCalls() if c.active()]


def test_a_stream_already_closing_is_not_pinged(make_harness: MakeHarness) -> None:
    h = keepalive(make_harness)
    alice = h.login("alice@example.org/phone")
    alice.stream.state = "closed"        # type: ignore[attr-defined]  # the shell, flushing
    h.clock.advance(60)
    alice.expect_nothing()
    assert not h.server.hosts["example.org"].pending_iqs


def test_keepalive_is_off_by_default(make_harness: MakeHarness) -> None:
    h = make_harness(modules={"ping": {}})
    alice = h.login("alice@example.org/phone")
    assert h.server.hosts["example.org"].idle_interval is None
    h.clock.advance(3600)
    alice.expect_nothing()
    assert not alice.closed


@pytest.mark.parametrize("options, message", [
    ({"keepalive_interval": "0.5 s"}, "keepalive_interval: must be at least 1"),
    ({"keepalive_interval": "soon"}, "keepalive_interval: expected a duration"),
    ({"keepalive_interval": "5 min", "keepalive_timeout": "off"}, "keepalive_timeout"),
    ({"keepalive": "5 min"}, "unknown key 'keepalive'"),
])
def test_bad_options_stop_start_up(make_harness: MakeHarness, options: dict[str, Any],
                                   message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_harness(modules={"ping": options})


def test_contacts_see_a_dead_link_go_offline_and_last_seen_is_set(
        make_harness: MakeHarness) -> None:
    from tests.modules.contacts import MODULES, make_contacts
    h = make_harness(modules={**MODULES, "ping": {"keepalive_interval": "60 s",
                                                  "keepalive_timeout": "10 s"}})
    make_contacts(h, "alice@example.org", "bob@example.org")
    bob = h.login("bob@example.org/pc")
    alice = h.login("alice@example.org/phone")
    bob.received()
    for _ in range(3):                 # bob keeps talking; alice's network is gone
        h.clock.advance(20)
        bob.whitespace()
    alice.expect(PING)
    assert not alice.closed
    h.clock.advance(10)                # interval + timeout after her last byte
    assert alice.closed_with == "connection-timeout"
    bob.expect("<presence type='unavailable' from='alice@example.org/phone' "
               "to='bob@example.org'/>")
    h.clock.advance(30)
    bob.whitespace()
    bob.send("<iq type='get' id='l1' to='alice@example.org'><query xmlns='jabber:iq:last'/></iq>")
    bob.expect("<iq type='result' id='l1' from='alice@example.org' to='bob@example.org/pc'>"
               "<query xmlns='jabber:iq:last' seconds='30'/></iq>")
