# tests: tests/core/test_s2s_service.py
"""Several in-memory servers (tests/harness/server.py) federating over iosim connections: the
real shell (StreamConnection, PeerTls with real certificates) and S2SService, no sockets.
Bytes move only when `net.pump()` runs; time only by `net.advance(s)`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.test import iosim

from tests.harness.pki import Issued, TestCA, self_signed, server_names
from tests.harness.server import Harness
from xmppd.config import ListenerConfig
from xmppd.listeners.peertls import PeerTlsContext
from xmppd.listeners.s2s import component_factory, outgoing_protocol, s2s_factory
from xmppd.s2s.links import OutgoingLink
from xmppd.s2s.service import S2SService
from xmppd.s2s.srv import Target


class Net:
    def __init__(self, tmp: Path, *, ca: TestCA | None = None) -> None:
        self.tmp = tmp
        self.ca = ca
        self.listeners: dict[tuple[str, int], Any] = {}     # (host, port) -> server factory
        self.routes: dict[str, list[Target]] = {}
        self.pumps: list[iosim.IOPump] = []
        self.servers: list[Harness] = []
        self.connects: list[tuple[str, Target]] = []        # (from domain, target) attempts

    def server(self, domain: str, *, cert: Issued | None = None, modules: dict[str, Any]
               | None = None, listen: bool = True, starttls: str = "required",
               **sections: Any) -> Harness:
        h = Harness(modules=modules if modules is not None else {"disco": {}},
                    hosts=(domain,), **sections)
        h.clock.advance(0)
        d = self.tmp / domain
        d.mkdir(exist_ok=True)
        if cert is None:
            names = server_names([domain], wildcard=True)
            cert = self.ca.issue(domain, names) if self.ca is not None else \
                self_signed(domain, names)
        cert.write(d / "cert.pem", d / "key.pem")
        ca_file = ""
        if self.ca is not None:
            (d / "ca.pem").write_bytes(self.ca.pem)
            ca_file = str(d / "ca.pem")
        service = S2SService(h.server, federation=True)
        service.tls = PeerTlsContext(d / "cert.pem", d / "key.pem", ca_file=ca_file)
        service.connector = MemoryConnector(self, service)
        h.server.s2s = service
        h.server.router.remote = service.route_remote
        if listen:
            lst = ListenerConfig(type="s2s", starttls=starttls)  # type: ignore[arg-type]
            self.listeners[(domain, 5269)] = s2s_factory(service, lst, service.tls)
            self.routes[domain] = [Target(domain, 5269)]
        if h.config.components:
            self.listeners[(domain, 5347)] = component_factory(service)
        self.servers.append(h)
        return h

    def connect(self, factory: Any, client: Any, *, client_ip: str = "192.0.2.1") -> Any:
        server = factory.buildProtocol(None)
        st = iosim.FakeTransport(server, isServer=True,
                                 peerAddress=IPv4Address("TCP", client_ip, 40000))
        ct = iosim.FakeTransport(client, isServer=False)
        pump = iosim.connect(server, st, client, ct, greet=False)
        self.pumps.append(pump)
        return server

    def pump(self, rounds: int = 200) -> None:
        for _ in range(rounds):
            moved = False
            for p in list(self.pumps):
                if p.pump():
                    moved = True
            self.pumps = [p for p in self.pumps if not (p.clientIO.disconnected
                                                        and p.serverIO.disconnected)]
            if not moved:
                return

    def advance(self, seconds: float) -> None:
        for h in self.servers:
            h.clock.advance(seconds)
        self.pump()

    def close(self) -> None:
        for h in self.servers:
            if h.server.s2s is not None:
                h.server.s2s.stop()
        self.pump()
        for h in self.servers:
            h.close()


class MemoryConnector:
    def __init__(self, net: Net, service: S2SService) -> None:
        self.net = net
        self.service = service

    def targets(self, domain: str) -> defer.Deferred[list[Target]]:
        return defer.succeed(list(self.net.routes.get(domain, [])))

    def connect(self, target: Target, link: OutgoingLink) -> defer.Deferred[Any]:
        self.net.connects.append((link.local, target))
        factory = self.net.listeners.get((target.host, target.port))
        if factory is None:
            return defer.fail(ConnectionRefusedError(f"{target} refused"))
        client = outgoing_protocol(self.service, self.service.tls, target, link)
        self.net.connect(factory, client)
        return defer.succeed(client)
