# tests: tests/integration/test_federation_xmppd.py, tests/integration/test_federation_prosody.py, tests/integration/test_federation_ejabberd.py
"""The federation lab: real servers (xmppd, Prosody, ejabberd), each on its own loopback
address and domain, finding each other through a DNS server of the test's own.

Name resolution (documented in docs/FEDERATION.md, "Testing"): the lab takes a random
127.X.Y.0/24 (all of 127/8 is loopback on Linux), runs tests/harness/dnsserver.py on
127.X.Y.53:53 with A and SRV records for every lab domain, and starts each server in a private
mount namespace (`unshare --mount`) where /etc/resolv.conf names that DNS server and
/etc/hosts holds only localhost. The machine's own files are never touched, nothing outside
the namespaces sees the lab's names, and every server, xmppd included, resolves
`_xmpp-server._tcp` / `_xmpps-server._tcp` SRV records and A records the way it does in
production. Needs root (mount namespaces, port 53, setpriv to the servers' own users).
"""
from __future__ import annotations

import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.harness.pki import Issued, TestCA, self_signed, server_names

REPO = Path(__file__).resolve().parents[2]
_NS = 'mount --bind "$LAB_HOSTS" /etc/hosts && mount --bind "$LAB_RESOLV" /etc/resolv.conf ' \
      '&& exec "$@"'


def lab_available() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the federation lab needs root (mount namespaces, DNS on port 53)"
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


class Lab:
    def __init__(self, *, ca: bool) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="xmppd-fedlab-"))
        self.dir.chmod(0o755)
        self.net = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}"
        self.ca = TestCA() if ca else None
        self.ca_file = self.dir / "ca.pem"
        if self.ca is not None:
            self.ca_file.write_bytes(self.ca.pem)
        self.zone: dict[str, Any] = {"a": {}, "srv": {}}
        self.hosts = self.dir / "hosts"
        self.hosts.write_text("127.0.0.1 localhost\n::1 localhost\n")
        self.resolv = self.dir / "resolv.conf"
        self.resolv.write_text(f"nameserver {self.addr(53)}\noptions timeout:1 attempts:1\n")
        self._write_zone()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dns = subprocess.Popen(
            [sys.executable, "-m", "tests.harness.dnsserver", self.addr(53),
             str(self.dir / "zone.json")], cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)},
            start_new_session=True)
        assert self.dns.stdout is not None
        line = self.dns.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"the lab DNS server did not start: {line!r}")

    def addr(self, n: int) -> str:
        return f"{self.net}.{n}"

    # -- DNS --------------------------------------------------------------------------------
    def add_domain(self, domain: str, address: str, *, srv: list[tuple[int, int, int, str]]
                   | None = None, xmpps: list[tuple[int, int, int, str]] | None = None,
                   subdomains: tuple[str, ...] = ("conference",)) -> None:
        self.zone["a"][domain] = address
        for sub in subdomains:
            self.zone["a"][f"{sub}.{domain}"] = address
        if srv is not None:
            self.zone["srv"][f"_xmpp-server._tcp.{domain}"] = srv
        if xmpps is not None:
            self.zone["srv"][f"_xmpps-server._tcp.{domain}"] = xmpps
        self._write_zone()

    def _write_zone(self) -> None:
        tmp = self.dir / "zone.json.tmp"
        tmp.write_text(json.dumps(self.zone))
        tmp.replace(self.dir / "zone.json")

    # -- certificates -----------------------------------------------------------------------
    def certificate(self, domain: str) -> Issued:
        """A certificate for `domain` and its subdomains: from the lab CA, or self-signed."""
        names = server_names([domain], wildcard=True)
        return self.ca.issue(domain, names) if self.ca is not None else \
            self_signed(domain, names)

    # -- processes --------------------------------------------------------------------------
    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd` in a mount namespace that resolves names through the lab DNS."""
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _NS, "sh", *cmd]

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "LAB_HOSTS": str(self.hosts), "LAB_RESOLV": str(self.resolv),
                **extra}

    def spawn(self, cmd: list[str], *, cwd: Path, log: Path, **env: str
              ) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(self.wrap(cmd), cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    env=self.env(**env), start_new_session=True)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in [*self.procs, self.dns]:
            stop(proc)
        if self.dns.stdout is not None:
            self.dns.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM to the process group (each lab process leads its own), then SIGKILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def wait_port(address: str, port: int, proc: subprocess.Popen[bytes], what: str,
              timeout: float = 60.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {tail(log)}")
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} not listening on {address}:{port} after {timeout} s: "
                       f"{tail(log)}")


def tail(path: Path | None, n: int = 3000) -> str:
    if path is None or not path.exists():
        return ""
    return path.read_text(errors="replace")[-n:]


def as_user(user: str, home: str | None = None) -> list[str]:
    pre = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
    if home:
        pre += ["env", f"HOME={home}"]
    return pre


def chown_tree(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)
