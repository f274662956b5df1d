# tests: xmppd/limits.py, xmppd/listeners/http.py, xmppd/listeners/c2s.py, xmppd/listeners/bosh.py, xmppd/main.py
"""A stranger cannot block logins (issue 13 §4), shown against a real server on real sockets:
slow HTTP requests are cut at a total deadline, connections per address are bounded on every
listener (c2s, c2s_tls, http, BOSH sessions), unauthenticated connections are capped below the
file descriptor limit (raised at start) while logged-in users carry on, and what a client sends
is shaped (paused, never dropped). Clients pose as several addresses of 127.0.0.0/8."""
from __future__ import annotations

import asyncio
import re
import ssl
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.clients import XmppClient, run
from tests.harness.raw import RawClient
from tests.harness.server_proc import RunningServer, ServerFactory

BOSH_CREATE = ("<body rid='1000' to='localhost' xml:lang='en' wait='60' hold='1' ver='1.6' "
               "xmpp:version='1.0' xmlns='http://jabber.org/protocol/httpbind' "
               "xmlns:xmpp='urn:xmpp:xbosh'/>")


LISTENERS = {"tls": {"type": "c2s_tls"}, "http": {"type": "http"},
             "https": {"type": "http", "tls": True}}
LIMITS = {"max_unauthenticated_per_ip": 3, "max_connections_per_ip": 5,
          "http_header_timeout": "2 s", "http_body_timeout": "2 s",
          "http_body_min_rate": "1 KiB/s", "preauth_rate": "16 KiB/s", "preauth_burst": "16 KiB",
          "stanza_rate": "50/s", "stanza_burst": 50}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with ServerFactory("sqlite+memory", lambda: tmp_path_factory.mktemp("limits")) as factory:
        yield factory(listeners=LISTENERS, limits=LIMITS)


def port_of(srv: RunningServer, name: str) -> int:
    return int((srv.tmp / name).read_text())


async def refused(port: int, source: str) -> bool:
    """Whether a new connection from `source` is closed at once, unanswered."""
    c = await RawClient.connect(port, source)
    try:
        data = await asyncio.wait_for(c.reader.read(1), 3)
    except (asyncio.TimeoutError, ConnectionError):
        data = b"x"                 # still open (or reset later): not refused on accept
    c.close()
    return data == b""


async def held_stream(port: int, source: str) -> RawClient:
    """An unauthenticated c2s stream from `source`, answered (so the server holds it)."""
    c = await RawClient.connect(port, source)
    await c.open()
    return c


async def http_raw(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


def test_slow_http_headers_are_cut_at_the_deadline(server: RunningServer) -> None:
    """A byte every half second kept a request (and its descriptor) forever: Twisted's idle
    timer starts again at every byte. Now the headers have 2 s (http_header_timeout) in all."""
    async def go() -> tuple[float, bytes]:
        r, w = await http_raw(port_of(server, "http_port"), "127.0.0.11")
        start = time.monotonic()
        w.write(b"GET /.well-known/host-meta HTTP/1.1\r\n")
        for _ in range(24):                         # 12 s of trickling, if we are let
            w.write(b"X")
            try:
                await w.drain()
                data = await asyncio.wait_for(r.read(4096), 0.5)
            except asyncio.TimeoutError:
                continue
            except ConnectionError:
                data = b""
            rest = await asyncio.wait_for(r.read(), 5) if data else b""
            return time.monotonic() - start, data + rest
        return time.monotonic() - start, b""
    elapsed, answer = run(go())  # type: ignore[misc]
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert 1.5 <= elapsed < 6, elapsed


def test_slow_http_body_is_cut_but_a_steady_one_is_not(server: RunningServer) -> None:
    port = port_of(server, "http_port")

    async def trickle() -> tuple[float, bytes]:
        r, w = await http_raw(port, "127.0.0.12")
        w.write(b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Length: 400\r\n\r\n")
        start = time.monotonic()
        for _ in range(24):
            w.write(b" ")
            try:
                await w.drain()
                data = await asyncio.wait_for(r.read(4096), 0.5)
            except asyncio.TimeoutError:
                continue
            except ConnectionError:
                data = b""
            return time.monotonic() - start, data
        return time.monotonic() - start, b""

    async def steady() -> bytes:
        # 3 KiB over about 2.5 s: longer than http_body_timeout, but faster than the minimum
        # rate, so its deadline grows as the body comes.
        payload = BOSH_CREATE.encode() + b" " * (3072 - len(BOSH_CREATE))
        r, w = await http_raw(port, "127.0.0.12")
        w.write(b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(payload))
        for i in range(0, len(payload), 512):
            w.write(payload[i:i + 512])
            await w.drain()
            await asyncio.sleep(0.4)
        return await asyncio.wait_for(r.read(), 10)

    elapsed, answer = run(trickle())  # type: ignore[misc]
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert 1.5 <= elapsed < 6, elapsed
    answer = run(steady())  # type: ignore[assignment]
    assert answer.startswith(b"HTTP/1.1 200") and b"sid=" in answer, answer[:300]


@pytest.mark.parametrize("listener", ["port", "tls_port", "http_port", "https_port"])
def test_unauthenticated_connections_per_address_are_bounded_on_every_listener(
        server: RunningServer, listener: str) -> None:
    source = {"port": "127.0.0.13", "tls_port": "127.0.0.14", "http_port": "127.0.0.15",
              "https_port": "127.0.0.22"}[listener]
    port = port_of(server, listener)

    async def go() -> None:
        held = [await RawClient.connect(port, source) for _ in range(3)]
        if listener == "port":
            for c in held:              # live streams, not just accepted sockets
                await c.open()
        else:
            await asyncio.sleep(0.3)
        assert await refused(port, source)                  # the 4th from that address
        assert not await refused(port, "127.0.0.16")        # another address is served
        held.pop().close()
        await asyncio.sleep(0.5)                            # the server sees it go
        assert not await refused(port, source)              # and the address may again
        for c in held:
            c.close()
    run(go())


def test_logged_in_connections_do_not_count_as_strangers_but_count_per_address(
        server: RunningServer) -> None:
    port = port_of(server, "port")

    async def go() -> None:
        users = []
        for name in ("alice", "bob"):
            c = await RawClient.connect(port, "127.0.0.17")
            await c.login(name, f"{name}-pw")
            users.append(c)
        strangers = [await held_stream(port, "127.0.0.17") for _ in range(3)]
        assert await refused(port, "127.0.0.17")            # 5 in all: max_connections_per_ip
        users[0].close()
        await asyncio.sleep(0.5)
        assert await refused(port, "127.0.0.17")            # but 3 strangers already
        strangers[0].close()
        await asyncio.sleep(0.5)
        late = await held_stream(port, "127.0.0.17")
        for c in [*users, *strangers, late]:
            c.close()
    run(go())


def test_a_closed_tls_stream_gives_its_slot_back_at_once(server: RunningServer) -> None:
    """asyncio closes TLS with close_notify and keeps TCP open until ours comes back (30 s):
    the server answers at once, so a client that reconnects is not refused as a 4th."""
    async def go() -> None:
        for _ in range(6):
            c = await RawClient.connect(port_of(server, "port"), "127.0.0.21")
            await c.starttls()
            c.writer.close()
            await asyncio.wait_for(c.writer.wait_closed(), 5)
    run(go())


def test_bosh_sessions_count_per_address(server: RunningServer) -> None:
    port = port_of(server, "http_port")

    async def create() -> bytes:
        r, w = await http_raw(port, "127.0.0.18")
        w.write(b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(BOSH_CREATE), BOSH_CREATE.encode()))
        await w.drain()
        data = await asyncio.wait_for(r.read(), 10)
        w.close()
        await asyncio.sleep(0.2)            # the HTTP connection's own slot is given back
        return data

    async def go() -> list[bytes]:
        return [await create() for _ in range(3)]
    # Two sessions, and the HTTP connection asking for a third: three strangers' connections.
    answers = run(go())
    assert all(b"sid=" in a for a in answers[:2]), answers      # type: ignore[index]
    assert b"condition='policy-violation'" in answers[2]        # type: ignore[index]


def test_a_stranger_is_shaped_not_dropped(server: RunningServer) -> None:
    """60 KiB of keepalive whitespace before the first stanza: what was read is processed, and
    at 16 KiB/s after a 16 KiB burst the next read waits about 3 s; then the server answers,
    and nothing is lost on the way."""
    async def go() -> float:
        c = await RawClient.connect(port_of(server, "port"), "127.0.0.19")
        await c.starttls()
        await c.send(b" " * (60 * 1024))
        await asyncio.sleep(0.3)
        start = time.monotonic()
        await c.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='NONE'/>")
        await c.read_until(b"<invalid-mechanism/>", timeout=20)
        elapsed = time.monotonic() - start
        await c.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='NONE'/>")
        await c.read_until(b"<invalid-mechanism/>")       # the stream is fine
        c.close()
        return elapsed
    assert run(go()) >= 2.0


def test_a_stanza_flood_is_slowed_and_every_stanza_answered(server: RunningServer) -> None:
    async def go() -> float:
        c = await RawClient.connect(port_of(server, "port"), "127.0.0.20")
        await c.login("carol", "carol-pw")
        start = time.monotonic()
        for batch in range(4):          # each batch is read at once; later reads wait
            await c.send("".join(f"<iq type='get' id='p{batch}-{i}' to='localhost'>"
                                 "<ping xmlns='urn:xmpp:ping'/></iq>" for i in range(50)))
            await asyncio.sleep(0.1)
        answers = 0
        while answers < 200:
            chunk = await c.read_until(b"/>", timeout=20)
            answers += len(re.findall(rb"<iq [^>]*type=.result.", chunk))
        elapsed = time.monotonic() - start
        c.close()
        return elapsed
    # The first batch spends the burst, the second puts the session 50 stanzas in debt: its
    # reading pauses for 1 s (at 50/s), then the rest is read at once. Unshaped: about 0.3 s.
    assert run(go()) >= 0.9


# -- the fd limit and the global cap: a server started with a low descriptor limit ---------------

@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with ServerFactory("sqlite+memory", lambda: tmp_path_factory.mktemp("fds")) as factory:
        yield factory(fd_limits=(150, 200))            # soft, hard


def test_soft_fd_limit_is_raised_to_the_hard_one(small_server: RunningServer) -> None:
    assert small_server.proc is not None
    limits = Path(f"/proc/{small_server.proc.pid}/limits").read_text()
    soft, hard = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits).groups()  # type: ignore[union-attr]
    assert (int(soft), int(hard)) == (200, 200)


def test_strangers_are_capped_below_the_fd_limit_and_users_carry_on(
        small_server: RunningServer) -> None:
    """200 descriptors: the cap on unauthenticated connections comes down from 4096 to
    (200 - 64) / 2 = 68. A flood of 100 from 25 addresses gets 68 in, and the rest are closed
    at once; logged-in users keep chatting and a new user still logs in once it is over."""
    port = small_server.port

    async def go() -> int:
        alice = XmppClient("alice@localhost/chat", "alice-pw")
        bob = XmppClient("bob@localhost/chat", "bob-pw")
        assert await alice.start(port) and await bob.start(port)
        flood: list[RawClient] = []
        answered = 0
        for i in range(100):
            c = await RawClient.connect(port, f"127.0.1.{i % 25 + 1}")
            try:
                await c.open()
                answered += 1
            except (EOFError, ConnectionError, asyncio.TimeoutError):
                pass
            flood.append(c)
        alice.send_message(mto="bob@localhost", mbody="during", mtype="chat")
        assert (await bob.next_message())["body"] == "during"
        for c in flood:
            c.close()
        await asyncio.sleep(1)
        carol = XmppClient("carol@localhost/chat", "carol-pw")
        assert await carol.start(port)
        for client in (alice, bob, carol):
            await client.stop()
        return answered
    assert run(go()) == 68
    assert "max_unauthenticated lowered from 4096 to 68" in small_server.log()


def test_tls_listener_refuses_old_protocols_and_weak_ciphers(server: RunningServer) -> None:
    """Direct TLS (XEP-0368): TLS 1.2+ with forward-secret AEAD suites only."""
    import socket
    port = port_of(server, "tls_port")

    def handshake(ctx: ssl.SSLContext) -> str | None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            try:
                with ctx.wrap_socket(raw) as tls:
                    return tls.cipher()[0]          # type: ignore[index]
            except (ssl.SSLError, ConnectionError):
                return None
    modern = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    modern.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(modern) in ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                                 "ECDHE-RSA-CHACHA20-POLY1305")
    no_pfs = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    no_pfs.maximum_version = ssl.TLSVersion.TLSv1_2
    no_pfs.set_ciphers("AES128-SHA:AES256-SHA:AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA")
    assert handshake(no_pfs) is None
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with warnings.catch_warnings():         # deprecated: what the test is about
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        old.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    assert handshake(old) is None
