# tests: tests/core/test_c2s.py
"""C2SStream: client-to-server negotiation (RFC 6120 §4–§7), sans-IO.

A tiny in-test client writes bytes into the stream, reads what the server wrote back with a
plain lxml pull parser, and answers the events the shell would answer (TLS, credentials,
binding). No sockets, no reactor; time is a float.
"""
from __future__ import annotations

import base64
from typing import Any

import pytest
from lxml import etree

from stanzas import ns
from stanzas.errors import StanzaError
from xmppd.c2s import (
    AuthFailed,
    Authenticated,
    BindRequest,
    C2SSettings,
    C2SStream,
    Closed,
    NeedCredentials,
    Nonza,
    PreAuthIq,
    Stanza,
    StartTLS,
)
from stanzas.jid import JID
from xmppd.sasl import derive_all

HOST = "example.org"
PASSWORD = "r0m30myr0m30"
ACCOUNTS = {"juliet": derive_all(PASSWORD, iterations=64), "romeo": derive_all("x", iterations=64)}
SCRAM = ["SCRAM-SHA-1", "SCRAM-SHA-256"]

_E = etree._Element
_Q = {"tls": ns.TLS, "sasl": ns.SASL, "stream": ns.STREAMS, "bind": ns.BIND, "c": ns.CLIENT,
      "session": ns.SESSION, "err": ns.STREAM_ERRORS, "stanza": ns.STANZA_ERRORS}


def q(name: str) -> str:
    """'sasl:auth' -> '{urn:ietf:params:xml:ns:xmpp-sasl}auth'."""
    prefix, local = name.split(":")
    return "{%s}%s" % (_Q[prefix], local)


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def header(to: str = HOST, version: str | None = "1.0", xmlns: str = "jabber:client") -> str:
    v = f" version='{version}'" if version is not None else ""
    return (f"<?xml version='1.0'?><stream:stream xmlns='{xmlns}' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{to}'{v}>")


def settings(**kw: Any) -> C2SSettings:
    return C2SSettings(hosts=frozenset({HOST, "example.net"}), **kw)


class ServerOutput:
    """The client's view of what the server wrote: a header, top-level elements, the close."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.parser = etree.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.header: _E | None = None

    def feed(self, data: bytes) -> list[Any]:
        self.parser.feed(data)
        items: list[Any] = []
        for event, el in self.parser.read_events():
            assert isinstance(el, etree._Element)
            if event == "start":
                self.depth += 1
                if self.depth == 1:
                    self.header = el
                    items.append("<stream>")
                continue
            self.depth -= 1
            if self.depth == 1:
                items.append(el)
            elif self.depth == 0:
                items.append("</stream>")
        return items


class Client:
    """Drives one C2SStream the way a client and the Twisted shell together would."""

    def __init__(self, s: C2SSettings | None = None, *, secure: bool = False, now: float = 0.0,
                 peer_ip: str | None = "192.0.2.1") -> None:
        self.stream = C2SStream(s or settings(), now=now, secure=secure, peer_ip=peer_ip)
        self.now = now
        self.output = ServerOutput()

    # -- raw I/O ---------------------------------------------------------------------------
    def send(self, data: str | bytes) -> None:
        self.stream.receive(data.encode() if isinstance(data, str) else data, self.now)

    def recv(self) -> list[Any]:
        return self.output.feed(self.stream.data_to_send())

    def recv_one(self) -> _E:
        [el] = self.recv()
        assert isinstance(el, etree._Element)
        return el

    def events(self) -> list[Any]:
        return self.stream.events()

    # -- negotiation steps -----------------------------------------------------------------
    def open(self, to: str = HOST) -> _E:
        """Send a header; return the features."""
        self.send(header(to))
        items = self.recv()
        assert items[0] == "<stream>", items
        [features] = items[1:]
        assert features.tag == q("stream:features")
        return features

    def starttls(self) -> _E:
        """STARTTLS as the shell performs it; return the features after the restart."""
        self.open()
        self.send(f"<starttls xmlns='{ns.TLS}'/>")
        assert self.recv_one().tag == q("tls:proceed")
        assert self.events() == [StartTLS()]
        self.stream.tls_started()
        self.output.restart()
        return self.open()

    def credentials(self, username: str) -> None:
        """Answer NeedCredentials as the shell does, from ACCOUNTS."""
        assert self.events() == [NeedCredentials(username, HOST)]
        self.stream.credentials_found(ACCOUNTS.get(username))

    def auth_plain(self, message: bytes | str, mechanism: str = "PLAIN") -> None:
        self.send(f"<auth xmlns='{ns.SASL}' mechanism='{mechanism}'>{b64(message)}</auth>")

    def scram(self, mechanism: str, username: str = "juliet", password: str = PASSWORD,
              authzid: str = "") -> Any:
        """Start a SCRAM exchange with slixmpp's client; return it after the server-first."""
        client = scram_client(mechanism, username, password, authzid)
        self.send(f"<auth xmlns='{ns.SASL}' mechanism='{mechanism}'>"
                  f"{b64(client.process(b''))}</auth>")
        return client

    def login(self, mechanism: str = "SCRAM-SHA-256", username: str = "juliet") -> None:
        """A whole SCRAM login after STARTTLS, then the restart."""
        self.starttls()
        client = self.scram(mechanism, username)
        self.credentials(username)
        challenge = self.recv_one()
        assert challenge.tag == q("sasl:challenge")
        self.send(f"<response xmlns='{ns.SASL}'>"
                  f"{b64(client.process(base64.b64decode(challenge.text or '')))}</response>")
        success = self.recv_one()
        assert success.tag == q("sasl:success"), etree.tostring(success)
        client.process(base64.b64decode(success.text or ""))
        assert client._mutual_auth             # slixmpp checked our ServerSignature
        assert self.events() == [Authenticated(JID.of(username, HOST))]
        self.output.restart()

    def bind(self, resource: str | None = "balcony") -> None:
        """Restart and bind: a stream ready for stanzas."""
        features = self.open()
        assert features.find(q("bind:bind")) is not None
        res = f"<resource>{resource}</resource>" if resource is not None else ""
        self.send(f"<iq type='set' id='b1'><bind xmlns='{ns.BIND}'>{res}</bind></iq>")
        [request] = self.events()
        assert isinstance(request, BindRequest)
        self.stream.bind_succeeded(request.user.with_resource(resource or "generated"), "b1")
        assert self.recv_one().get("type") == "result"

    def closed_with(self, condition: str | None) -> list[Any]:
        """The stream ended: `<stream:error>` with `condition` (if any), then `</stream:stream>`,
        a Closed event, and nothing is processed afterwards. Returns what the server wrote."""
        items = self.recv()
        assert items[-1] == "</stream>", items
        if condition is None:
            assert not [i for i in items if isinstance(i, etree._Element) and i.tag == q("stream:error")]
        else:
            error = items[-2]
            assert isinstance(error, etree._Element) and error.tag == q("stream:error"), items
            assert error[0].tag == q(f"err:{condition}")
        events = self.events()
        assert events and isinstance(events[-1], Closed), events
        assert (events[-1].error.condition if events[-1].error else None) == condition
        assert self.stream.state == "closed"
        assert self.stream.next_deadline() is None
        # After close nothing more is processed, answered or emitted.
        self.send("<presence/><iq type='get' id='x'/></stream:stream>")
        self.stream.send_element(etree.Element("{jabber:client}message"))
        self.stream.close()
        self.stream.on_timeout(self.now + 1e6)
        assert self.stream.data_to_send() == b""
        assert self.events() == []
        return items


def scram_client(mechanism: str, username: str, password: str, authzid: str = "") -> Any:
    from slixmpp.util.sasl import choose

    def credentials(required: Any, optional: Any) -> dict[str, Any]:
        return {"username": username, "password": password, "authzid": authzid}

    def security(names: Any) -> dict[str, Any]:
        return {"encrypted": True, "unencrypted_scram": False, "binding_proposed": False,
                "tls_version": "TLSv1.3"}

    return choose([mechanism], credentials, security, limit=[mechanism])


def failure_of(el: _E) -> str:
    assert el.tag == q("sasl:failure"), etree.tostring(el)
    return etree.QName(el[0]).localname


def mechanisms(features: _E) -> list[str]:
    mechs = features.find(q("sasl:mechanisms"))
    return [] if mechs is None else [m.text or "" for m in mechs]


def bound_client(**kw: Any) -> Client:
    c = Client(settings(**kw))
    c.login()
    c.bind()
    return c


# --- stream header and features ---------------------------------------------------------------


def test_header_is_answered_with_our_header_and_features() -> None:
    c = Client()
    features = c.open()
    h = c.output.header
    assert h is not None and h.tag == q("stream:stream")
    assert h.nsmap[None] == "jabber:client"
    assert (h.get("from"), h.get("version")) == (HOST, "1.0")
    assert h.get("id") == c.stream.stream_id and len(c.stream.stream_id) >= 16
    assert c.stream.host == HOST


def test_features_before_tls_require_starttls_and_offer_no_mechanisms() -> None:
    features = Client().open()
    starttls = features.find(q("tls:starttls"))
    assert starttls is not None and starttls.find(q("tls:required")) is not None
    assert mechanisms(features) == []                       # RFC 6120 §5.3.1, §6.4.1


def test_features_after_tls_offer_all_mechanisms_including_plain() -> None:
    features = Client().starttls()
    assert features.find(q("tls:starttls")) is None
    assert mechanisms(features) == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]


def test_plain_is_only_offered_on_encrypted_streams() -> None:
    features = Client(settings(tls="optional")).open()
    starttls = features.find(q("tls:starttls"))
    assert starttls is not None and starttls.find(q("tls:required")) is None
    assert mechanisms(features) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]   # RFC 6120 §13.8


def test_tls_off_offers_no_starttls() -> None:
    features = Client(settings(tls="off")).open()
    assert features.find(q("tls:starttls")) is None
    assert mechanisms(features) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]


def test_configured_mechanisms_are_offered_in_order() -> None:
    features = Client(settings(mechanisms=("SCRAM-SHA-1", "PLAIN"))).starttls()
    assert mechanisms(features) == ["SCRAM-SHA-1", "PLAIN"]


def test_preauth_features_are_added_after_mechanisms() -> None:
    register = etree.Element("{%s}register" % ns.REGISTER_FEATURE)
    features = Client(settings(preauth_features=lambda s: [register])).starttls()
    assert [el.tag for el in features] == [q("sasl:mechanisms"), register.tag]


def test_header_without_to_gets_the_default_host() -> None:
    c = Client()
    c.send(header().replace(f" to='{HOST}'", ""))
    assert c.recv()[0] == "<stream>"
    assert c.stream.host in (HOST, "example.net")


def test_to_is_matched_case_insensitively() -> None:
    c = Client()
    c.open(to="Example.ORG")
    assert c.stream.host == HOST


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.10", "2.0"])
def test_versions_from_1_0_up_are_accepted(version: str) -> None:
    c = Client()
    c.send(header(version=version))
    assert c.recv()[0] == "<stream>"
    assert c.stream.state == "features"


HEADER_ERRORS = [
    ("unknown_host", header(to="elsewhere.example"), "host-unknown"),
    ("version_0_9", header(version="0.9"), "unsupported-version"),        # RFC 6120 §4.7.5
    ("no_version", header(version=None), "unsupported-version"),
    ("version_garbage", header(version="one"), "unsupported-version"),
    ("version_0_10", header(version="0.10"), "unsupported-version"),
    ("server_namespace", header(xmlns="jabber:server"), "invalid-namespace"),
    ("wrong_stream_namespace", header().replace("http://etherx.jabber.org/streams",
                                                "http://example.com/streams"), "invalid-namespace"),
    ("not_xml", "GET / HTTP/1.1\r\n\r\n", "not-well-formed"),
    ("doctype", "<!DOCTYPE x>" + header(), "restricted-xml"),
]


@pytest.mark.parametrize(("data", "expected"), [(d, c) for _, d, c in HEADER_ERRORS],
                         ids=[n for n, _, _ in HEADER_ERRORS])
def test_bad_header_is_answered_with_a_header_then_a_stream_error(data: str,
                                                                  expected: str) -> None:
    c = Client()
    c.send(data)
    c.closed_with(expected)
    # RFC 6120 §4.9.1.2: the error follows our own stream header, from one of our hosts.
    assert c.output.header is not None and c.output.header.get("from") in (HOST, "example.net")


def test_host_cannot_change_on_restart() -> None:
    c = Client()
    c.open()
    c.send(f"<starttls xmlns='{ns.TLS}'/>")
    c.recv()
    c.events()
    c.stream.tls_started()
    c.output.restart()
    c.send(header(to="example.net"))                # also ours, but not this stream's
    c.closed_with("host-unknown")


# --- STARTTLS (RFC 6120 §5) -------------------------------------------------------------------


def test_starttls_proceeds_and_asks_the_shell_for_tls() -> None:
    c = Client()
    c.open()
    c.send(f"<starttls xmlns='{ns.TLS}'/>")
    assert c.recv_one().tag == q("tls:proceed")
    assert c.events() == [StartTLS()]
    assert c.stream.state == "restart"


def test_restart_after_tls_sends_a_new_header_with_a_new_id() -> None:
    c = Client()
    c.open()
    first_id = c.stream.stream_id
    c.send(f"<starttls xmlns='{ns.TLS}'/>")
    c.recv()
    c.events()
    c.stream.tls_started()
    assert c.stream.secure
    c.output.restart()
    c.open()
    assert c.stream.stream_id != first_id


@pytest.mark.parametrize("pipelined", [
    f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'>{b64(chr(0) + 'juliet' + chr(0) + PASSWORD)}</auth>",
    "<message to='romeo@example.org'><body>plaintext</body></message>",
    "</stream:stream>",
    "<iq type='set' id='x'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq><presence",
    "<!DOCTYPE x>",
], ids=["auth", "message", "close", "partial", "doctype"])
def test_bytes_pipelined_after_starttls_are_discarded(pipelined: str) -> None:
    # CVE-2011-1431 class: plaintext sent after <starttls/> must never be read as if it had
    # arrived over TLS. The shell starts TLS before it reads again; what came with <starttls/>
    # is dropped with the old parser state.
    c = Client(settings(tls="optional"))
    c.open()
    c.send(f"<starttls xmlns='{ns.TLS}'/>" + pipelined)
    assert [el.tag for el in c.recv()] == [q("tls:proceed")]
    assert c.events() == [StartTLS()]
    c.stream.tls_started()
    c.output.restart()
    features = c.open()
    assert "PLAIN" in mechanisms(features)
    assert c.events() == []
    assert not c.stream.authenticated


def test_starttls_on_a_secure_stream_fails_and_closes() -> None:
    c = Client()
    c.starttls()
    c.send(f"<starttls xmlns='{ns.TLS}'/>")
    items = c.recv()
    assert items[0].tag == q("tls:failure") and items[-1] == "</stream>"   # RFC 6120 §5.4.2.2
    assert c.events() == [Closed(None)]


def test_starttls_when_tls_is_off_fails_and_closes() -> None:
    c = Client(settings(tls="off"))
    c.open()
    c.send(f"<starttls xmlns='{ns.TLS}'/>")
    assert c.recv()[0].tag == q("tls:failure")
    assert isinstance(c.events()[-1], Closed)


@pytest.mark.parametrize("element", [
    "<message to='romeo@example.org'><body>hi</body></message>",
    f"<auth xmlns='{ns.SASL}' mechanism='SCRAM-SHA-1'>biwsbj1qdWxpZXQscj1hYmM=</auth>",
    "<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>",
], ids=["stanza", "auth", "register"])
def test_anything_but_starttls_first_is_not_authorized(element: str) -> None:
    # RFC 6120 §5.3.1: with TLS mandatory, nothing else is processed before it.
    c = Client(settings(preauth_iq_allowed=lambda s, tag: True))
    c.open()
    c.send(element)
    c.closed_with("not-authorized")


# --- SASL (RFC 6120 §6) -----------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", SCRAM)
def test_scram_login_succeeds_and_restarts_into_binding(mechanism: str) -> None:
    c = Client()
    c.login(mechanism)
    assert c.stream.authenticated and c.stream.jid == JID.of("juliet", HOST)
    features = c.open()
    assert features.find(q("bind:bind")) is not None
    assert features.find(q("sasl:mechanisms")) is None
    assert c.stream.state == "bind"


@pytest.mark.parametrize("authzid", ["", "juliet", "juliet@example.org"])
def test_plain_login_succeeds(authzid: str) -> None:
    c = Client()
    c.starttls()
    c.auth_plain(f"{authzid}\0juliet\0{PASSWORD}")
    c.credentials("juliet")
    success = c.recv_one()
    assert success.tag == q("sasl:success") and not success.text
    assert c.events() == [Authenticated(JID.of("juliet", HOST))]


def test_auth_without_initial_response_gets_an_empty_challenge() -> None:
    # RFC 6120 §6.4.2: no character data = no initial response (not "=", an empty one).
    c = Client()
    c.starttls()
    c.send(f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'/>")
    challenge = c.recv_one()
    assert challenge.tag == q("sasl:challenge") and not challenge.text
    c.send(f"<response xmlns='{ns.SASL}'>{b64(chr(0) + 'juliet' + chr(0) + PASSWORD)}</response>")
    c.credentials("juliet")
    assert c.recv_one().tag == q("sasl:success")


@pytest.mark.parametrize("mechanism", ["PLAIN", *SCRAM])
def test_wrong_password_is_not_authorized(mechanism: str) -> None:
    c = Client()
    c.starttls()
    if mechanism == "PLAIN":
        c.auth_plain(f"\0juliet\0wrong")
        c.credentials("juliet")
    else:
        client = c.scram(mechanism, password="wrong")
        c.credentials("juliet")
        challenge = c.recv_one()
        c.send(f"<response xmlns='{ns.SASL}'>"
               f"{b64(client.process(base64.b64decode(challenge.text or '')))}</response>")
    assert failure_of(c.recv_one()) == "not-authorized"
    # counted by the failed-login throttle (xmppd/throttle.py)
    assert c.events() == [AuthFailed("juliet", "example.org")]
    assert not c.stream.authenticated and c.stream.state == "features"


@pytest.mark.parametrize("mechanism", SCRAM)
def test_unknown_user_gets_a_normal_looking_challenge_then_not_authorized(mechanism: str) -> None:
    # RFC 5802 §9: probing must not tell unknown users from wrong passwords.
    c = Client()
    c.starttls()
    client = c.scram(mechanism, username="nobody")
    c.credentials("nobody")
    challenge = c.recv_one()
    assert challenge.tag == q("sasl:challenge")
    fields = dict(f.split("=", 1) for f in base64.b64decode(challenge.text or "").decode().split(","))
    assert set(fields) == {"r", "s", "i"} and int(fields["i"]) >= 4096
    c.send(f"<response xmlns='{ns.SASL}'>"
           f"{b64(client.process(base64.b64decode(challenge.text or '')))}</response>")
    assert failure_of(c.recv_one()) == "not-authorized"


def test_unknown_user_with_plain_is_not_authorized() -> None:
    c = Client()
    c.starttls()
    c.auth_plain("\0nobody\0secret")
    c.credentials("nobody")
    assert failure_of(c.recv_one()) == "not-authorized"


NOT_UTF8 = b64(b"n,,n=j\xff,r=abc")
SASL_FAILURES = [
    # (name, settings, what the client sends after STARTTLS (or after the header if insecure),
    #  expected <failure/> condition)
    ("unknown_mechanism", {}, f"<auth xmlns='{ns.SASL}' mechanism='DIGEST-MD5'>=</auth>",
     "invalid-mechanism"),
    ("mechanism_not_configured", {"mechanisms": ("SCRAM-SHA-256",)},
     f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'>{b64(chr(0) + 'a' + chr(0) + 'b')}</auth>",
     "invalid-mechanism"),
    ("bad_base64", {}, f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'>!!not base64!!</auth>",
     "incorrect-encoding"),
    ("bad_base64_padding", {}, f"<auth xmlns='{ns.SASL}' mechanism='SCRAM-SHA-1'>biws=</auth>",
     "incorrect-encoding"),
    ("empty_initial_response", {}, f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'>=</auth>",
     "malformed-request"),
    ("plain_without_nuls", {}, f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'>{b64('juliet')}</auth>",
     "malformed-request"),
    ("scram_without_gs2_header", {},
     f"<auth xmlns='{ns.SASL}' mechanism='SCRAM-SHA-1'>{b64('n=juliet,r=abc')}</auth>",
     "malformed-request"),
    ("scram_garbage", {}, f"<auth xmlns='{ns.SASL}' mechanism='SCRAM-SHA-256'>{b64('hello')}</auth>",
     "malformed-request"),
    ("scram_channel_binding_required", {},
     f"<auth xmlns='{ns.SASL}' mechanism='SCRAM-SHA-1'>{b64('p=tls-unique,,n=juliet,r=abc')}</auth>",
     "malformed-request"),
    ("scram_not_utf8", {},
     f"<auth xmlns='{ns.SASL}' mechanism='SCRAM-SHA-1'>{NOT_UTF8}</auth>",
     "malformed-request"),
    ("plain_authzid_of_another_user", {},
     f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'>{b64('romeo' + chr(0) + 'juliet' + chr(0) + PASSWORD)}</auth>",
     "invalid-authzid"),
    ("plain_authzid_of_another_domain", {},
     f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'>"
     f"{b64('juliet@elsewhere.example' + chr(0) + 'juliet' + chr(0) + PASSWORD)}</auth>",
     "invalid-authzid"),
    ("scram_authzid_of_another_user", {},
     f"<auth xmlns='{ns.SASL}' mechanism='SCRAM-SHA-256'>{b64('n,a=romeo@example.org,n=juliet,r=abc')}</auth>",
     "invalid-authzid"),
    ("username_that_is_no_localpart", {},
     f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'>{b64(chr(0) + 'jul@iet' + chr(0) + 'x')}</auth>",
     "not-authorized"),
    ("abort_with_nothing_in_progress", {}, f"<abort xmlns='{ns.SASL}'/>", "malformed-request"),
    ("response_with_nothing_in_progress", {}, f"<response xmlns='{ns.SASL}'>{b64('c=biws')}</response>",
     "malformed-request"),
]


@pytest.mark.parametrize(("options", "data", "expected"), [(o, d, c) for _, o, d, c in SASL_FAILURES],
                         ids=[n for n, _, _, _ in SASL_FAILURES])
def test_sasl_failure_conditions(options: dict[str, Any], data: str, expected: str) -> None:
    c = Client(settings(**options))
    c.starttls()
    c.send(data)
    assert failure_of(c.recv_one()) == expected
    assert c.events() == []
    assert c.stream.state == "features" and not c.stream.authenticated


def test_plain_before_tls_is_refused() -> None:
    c = Client(settings(tls="optional"))
    c.open()
    c.auth_plain(f"\0juliet\0{PASSWORD}")
    assert failure_of(c.recv_one()) == "invalid-mechanism"    # not offered: RFC 6120 §13.8
    assert c.events() == []


@pytest.mark.parametrize("mechanism", SCRAM)
def test_scram_works_without_tls_when_tls_is_optional(mechanism: str) -> None:
    c = Client(settings(tls="optional"))
    c.open()
    client = c.scram(mechanism)
    c.credentials("juliet")
    challenge = c.recv_one()
    c.send(f"<response xmlns='{ns.SASL}'>"
           f"{b64(client.process(base64.b64decode(challenge.text or '')))}</response>")
    assert c.recv_one().tag == q("sasl:success")


FINAL_MESSAGE_FAILURES = [
    ("garbage", lambda good: b"hello", "malformed-request"),
    ("no_proof", lambda good: good.rsplit(b",p=", 1)[0], "malformed-request"),
    ("proof_not_base64", lambda good: good.rsplit(b",p=", 1)[0] + b",p=@@@@", "malformed-request"),
    ("short_proof", lambda good: good.rsplit(b",p=", 1)[0] + b",p=AAAA", "malformed-request"),
    ("wrong_nonce", lambda good: good.replace(b"r=", b"r=x", 1), "not-authorized"),
    ("wrong_channel_binding", lambda good: good.replace(b"c=", b"c=bix", 1), "malformed-request"),
]


@pytest.mark.parametrize(("tamper", "expected"), [(t, c) for _, t, c in FINAL_MESSAGE_FAILURES],
                         ids=[n for n, _, _ in FINAL_MESSAGE_FAILURES])
def test_malformed_scram_final_message_fails(tamper: Any, expected: str) -> None:
    c = Client()
    c.starttls()
    client = c.scram("SCRAM-SHA-256")
    c.credentials("juliet")
    challenge = c.recv_one()
    good = client.process(base64.b64decode(challenge.text or ""))
    c.send(f"<response xmlns='{ns.SASL}'>{b64(tamper(good))}</response>")
    assert failure_of(c.recv_one()) == expected
    # only a failed proof counts as a failed login (xmppd/throttle.py), not a broken message
    assert c.events() == ([AuthFailed("juliet", "example.org")] if expected == "not-authorized"
                          else [])


def test_response_that_is_not_base64_is_incorrect_encoding() -> None:
    c = Client()
    c.starttls()
    c.scram("SCRAM-SHA-1")
    c.credentials("juliet")
    c.recv_one()
    c.send(f"<response xmlns='{ns.SASL}'>not base64!</response>")
    assert failure_of(c.recv_one()) == "incorrect-encoding"


def test_abort_during_scram_is_aborted() -> None:
    c = Client()
    c.starttls()
    c.scram("SCRAM-SHA-256")
    c.credentials("juliet")
    c.recv_one()
    c.send(f"<abort xmlns='{ns.SASL}'/>")
    assert failure_of(c.recv_one()) == "aborted"
    # A second exchange after the abort works.
    c.auth_plain(f"\0juliet\0{PASSWORD}")
    c.credentials("juliet")
    assert c.recv_one().tag == q("sasl:success")


def test_new_auth_replaces_the_exchange_in_progress() -> None:
    # RFC 6120 §6.4.2: the server "MUST discard the ongoing handshake and MUST process a new
    # handshake" (no <failure/> for the old one: the client would take it for the new one's).
    c = Client()
    c.starttls()
    c.scram("SCRAM-SHA-1")
    c.credentials("juliet")
    assert c.recv_one().tag == q("sasl:challenge")
    c.auth_plain(f"\0juliet\0{PASSWORD}")
    c.credentials("juliet")
    assert c.recv_one().tag == q("sasl:success")


def test_input_waits_while_credentials_are_looked_up() -> None:
    c = Client()
    c.starttls()
    client = c.scram("SCRAM-SHA-256")
    c.send(f"<abort xmlns='{ns.SASL}'/>")          # arrives before the look-up answers
    assert c.recv() == []
    c.credentials("juliet")
    items = c.recv()
    assert [el.tag for el in items] == [q("sasl:challenge"), q("sasl:failure")]
    assert failure_of(items[1]) == "aborted"
    del client


def test_stream_restart_pipelined_before_success_is_dropped() -> None:
    # Whatever was parsed before <success/> belongs to the old stream: a client must restart
    # only after it has received <success/> (RFC 6120 §6.4.6).
    c = Client()
    c.starttls()
    c.auth_plain(f"\0juliet\0{PASSWORD}")
    c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    c.credentials("juliet")
    assert c.recv_one().tag == q("sasl:success")
    assert c.events() == [Authenticated(JID.of("juliet", HOST))]
    c.output.restart()
    c.bind()


def test_credentials_arriving_after_close_are_ignored() -> None:
    c = Client()
    c.starttls()
    c.auth_plain(f"\0juliet\0{PASSWORD}")
    assert isinstance(c.events()[0], NeedCredentials)
    c.stream.close()
    c.stream.credentials_found(ACCOUNTS["juliet"])
    assert not c.stream.authenticated
    assert [e for e in c.events() if not isinstance(e, Closed)] == []


def test_five_failures_close_the_stream_with_policy_violation() -> None:
    c = Client()
    c.starttls()
    for _ in range(4):
        c.auth_plain("\0juliet\0wrong")
        c.credentials("juliet")
        assert failure_of(c.recv_one()) == "not-authorized"
        assert c.events() == [AuthFailed("juliet", "example.org")]
    c.auth_plain("\0juliet\0wrong")
    c.credentials("juliet")
    items = c.closed_with("policy-violation")
    assert failure_of(items[0]) == "not-authorized"


def test_failures_of_any_kind_count_towards_the_five() -> None:
    c = Client()
    c.starttls()
    for data in [f"<auth xmlns='{ns.SASL}' mechanism='X'>=</auth>", f"<abort xmlns='{ns.SASL}'/>",
                 f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'>!</auth>",
                 f"<response xmlns='{ns.SASL}'/>"]:
        c.send(data)
        assert failure_of(c.recv_one())
    c.auth_plain(f"\0juliet\0{PASSWORD}")            # the fifth attempt still gets its answer
    c.credentials("juliet")
    assert c.recv_one().tag == q("sasl:success")


def test_sasl_after_authentication_is_not_authorized() -> None:
    c = Client()
    c.login()
    c.open()
    c.auth_plain(f"\0juliet\0{PASSWORD}")
    c.closed_with("not-authorized")


def test_unknown_sasl_element_is_unsupported_stanza_type() -> None:
    c = Client()
    c.starttls()
    c.send(f"<success xmlns='{ns.SASL}'/>")
    c.closed_with("unsupported-stanza-type")


# --- limits and timeouts ----------------------------------------------------------------------


def test_preauth_stanza_over_8_kib_is_a_policy_violation() -> None:
    c = Client()
    c.starttls()
    c.send(f"<auth xmlns='{ns.SASL}' mechanism='PLAIN'>{'A' * 8192}</auth>")
    c.closed_with("policy-violation")


def test_preauth_stanza_with_too_many_elements_is_a_policy_violation() -> None:
    c = Client(settings(preauth_iq_allowed=lambda s, tag: True))
    c.starttls()
    c.send("<iq type='set' id='r'><query xmlns='jabber:iq:register'>" + "<x/>" * 40
           + "</query></iq>")
    c.closed_with("policy-violation")


def test_flood_while_credentials_are_looked_up_is_a_policy_violation() -> None:
    c = Client()
    c.starttls()
    c.auth_plain(f"\0juliet\0{PASSWORD}")
    c.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" * 32)     # held, within bounds
    assert c.stream.state == "sasl"
    c.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    c.closed_with("policy-violation")


def test_stanzas_pipelined_while_binding_are_held_in_order() -> None:
    c = Client()
    c.login()
    c.open()
    c.send(f"<iq type='set' id='b1'><bind xmlns='{ns.BIND}'/></iq>"
           + "".join(f"<presence id='p{i}'/>" for i in range(100)))
    [request] = c.events()
    c.stream.bind_succeeded(request.user.with_resource("r"), "b1")
    assert [e.stanza.get("id") for e in c.events()] == [f"p{i}" for i in range(100)]


def test_limits_rise_after_authentication() -> None:
    c = bound_client()
    c.send("<message to='romeo@example.org'><body>" + "x" * 20000 + "</body>"
           + "<x/>" * 40 + "</message>")
    [ev] = c.events()
    assert isinstance(ev, Stanza) and len(ev.stanza[0].text or "") == 20000


def test_large_stanza_after_auth_beyond_the_limit_is_a_policy_violation() -> None:
    c = bound_client(max_stanza_size=16384)
    c.send("<message><body>" + "x" * 20000 + "</body></message>")
    c.closed_with("policy-violation")


def test_deadline_is_the_auth_timeout_after_opening() -> None:
    c = Client(settings(auth_timeout=30.0), now=100.0)
    assert c.stream.next_deadline() == 130.0
    c.open()
    assert c.stream.next_deadline() == 130.0      # activity does not extend authentication


def test_auth_timeout_closes_with_connection_timeout() -> None:
    c = Client(settings(auth_timeout=30.0), now=100.0)
    c.open()
    c.stream.on_timeout(129.9)
    assert c.stream.data_to_send() == b"" and c.events() == []
    c.stream.on_timeout(130.0)
    c.closed_with("connection-timeout")


def test_timeout_before_any_byte_still_sends_a_header_first() -> None:
    c = Client(settings(auth_timeout=5.0))
    c.stream.on_timeout(5.0)
    c.closed_with("connection-timeout")
    assert c.output.header is not None


def test_timeout_during_binding_closes() -> None:
    c = Client(settings(auth_timeout=30.0))
    c.login()
    c.open()
    c.send(f"<iq type='set' id='b1'><bind xmlns='{ns.BIND}'/></iq>")
    [request] = c.events()
    c.stream.on_timeout(30.0)
    c.closed_with("connection-timeout")
    c.stream.bind_succeeded(request.user.with_resource("late"), "b1")   # the shell was slow
    assert c.stream.state == "closed" and c.stream.data_to_send() == b""


def test_no_deadline_once_bound() -> None:
    c = bound_client()
    assert c.stream.next_deadline() is None
    c.stream.on_timeout(1e9)
    assert c.stream.state == "bound" and c.events() == []


def test_last_activity_follows_received_bytes() -> None:
    c = Client()
    c.now = 42.5
    c.send(" ")
    assert c.stream.last_activity == 42.5


# --- binding (RFC 6120 §7) ---------------------------------------------------------------------


@pytest.mark.parametrize(("resource_xml", "expected"), [
    ("<resource>balcony</resource>", "balcony"),
    ("<resource> balcony </resource>", "balcony"),
    ("<resource/>", None),
    ("", None),
], ids=["named", "spaces", "empty", "absent"])
def test_bind_request_carries_the_wanted_resource(resource_xml: str, expected: str | None) -> None:
    c = Client()
    c.login()
    c.open()
    c.send(f"<iq type='set' id='b1'><bind xmlns='{ns.BIND}'>{resource_xml}</bind></iq>")
    [request] = c.events()
    assert isinstance(request, BindRequest)
    assert (request.user, request.resource) == (JID.of("juliet", HOST), expected)
    assert request.stanza.get("id") == "b1"
    assert c.recv() == []                                   # nothing until the shell answers


def test_bind_succeeded_answers_with_the_full_jid() -> None:
    c = Client()
    c.login()
    c.open()
    c.send(f"<iq type='set' id='b&amp;1'><bind xmlns='{ns.BIND}'/></iq>")
    c.events()
    full = JID.parse("juliet@example.org/4f3a")
    c.stream.bind_succeeded(full, "b&1")
    result = c.recv_one()
    assert (result.tag, result.get("type"), result.get("id")) == (q("c:iq"), "result", "b&1")
    assert result.findtext(f"{q('bind:bind')}/{q('bind:jid')}") == "juliet@example.org/4f3a"
    assert c.stream.jid == full and c.stream.state == "bound"


def test_bind_failed_answers_with_a_stanza_error_and_allows_another_try() -> None:
    c = Client()
    c.login()
    c.open()
    c.send(f"<iq type='set' id='b1'><bind xmlns='{ns.BIND}'><resource>x</resource></bind></iq>")
    [request] = c.events()
    c.stream.bind_failed(request.stanza, StanzaError.conflict())
    error = c.recv_one()
    assert (error.get("type"), error.get("id")) == ("error", "b1")
    assert error.find(f"{q('c:error')}/{q('stanza:conflict')}") is not None
    assert c.stream.state == "bind"
    c.send(f"<iq type='set' id='b2'><bind xmlns='{ns.BIND}'/></iq>")
    assert isinstance(c.events()[0], BindRequest)


def test_stanzas_wait_while_binding_is_pending() -> None:
    c = Client()
    c.login()
    c.open()
    c.send(f"<iq type='set' id='b1'><bind xmlns='{ns.BIND}'/></iq><presence/>")
    [request] = c.events()
    c.stream.bind_succeeded(request.user.with_resource("r"), "b1")
    [presence] = c.events()
    assert isinstance(presence, Stanza) and presence.stanza.get("from") == "juliet@example.org/r"


def test_other_iq_before_binding_gets_a_not_authorized_error() -> None:
    c = Client()
    c.login()
    c.open()
    c.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
    error = c.recv_one()
    assert (error.get("type"), error.get("id")) == ("error", "r1")
    assert error.find(f"{q('c:error')}/{q('stanza:not-authorized')}") is not None
    assert c.events() == []
    c.send("<iq type='result' id='x'/>")                    # results are not answered
    assert c.recv() == [] and c.events() == []


def test_message_before_binding_is_a_not_authorized_stream_error() -> None:
    c = Client()
    c.login()
    c.open()
    c.send("<message to='romeo@example.org'><body>hi</body></message>")
    c.closed_with("not-authorized")


def test_stanza_before_authentication_is_not_authorized() -> None:
    c = Client()
    c.starttls()
    c.send("<presence/>")
    c.closed_with("not-authorized")                          # RFC 6120 §6.4.8


@pytest.mark.parametrize("element", ["<foo xmlns='urn:example'/>", "<bar/>"], ids=["nonza", "client"])
def test_unknown_element_before_authentication_is_unsupported_stanza_type(element: str) -> None:
    c = Client()
    c.starttls()
    c.send(element)
    c.closed_with("unsupported-stanza-type")


# --- the bound stream ------------------------------------------------------------------------


@pytest.mark.parametrize("to", [None, HOST], ids=["no_to", "to_domain"])
def test_legacy_session_iq_is_answered(to: str | None) -> None:
    # RFC 3921 §3 (its example carries to='<domain>'); RFC 6120 dropped the step, old clients
    # still send it.
    c = bound_client()
    attr = f" to='{to}'" if to else ""
    c.send(f"<iq type='set' id='s1'{attr}><session xmlns='{ns.SESSION}'/></iq>")
    result = c.recv_one()
    assert (result.get("type"), result.get("id"), result.get("to")) == (
        "result", "s1", "juliet@example.org/balcony")
    # answered by the stream; the event only lets XEP-0198 count it (nothing is routed)
    events = c.events()
    assert len(events) == 1 and isinstance(events[0], Stanza) and events[0].answered


def test_session_iq_to_someone_else_is_routed() -> None:
    c = bound_client()
    c.send(f"<iq type='set' id='s1' to='romeo@example.org'><session xmlns='{ns.SESSION}'/></iq>")
    assert c.recv() == []
    assert isinstance(c.events()[0], Stanza)


@pytest.mark.parametrize("sender", [None, "juliet@example.org/balcony", "juliet@example.org",
                                    "Juliet@Example.org/balcony"],
                         ids=["none", "full", "bare", "unprepared"])
def test_stanza_from_is_stamped_with_the_full_jid(sender: str | None) -> None:
    # RFC 6120 §8.1.2.1: the server stamps the full JID of the sending resource.
    c = bound_client()
    attr = f" from='{sender}'" if sender else ""
    c.send(f"<message to='romeo@example.org'{attr}><body>hi</body></message>")
    [ev] = c.events()
    assert isinstance(ev, Stanza)
    assert ev.stanza.get("from") == "juliet@example.org/balcony"
    assert ev.stanza.get("to") == "romeo@example.org"


@pytest.mark.parametrize("sender", ["romeo@example.org/x", "juliet@example.org/other",
                                    "example.org", "@@@"],
                         ids=["other_user", "other_resource", "server", "malformed"])
def test_spoofed_from_is_invalid_from(sender: str) -> None:
    c = bound_client()
    c.send(f"<message to='romeo@example.org' from='{sender}'><body>hi</body></message>")
    c.closed_with("invalid-from")


@pytest.mark.parametrize("stanza", ["<message/>", "<presence/>", "<iq type='get' id='1'/>"])
def test_stanzas_after_binding_become_stanza_events(stanza: str) -> None:
    c = bound_client()
    c.send(stanza)
    [ev] = c.events()
    assert isinstance(ev, Stanza) and etree.QName(ev.stanza).namespace == ns.CLIENT


def test_nonzas_after_binding_become_nonza_events() -> None:
    c = bound_client()
    c.send("<enable xmlns='urn:xmpp:sm:3'/><r xmlns='urn:xmpp:sm:3'/>")
    events = c.events()
    assert [type(e) for e in events] == [Nonza, Nonza]
    assert [e.element.tag for e in events] == ["{urn:xmpp:sm:3}enable", "{urn:xmpp:sm:3}r"]


def test_unknown_jabber_client_element_after_binding_is_unsupported_stanza_type() -> None:
    c = bound_client()
    c.send("<thing/>")
    c.closed_with("unsupported-stanza-type")


def test_session_features_are_offered_with_bind() -> None:
    sm = etree.Element("{urn:xmpp:sm:3}sm")
    c = Client(settings(session_features=lambda s: [sm]))
    c.login()
    features = c.open()
    assert [el.tag for el in features] == [q("bind:bind"), q("session:session"), sm.tag]


# --- pre-authentication IQs (XEP-0077) --------------------------------------------------------


def test_preauth_register_iq_is_handed_out_when_allowed() -> None:
    seen: list[C2SStream] = []

    def allowed(stream: C2SStream, tag: str) -> bool:
        seen.append(stream)
        return tag == "{jabber:iq:register}query"

    c = Client(settings(preauth_iq_allowed=allowed))
    c.starttls()
    c.send("<iq type='get' id='r1' from='evil@example.org'><query xmlns='jabber:iq:register'/></iq>")
    [ev] = c.events()
    assert isinstance(ev, PreAuthIq) and ev.host == HOST
    assert ev.stanza.get("id") == "r1" and ev.stanza.get("from") is None
    assert seen == [c.stream] and seen[0].peer_ip == "192.0.2.1"
    reply = etree.Element(q("c:iq"), type="result", id="r1")
    c.stream.send_element(reply)
    assert c.recv_one().get("id") == "r1"


def test_preauth_register_iq_is_not_authorized_when_not_allowed() -> None:
    c = Client()
    c.starttls()
    c.send("<iq type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>")
    c.closed_with("not-authorized")


def test_preauth_iq_other_than_register_is_not_authorized() -> None:
    # Only payloads a module allows before authentication (here: XEP-0077) are handed out.
    c = Client(settings(preauth_iq_allowed=lambda s, tag: tag == "{jabber:iq:register}query"))
    c.starttls()
    c.send("<iq type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    c.closed_with("not-authorized")


# --- closing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["header", "features", "bound"])
def test_client_close_is_answered_with_a_close(stage: str) -> None:
    c = Client()
    if stage == "header":
        c.send(header())
        c.recv()
    elif stage == "features":
        c.starttls()
    else:
        c = bound_client()
    c.send("</stream:stream>")
    c.closed_with(None)


def test_server_close_without_error() -> None:
    c = bound_client()
    c.stream.close()
    c.closed_with(None)


def test_server_close_with_error_sends_it_before_the_close() -> None:
    from stanzas.errors import StreamError
    c = bound_client()
    c.stream.close(StreamError.system_shutdown())
    c.closed_with("system-shutdown")


def test_stream_error_in_the_same_read_as_stanzas_stops_there() -> None:
    c = bound_client()
    c.send("<message to='romeo@example.org'/><thing/><presence/>")
    [ev, closed] = c.events()
    assert isinstance(ev, Stanza) and isinstance(closed, Closed)
    assert closed.error is not None and closed.error.condition == "unsupported-stanza-type"



def test_stanza_before_bad_bytes_in_the_same_read_is_handled_then_the_stream_closes() -> None:
    # The same as if the bad bytes had come in the next read.
    c = bound_client()
    c.send("<message to='romeo@example.org'/><!-- nope --><presence/>")
    events = c.events()
    assert [type(e) for e in events] == [Stanza, Closed]
    assert events[1].error is not None and events[1].error.condition == "restricted-xml"
    items = c.recv()
    assert items[-2].tag == q("stream:error") and items[-1] == "</stream>"
    assert items[-2][0].tag == q("err:restricted-xml")


def test_bad_bytes_while_waiting_for_credentials_close_after_the_answer() -> None:
    c = Client()
    c.starttls()
    c.auth_plain(f"\0juliet\0{PASSWORD}")
    c.send("<!DOCTYPE x>")
    assert c.recv() == []                      # queued behind the pending look-up
    c.credentials("juliet")
    # <success/> restarts the stream: what the client sent before it belonged to the old one.
    assert c.recv_one().tag == q("sasl:success")
    assert c.events() == [Authenticated(JID.of("juliet", HOST))]
    assert c.stream.state == "restart"


def test_plain_costs_an_unknown_user_the_same_pbkdf2_as_a_known_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13 §5: PLAIN answered an unknown user in 2.7 ms and a wrong password in 5.0 ms,
    telling which accounts exist. Both now run one PBKDF2 of the configured count."""
    import hashlib

    from xmppd import sasl
    real = hashlib.pbkdf2_hmac
    sasl._dummy_credentials(64)                 # made once per process, not per attempt
    calls: list[tuple[str, int]] = []

    def counted(name: str, password: bytes, salt: bytes, iterations: int, *a: Any) -> bytes:
        calls.append((name, iterations))
        return real(name, password, salt, iterations, *a)
    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counted)
    work = {}
    for user in ("juliet", "nobody"):
        calls.clear()
        c = Client(settings(scram_iterations=64))
        c.starttls()
        c.auth_plain(f"\0{user}\0wrong")
        c.credentials(user)
        assert failure_of(c.recv_one()) == "not-authorized"
        work[user] = list(calls)
    assert work["juliet"] == work["nobody"] == [("sha256", 64)]
