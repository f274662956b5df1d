# tests: xmppd/metrics.py, xmppd/listeners/metrics.py, storage/metrics.py
"""The metrics listener of a running server, scraped with prometheus_client's parsers after
known slixmpp traffic, on both backend pairs: every counter moved by exactly what was sent."""
from __future__ import annotations

import asyncio
import time
import urllib.request
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.clients import XmppClient
from tests.harness.server_proc import RunningServer, ServerFactory

NODE_LOCAL = "one process's metrics listener and its exact counters"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def srv(server_factory: ServerFactory) -> RunningServer:
    server = server_factory(listeners={"metrics": {"type": "metrics"}})
    server.backend = server_factory.kind  # type: ignore[attr-defined]
    return server


def url(srv: RunningServer, path: str = "/metrics") -> str:
    return f"http://127.0.0.1:{srv.ports['metrics']}{path}"


def scrape(srv: RunningServer) -> Samples:
    with urllib.request.urlopen(url(srv), timeout=10) as r:
        assert r.headers["content-type"].startswith("text/plain")
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def v(samples: Samples, metric: str, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def delta(after: Samples, before: Samples, metric: str, **labels: str) -> float:
    return v(after, metric, **labels) - v(before, metric, **labels)


def settled(srv: RunningServer, timeout: float = 20.0) -> Samples:
    """A scrape once no group commit has anything queued or in flight."""
    deadline = time.monotonic() + timeout
    while True:
        s = scrape(srv)
        busy = sum(value for (name, _), value in s.items()
                   if name in ("xmppd_group_commit_queue", "xmppd_group_commit_in_flight"))
        if not busy or time.monotonic() > deadline:
            return s
        time.sleep(0.1)


def test_counters_move_by_exactly_what_was_sent(srv: RunningServer) -> None:
    sent_to_bob, sent_to_carol = 7, 3

    async def traffic() -> tuple[Samples, Samples, Samples]:
        before = settled(srv)
        # one SASL attempt (slixmpp would otherwise try each mechanism offered in turn)
        wrong = XmppClient("alice@localhost/x", "not-her-password", sasl_mech="PLAIN")
        assert await wrong.start(srv.port) is False
        await wrong.stop()
        alice = XmppClient("alice@localhost/a", "alice-pw")
        bob = XmppClient("bob@localhost/b", "bob-pw")
        assert await alice.start(srv.port) and await bob.start(srv.port)
        during = settled(srv)
        for i in range(sent_to_bob):
            alice.send_message(mto="bob@localhost", mbody=f"hello {i}", mtype="chat")
        for i in range(sent_to_carol):
            alice.send_message(mto="carol@localhost", mbody=f"later {i}", mtype="chat")
        for _ in range(sent_to_bob):
            await bob.next_message()
        await asyncio.sleep(0.5)     # the offline commits of carol's messages (then settled())
        after = settled(srv)
        await alice.stop()
        await bob.stop()
        return before, during, after

    before, during, after = asyncio.run(asyncio.wait_for(traffic(), 120))
    assert delta(after, before, "xmppd_logins_total") == 2
    assert delta(after, before, "xmppd_login_failures_total") == 1
    assert delta(after, during, "xmppd_stanzas_in_total", kind="message") == 10
    assert delta(after, during, "xmppd_messages_delivered_total", route="direct") == 7
    assert delta(after, during, "xmppd_stanzas_out_total", kind="message") == 7
    assert delta(after, during, "xmppd_offline_stored_total", host="localhost") == 3
    # XEP-0313: each message goes into the sender's and the recipient's archive.
    assert delta(after, during, "xmppd_group_commit_items_total", name="archive",
                 outcome="ok") == 20
    assert delta(after, during, "xmppd_group_commit_items_total", name="offline store",
                 outcome="ok") == 3
    assert v(during, "xmppd_connections", transport="c2s") == 2
    assert v(during, "xmppd_sessions") == 2 and v(during, "xmppd_users_online") == 2
    assert delta(after, during, "xmppd_route_seconds_count") >= 1      # 1 in 8 timed
    assert v(after, "xmppd_sql_statement_seconds_count", verb="insert") > 0
    assert v(after, "xmppd_sql_transaction_seconds_count", outcome="commit") > 0
    assert v(after, "process_resident_memory_bytes") > 10_000_000
    assert v(after, "process_open_fds") > 0 and v(after, "process_cpu_seconds_total") > 0
    if srv.backend == "postgresql+redis":   # type: ignore[attr-defined]
        assert sum(value for (name, _), value in after.items()
                   if name == "xmppd_redis_call_seconds_count") > 0


def test_openmetrics_on_request_and_the_dashboard_page(srv: RunningServer) -> None:
    req = urllib.request.Request(url(srv), headers={
        "Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        names = {fam.name for fam in om_families(r.read().decode())}
    assert {"xmppd_stanzas_in", "xmppd_sessions", "xmppd_route_seconds"} <= names
    with urllib.request.urlopen(url(srv, "/"), timeout=10) as r:
        assert r.headers["content-type"].startswith("text/html")
        assert b"histogram_quantile" in r.read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url(srv, "/nothing"), timeout=10)
    assert e.value.code == 404
