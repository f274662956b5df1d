# tests: tests/cluster/, tests/integration/
"""Loopback ports for the servers a test starts on a port it picks itself (cluster nodes,
HAProxy frontends, private PostgreSQL and Redis, a Redis Cluster, ejabberd's Erlang
distribution). Our own server binds port 0 and reports its port; these cannot.

A port is only taken once the server binds it, seconds after it was picked. `bind(0)` picks
from the kernel's ephemeral range, which every outgoing connection draws from too, and under
pytest-xdist (`make test` runs several workers) another worker may be handed the same free port
in that time. So each worker walks its own block of ports below the ephemeral range
(/proc/sys/net/ipv4/ip_local_port_range, 32768 and up by default), from a random start,
never handing out a port again before it has gone through the block, and a port is handed out
only if it binds now.
"""
from __future__ import annotations

import os
import random
import socket

FIRST = 12000           # blocks [12000, 22000): a Redis Cluster's bus ports (+10000) stay
BLOCK = 500             # below the ephemeral range as well
BLOCKS = 20


def _block() -> range:
    """This process's block: one per xdist worker (gw0, gw1, ...), the first one otherwise."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    n = int(worker[2:]) if worker[2:].isdigit() else 0
    start = FIRST + (n % BLOCKS) * BLOCK
    return range(start, start + BLOCK)


_ports = _block()
_next = random.randrange(len(_ports))


def bindable(port: int, udp: bool = False) -> bool:
    """Whether `port` on 127.0.0.1 can be bound now (TCP, or UDP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, udp: bool = False, bus: bool = False) -> int:
    """A loopback port no one has bound, and this worker has not handed out lately. `udp`:
    free for UDP too; `bus`: port + 10000 is free as well (a Redis Cluster node's bus)."""
    global _next
    for _ in range(len(_ports)):
        port = _ports[_next]
        _next = (_next + 1) % len(_ports)
        if bindable(port) and (not udp or bindable(port, udp=True)) \
                and (not bus or bindable(port + 10000)):
            return port
    raise RuntimeError(f"no free port in {_ports.start}-{_ports.stop - 1}")
