# tests: xmppd/listeners/s2s.py, xmppd/s2s/srv.py
"""The connector's lookups: s2s.routes first, else both SRV services through the resolver
(answers, NXDOMAIN, failures), else the domain on 5269."""
from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.names import dns, error

from tests.harness.server import Harness, resolve
from xmppd.listeners.s2s import Connector
from xmppd.s2s.service import S2SService
from xmppd.s2s.srv import Target


class FakeResolver:
    def __init__(self, records: dict[str, Any]) -> None:
        self.records = records
        self.asked: list[str] = []

    def lookupService(self, name: str) -> defer.Deferred[Any]:
        self.asked.append(name)
        found = self.records.get(name)
        if isinstance(found, Exception):
            return defer.fail(found)
        if found is None:
            return defer.fail(error.DNSNameError(name))
        answers = [dns.RRHeader(name.encode(), dns.SRV, payload=dns.Record_SRV(
            p, w, port, b"" if t == "." else t))      # the root, as decoded from the wire
            for p, w, port, t in found]
        return defer.succeed((answers, [], []))


def connector(records: dict[str, Any], **s2s: Any) -> tuple[Connector, FakeResolver]:
    h = Harness(s2s=s2s)
    fake = FakeResolver(records)
    conn = Connector(h.clock, S2SService(h.server), None, resolver=fake)
    h.close()
    return conn, fake


def test_static_routes_skip_dns() -> None:
    conn, fake = connector({}, routes={"b.example": "10.1.2.3:15269"})
    assert resolve(conn.targets("b.example")) == [Target("10.1.2.3", 15269)]
    assert fake.asked == []


def test_both_srv_services_are_asked_and_mixed() -> None:
    conn, fake = connector({
        "_xmpp-server._tcp.b.example": [(10, 0, 5269, "xmpp.b.example")],
        "_xmpps-server._tcp.b.example": [(5, 0, 5270, "tls.b.example")]})
    assert resolve(conn.targets("b.example")) == [Target("tls.b.example", 5270, True),
                                                  Target("xmpp.b.example", 5269, False)]
    assert sorted(fake.asked) == ["_xmpp-server._tcp.b.example", "_xmpps-server._tcp.b.example"]


def test_no_records_or_failed_lookups_fall_back_to_the_domain() -> None:
    conn, _ = connector({"_xmpps-server._tcp.b.example": error.DNSServerError("SERVFAIL")})
    assert resolve(conn.targets("b.example")) == [Target("b.example", 5269)]


def test_a_dot_target_means_no_server() -> None:
    conn, _ = connector({"_xmpp-server._tcp.b.example": [(0, 0, 0, ".")]})
    assert resolve(conn.targets("b.example")) == []
