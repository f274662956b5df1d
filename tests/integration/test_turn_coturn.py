# tests: modules/external_services.py
"""XEP-0215 TURN credentials against a real coturn (Debian's `coturn`, started by this test on
loopback with `use-auth-secret`): what xmppd hands a slixmpp client allocates a relay there
(`turnutils_uclient` sends data through it), and the same credentials are refused once they
have expired."""
from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slixmpp.xmlstream import ET

from tests.harness.clients import XmppClient, run
from tests.harness.ports import free_port
from tests.harness.server_proc import DEFAULT_MODULES, RunningServer, ServerFactory
from tests.integration.test_web_clients import need

TURNSERVER, UCLIENT = "/usr/bin/turnserver", "/usr/bin/turnutils_uclient"
SECRET = "turn-rest-s3cret"
LIFETIME = 4.0
NS = "urn:xmpp:extdisco:2"


@pytest.fixture(scope="module")
def coturn() -> Iterator[int]:
    need(TURNSERVER, "coturn")
    need(UCLIENT, "coturn's turnutils_uclient")
    port = free_port(udp=True)          # coturn listens on it over UDP and TCP
    low = random.randrange(40000, 60000, 100)
    tmp = Path(tempfile.mkdtemp(prefix="xmppd-coturn-"))
    proc = subprocess.Popen(
        [TURNSERVER, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
         f"--listening-port={port}", "--use-auth-secret", f"--static-auth-secret={SECRET}",
         "--realm=localhost", "--no-tls", "--no-dtls", f"--min-port={low}",
         f"--max-port={low + 99}", "--allow-loopback-peers", "--no-cli", "--log-file=stdout",
         "--simple-log", f"--pidfile={tmp / 'turnserver.pid'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        ready = False
        while time.monotonic() < deadline and not ready:    # wait for its listener
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    ready = True                # taken: coturn listens
            if proc.poll() is not None:
                raise RuntimeError("turnserver exited: "
                                   + (proc.stdout.read() if proc.stdout else b"").decode())
            time.sleep(0.05)
        assert ready, "coturn did not start"
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def srv(coturn: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    services = [{"type": "stun", "host": "127.0.0.1", "port": coturn},
                {"type": "turn", "host": "127.0.0.1", "port": coturn, "transport": "udp",
                 "secret": SECRET}]
    with ServerFactory("sqlite+memory", lambda: tmp_path_factory.mktemp("xmppd")) as factory:
        yield factory(DEFAULT_MODULES | {"external_services": {
            "credentials_lifetime": f"{LIFETIME} s", "services": services}}, users=("alice",))


async def turn_service(srv: RunningServer) -> dict[str, str]:
    alice = XmppClient("alice@localhost/phone", "alice-pw")
    assert await alice.start(srv.port)
    try:
        iq = alice.make_iq_get(ito="localhost")
        iq.append(ET.fromstring(f"<services xmlns='{NS}' type='turn'/>"))
        answer = await iq.send(timeout=10)
        [service] = answer.xml.iter(f"{{{NS}}}service")
        return dict(service.attrib)
    finally:
        await alice.stop()


def uclient(port: int, username: str, password: str) -> subprocess.CompletedProcess[str]:
    """Allocate a relay and send a few packets through it (client to client, -y)."""
    return subprocess.run([UCLIENT, "-y", "-n", "3", "-m", "1", "-p", str(port), "-u", username,
                           "-w", password, "127.0.0.1"], capture_output=True, text=True,
                          timeout=30)


def test_credentials_from_xmppd_work_at_coturn_until_they_expire(
        srv: RunningServer, coturn: int) -> None:
    service: dict[str, Any] = run(turn_service(srv), 30)
    assert service["host"] == "127.0.0.1" and service["port"] == str(coturn)
    done = uclient(coturn, service["username"], service["password"])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Total lost packets 0" in done.stdout
    wrong = uclient(coturn, service["username"], "bm90IHRoZSBwYXNzd29yZA==")
    assert wrong.returncode != 0 and "Cannot complete Allocation" in wrong.stdout
    expiry = int(service["username"].split(":", 1)[0])
    time.sleep(max(0.0, expiry - time.time() + 1.5))     # past the credentials' expiry
    late = uclient(coturn, service["username"], service["password"])
    assert late.returncode != 0 and "Cannot complete Allocation" in late.stdout
