# tests: tests/cluster/, tests/integration/
"""HAProxy (the Debian package, /usr/sbin/haproxy) in front of a test cluster, started by the
test with its own config on free ports and stopped with it — never the system service.

`HAProxy(tmp, frontends)`: `frontends` maps a name to (proxy port, mode), mode "c2s" (client
streams: round robin, checked with an XMPP stream header that must be answered with
<stream:features>), "tls" (direct TLS, XEP-0368: round robin, connect check) or "sticky"
(HTTP listeners: WebSocket, BOSH and uploads; `balance source`
keeps one client on one node, as a BOSH session needs). Everything is TCP mode: TLS (direct
TLS, HTTPS) passes through to the nodes untouched. `start(backends)` with, per frontend, the
nodes' ports.
"""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
PROBE = ("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
         "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")


def available() -> str | None:
    """None if HAProxy can run here, else why not."""
    return None if Path(HAPROXY).exists() else "haproxy is not installed"


def config(frontends: dict[str, tuple[int, str]], backends: dict[str, list[int]]) -> str:
    out = ["global", "    maxconn 4000", "", "defaults", "    mode tcp",
           "    timeout connect 5s", "    timeout client 1h", "    timeout server 1h",
           "    timeout tunnel 1h", "    timeout check 2s", ""]
    for name, (port, mode) in frontends.items():
        out += [f"frontend {name}", f"    bind 127.0.0.1:{port}", f"    default_backend {name}_nodes",
                "", f"backend {name}_nodes"]
        if mode == "c2s":
            out += ["    balance roundrobin", "    option tcp-check",
                    f'    tcp-check send "{PROBE}"', "    tcp-check expect string <stream:features"]
        elif mode == "tls":                 # direct TLS: a connect is the check
            out += ["    balance roundrobin"]
        else:
            out += ["    balance source", "    hash-type consistent"]
        for i, port_ in enumerate(backends[name]):
            out.append(f"    server n{i + 1} 127.0.0.1:{port_} check inter 500ms fall 2 rise 1")
        out.append("")
    return "\n".join(out)


class HAProxy:
    def __init__(self, tmp: Path, frontends: dict[str, tuple[int, str]]) -> None:
        self.tmp = tmp
        self.frontends = frontends
        self.proc: subprocess.Popen[bytes] | None = None

    def port(self, name: str) -> int:
        return self.frontends[name][0]

    def start(self, backends: dict[str, list[int]], timeout: float = 15.0) -> None:
        cfg = self.tmp / "haproxy.cfg"
        cfg.write_text(config(self.frontends, backends))
        check = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy config refused: {check.stdout}{check.stderr}")
        log = (self.tmp / "haproxy.log").open("ab")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        for port, _ in self.frontends.values():
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"haproxy exited: {(self.tmp / 'haproxy.log').read_text()}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"haproxy does not listen on {port}") from None
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
