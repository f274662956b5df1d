# tests: tests/cluster/test_multiproc_units.py
"""The listening sockets the supervisor binds for its workers (xmppd/supervisor.py).

One socket per listener *per worker*, all bound to the same address with SO_REUSEPORT: the
kernel spreads new connections over the group (a hash of the connection's addresses and
ports), each worker accepts only from its own socket, and the supervisor keeps every socket
open. So a worker that dies or restarts loses no connection the kernel already queued for it
(the backlog waits for the next run, which adopts the same socket); for a rolling restart
the supervisor closes the worker's socket *before* telling it to drain, so new connections
(clients moving away from it) go to the other workers at once.

HTTP is steered by the client's address instead (a classic BPF program on the group, as
`SO_ATTACH_REUSEPORT_CBPF` allows: source address modulo the group's size): the requests
of one BOSH session (XEP-0206: several TCP connections) must reach the process that holds
it, as HAProxy's `balance source` does between machines (docs/CLUSTER.md). Where the kernel
refuses the program, HTTP is served by the first worker only.
"""
from __future__ import annotations

import ctypes
import logging
import socket
import struct

log = logging.getLogger(__name__)

SO_ATTACH_REUSEPORT_CBPF = 51
_SKF_NET_OFF = -0x100000
_LD_W_ABS, _ALU_MOD_K, _RET_A = 0x20, 0x94, 0x16
_LD_B_ABS, _ALU_RSH_K, _JEQ_K, _JA = 0x30, 0x74, 0x15, 0x05
BACKLOG = 1024


def bind(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket with SO_REUSEPORT on host:port."""
    family, _, _, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                               flags=socket.AI_PASSIVE)[0]
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(addr)
        s.listen(BACKLOG)
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def steer_by_source(s: socket.socket, count: int) -> bool:
    """Attach the by-client-address program to `s`'s reuseport group; False if refused."""
    # The program sees the TCP segment; SKF_NET_OFF reaches back into the IP header: the
    # source address (IPv4 at 12, IPv6 its last word at 20), modulo the number of workers,
    # is the index of the socket in the group (an index past its end: the kernel hashes).
    net = _SKF_NET_OFF & 0xFFFFFFFF
    if s.family == socket.AF_INET:
        prog = [(_LD_W_ABS, 0, 0, net + 12), (_ALU_MOD_K, 0, 0, count), (_RET_A, 0, 0, 0)]
    else:       # a dual-stack socket sees IPv4 packets too: the version nibble decides
        prog = [(_LD_B_ABS, 0, 0, net), (_ALU_RSH_K, 0, 0, 4),
                (_JEQ_K, 0, 2, 4),                          # IPv4: next; IPv6: +2
                (_LD_W_ABS, 0, 0, net + 12), (_JA, 0, 0, 1),
                (_LD_W_ABS, 0, 0, net + 20),
                (_ALU_MOD_K, 0, 0, count), (_RET_A, 0, 0, 0)]
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError as e:
        log.warning("the kernel refused to steer HTTP by client address (%s): HTTP is "
                    "served by the first worker only", e)
        return False
    return True
