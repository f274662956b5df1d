"""`server.processes = 2` (xmppd/supervisor.py, docs/CLUSTER.md "Every core"): one server, two
worker processes sharing the listening sockets, on the embedded default (a SQLite file, the
supervisor's private redis-server) and on PostgreSQL + Redis. Users land on either process
(the kernel spreads connections); messages and presence cross between them; a worker killed
under load loses no acknowledged message and comes back; a rolling restart (SIGUSR2) under
load loses none."""
from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.clients import D, online, run
from tests.cluster.test_cluster_faults import Roaming, Tracked, archive, send
from tests.harness.backends import backend_urls, require, skip_or_fail
from tests.harness.server_proc import DEFAULT_MODULES, RunningServer, make_server, \
    register_accounts

USERS = tuple(f"u{i}" for i in range(12))
Make = Callable[..., RunningServer]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    made: list[tuple[RunningServer, list[Callable[[], None]]]] = []

    def build(kind: str, listeners: dict[str, Any] | None = None) -> RunningServer:
        if kind == "sqlite+memory" and shutil.which("redis-server") is None:
            skip_or_fail("redis-server is not installed (the supervisor runs a private one)")
        if kind == "postgresql+redis":
            require("postgresql")
            require("redis")
        storage_url, cache_url, cleanups = backend_urls(kind, tmp_path)
        srv = make_server(tmp_path, storage_url, cache_url, modules=DEFAULT_MODULES,
                          listeners=listeners,
                          server={"processes": 2, "admin_socket": str(tmp_path / "ctl.sock"),
                                  "pid_file": str(tmp_path / "pid"),
                                  "shutdown_timeout": "10 s"})
        made.append((srv, cleanups))
        register_accounts(srv, {u: f"{u}-pw" for u in USERS})
        srv.start(timeout=60)
        return srv
    yield build
    for srv, cleanups in made:
        srv.stop()
        for f in cleanups:
            f()


def kick(path: Path, jid: str) -> Any:
    return ask(path, "kick", {"user": jid})


def ask(path: Path, command: str, args: dict[str, str] | None = None) -> Any:
    """One admin socket request (xmppd/control.py); its data."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(json.dumps({"command": command, "args": args or {}}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            more = s.recv(65536)
            assert more, "admin socket closed"
            buf += more
    answer = json.loads(buf)
    assert answer["ok"], answer
    return answer["data"]


def full_log(srv: RunningServer) -> str:
    return (srv.tmp / "xmppd.log").read_text()


def sockets(srv: RunningServer) -> list[Path]:
    return [srv.tmp / "ctl.sock", srv.tmp / "ctl.sock.2"]


def worker_pids(srv: RunningServer) -> list[int]:
    return [ask(p, "status")["pid"] for p in sockets(srv)]


def local_users(srv: RunningServer) -> list[set[str]]:
    """Per worker, the users whose session it holds (its own, not its mirror of the other's)."""
    out = []
    for p in sockets(srv):
        rows = ask(p, "sessions")
        out.append({r["jid"].split("@")[0] for r in rows if r["transport"] != "cluster"
                    and r["session"] is not None})
    return out


async def spread(srv: RunningServer, make_client: Callable[[str], Any]) -> tuple[Any, Any,
                                                                             list[Any]]:
    """Connect users until both workers hold one; (one on p1, one on p2, all clients)."""
    clients = []
    for u in USERS:
        c = make_client(u)
        await online(srv.port, c)
        await c.plugin["xep_0199"].ping(D, timeout=10)
        clients.append(c)
        on = await asyncio.to_thread(local_users, srv)
        if on[0] and on[1]:
            by_user = {c.boundjid.user: c for c in clients}
            return by_user[sorted(on[0])[0]], by_user[sorted(on[1])[0]], clients
    raise AssertionError(f"every connection landed on one process: {on}")


@pytest.mark.parametrize("kind", ["sqlite+memory", "postgresql+redis"])
def test_users_on_two_processes_chat_and_see_presence(make: Make, kind: str) -> None:
    srv = make(kind)
    assert Path(srv.tmp / "pid").read_text().strip() == str(srv.proc.pid if srv.proc else 0)
    assert len(set(worker_pids(srv))) == 2

    async def go() -> None:
        a, b, clients = await spread(srv, Tracked)
        assert a.boundjid.user not in (await asyncio.to_thread(local_users, srv))[1]
        # presence across processes: a follows b, b approves, b's presence reaches a
        a.send_presence_subscription(pto=f"{b.boundjid.bare}")
        await b.until(lambda: b.saw("subscribe", str(a.boundjid.bare)))
        b.send_presence(pto=str(a.boundjid.bare), ptype="subscribed")
        b.send_presence()
        await a.until(lambda: a.saw("available", str(b.boundjid.full)))
        # messages both ways, none lost
        await asyncio.gather(send(a, [b.boundjid.user], 50, "ab"),
                             send(b, [a.boundjid.user], 50, "ba"))
        await asyncio.gather(a.all_acked(), b.all_acked())
        await a.until(lambda: len(a.got) >= 50)
        await b.until(lambda: len(b.got) >= 50)
        assert sorted(b.got) == sorted(f"ab{i}" for i in range(50))
        assert sorted(a.got) == sorted(f"ba{i}" for i in range(50))
        # p1's admin socket sees b (on p2) and ends his session there
        rows = await asyncio.to_thread(ask, sockets(srv)[0], "sessions")
        assert str(b.boundjid.full) in {r["jid"] for r in rows}
        kicked = await asyncio.to_thread(kick, sockets(srv)[0], str(b.boundjid.full))
        assert kicked == [str(b.boundjid.full)]
        await asyncio.wait_for(b.gone.wait(), 10)
        for c in clients:
            if c is not b:
                await c.stop()
    run(go())


def test_a_killed_worker_loses_no_acknowledged_message_and_comes_back(make: Make) -> None:
    srv = make("sqlite+memory")
    before = worker_pids(srv)

    async def go() -> None:
        a, b, clients = await spread(srv, Tracked)       # a on p1, b on p2 (dies)
        n = 200
        load = asyncio.ensure_future(send(a, [b.boundjid.user], n, "a"))
        await a.until(lambda: len(a.acked) >= n // 4)
        import os
        os.kill(before[1], signal.SIGKILL)
        await asyncio.wait_for(b.gone.wait(), 10)
        await load
        await a.all_acked(90)
        assert len(a.acked) == n
        # p2 is back (a new process) and serves: b logs in again, wherever he lands
        deadline = time.monotonic() + 30
        while True:
            try:
                pids = await asyncio.to_thread(worker_pids, srv)
                if pids[1] != before[1]:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "worker p2 was not started again"
            await asyncio.sleep(0.2)
        assert pids[0] == before[0]
        again = Tracked(b.boundjid.user, "again", resume=False)
        await online(srv.port, again)
        await again.plugin["xep_0199"].ping(D, timeout=10)
        reached = set(b.got) | set(again.got) | set(await archive(again))
        lost = [body for to, body in a.acked if body not in reached]
        assert not lost, f"acknowledged but lost: {lost[:10]}"
        for c in clients + [again]:
            if c is not b:
                await c.stop()
    run(go())


def test_a_rolling_restart_under_load_loses_no_message(make: Make) -> None:
    srv = make("sqlite+memory")
    before = worker_pids(srv)
    assert srv.proc is not None
    sup = srv.proc

    async def go() -> None:
        users = [Roaming(u, srv.port) for u in USERS[:6]]
        for c in users:
            await online(srv.port, c)
        names = [c.boundjid.user for c in users]
        stop = asyncio.Event()

        async def chat(c: Roaming, peers: list[str]) -> int:
            i = 0
            while not stop.is_set():
                c.send_message(mto=f"{peers[i % len(peers)]}@{D}",
                               mbody=f"{c.boundjid.user}-{i}", mtype="chat")
                i += 1
                await asyncio.sleep(0.02)
            return i
        load = [asyncio.ensure_future(chat(c, [u for u in names if u != c.boundjid.user]))
                for c in users]
        await asyncio.sleep(1.0)
        sup.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 90
        while "rolling restart done" not in await asyncio.to_thread(full_log, srv):
            assert time.monotonic() < deadline, "the rolling restart did not end"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        stop.set()
        sent = await asyncio.gather(*load)
        for c in users:
            await c.all_acked(90)
            await c.plugin["xep_0199"].ping(D, timeout=20)
        await asyncio.sleep(1.0)
        acked = {(to.split("@")[0], body) for c in users for to, body in c.acked}
        # slixmpp may drop a stanza it was handed just as its stream went (never sent, so
        # never acknowledged): one per move, and a client may move twice (off p1, then off p2).
        assert len(acked) >= sum(sent) - 2 * len(users), (len(acked), sum(sent))
        for c in users:
            mine = {b for to, b in acked if to == c.boundjid.user}
            missing = mine - set(c.got)
            if missing:
                missing -= set(await archive(c))
            assert not missing, f"{c.boundjid.user} lost {sorted(missing)[:10]}"
        assert sum(c.resumed for c in users) >= 1          # the drained ones moved
        for c in users:
            await c.stop()
    run(go())
    after = worker_pids(srv)
    assert not set(after) & set(before), (before, after)   # both processes are new
    assert srv.proc is sup and sup.poll() is None


async def _post(port: int, body: str) -> str:
    r, w = await asyncio.open_connection("127.0.0.1", port)     # a new connection each time
    data = body.encode()
    w.write(b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            b"Content-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
    answer = (await asyncio.wait_for(r.read(), 20)).decode()
    w.close()
    return answer


def test_a_bosh_session_stays_on_its_process(make: Make) -> None:
    """XEP-0206 makes a new HTTP request per poll: the HTTP sockets are steered by the
    client's address, so every request of a session reaches the process holding it (on the
    other one the sid is unknown: item-not-found)."""
    srv = make("sqlite+memory", listeners={"http": {"type": "http"}})
    port = srv.ports["http"]

    async def go() -> None:
        created = await _post(port, "<body content='text/xml; charset=utf-8' hold='1' "
                                    "rid='1000' to='localhost' wait='1' ver='1.6' "
                                    "xmlns='http://jabber.org/protocol/httpbind'/>")
        sid = created.split("sid='")[1].split("'")[0] if "sid='" in created else \
            created.split('sid="')[1].split('"')[0]
        for rid in range(1001, 1009):
            answer = await _post(port, f"<body rid='{rid}' sid='{sid}' "
                                       "xmlns='http://jabber.org/protocol/httpbind'/>")
            assert "200 OK" in answer and "item-not-found" not in answer, answer
        await _post(port, f"<body rid='1009' sid='{sid}' type='terminate' "
                          "xmlns='http://jabber.org/protocol/httpbind'/>")
    run(go())
