# tests: tests/integration/test_federation_prosody.py, tests/integration/test_federation_ejabberd.py
"""A tiny authoritative DNS server for the federation lab (tests/harness/fedlab.py), on
twisted.names: `python -m tests.harness.dnsserver <address> <zone.json>`.

The zone file is JSON, re-read when it changes: {"a": {name: address}, "srv": {name:
[[priority, weight, port, target], ...]}}. Names it holds answer with their records (or no
records of the asked type); every other name is NXDOMAIN, at once, so resolvers never wait.
Listens on UDP and TCP port 53 of `address` (the lab runs as root)."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from twisted.internet import defer
from twisted.names import common, dns, error, server


class ZoneResolver(common.ResolverBase):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.mtime = -1.0
        self.zone: dict[str, Any] = {"a": {}, "srv": {}}

    def _load(self) -> dict[str, Any]:
        mtime = os.stat(self.path).st_mtime
        if mtime != self.mtime:
            with open(self.path) as f:
                self.zone = json.load(f)
            self.mtime = mtime
        return self.zone

    def _lookup(self, name: bytes, cls: int, type: int, timeout: Any) -> defer.Deferred[Any]:
        zone = self._load()
        key = name.decode().lower().rstrip(".")
        answers = []
        if type in (dns.A, dns.ALL_RECORDS) and key in zone["a"]:
            answers.append(dns.RRHeader(name, dns.A, dns.IN, 60,
                                        dns.Record_A(zone["a"][key], 60), auth=True))
        if type in (dns.SRV, dns.ALL_RECORDS) and key in zone["srv"]:
            for prio, weight, port, target in zone["srv"][key]:
                answers.append(dns.RRHeader(name, dns.SRV, dns.IN, 60, dns.Record_SRV(
                    prio, weight, port, target, 60), auth=True))
        if answers or key in zone["a"] or key in zone["srv"]:
            return defer.succeed((answers, [], []))
        return defer.fail(error.DomainError(name))


def main(address: str, path: str) -> None:
    from twisted.internet import reactor
    factory = server.DNSServerFactory(authorities=[ZoneResolver(path)])
    r: Any = reactor
    r.listenUDP(53, dns.DNSDatagramProtocol(factory), interface=address)
    r.listenTCP(53, factory, interface=address)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    r.run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
