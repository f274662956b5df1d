# tests: xmppd/control.py, xmppd/ctl_live.py, xmppd/runtime.py, xmppd/reload.py, xmppd/logs.py
"""`xmppctl`'s live commands against a running server over its admin socket, with slixmpp
clients connected: status, sessions, kick, announce, stats, rooms, the account commands taking
effect at once, reload (a certificate swapped while a client stays connected; SIGHUP; log
files reopened after logrotate moved them), and the socket's permissions."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import time
from pathlib import Path

import pytest

from tests.harness.clients import XmppClient
from tests.harness.server_proc import RunningServer, ServerFactory, make_server
from xmppd.tls import ensure_certificate

NODE_LOCAL = "one process's admin socket, signals and log files"


@pytest.fixture(scope="module")
def srv(server_factory: ServerFactory) -> RunningServer:
    return server_factory(users=("alice", "bob"),
                          server={"admin_socket": "{tmp}/run/xmppd.sock"})


def ctl(srv: RunningServer, *args: str, input: str | None = None) -> tuple[int, str, str]:
    done = srv.ctl(*args, input=input)
    return done.returncode, done.stdout, done.stderr


def data(srv: RunningServer, *args: str) -> object:
    code, out, err = ctl(srv, "--json", *args)
    assert code == 0, err
    return json.loads(out)


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 120))  # type: ignore[arg-type]


def test_the_socket_is_for_the_servers_user_only(srv: RunningServer) -> None:
    sock = srv.tmp / "run" / "xmppd.sock"
    mode = os.stat(sock).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_status_sessions_kick_announce_stats(srv: RunningServer) -> None:
    async def go() -> None:
        alice = XmppClient("alice@localhost/phone", "alice-pw")
        alice2 = XmppClient("alice@localhost/laptop", "alice-pw")
        bob = XmppClient("bob@localhost/b", "bob-pw")
        for c in (alice, alice2, bob):
            assert await c.start(srv.port)
        status = data(srv, "status")
        assert isinstance(status, dict)
        assert status["sessions"] == 3 and status["users_online"] == 2
        assert status["hosts"] == ["example.test", "localhost"]
        assert {"type": "c2s", "bind": "127.0.0.1", "port": srv.port} in status["listeners"]
        code, out, _ = ctl(srv, "status")
        assert code == 0 and "3 session(s), 2 user(s) online" in out
        rows = data(srv, "sessions", "alice@localhost")
        assert isinstance(rows, list)
        assert [r["jid"] for r in rows] == ["alice@localhost/laptop", "alice@localhost/phone"]
        assert all(r["transport"] == "c2s" and r["ip"] == "127.0.0.1" and r["secure"]
                   for r in rows)
        code, out, _ = ctl(srv, "announce", "maintenance at noon")
        assert (code, out.strip()) == (0, "sent to 3 session(s)")
        for c in (alice, alice2, bob):
            msg = await c.next_message()
            assert (msg["type"], msg["from"].full, msg["body"]) == ("headline", "localhost",
                                                                    "maintenance at noon")
        code, out, _ = ctl(srv, "kick", "alice@localhost/phone")
        assert (code, out.strip()) == (0, "kicked alice@localhost/phone")
        await asyncio.wait_for(alice.gone.wait(), 10)
        assert alice.stream_errors == ["policy-violation"] and not alice2.gone.is_set()
        code, _, err = ctl(srv, "kick", "nobody@localhost")
        assert code == 1 and "no session" in err
        stats = data(srv, "stats")
        assert isinstance(stats, dict)
        assert stats["xmppd_sessions"] == 2 and stats["xmppd_users_online"] == 2
        assert stats['xmppd_connections{transport="c2s"}'] == 2
        for c in (alice2, bob):
            await c.stop()
    run(go())


def test_rooms(srv: RunningServer) -> None:
    async def go() -> None:
        alice = XmppClient("alice@localhost/r", "alice-pw", plugins=("xep_0030", "xep_0045"))
        assert await alice.start(srv.port)
        await alice.plugin["xep_0045"].join_muc_wait("tea@conference.localhost", "Alice",
                                                     maxchars=0, timeout=10)
        rooms = data(srv, "rooms")
        assert isinstance(rooms, list)
        [room] = [r for r in rooms if r["room"] == "tea@conference.localhost"]
        assert room["occupants"] == 1 and room["persistent"] is False
        await alice.stop()
    run(go())


def test_account_commands_take_effect_in_the_running_server(srv: RunningServer) -> None:
    async def go() -> None:
        code, out, _ = ctl(srv, "register", "carol", "localhost", "-", input="c-pw\n")
        assert (code, out.strip()) == (0, "created carol@localhost")
        carol = XmppClient("carol@localhost/x", "c-pw")
        assert await carol.start(srv.port)
        assert ctl(srv, "passwd", "carol", "localhost", "c-pw2")[0] == 0
        late = XmppClient("carol@localhost/y", "c-pw")
        assert await late.start(srv.port) is False
        await late.stop()
        # deleted through the socket: the running server ends the connected session at once
        assert ctl(srv, "unregister", "carol", "localhost")[0] == 0
        await asyncio.wait_for(carol.gone.wait(), 10)
        assert carol.stream_errors == ["not-authorized"]
        assert ctl(srv, "unregister", "carol", "localhost")[0] == 1
    run(go())


def server_certificate(port: int) -> bytes:
    """The certificate a new STARTTLS connection is shown (a raw client)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.sendall(b"<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
                b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
    seen = b""
    while b"</stream:features>" not in seen:
        seen += raw.recv(4096)
    raw.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    while b"<proceed" not in seen:
        seen += raw.recv(4096)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_reload_swaps_the_certificate_while_a_client_stays(srv: RunningServer) -> None:
    before = server_certificate(srv.port)

    async def go() -> None:
        alice = XmppClient("alice@localhost/stays", "alice-pw", plugins=("xep_0030",))
        assert await alice.start(srv.port)
        fresh = srv.tmp / "fresh"
        ensure_certificate(fresh / "cert.pem", fresh / "key.pem", ["localhost"], generate=True)
        shutil.copy(fresh / "cert.pem", srv.tmp / "cert.pem")
        shutil.copy(fresh / "key.pem", srv.tmp / "key.pem")
        text = srv.config.read_text()
        srv.config.write_text(text.replace("starttls = \"required\"", "starttls = \"optional\"")
                              .replace('log_level = "info"', 'log_level = "debug"'))
        try:
            code, out, err = ctl(srv, "reload")
        finally:
            srv.config.write_text(text)
        assert code == 0, err
        assert "reloaded: TLS certificate (CN=localhost" in out and "server.log_level" in out
        assert "changed but not reloaded (restart to apply): listeners" in out
        after = server_certificate(srv.port)
        assert after != before and after == ssl.PEM_cert_to_DER_cert(
            (fresh / "cert.pem").read_text())
        # the connected client never noticed: its stream still works
        await alice.plugin["xep_0030"].get_info(jid="localhost", timeout=10)
        assert not alice.gone.is_set()
        await alice.stop()
        assert ctl(srv, "reload")[0] == 0       # back to the file's log level
    run(go())


def test_sighup_reloads_and_reopens_a_rotated_log(srv: RunningServer) -> None:
    log = srv.tmp / "xmppd.log"
    rotated = srv.tmp / "xmppd.log.1"
    log.rename(rotated)                 # what logrotate does before it signals
    old = rotated.read_text()
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not (log.exists() and "reload" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reload: reloaded:" in log.read_text() and "log file reopened" in log.read_text()
    assert rotated.read_text() == old           # nothing more went to the moved file


def test_live_commands_need_a_running_server(tmp_path: Path) -> None:
    srv = make_server(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "memory")
    code, _, err = ctl(srv, "status")
    assert code == 3 and "admin_socket is not set" in err
    srv = make_server(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "memory",
                      server={"admin_socket": "{tmp}/gone.sock"})
    code, _, err = ctl(srv, "status")
    assert code == 3 and "no server answers" in err
    # the account commands fall back to the database
    assert ctl(srv, "register", "dora", "localhost", "pw")[0] == 0
    assert ctl(srv, "users", "localhost")[1].split() == ["dora"]
