# tests: xmppd/s2s/, xmppd/listeners/s2s.py, xmppd/listeners/peertls.py, xmppd/listeners/federation.py
"""Two xmppd servers federating in the lab (tests/harness/fedlab.py). xmppd2.example publishes
only a `_xmpps-server` SRV record for its direct TLS port (XEP-0368) ahead of a STARTTLS one;
xmppd.example's SRV record points at a dead port and xmppd2 reaches it through `s2s.routes`
(static routes win over DNS). Runs with a test CA (SASL EXTERNAL, one XEP-0288 bidirectional
connection) and with self-signed certificates (dialback). Plus a raw remote server with a valid
certificate that tries to spoof other domains and a local user: refused with <invalid-from/>."""
from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator

import pytest

from tests.harness.backends import skip_or_fail
from tests.harness.fedlab import Lab, lab_available, tail
from tests.harness.fedservers import XmppdServer, logs_of, wait_log
from tests.harness.pki import server_names
from tests.integration import federation_checks as checks
from tests.integration.federation_checks import Side

ONE, TWO = "xmppd.example", "xmppd2.example"


@pytest.fixture(scope="module", params=["ca", "dialback"])
def fed(request: pytest.FixtureRequest) -> Iterator[tuple[Side, Side, str, Lab]]:
    why = lab_available()
    if why:
        skip_or_fail(why)
    lab = Lab(ca=request.param == "ca")
    one = two = None
    try:
        one = XmppdServer(lab, ONE, lab.addr(1))
        two = XmppdServer(lab, TWO, lab.addr(4), direct_tls=True,
                          routes={ONE: f"{lab.addr(1)}:5269"})
        lab.add_domain(ONE, lab.addr(1), srv=[(0, 0, 5999, ONE)])
        lab.add_domain(TWO, lab.addr(4), srv=[(10, 0, 5269, TWO)], xmpps=[(0, 0, 5270, TWO)])
        for user in ("alice", "carol"):
            one.register(user, f"{user}-pw")
        for user in ("bob", "dave"):
            two.register(user, f"{user}-pw")
        one.start()
        two.start()
        yield Side(one, "alice", "carol"), Side(two, "bob", "dave"), request.param, lab
    except BaseException:
        if one is not None and two is not None:
            print(logs_of(one, two))
        raise
    finally:
        lab.close()


def test_messages_cross_both_ways(fed: tuple[Side, Side, str, Lab]) -> None:
    one, two, mode, _lab = fed
    checks.run(checks.messages_both_ways(one, two))
    how = "sasl" if mode == "ca" else "dialback"
    # the direct TLS SRV record came first (XEP-0368), and was used
    assert wait_log(one.server, f"{ONE} -> {TWO}: ready ({how}, {TWO}:5270 (direct TLS))")
    if mode == "ca":
        # XEP-0288: xmppd2 answered over xmppd's connection and opened none of its own
        assert f"s2s {TWO} -> {ONE}: looking up" not in tail(two.server.log, 10**7)
    else:
        # dialback made xmppd2 call xmppd back: through its static route, not DNS
        assert wait_log(two.server, f"{TWO} -> {ONE}: connecting to {fed[3].addr(1)}:5269")


def test_receipts_cross_both_ways(fed: tuple[Side, Side, str, Lab]) -> None:
    checks.run(checks.receipts_both_ways(fed[0], fed[1]))


def test_offline_messages_each_way(fed: tuple[Side, Side, str, Lab]) -> None:
    one, two, mode, _lab = fed
    checks.run(checks.offline_across(one, two, f"to xmppd2 ({mode})"))
    checks.run(checks.offline_across(two, one, f"to xmppd ({mode})"))


def test_presence_subscription_across(fed: tuple[Side, Side, str, Lab]) -> None:
    checks.run(checks.presence_subscription(fed[0], fed[1]))


def test_mutual_subscription_reaches_both(fed: tuple[Side, Side, str, Lab]) -> None:
    checks.run(checks.subscription_states(fed[0], fed[1]))


def test_rooms_on_either_server(fed: tuple[Side, Side, str, Lab]) -> None:
    checks.run(checks.muc_across(fed[0], fed[1], f"one-{fed[2]}"))
    checks.run(checks.muc_across(fed[1], fed[0], f"two-{fed[2]}"))


# -- spoofing ------------------------------------------------------------------------------------
class RawServer:
    """evil.example, a remote server with a certificate from the lab CA, speaking raw XML."""

    def __init__(self, lab: Lab) -> None:
        assert lab.ca is not None
        issued = lab.ca.issue("evil.example", server_names(["evil.example"]))
        issued.write(lab.dir / "evil.pem", lab.dir / "evil.key")
        self.ctx = ssl.create_default_context(cafile=str(lab.ca_file))
        self.ctx.load_cert_chain(str(lab.dir / "evil.pem"), str(lab.dir / "evil.key"))
        self.address = lab.addr(1)

    async def authenticated(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        r, w = await asyncio.open_connection(self.address, 5269)
        await self._open(r, w)
        w.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await _until(r, b"<proceed")
        await w.start_tls(self.ctx, server_hostname=ONE)
        await self._open(r, w)
        w.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
        await _until(r, b"<success")
        await self._open(r, w)
        return r, w

    async def _open(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                f"xmlns:stream='http://etherx.jabber.org/streams' from='evil.example' "
                f"to='{ONE}' version='1.0'>".encode())
        await _until(r, b"</stream:features>")


async def _until(r: asyncio.StreamReader, token: bytes) -> bytes:
    data = b""
    while token not in data:
        chunk = await asyncio.wait_for(r.read(4096), 10)
        if not chunk:
            raise AssertionError(f"closed before {token!r}: {data!r}")
        data += chunk
    return data


async def _rest(r: asyncio.StreamReader) -> bytes:
    data = b""
    while True:
        chunk = await asyncio.wait_for(r.read(4096), 10)
        if not chunk:
            return data
        data += chunk


async def spoofing(one: Side, lab: Lab) -> None:
    alice = await one.client("alice").login()
    evil = RawServer(lab)
    try:
        r, w = await evil.authenticated()
        w.write(b"<message from='eve@evil.example/x' to='alice@xmppd.example' type='chat'>"
                b"<body>from evil, honestly</body></message>")
        got = await alice.chat()
        assert (str(got["from"]), got["body"]) == ("eve@evil.example/x",
                                                   "from evil, honestly")
        for forged in ("mallory@xmppd2.example/x", "carol@xmppd.example/x", "xmppd.example"):
            if forged != "mallory@xmppd2.example/x":
                r, w = await evil.authenticated()
            w.write(f"<message from='{forged}' to='alice@xmppd.example' type='chat'>"
                    f"<body>forged</body></message>".encode())
            answer = await _rest(r)
            assert b"<invalid-from" in answer and answer.endswith(b"</stream:stream>"), answer
            w.close()
        await alice.plugin["xep_0199"].ping(ONE, timeout=10)     # everything has arrived
        assert alice.inbox.empty(), alice.inbox.get_nowait()
    finally:
        await alice.stop()


@pytest.fixture(scope="module")
def lone() -> Iterator[tuple[Side, Lab]]:
    """One xmppd in a lab with a CA (the raw server's certificate comes from it)."""
    why = lab_available()
    if why:
        skip_or_fail(why)
    lab = Lab(ca=True)
    try:
        one = XmppdServer(lab, ONE, lab.addr(1))
        lab.add_domain(ONE, lab.addr(1))
        for user in ("alice", "carol"):
            one.register(user, f"{user}-pw")
        one.start()
        yield Side(one, "alice", "carol"), lab
    finally:
        lab.close()


def test_a_remote_server_cannot_speak_for_other_domains_or_local_users(
        lone: tuple[Side, Lab]) -> None:
    checks.run(spoofing(*lone))
