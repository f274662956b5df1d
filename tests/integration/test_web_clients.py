# tests: xmppd/listeners/http.py, xmppd/listeners/websocket.py, xmppd/listeners/bosh.py, xmppd/listeners/c2s.py
"""Web and mobile transports with real clients, on both backend pairs: Converse.js in headless
Chromium over WebSocket (RFC 7395) and BOSH (XEP-0206), @xmpp/client (Node.js) over WebSocket,
slixmpp over direct TLS (XEP-0368), XEP-0156 host-meta, and what a raw HTTP client may not do.

Chromium (Debian's `chromium`) and the npm packages in tests/web/ are installed by `make test`;
without them these tests skip locally and fail under CI=true.
"""
from __future__ import annotations

import asyncio
import functools
import http.server
import json
import os
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import REPO, RunningServer, ServerFactory

WEB = REPO / "tests" / "web"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def need(path: Path | str, what: str) -> None:
    """Skip without `path` locally; under CI=true a missing tool is a failure (`make test`
    installs them)."""
    if Path(path).exists():
        return
    message = f"{what} missing ({path}); `make test` installs it"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class WebServer:
    def __init__(self, srv: RunningServer, pages: str) -> None:
        self.srv = srv
        self.pages = pages      # the static server with the Converse.js page

    def port(self, name: str) -> int:
        """The port of listener "http_port", "tls_port" or "https_port"."""
        return self.srv.ports[name.removesuffix("_port")]

    @property
    def http(self) -> str:
        return f"127.0.0.1:{self.port('http_port')}"


@pytest.fixture(scope="module")
def web(server_factory: ServerFactory) -> Iterator[WebServer]:
    # Converse's page comes from another origin (as on a real site): CORS must let it in.
    handler = functools.partial(_QuietFiles, directory=str(WEB))
    pages = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    page_origin = f"http://127.0.0.1:{pages.server_address[1]}"
    try:
        srv = server_factory(listeners={
            "http": {"type": "http", "cors_origins": [page_origin]},
            "tls": {"type": "c2s_tls"},
            "https": {"type": "http", "tls": True}})
        yield WebServer(srv, page_origin)
    finally:
        pages.shutdown()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


async def _node(*args: str, timeout: float = 90) -> tuple[int, list[dict[str, Any]], str]:
    proc = await asyncio.create_subprocess_exec(
        "node", *args, cwd=WEB, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    return proc.returncode or 0, events, err.decode()[-3000:]


async def _peer_echoes(bob: XmppClient, node: asyncio.Task[Any], greeting: str) -> Any:
    """bob waits for the web client's message and answers it; returns what bob got."""
    waiter = asyncio.ensure_future(bob.next_message(60))
    done, _ = await asyncio.wait({waiter, node}, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        code, events, err = node.result()
        raise AssertionError(f"the web client ended first ({code}): {events}\n{err}")
    msg = waiter.result()
    bob.send_message(mto=msg["from"], mbody=greeting, mtype="chat")
    return msg


@pytest.mark.parametrize("transport", ["websocket", "bosh"])
def test_converse_in_chromium_chats_with_a_tcp_client(web: WebServer, transport: str) -> None:
    need(CHROMIUM, "Chromium")
    need(WEB / "node_modules" / "converse.js" / "dist" / "converse.min.js", "npm packages")
    service = (f"ws://{web.http}/xmpp-websocket" if transport == "websocket"
               else f"http://{web.http}/http-bind")

    async def go() -> None:
        bob = XmppClient("bob@localhost/desk", "bob-pw")
        assert await bob.start(web.srv.port)
        node = asyncio.ensure_future(_node(
            "converse_test.mjs", f"{web.pages}/converse/index.html", transport, service,
            "alice@localhost", "alice-pw", "bob@localhost"))
        msg = await _peer_echoes(bob, node, f"hi converse over {transport}")
        assert msg["body"] == "hello from converse"
        assert str(msg["from"]).startswith("alice@localhost/")
        code, events, err = await node
        assert code == 0, f"{events}\n{err}"
        got = [e for e in events if e["event"] == "message"]
        assert got == [{"event": "message", "from": "bob@localhost/desk",
                        "body": f"hi converse over {transport}"}]
        assert {"event": "shown", "body": f"hi converse over {transport}"} in events
        await bob.stop()
    run(go(), 150)


def test_xmpp_js_over_websocket_exchanges_messages_with_a_tcp_client(web: WebServer) -> None:
    need(WEB / "node_modules" / "@xmpp" / "client", "npm packages")

    async def go() -> None:
        bob = XmppClient("bob@localhost/desk", "bob-pw")
        assert await bob.start(web.srv.port)
        node = asyncio.ensure_future(_node(
            "--experimental-websocket", "xmpp_client.mjs", f"ws://{web.http}/xmpp-websocket",
            "carol@localhost", "carol-pw", "bob@localhost"))
        msg = await _peer_echoes(bob, node, "hi xmpp.js")
        assert msg["body"] == "ping from xmpp.js"
        # xmpp.js logs in with SASL2 and Bind 2 (XEP-0386 §2.2.1): its resource is the
        # tag it asked for, then an id the server makes.
        assert str(msg["from"]).startswith("carol@localhost/xmppjs.")
        echo = await bob.next_message(30)          # the answer came back over WebSocket
        assert echo["body"] == "echo: hi xmpp.js"
        code, events, err = await node
        assert code == 0, f"{events}\n{err}"
        assert events[0] == {"event": "online", "jid": str(msg["from"])}
        await bob.stop()
    run(go(), 150)


def test_direct_tls_client_logs_in_with_alpn_and_chats(web: WebServer) -> None:
    async def go() -> None:
        alice = XmppClient("alice@localhost/dtls", "alice-pw", sasl_mech="PLAIN")
        alice.enable_direct_tls = True          # XEP-0368: TLS from the first byte
        alice.enable_starttls = False
        alice.ssl_context.set_alpn_protocols(["xmpp-client"])
        assert await alice.start(web.port("tls_port"))
        assert alice.mechanism_used == "PLAIN"  # offered: the stream is encrypted
        assert alice.socket.selected_alpn_protocol() == "xmpp-client"
        bob = XmppClient("bob@localhost/desk", "bob-pw")
        assert await bob.start(web.srv.port)
        alice.send_message(mto="bob@localhost/desk", mbody="over direct TLS", mtype="chat")
        assert (await bob.next_message())["body"] == "over direct TLS"
        await alice.stop()
        await bob.stop()
    run(go(), 150)


def test_direct_tls_offers_no_starttls(web: WebServer) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", web.port("tls_port")), 10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' "
                  b"version='1.0'>")
        data = b""
        while b"</stream:features>" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
    assert b"starttls" not in data and b"<mechanism>PLAIN</mechanism>" in data


@pytest.mark.parametrize("path", ["/.well-known/host-meta", "/.well-known/host-meta.json"])
def test_host_meta_announces_websocket_and_bosh(web: WebServer, path: str) -> None:
    with urllib.request.urlopen(f"http://{web.http}{path}", timeout=10) as r:
        body = r.read().decode()
        assert r.headers["Access-Control-Allow-Origin"] == "*"       # XEP-0156 §3
    ws = f"ws://{web.http}/xmpp-websocket"
    bosh = f"http://{web.http}/http-bind"
    if path.endswith(".json"):
        links = {link["rel"]: link["href"] for link in json.loads(body)["links"]}
        assert links == {"urn:xmpp:alt-connections:websocket": ws,
                         "urn:xmpp:alt-connections:xbosh": bosh}
    else:
        assert f'rel="urn:xmpp:alt-connections:websocket" href="{ws}"' in body
        assert f'rel="urn:xmpp:alt-connections:xbosh" href="{bosh}"' in body


def _raw_http(web: WebServer, request: bytes) -> bytes:
    host, port = web.http.split(":")
    with socket.create_connection((host, int(port)), 10) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


def test_websocket_handshake_without_the_xmpp_subprotocol_is_refused(web: WebServer) -> None:
    head = _raw_http(web, b"GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\n"
                          b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    ok = _raw_http(web, b"GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\n"
                        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        b"Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 101") and b"sec-websocket-protocol: xmpp" in ok.lower()


def test_cors_admits_the_configured_origin_only(web: WebServer) -> None:
    def preflight(origin: str) -> bytes:
        return _raw_http(web, b"OPTIONS /http-bind HTTP/1.1\r\nHost: localhost\r\n"
                              b"Origin: " + origin.encode() + b"\r\n"
                              b"Access-Control-Request-Method: POST\r\n\r\n")
    ok = preflight(web.pages)
    assert b"access-control-allow-origin: " + web.pages.encode() in ok.lower()
    assert preflight("http://evil.example").startswith(b"HTTP/1.1 403")


def test_bosh_body_with_a_dtd_is_refused(web: WebServer) -> None:
    req = urllib.request.Request(
        f"http://{web.http}/http-bind", method="POST",
        data=b"<!DOCTYPE body [<!ENTITY x 'y'>]><body xmlns='http://jabber.org/protocol/httpbind'"
             b" rid='1' to='localhost' wait='5' hold='1'>&x;</body>")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400
    assert b"condition='bad-request'" in e.value.read()


def test_oversized_http_body_is_refused_before_it_is_read(web: WebServer) -> None:
    head = _raw_http(web, b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\n"
                          b"Content-Length: 999999999\r\n\r\n<body")
    assert head.startswith(b"HTTP/1.1 413")


def test_https_listener_speaks_http1_and_announces_secure_urls(web: WebServer) -> None:
    port = web.port("https_port")
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), 10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        s.sendall(b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: localhost:%d\r\n"
                  b"Connection: close\r\n\r\n" % port)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    links = {link["rel"]: link["href"]
             for link in json.loads(data.split(b"\r\n\r\n", 1)[1])["links"]}
    # XEP-0156 §3: only https:// and wss:// URLs
    assert links == {"urn:xmpp:alt-connections:websocket":
                     f"wss://localhost:{port}/xmpp-websocket",
                     "urn:xmpp:alt-connections:xbosh": f"https://localhost:{port}/http-bind"}


def test_wss_upgrade_and_stream_over_tls(web: WebServer) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", web.port("https_port")), 10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        opening = b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
        s.sendall(bytes((0x81, 0x80 | len(opening))) + b"\0\0\0\0" + opening)
        data = head.split(b"\r\n\r\n", 1)[1]
        while b"</stream:features>" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
    # wss:// is encrypted: PLAIN is offered, STARTTLS is not (RFC 7395 §3.8)
    assert b"<mechanism>PLAIN</mechanism>" in data and b"starttls" not in data
