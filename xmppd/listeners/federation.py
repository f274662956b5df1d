# tests: tests/integration/test_federation_xmppd.py, tests/integration/test_components.py
"""Start federation and components from the config: the `S2SService` (`server.s2s`, and the
router's `remote` seam), its TLS contexts and DNS connector, and the listeners.

Federation is on when the config has an "s2s" or "s2s_tls" listener (other servers could not
reach us for dialback without one); components need a "component" listener and
`[[components]]` entries. With neither, nothing here runs and remote domains keep getting
`<remote-server-not-found/>` from the router.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xmppd.config import ListenerConfig
from xmppd.listeners.peertls import PeerTlsContext
from xmppd.listeners.s2s import Connector, component_factory, s2s_factory
from xmppd.s2s.service import S2SService

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)
TYPES = ("s2s", "s2s_tls", "component")


def start(server: Server, reactor: Any, cert: Path, key: Path) -> S2SService | None:
    """Build the service if the config asks for federation or components (see above)."""
    types = {lst.type for lst in server.config.listeners}
    federation = bool(types & {"s2s", "s2s_tls"})
    if server.config.components and "component" not in types:
        log.warning("[[components]] are configured but there is no \"component\" listener: "
                    "they cannot connect")
    if not federation and "component" not in types:
        return None
    tls = PeerTlsContext(cert, key, ca_file=server.config.s2s.ca_file) if federation else None
    service = S2SService(server, federation=federation, tls_available=tls is not None)
    if federation:
        service.connector = Connector(reactor, service, tls)
    service.tls = tls
    server.s2s = service
    server.router.remote = service.route_remote
    return service


def listen(reactor: Any, service: S2SService, lst: ListenerConfig) -> Any:
    if lst.type == "component":
        factory = component_factory(service)
    else:
        factory = s2s_factory(service, lst, service.tls)
    port = reactor.listenTCP(lst.port, factory, interface=lst.bind)
    log.info("%s listening on %s:%d", lst.type, lst.bind, port.getHost().port)
    return port
