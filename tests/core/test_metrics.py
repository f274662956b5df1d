"""Metrics on the in-memory harness: the core's counters move by exactly what happened, module
metrics are labelled with their host and go away with the module (xmppd/metrics.py)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.server import Harness
from xmppd.hooks import session_bound
from xmppd.metrics import FastHistogram


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness(modules={"disco": {}, "roster": {}, "presence": {}, "offline": {}},
                      hosts=("example.org", "example.net"))
    yield harness
    harness.close()


def scrape(h: Harness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = h.server.metrics.exposition()
    assert content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], metric: str,
          **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def test_stanzas_deliveries_and_logins_are_counted_exactly(h: Harness) -> None:
    before = scrape(h)
    alice = h.login("alice@example.org/a")
    bob = h.login("bob@example.org/b")
    for i in range(5):
        alice.send(f"<message to='bob@example.org' type='chat' id='m{i}'><body>hi</body></message>")
    alice.send("<iq type='get' id='p' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>")
    after = scrape(h)
    assert len([e for e in bob.received() if e.tag.endswith("message")]) == 5
    assert value(after, "xmppd_stanzas_in_total", kind="message") - \
        value(before, "xmppd_stanzas_in_total", kind="message") == 5
    assert value(after, "xmppd_stanzas_in_total", kind="presence") == 2     # initial presences
    assert value(after, "xmppd_stanzas_in_total", kind="iq") == 1
    assert value(after, "xmppd_messages_delivered_total", route="direct") == 5
    assert value(after, "xmppd_stanzas_out_total", kind="message") == 5
    assert value(after, "xmppd_logins_total") == 2
    assert value(after, "xmppd_login_failures_total") == 0
    assert value(after, "xmppd_sessions") == 2
    assert value(after, "xmppd_users_online") == 2
    assert value(after, "xmppd_connections", transport="other") == 2   # memory transports
    assert value(after, "xmppd_connections_opened_total", transport="other") == 2
    assert value(after, "xmppd_route_seconds_count") == 1      # 8 routed, 1 in 8 timed
    assert value(after, "xmppd_uptime_seconds") >= 0
    assert value(after, "process_resident_memory_bytes") > 0


def test_messages_stored_offline_are_counted_per_host(h: Harness) -> None:
    h.user("carol@example.org")
    alice = h.login("alice@example.org/a")
    for i in range(3):
        alice.send(f"<message to='carol@example.org' type='chat' id='o{i}'><body>x</body></message>")
    samples = scrape(h)
    assert value(samples, "xmppd_offline_stored_total", host="example.org") == 3
    assert value(samples, "xmppd_offline_stored_total", host="example.net") == 0
    assert value(samples, "xmppd_messages_delivered_total", route="direct") == 0
    assert value(samples, "xmppd_group_commit_items_total", name="offline store",
                 outcome="ok") >= 3


def test_failing_hook_handlers_are_counted_per_host(h: Harness) -> None:
    def broken(ev: object) -> None:
        raise RuntimeError("boom")
    h.server.hosts["example.net"].hooks.add(session_bound, broken)
    h.login("dave@example.net/x")
    samples = scrape(h)
    assert value(samples, "xmppd_hook_errors_total", host="example.net") == 1
    assert value(samples, "xmppd_hook_errors_total", host="example.org") == 0


def test_module_metrics_carry_the_host_and_leave_with_the_module(h: Harness) -> None:
    ctx = h.server.hosts["example.org"].contexts[0]
    other = h.server.hosts["example.net"].contexts[0]
    widgets = ctx.metrics.counter("test_widgets", "widgets made")
    other.metrics.counter("test_widgets", "widgets made").inc(7)
    widgets.inc()
    widgets.inc(2)
    ctx.metrics.gauge("test_level", "a level", lambda: 4.5)
    samples = scrape(h)
    assert value(samples, "xmppd_test_widgets_total", host="example.org") == 3
    assert value(samples, "xmppd_test_widgets_total", host="example.net") == 7
    assert value(samples, "xmppd_test_level", host="example.org") == 4.5
    ctx.close()
    samples = scrape(h)
    assert ("xmppd_test_widgets_total", (("host", "example.org"),)) not in samples
    assert value(samples, "xmppd_test_widgets_total", host="example.net") == 7
    assert not any(name == "xmppd_test_level" for name, _ in samples)


@pytest.mark.parametrize("name", ["Bad", "sessions", "x_total", "with-dash"])
def test_module_metric_names_are_checked(h: Harness, name: str) -> None:
    ctx = h.server.hosts["example.org"].contexts[0]
    with pytest.raises(ValueError):
        ctx.metrics.counter(name, "doc")


def test_a_name_is_a_counter_or_a_gauge_not_both(h: Harness) -> None:
    ctx = h.server.hosts["example.org"].contexts[0]
    ctx.metrics.counter("test_thing", "doc")
    with pytest.raises(ValueError):
        ctx.metrics.gauge("test_thing", "doc", lambda: 1.0)


def test_openmetrics_when_asked() -> None:
    h = Harness()
    try:
        body, content_type = h.server.metrics.exposition("application/openmetrics-text; version=1.0.0")
        assert content_type.startswith("application/openmetrics-text")
        assert body.endswith(b"# EOF\n")
    finally:
        h.close()


def test_fast_histogram_buckets_are_cumulative_upper_bounds() -> None:
    hist = FastHistogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 2.0):
        hist.observe(v)
    fam = hist.family("x_seconds", "doc")
    buckets = {s.labels["le"]: s.value for s in fam.samples if s.name == "x_seconds_bucket"}
    assert buckets == {"0.1": 2, "1.0": 3, "+Inf": 4}
    assert [s.value for s in fam.samples if s.name == "x_seconds_count"] == [4]
    assert [s.value for s in fam.samples if s.name == "x_seconds_sum"] == [2.65]
