# tests: xmppd/sasl2.py, xmppd/listeners/sasl2_shell.py, xmppd/listeners/channel_binding.py, xmppd/ctl_mobile.py
"""SASL2 (XEP-0388), Bind 2 (XEP-0386), FAST (XEP-0484) and channel binding (XEP-0440) against
the real server, on both backend pairs: a raw client for the exact bytes (one round trip, a
binding that does not match, a revoked token), @xmpp/client (Node.js) for a real library's
FAST, and slixmpp for the legacy flow with SCRAM-SHA-256-PLUS."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import ssl
import uuid
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.core.test_sasl import ScramClient
from tests.harness.clients import XmppClient, run
from tests.harness.raw import RawClient
from tests.harness.server_proc import REPO, RunningServer, ServerFactory
from tests.integration.test_web_clients import need
from xmppd.listeners.channel_binding import exporter

S2, FAST, BIND2, SM = "urn:xmpp:sasl:2", "urn:xmpp:fast:0", "urn:xmpp:bind:0", "urn:xmpp:sm:3"
WEB = REPO / "tests" / "web"
HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
AGENT = str(uuid.UUID("6a0d9b3c-1f2e-4d5c-8b7a-0123456789ab"))


@pytest.fixture(scope="module")
def srv(server_factory: ServerFactory) -> RunningServer:
    return server_factory(listeners={"tls": {"type": "c2s_tls"}})


def tls_port(srv: RunningServer) -> int:
    return srv.ports["tls"]


async def direct_tls(srv: RunningServer) -> RawClient:
    """XEP-0368: TLS from the first byte (our own TLS layer: channel bindings)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["xmpp-client"])
    r, w = await asyncio.open_connection("127.0.0.1", tls_port(srv), ssl=ctx,
                                         server_hostname="localhost")
    return RawClient(r, w)


def cb_data(c: RawClient, kind: str) -> bytes:
    obj = c.writer.get_extra_info("ssl_object")
    if kind == "tls-exporter":
        data = exporter(obj)
        assert data is not None
        return data
    cert = obj.getpeercert(binary_form=True)        # RFC 5929 §4.1: SHA-256 for RSA-SHA256
    return hashlib.sha256(cert).digest()


def authenticate(mechanism: str, initial: bytes, inline: str = "") -> str:
    return (f"<authenticate xmlns='{S2}' mechanism='{mechanism}'><initial-response>"
            f"{base64.b64encode(initial).decode()}</initial-response>"
            f"<user-agent id='{AGENT}'><software>raw</software></user-agent>{inline}"
            f"</authenticate>")


def parse(data: bytes, end: str) -> etree._Element:
    """The last element ending in `end` (e.g. "</success>") from what the server wrote."""
    start = data.rfind(b"<" + end[2:-1].encode())
    return etree.fromstring(data[start:data.rfind(end.encode()) + len(end)])


async def sasl2_outcome(c: RawClient) -> tuple[str, bytes]:
    """("success" or "failure", the element's bytes)."""
    async def go() -> tuple[str, bytes]:
        while True:
            for kind in ("success", "failure"):
                end = f"</{kind}>".encode()
                i = c.buf.find(end)
                if i >= 0:
                    start = c.buf.rfind(b"<" + kind.encode(), 0, i)
                    element = c.buf[start:i + len(end)]
                    c.buf = c.buf[i + len(end):]
                    return kind, element
            chunk = await c.reader.read(65536)
            if not chunk:
                raise EOFError(c.buf[-500:])
            c.buf += chunk
    return await asyncio.wait_for(go(), 20)


def ht(token: str, cb: bytes = b"", user: str = "alice") -> bytes:
    return user.encode() + b"\0" + hmac.digest(token.encode(), b"Initiator" + cb, "sha256")


async def password_login(srv: RunningServer, request: str = "HT-SHA-256-EXPR",
                         user: str = "alice") -> str:
    """A SASL2 PLAIN login asking for a FAST token; returns the token."""
    c = await direct_tls(srv)
    await c.send(HEADER)
    features = await c.read_until(b"</stream:features>")
    assert b"urn:xmpp:sasl:2" in features and b"HT-SHA-256-EXPR" in features
    await c.send(authenticate("PLAIN", f"\0{user}\0{user}-pw".encode(),
                              f"<request-token xmlns='{FAST}' mechanism='{request}'/>"
                              f"<bind xmlns='{BIND2}'/>"))
    kind, success = await sasl2_outcome(c)
    assert kind == "success", success
    token = etree.fromstring(success).find(f"{{{FAST}}}token")
    c.close()
    return str(token.get("token"))


def test_fast_reconnect_takes_one_round_trip(srv: RunningServer) -> None:
    async def go() -> None:
        token = await password_login(srv)
        c = await direct_tls(srv)
        binding = cb_data(c, "tls-exporter")
        # One flight from the client: header, authentication, resource, stream management.
        await c.send(HEADER + authenticate(
            "HT-SHA-256-EXPR", ht(token, binding),
            f"<fast xmlns='{FAST}'/><bind xmlns='{BIND2}'><tag>raw</tag>"
            f"<enable xmlns='{SM}' resume='true'/></bind>"))
        kind, data = await sasl2_outcome(c)     # ... and the answer: nothing sent meanwhile
        assert kind == "success", data
        success = etree.fromstring(data)
        full = success.findtext(f"{{{S2}}}authorization-identifier")
        assert full.startswith("alice@localhost/raw.")
        assert success.find(f"{{{BIND2}}}bound/{{{SM}}}enabled").get("resume") == "true"
        responder = base64.b64decode(success.findtext(f"{{{S2}}}additional-data"))
        assert responder == hmac.digest(token.encode(), b"Responder" + binding, "sha256")
        await c.read_until(b"</stream:features>")
        await c.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        answer = await c.read_until(b"p1")
        answer += await c.read_until(b">")
        assert re.search(rb"<iq[^>]*type=.result.", answer[answer.rfind(b"<iq"):]), answer
        c.close()
    run(go())


@pytest.mark.parametrize("kind", ["tls-exporter", "tls-server-end-point"])
def test_scram_plus_binds_to_this_tls_channel(srv: RunningServer, kind: str) -> None:
    async def login(wrong: bool) -> str:
        c = await direct_tls(srv)
        await c.send(HEADER)
        features = await c.read_until(b"</stream:features>")
        assert f"<channel-binding type='{kind}'/>".encode() in features
        sc = ScramClient("SCRAM-SHA-256", "alice", "alice-pw", flag=f"p={kind}")
        await c.send(authenticate("SCRAM-SHA-256-PLUS", sc.first()))
        challenge = parse(await c.read_until(b"</challenge>"), "</challenge>")
        data = os.urandom(32) if wrong else cb_data(c, kind)
        final = sc.final(base64.b64decode(challenge.text),
                         cbind=sc.gs2_header.encode() + data)
        await c.send(f"<response xmlns='{S2}'>{base64.b64encode(final).decode()}</response>")
        outcome, element = await sasl2_outcome(c)
        c.close()
        if outcome == "failure":
            return etree.QName(etree.fromstring(element)[0]).localname
        return outcome

    async def go() -> None:
        assert await login(wrong=False) == "success"
        # A man in the middle terminates TLS: the client's channel is not ours.
        assert await login(wrong=True) == "not-authorized"
    run(go())


def test_fast_with_a_foreign_channel_binding_fails(srv: RunningServer) -> None:
    async def go() -> None:
        token = await password_login(srv)
        c = await direct_tls(srv)
        await c.send(HEADER + authenticate("HT-SHA-256-EXPR", ht(token, os.urandom(32)),
                                           f"<fast xmlns='{FAST}'/>"))
        kind, element = await sasl2_outcome(c)
        assert kind == "failure" and b"not-authorized" in element
        c.close()
    run(go())


def test_a_revoked_token_fails(srv: RunningServer) -> None:
    async def go() -> None:
        token = await password_login(srv, user="bob")
        listed = srv.ctl("devices", "bob", "localhost")
        assert listed.returncode == 0 and AGENT in listed.stdout and "raw" in listed.stdout
        done = srv.ctl("revoke", "bob", "localhost", AGENT)
        assert done.returncode == 0, done.stderr
        c = await direct_tls(srv)
        binding = cb_data(c, "tls-exporter")
        await c.send(HEADER + authenticate("HT-SHA-256-EXPR", ht(token, binding, "bob"),
                                           f"<fast xmlns='{FAST}'/>"))
        kind, element = await sasl2_outcome(c)
        assert kind == "failure" and b"not-authorized" in element
        c.close()
    run(go())


def test_legacy_flow_still_works(srv: RunningServer) -> None:
    async def go() -> None:
        raw = await RawClient.connect(srv.port)
        await raw.login("carol", "carol-pw", host="localhost", resource="legacy")
        await raw.send("<iq type='get' id='p1' to='localhost'>"
                       "<ping xmlns='urn:xmpp:ping'/></iq>")
        answer = await raw.read_until(b"p1")
        answer += await raw.read_until(b">")
        assert re.search(rb"<iq[^>]*type=.result.", answer[answer.rfind(b"<iq"):]), answer
        raw.close()
        # slixmpp (SASL1 only) binds to the channel with tls-unique (TLS 1.2)
        carol = XmppClient("carol@localhost/slix", "carol-pw")
        carol.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2
        assert await carol.start(srv.port)
        assert carol.mechanism_used == "SCRAM-SHA-256-PLUS"
        await carol.stop()
    run(go())


# -- @xmpp/client (Node.js): SASL2 with a password, then FAST -------------------------------

async def node_client(srv: RunningServer, password: str, token_file: Path,
                      user: str = "carol") -> tuple[int, list[dict[str, Any]], str]:
    env = dict(os.environ, NODE_TLS_REJECT_UNAUTHORIZED="0")
    proc = await asyncio.create_subprocess_exec(
        "node", "fast_client.mjs", f"xmpps://127.0.0.1:{tls_port(srv)}", f"{user}@localhost",
        password, str(token_file), AGENT, cwd=WEB, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    return proc.returncode or 0, events, err.decode()[-2000:]


def test_xmpp_js_logs_in_with_a_password_then_with_its_fast_token(
        srv: RunningServer, tmp_path: Path) -> None:
    need(WEB / "node_modules" / "@xmpp" / "client", "npm packages")
    token_file = tmp_path / "token.json"

    async def go() -> None:
        code, events, err = await node_client(srv, "carol-pw", token_file)
        assert code == 0, f"{events}\n{err}"
        auth = [e for e in events if e["event"] == "authenticate"]
        assert auth[-1]["mechanism"] != "HT-SHA-256-NONE" and auth[-1]["requestToken"]
        assert {"event": "token-saved", "mechanism": "HT-SHA-256-NONE"} in events
        first = [e for e in events if e["event"] == "online"][0]["jid"]
        assert first.startswith("carol@localhost/fastjs.")
        # The app restarts: it has its token, and (to prove the token alone logs in) a
        # password that would not work.
        code, events, err = await node_client(srv, "not-the-password", token_file)
        assert code == 0, f"{events}\n{err}"
        auth = [e for e in events if e["event"] == "authenticate"]
        assert [a["mechanism"] for a in auth] == ["HT-SHA-256-NONE"] and auth[0]["fast"]
        assert [e["jid"] for e in events if e["event"] == "online"] == [first]  # same resource
        # Revoked (this device logged out by the admin): the token no longer works.
        assert srv.ctl("revoke", "carol", "localhost", AGENT).returncode == 0
        code, events, err = await node_client(srv, "not-the-password", token_file)
        assert code == 1
        assert {"event": "failure", "condition": "not-authorized"} in events
        assert [a["mechanism"] for a in events if a["event"] == "authenticate"][0] == \
            "HT-SHA-256-NONE"
    run(go())
