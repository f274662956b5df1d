# tests: xmppd/throttle.py, modules/register.py, xmppd/c2s.py, xmppd/listeners/session.py
"""Password guessing and mass sign-up against a real server (issue 13 §5): wrong passwords are
answered ever later, then refused with <temporary-auth-failure/> — the right one too — for the
guessing address on every listener (TCP and WebSocket) and, across addresses, for the guessed
account, except from where its owner logged in before; in-band sign-ups are limited per
stream, per address and in total. Clients pose as several addresses of 127.0.0.0/8."""
from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.harness.clients import run
from tests.harness.raw import RawClient
from tests.harness.server_proc import DEFAULT_MODULES, RunningServer, ServerFactory

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with ServerFactory("sqlite+memory", lambda: tmp_path_factory.mktemp("throttle")) as f:
        yield f(modules=DEFAULT_MODULES | {"register": {"allow_from": ["127.0.0.0/8", "::1"],
                                                        "max_per_ip": 2, "max_total": 4}},
                users=("alice", "bob", "dave"),
                # PLAIN offered on ws:// (as behind a TLS proxy)
                listeners={"http": {"type": "http", "behind_tls_proxy": True}},
                limits={"auth_delay_after": 3, "auth_max_delay": "0.4 s",
                        "auth_max_failures_per_ip": 8, "auth_max_failures_per_account": 12,
                        "auth_ban_time": "10 min"})


class Tcp:
    """PLAIN attempts over STARTTLS from one address, reconnecting when the server closes the
    stream (it does after five failures on one stream)."""

    def __init__(self, port: int, source: str) -> None:
        self.port, self.source = port, source
        self.c: RawClient | None = None

    async def attempt(self, user: str, password: str) -> tuple[str, float]:
        """(answer, seconds): "success", or the SASL failure's condition."""
        if self.c is None:
            self.c = await RawClient.connect(self.port, self.source)
            await self.c.starttls()
        if b"</stream:stream>" in self.c.buf:    # closed with <policy-violation/> after five
            self.close()
            return await self.attempt(user, password)
        start = time.monotonic()
        answer = await self.c.plain(user, password)
        took = time.monotonic() - start
        if not answer:
            raise AssertionError("closed without an answer")
        if answer.startswith(b"<success"):
            self.close()
            return "success", took
        cond = answer.split(b"<", 2)[2].split(b"/", 1)[0].split(b" ", 1)[0].decode()
        return cond, took

    def close(self) -> None:
        if self.c is not None:
            self.c.close()
            self.c = None


async def ws_attempt(port: int, source: str, user: str, password: str) -> str:
    """One PLAIN attempt over RFC 7395 WebSocket from `source`: "success" or the condition."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.ws_connect(f"http://127.0.0.1:{port}/xmpp-websocket",
                                   protocols=("xmpp",)) as ws:
            await ws.send_str(f"<open xmlns='{FRAMING}' to='localhost' version='1.0'/>")
            while "mechanisms" not in (await ws.receive_str(timeout=10)):
                pass
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            await ws.send_str(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>")
            answer = await ws.receive_str(timeout=10)
            if answer.startswith("<success"):
                return "success"
            return answer.split("<", 2)[2].split("/", 1)[0].split(" ", 1)[0]


def test_guessing_from_one_address_is_slowed_then_refused_on_every_listener(
        server: RunningServer) -> None:
    async def go() -> None:
        guesser = Tcp(server.port, "127.0.0.31")
        answers = [await guesser.attempt("alice", f"guess{i}") for i in range(8)]
        assert [a for a, _ in answers] == ["not-authorized"] * 8
        assert all(t < 0.2 for _, t in answers[:3])             # the first three at once
        assert all(t >= 0.2 for _, t in answers[3:])            # then 0.25 s, 0.4 s (cap)
        # The ninth attempt is refused, the right password too, and over WebSocket as well.
        assert (await guesser.attempt("alice", "alice-pw"))[0] == "temporary-auth-failure"
        assert (await guesser.attempt("bob", "bob-pw"))[0] == "temporary-auth-failure"
        http_port = int((server.tmp / "http_port").read_text())
        assert await ws_attempt(http_port, "127.0.0.31", "bob", "bob-pw") \
            == "temporary-auth-failure"
        guesser.close()
        # Another address is not affected, and alice's account is not refused (8 < 12).
        assert (await Tcp(server.port, "127.0.0.32").attempt("alice", "alice-pw"))[0] \
            == "success"
        assert await ws_attempt(http_port, "127.0.0.33", "bob", "bob-pw") == "success"
    run(go())


def test_guessing_one_account_from_many_addresses_refuses_it_but_not_to_its_owner(
        server: RunningServer) -> None:
    async def go() -> None:
        owner = Tcp(server.port, "127.0.0.40")
        assert (await owner.attempt("dave", "dave-pw"))[0] == "success"
        for i in range(4):                          # 3 guesses from each of 4 addresses
            botnet = Tcp(server.port, f"127.0.0.{41 + i}")
            for j in range(3):
                assert (await botnet.attempt("dave", f"guess{i}{j}"))[0] == "not-authorized"
            botnet.close()
        stranger = Tcp(server.port, "127.0.0.45")
        assert (await stranger.attempt("dave", "dave-pw"))[0] == "temporary-auth-failure"
        assert (await stranger.attempt("bob", "bob-pw"))[0] == "success"
        assert (await Tcp(server.port, "127.0.0.40").attempt("dave", "dave-pw"))[0] \
            == "success"
    run(go())


async def register(c: RawClient, name: str) -> bytes:
    await c.send(f"<iq type='set' id='r-{name}'><query xmlns='jabber:iq:register'>"
                 f"<username>{name}</username><password>{name}-pw</password></query></iq>")
    await c.read_until(b"<iq")
    body = await c.read_until(b">")
    if body.rstrip().endswith(b"/>"):
        return b"<iq" + body
    return b"<iq" + body + await c.read_until(b"</iq>")


def test_sign_ups_are_limited_per_stream_per_address_and_in_total(
        server: RunningServer) -> None:
    async def stream(source: str) -> RawClient:
        c = await RawClient.connect(server.port, source)
        await c.starttls()
        return c

    async def go() -> None:
        a = await stream("127.0.0.51")
        assert b'type="result"' in await register(a, "new1")
        assert b"<not-acceptable" in await register(a, "new2")        # one per stream
        a.close()
        b = await stream("127.0.0.51")
        assert b'type="result"' in await register(b, "new2")
        b.close()
        c = await stream("127.0.0.51")
        answer = await register(c, "new3")                          # 2 per address
        assert b"<resource-constraint" in answer and b'type="wait"' in answer
        c.close()
        d = await stream("127.0.0.52")
        assert b'type="result"' in await register(d, "new3")
        d.close()
        e = await stream("127.0.0.53")
        assert b'type="result"' in await register(e, "new4")
        e.close()
        f = await stream("127.0.0.54")
        assert b"<resource-constraint" in await register(f, "new5")   # 4 in all
        f.close()
    run(go())
    # and the accounts that were made work; the refused one does not exist
    async def login(name: str) -> str:
        return (await Tcp(server.port, "127.0.0.55").attempt(name, f"{name}-pw"))[0]
    assert run(login("new3")) == "success"
    assert run(login("new5")) == "not-authorized"
