# tests: xmppd/sasl2.py, xmppd/fast.py, xmppd/sasl_exchange.py, xmppd/c2s_features.py
"""SASL2 (XEP-0388) on the sans-IO stream: offering, SCRAM(-PLUS) and FAST (XEP-0484)
exchanges, failures, and the hand-over to the shell for the inline requests (Bind 2)."""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
from lxml import etree

from stanzas import ns
from storage.fast import StoredToken
from tests.core.test_c2s import HOST, PASSWORD, Client, b64, header, q, scram_client, settings
from xmppd.c2s import AuthFailed, Authenticated, NeedCredentials, Sasl2Success, Stanza
from stanzas.jid import JID
from xmppd.fast import key_of, new_token

S2 = "urn:xmpp:sasl:2"
FAST = "urn:xmpp:fast:0"
BIND2 = "urn:xmpp:bind:0"
AGENT = "d4565fa7-4d72-4749-b3d3-740edbf87770"
EXPORTER = bytes(range(32))
END_POINT = bytes(range(32, 64))
NOW = 1000.0


def s2(name: str) -> str:
    return "{%s}%s" % (S2, name)


def sasl2_settings(**kw: Any) -> Any:
    feature = etree.Element("{%s}feature" % BIND2, var=ns.SM)
    return settings(sasl2=True, fast=True, bind2_inline=lambda stream: [feature],
                    sasl2_inline=lambda stream: [etree.Element("{%s}sm" % ns.SM)], **kw)


def client(*, bindings: dict[str, bytes] | None = None, secure: bool = False,
           **kw: Any) -> Client:
    c = Client(sasl2_settings(**kw), secure=secure)
    c.stream.channel_bindings = lambda: dict(bindings or {})
    return c


def authenticate(c: Client, mechanism: str, initial: bytes | None, extra: str = "",
                 agent: str | None = AGENT) -> None:
    ir = f"<initial-response>{b64(initial)}</initial-response>" if initial is not None else ""
    ua = f"<user-agent id='{agent}'><software>Test</software><device>Phone</device>" \
         f"</user-agent>" if agent else ""
    c.send(f"<authenticate xmlns='{S2}' mechanism='{mechanism}'>{ir}{ua}{extra}</authenticate>")


def sasl2_failure(el: etree._Element) -> str:
    assert el.tag == s2("failure"), etree.tostring(el)
    return etree.QName(el[0]).localname


def scram_login(c: Client, mechanism: str = "SCRAM-SHA-256", extra: str = "") -> Any:
    """A SASL2 SCRAM exchange up to the Sasl2Success event; returns the event."""
    sc = scram_client(mechanism, "juliet", PASSWORD)
    authenticate(c, mechanism, bytes(sc.process(b"")), extra)
    assert c.events() == [NeedCredentials("juliet", HOST, "password", AGENT)]
    c.stream.credentials_found(_accounts()["juliet"])
    challenge = c.recv_one()
    assert challenge.tag == s2("challenge")
    c.send(f"<response xmlns='{S2}'>{b64(sc.process(base64.b64decode(challenge.text)))}"
           f"</response>")
    assert c.recv() == []               # nothing before the shell finished the inline work
    auth, done = c.events()
    assert auth == Authenticated(JID.of("juliet", HOST))
    assert isinstance(done, Sasl2Success) and done.jid == JID.of("juliet", HOST)
    return done, sc


def _accounts() -> Any:
    from tests.core.test_c2s import ACCOUNTS
    return ACCOUNTS


def ht(token: str, cb: bytes = b"", user: str = "juliet") -> bytes:
    return user.encode() + b"\0" + hmac.digest(token.encode(), b"Initiator" + cb, "sha256")


def stored(token: str, mechanism: str = "HT-SHA-256-NONE", expires: float = NOW + 100,
           slot: str = "new") -> StoredToken:
    return StoredToken(slot, key_of(token), mechanism, NOW - 10, expires)


# --- offering -------------------------------------------------------------------------------

def test_authentication_is_offered_with_bind2_inline_and_fast_on_secure_streams() -> None:
    c = client()
    features = c.starttls()
    auth = features.find(s2("authentication"))
    assert [m.text for m in auth.findall(s2("mechanism"))] == ["SCRAM-SHA-256", "SCRAM-SHA-1",
                                                                "PLAIN"]
    inline = auth.find(s2("inline"))
    bind = inline.find("{%s}bind" % BIND2)
    assert [f.get("var") for f in bind.iter("{%s}feature" % BIND2)] == [ns.SM]
    assert [m.text for m in inline.find("{%s}fast" % FAST)] == ["HT-SHA-256-NONE"]
    assert inline.find("{%s}sm" % ns.SM) is not None
    assert features.find("{urn:xmpp:sasl-cb:0}sasl-channel-binding") is None


def test_plus_mechanisms_and_binding_types_follow_the_transport() -> None:
    c = client(mechanisms=("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"),
               bindings={"tls-exporter": EXPORTER, "tls-server-end-point": END_POINT})
    features = c.starttls()
    legacy = [m.text for m in features.find(q("sasl:mechanisms"))]
    assert legacy == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"]
    auth = features.find(s2("authentication"))
    assert [m.text for m in auth.findall(s2("mechanism"))] == legacy
    assert [m.text for m in auth.find(s2("inline")).find("{%s}fast" % FAST)] == [
        "HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"]
    cb = features.find("{urn:xmpp:sasl-cb:0}sasl-channel-binding")
    assert [t.get("type") for t in cb] == ["tls-exporter", "tls-server-end-point"]


def test_no_plus_and_no_fast_without_tls() -> None:
    c = client(tls="off", mechanisms=("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"),
               bindings={"tls-exporter": EXPORTER})
    features = c.open()
    auth = features.find(s2("authentication"))
    assert [m.text for m in auth.findall(s2("mechanism"))] == ["SCRAM-SHA-256"]
    assert auth.find(s2("inline")).find("{%s}fast" % FAST) is None


def test_sasl2_can_be_switched_off() -> None:
    c = Client(settings())
    assert c.starttls().find(s2("authentication")) is None
    authenticate(c, "PLAIN", b"\0juliet\0" + PASSWORD.encode())
    c.closed_with("unsupported-stanza-type")


# --- SCRAM and the hand-over -------------------------------------------------------------

def test_scram_success_without_restart_then_legacy_bind() -> None:
    c = client()
    c.starttls()
    done, sc = scram_login(c)
    assert done.request.bind is None and done.request.client_id == AGENT
    assert (done.request.software, done.request.device) == ("Test", "Phone")
    c.stream.sasl2_finish([], None)
    success, features = c.recv()        # no new stream header: no restart (§2.6.1)
    assert success.tag == s2("success")
    sc.process(base64.b64decode(success.findtext(s2("additional-data"))))
    assert sc._mutual_auth                      # our server signature checked out
    assert success.findtext(s2("authorization-identifier")) == "juliet@example.org"
    assert features.find(q("bind:bind")) is not None
    c.send(f"<iq type='set' id='b1'><bind xmlns='{ns.BIND}'><resource>r</resource></bind></iq>")
    [bind] = c.events()
    assert bind.user == JID.of("juliet", HOST)


def test_bind2_request_reaches_the_shell_and_the_stream_is_bound_after() -> None:
    c = client()
    c.starttls()
    done, _ = scram_login(c, extra=f"<bind xmlns='{BIND2}'><tag>Awesome</tag>"
                                   f"<enable xmlns='{ns.SM}'/></bind>")
    assert done.request.bind.findtext("{%s}tag" % BIND2) == "Awesome"
    full = JID.parse("juliet@example.org/Awesome.abc")
    bound = etree.Element("{%s}bound" % BIND2)
    c.stream.sasl2_finish([bound], full)
    success, features = c.recv()
    assert success.findtext(s2("authorization-identifier")) == str(full)
    assert success.find("{%s}bound" % BIND2) is not None
    assert features.find(q("bind:bind")) is None        # bound already
    c.send("<presence/>")
    [stanza] = c.events()
    assert isinstance(stanza, Stanza) and stanza.stanza.get("from") == str(full)


def test_input_waits_for_the_inline_work() -> None:
    c = client()
    c.starttls()
    scram_login(c, extra=f"<bind xmlns='{BIND2}'/>")
    c.send("<presence/>")                               # pipelined after <response/>
    assert c.events() == []
    c.stream.sasl2_finish([], JID.parse("juliet@example.org/x"))
    [stanza] = c.events()
    assert isinstance(stanza, Stanza)


def test_wrong_password_fails_in_sasl2_namespace_and_does_nothing_inline() -> None:
    c = client()
    c.starttls()
    sc = scram_client("SCRAM-SHA-1", "juliet", "wrong")
    authenticate(c, "SCRAM-SHA-1", bytes(sc.process(b"")), f"<bind xmlns='{BIND2}'/>")
    c.events()
    c.stream.credentials_found(_accounts()["juliet"])
    challenge = c.recv_one()
    c.send(f"<response xmlns='{S2}'>{b64(sc.process(base64.b64decode(challenge.text)))}"
           f"</response>")
    failure = c.recv_one()
    assert sasl2_failure(failure) == "not-authorized"
    assert failure[0].tag == q("sasl:not-authorized")
    assert c.events() == [AuthFailed("juliet", HOST)]


@pytest.mark.parametrize(("mechanism", "extra", "agent", "condition"), [
    ("SCRAM-SHA-512", "", AGENT, "invalid-mechanism"),
    ("HT-SHA-256-NONE", "", AGENT, "malformed-request"),              # no <fast/>
    ("HT-SHA-256-NONE", f"<fast xmlns='{FAST}'/>", None, "malformed-request"),   # no client id
    ("HT-SHA-256-EXPR", f"<fast xmlns='{FAST}'/>", AGENT, "invalid-mechanism"),  # not offered
    ("PLAIN", f"<request-token xmlns='{FAST}' mechanism='HT-SHA-256-ENDP'/>", AGENT,
     "malformed-request"),
    ("PLAIN", "", "not-a-uuid", "malformed-request"),
])
def test_bad_requests_fail(mechanism: str, extra: str, agent: str | None,
                           condition: str) -> None:
    c = client()
    c.starttls()
    authenticate(c, mechanism, b"x", extra, agent=agent)
    assert sasl2_failure(c.recv_one()) == condition
    assert c.events() == []


def test_other_elements_during_the_exchange_end_the_stream() -> None:
    c = client()
    c.starttls()
    authenticate(c, "SCRAM-SHA-256", bytes(scram_client("SCRAM-SHA-256", "juliet", "x")
                                           .process(b"")))
    c.events()
    c.stream.credentials_found(_accounts()["juliet"])
    c.recv()
    c.send("<iq type='get' id='1'/>")
    c.closed_with("not-authorized")


def test_from_must_name_the_account() -> None:
    c = client(secure=True)             # direct TLS (XEP-0368)
    c.send(header().replace("to=", "from='romeo@example.org' to="))
    c.recv()
    authenticate(c, "PLAIN", b"\0juliet\0" + PASSWORD.encode())
    c.events()
    c.stream.credentials_found(_accounts()["juliet"])
    assert sasl2_failure(c.recv_one()) == "invalid-authzid"


def test_from_of_another_domain_is_invalid_from() -> None:
    c = client()
    c.send(header().replace("to=", "from='juliet@elsewhere.example' to="))
    c.closed_with("invalid-from")


def test_a_second_authenticate_after_success_is_a_stream_error() -> None:
    c = client()
    c.starttls()
    scram_login(c)
    c.stream.sasl2_finish([], None)
    c.recv()
    authenticate(c, "PLAIN", b"\0juliet\0x")
    c.closed_with("not-authorized")


# --- channel binding -----------------------------------------------------------------------

def _plus_login(c: Client, cb_data: bytes) -> Any:
    from tests.core.test_sasl import ScramClient
    sc = ScramClient("SCRAM-SHA-256", "juliet", PASSWORD, flag="p=tls-exporter")
    authenticate(c, "SCRAM-SHA-256-PLUS", sc.first())
    c.events()
    c.stream.credentials_found(_accounts()["juliet"])
    challenge = base64.b64decode(c.recv_one().text)
    c.send(f"<response xmlns='{S2}'>"
           f"{b64(sc.final(challenge, cbind=sc.gs2_header.encode() + cb_data))}</response>")
    return sc


def test_scram_plus_with_the_connection_binding_succeeds() -> None:
    c = client(mechanisms=("SCRAM-SHA-256-PLUS",), bindings={"tls-exporter": EXPORTER})
    c.starttls()
    _plus_login(c, EXPORTER)
    assert any(isinstance(e, Sasl2Success) for e in c.events())


def test_channel_binding_mismatch_is_refused() -> None:
    """The client's TLS channel is not ours: a man in the middle relays the exchange."""
    c = client(mechanisms=("SCRAM-SHA-256-PLUS",), bindings={"tls-exporter": EXPORTER})
    c.starttls()
    _plus_login(c, bytes(32))
    assert sasl2_failure(c.recv_one()) == "not-authorized"
    assert c.events() == [AuthFailed("juliet", HOST)]


# --- FAST ------------------------------------------------------------------------------------

def fast_login(c: Client, mechanism: str, message: bytes, tokens: list[StoredToken],
               extra: str = "") -> Any:
    authenticate(c, mechanism, message, f"<fast xmlns='{FAST}'/>{extra}")
    assert c.events() == [NeedCredentials("juliet", HOST, "token", AGENT)]
    c.stream.tokens_found(tokens, NOW)


def test_fast_token_logs_in_in_one_round_trip() -> None:
    token, _ = new_token()
    c = client()
    c.starttls()
    fast_login(c, "HT-SHA-256-NONE", ht(token), [stored(token)],
               f"<bind xmlns='{BIND2}'/>")
    assert c.recv() == []
    auth, done = c.events()
    assert done.request.token.key == key_of(token) and done.request.bind is not None
    c.stream.sasl2_finish([], JID.parse("juliet@example.org/x"))
    success = c.recv()[0]
    responder = base64.b64decode(success.findtext(s2("additional-data")))
    assert responder == hmac.digest(token.encode(), b"Responder", "sha256")


def test_the_current_token_works_when_the_new_one_is_unknown_to_the_client() -> None:
    old, _ = new_token()
    newer, _ = new_token()
    c = client()
    c.starttls()
    fast_login(c, "HT-SHA-256-NONE", ht(old), [stored(newer), stored(old, slot="current")])
    _, done = c.events()
    assert done.request.token.slot == "current"


@pytest.mark.parametrize(("tokens", "condition"), [
    ([], "not-authorized"),                                        # revoked or never issued
    ([stored("x" * 96)], "not-authorized"),                       # another token
    ([stored("T" * 96, mechanism="HT-SHA-256-ENDP")], "not-authorized"),   # bound elsewhere
    ([stored("T" * 96, expires=NOW)], "credentials-expired"),
])
def test_fast_failures(tokens: list[StoredToken], condition: str) -> None:
    c = client()
    c.starttls()
    fast_login(c, "HT-SHA-256-NONE", ht("T" * 96), tokens)
    assert sasl2_failure(c.recv_one()) == condition


def test_fast_with_channel_binding_needs_the_connection_binding() -> None:
    token = "E" * 96
    right = client(bindings={"tls-exporter": EXPORTER})
    right.starttls()
    fast_login(right, "HT-SHA-256-EXPR", ht(token, EXPORTER),
               [stored(token, "HT-SHA-256-EXPR")])
    assert any(isinstance(e, Sasl2Success) for e in right.events())
    wrong = client(bindings={"tls-exporter": EXPORTER})
    wrong.starttls()
    fast_login(wrong, "HT-SHA-256-EXPR", ht(token, bytes(32)),
               [stored(token, "HT-SHA-256-EXPR")])
    assert sasl2_failure(wrong.recv_one()) == "not-authorized"


def test_token_request_and_invalidation_reach_the_shell() -> None:
    token = "I" * 96
    c = client()
    c.starttls()
    fast_login(c, "HT-SHA-256-NONE", ht(token), [stored(token)],
               f"<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>")
    _, done = c.events()
    assert done.request.request_token == "HT-SHA-256-NONE" and not done.request.invalidate
    c2 = client()
    c2.starttls()
    authenticate(c2, "HT-SHA-256-NONE", ht(token), f"<fast xmlns='{FAST}' invalidate='true'/>")
    c2.events()
    c2.stream.tokens_found([stored(token)], NOW)
    _, done = c2.events()
    assert done.request.invalidate


def test_key_is_what_hmac_uses_for_long_tokens() -> None:
    """RFC 2104 §2: the stored SHA-256 of a long token is the HMAC key itself."""
    token, key = new_token()
    assert len(token.encode()) > hashlib.sha256().block_size
    assert hmac.digest(key, b"m", "sha256") == hmac.digest(token.encode(), b"m", "sha256")
