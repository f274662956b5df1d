# tests: tests/core/test_sasl.py
"""SASL mechanisms: SCRAM-SHA-1/-256 (RFC 5802/7677), PLAIN (RFC 4616), SASLprep (RFC 4013)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any

import pytest

from xmppd.scram import ScramServer
from xmppd.sasl import (
    HASHES,
    PlainServer,
    SaslFailure,
    ScramCredentials,
    derive_all,
    derive_scram,
    saslprep,
)

MECHANISMS = sorted(HASHES)
FAST = 64  # iterations for tests that are not about the iteration count


class ScramClient:
    """A minimal SCRAM client (RFC 5802 §3, §5.1), written from the RFC for these tests."""

    def __init__(
        self,
        mechanism: str,
        username: str,
        password: str,
        *,
        authzid: str = "",
        flag: str = "n",
        nonce: str | None = None,
    ) -> None:
        self.hash = HASHES[mechanism]
        self.username, self.password, self.authzid = username, password, authzid
        self.gs2_header = f"{flag},{'a=' + escape(authzid) if authzid else ''},"
        self.nonce = nonce or secrets.token_urlsafe(18)
        self.server_signature = b""

    def first(self) -> bytes:
        self.first_bare = f"n={escape(self.username)},r={self.nonce}"
        return (self.gs2_header + self.first_bare).encode()

    def final(
        self, server_first: bytes, *, cbind: bytes | None = None, nonce: str | None = None
    ) -> bytes:
        attrs = dict(a.split("=", 1) for a in server_first.decode().split(","))
        assert attrs["r"].startswith(self.nonce)
        password = saslprep(self.password).encode()
        salted = hashlib.pbkdf2_hmac(
            self.hash, password, base64.b64decode(attrs["s"]), int(attrs["i"])
        )
        client_key = hmac.digest(salted, b"Client Key", self.hash)
        stored_key = hashlib.new(self.hash, client_key).digest()
        c = base64.b64encode(self.gs2_header.encode() if cbind is None else cbind).decode()
        without_proof = f"c={c},r={attrs['r'] if nonce is None else nonce}"
        auth_message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, self.hash)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.digest(salted, b"Server Key", self.hash)
        self.server_signature = hmac.digest(server_key, auth_message, self.hash)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def check(self, server_final: bytes) -> bool:
        return server_final == b"v=" + base64.b64encode(self.server_signature)


def escape(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def run_exchange(
    client: ScramClient,
    creds: ScramCredentials | None,
    mechanism: str,
    **server_options: Any,
) -> tuple[ScramServer, bytes]:
    server = ScramServer(mechanism, **server_options)
    assert server.first(client.first()) == saslprep(client.username, allow_unassigned=True)
    server_final = server.final(client.final(server.server_first(creds)))
    return server, server_final


def failure(condition: str) -> Any:
    return pytest.raises(SaslFailure, match=f"^{re.escape(condition)}")


# --- test vectors ---------------------------------------------------------------------------


def test_rfc5802_scram_sha1_example() -> None:
    # RFC 5802 §5: user "user", password "pencil".
    server = ScramServer("SCRAM-SHA-1", nonce="3rfcNHYJY1ZVvWVs7j")
    assert server.first(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL") == "user"
    creds = derive_scram(
        "pencil", "SCRAM-SHA-1", salt=base64.b64decode("QSXCR+Q6sek8bf92"), iterations=4096
    )
    assert server.server_first(creds) == (
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    )
    assert server.final(
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    ) == b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
    assert (server.username, server.authzid, server.succeeded) == ("user", "", True)


def test_rfc7677_scram_sha256_example() -> None:
    # RFC 7677 §3: user "user", password "pencil".
    server = ScramServer("SCRAM-SHA-256", nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    assert server.first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO") == "user"
    creds = derive_scram(
        "pencil", "SCRAM-SHA-256", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    )
    assert server.server_first(creds) == (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    assert server.final(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    ) == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("juliet", "r0m30myr0m30"),
        ("a,b=c", "p=,w"),  # "=2C" / "=3D" escapes both ways
        ("ünïcødé", "pässwörd ☃"),
        ("user", "I\u00adX"),  # SASLprep maps SOFT HYPHEN to nothing: same as "IX"
    ],
)
def test_round_trip_with_our_client(mechanism: str, username: str, password: str) -> None:
    creds = derive_scram(password, mechanism, iterations=FAST)
    client = ScramClient(mechanism, username, password)
    server, server_final = run_exchange(client, creds, mechanism)
    assert client.check(server_final)
    assert server.username == username


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_y_flag_is_accepted_without_plus_mechanisms(mechanism: str) -> None:
    # RFC 5802 §6: "y" = client supports channel binding but thinks we do not; true here.
    client = ScramClient(mechanism, "juliet", "pw", flag="y")
    creds = derive_scram("pw", mechanism, iterations=FAST)
    _, server_final = run_exchange(client, creds, mechanism)
    assert client.check(server_final)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_slixmpp_client_authenticates(mechanism: str) -> None:
    """Interop: slixmpp's own SCRAM implementation against ScramServer."""
    from slixmpp.util.sasl import choose

    def credentials(required: Any, optional: Any) -> dict[str, Any]:
        return {"username": "Jüliet", "password": "pässwörd", "authzid": ""}

    def security(settings: Any) -> dict[str, Any]:
        return {"encrypted": True, "unencrypted_scram": False, "binding_proposed": False,
                "tls_version": "TLSv1.3"}

    client: Any = choose([mechanism, "PLAIN"], credentials, security, limit=[mechanism])
    assert client.name == mechanism
    server = ScramServer(mechanism)
    assert server.first(client.process(b"")) == "Jüliet"
    creds = derive_scram("pässwörd", mechanism)
    server_final = server.final(client.process(server.server_first(creds)))
    assert client.process(server_final) == b""
    assert client._mutual_auth  # slixmpp verified our ServerSignature


def test_slixmpp_client_with_wrong_password_is_refused() -> None:
    from slixmpp.util.sasl import choose

    client: Any = choose(
        ["SCRAM-SHA-256"],
        lambda r, o: {"username": "juliet", "password": "wrong"},
        lambda s: {"encrypted": True, "binding_proposed": False, "tls_version": "TLSv1.3"},
    )
    server = ScramServer("SCRAM-SHA-256")
    server.first(client.process(b""))
    reply = client.process(server.server_first(derive_scram("right", "SCRAM-SHA-256")))
    with failure("not-authorized"):
        server.final(reply)


# --- SCRAM failures -------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_password_is_not_authorized(mechanism: str) -> None:
    client = ScramClient(mechanism, "juliet", "wrong")
    server = ScramServer(mechanism)
    server.first(client.first())
    reply = client.final(server.server_first(derive_scram("right", mechanism, iterations=FAST)))
    with failure("not-authorized") as info:
        server.final(reply)
    assert info.value.text is None  # nothing that tells a wrong password from a missing user
    assert not server.succeeded


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_unknown_user_gets_a_fake_but_stable_challenge(mechanism: str) -> None:
    def challenge(username: str, creds: ScramCredentials | None) -> bytes:
        server = ScramServer(mechanism, nonce="servernonce")
        server.first(f"n,,n={username},r=clientnonce".encode())
        return server.server_first(creds)

    real = challenge("romeo", derive_scram("pw", mechanism))
    fake = challenge("nobody", None)
    shape = re.compile(rb"r=clientnonceservernonce,s=([A-Za-z0-9+/]{22}==),i=4096")
    assert shape.fullmatch(real) and shape.fullmatch(fake)  # same salt length, same count
    assert challenge("nobody", None) == fake  # stable: probing twice shows nothing
    assert challenge("nobody2", None) != fake
    other = "SCRAM-SHA-1" if mechanism == "SCRAM-SHA-256" else "SCRAM-SHA-256"
    other_server = ScramServer(other, nonce="servernonce")
    other_server.first(b"n,,n=nobody,r=clientnonce")
    assert other_server.server_first(None) != fake  # per mechanism, like real salts

    client = ScramClient(mechanism, "nobody", "anything")
    with failure("not-authorized") as info:
        run_exchange(client, None, mechanism)
    assert info.value.text is None


def test_fake_iteration_count_is_configurable() -> None:
    server = ScramServer("SCRAM-SHA-256", fake_iterations=10000)
    server.first(b"n,,n=nobody,r=abc")
    assert server.server_first(None).endswith(b",i=10000")


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_nonce_mismatch_is_not_authorized(mechanism: str) -> None:
    client = ScramClient(mechanism, "juliet", "pw")
    server = ScramServer(mechanism)
    server.first(client.first())
    server_first = server.server_first(derive_scram("pw", mechanism, iterations=FAST))
    # A correct proof over a message with another nonce (a replayed or spliced exchange).
    with failure("not-authorized"):
        server.final(client.final(server_first, nonce=client.nonce + "other"))


@pytest.mark.parametrize(
    ("flag", "cbind"),
    [
        ("n", b"y,,"),  # downgrade: client says "y" in c= but "n" in the header
        ("y", b"n,,"),
        ("n", b"n,,cbind-data"),
        ("n", b"n,a=juliet,"),
    ],
)
def test_channel_binding_echo_mismatch_is_not_authorized(flag: str, cbind: bytes) -> None:
    client = ScramClient("SCRAM-SHA-256", "juliet", "pw", flag=flag)
    server = ScramServer("SCRAM-SHA-256")
    server.first(client.first())
    server_first = server.server_first(derive_scram("pw", "SCRAM-SHA-256", iterations=FAST))
    with failure("not-authorized"):
        server.final(client.final(server_first, cbind=cbind))


@pytest.mark.parametrize(
    "header", [b"p=tls-exporter,,", b"p=tls-unique,,", b"p=tls-server-end-point,a=juliet,"]
)
def test_channel_binding_request_is_malformed_without_plus(header: bytes) -> None:
    with failure("malformed-request"):
        ScramServer("SCRAM-SHA-1").first(header + b"n=juliet,r=abc")


@pytest.mark.parametrize(
    ("authzid", "host", "ok"),
    [
        ("juliet", None, True),
        ("romeo", None, False),
        ("juliet@example.com", None, False),  # cannot check the domain without the host
        ("juliet@example.com", "example.com", True),
        ("Juliet@EXAMPLE.com", "example.com", True),
        ("juliet@example.com/balcony", "example.com", False),
        ("juliet@example.net", "example.com", False),
        ("romeo@example.com", "example.com", False),
        ("not a jid@example.com", "example.com", False),
    ],
)
def test_scram_authzid_must_name_the_user(authzid: str, host: str | None, ok: bool) -> None:
    client = ScramClient("SCRAM-SHA-256", "juliet", "pw", authzid=authzid)
    server = ScramServer("SCRAM-SHA-256", host=host)
    if ok:
        assert server.first(client.first()) == "juliet"
        assert server.authzid == authzid
    else:
        with failure("invalid-authzid"):
            server.first(client.first())


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"n",
        b"n,",
        b"n,,",
        b"n,,n=user",  # no nonce
        b"n,,r=abc",  # no username
        b"n,,r=abc,n=user",  # wrong order
        b"n,,n=user,r=",  # empty nonce
        b"n,,n=user,r=a\x01b",  # nonce not printable
        b"n,,n=,r=abc",  # empty username
        b"n,,n=us=2Xer,r=abc",  # bad escape
        b"n,,n=us=er,r=abc",
        b"n,,n=user=,r=abc",
        b"n,,n=user=2,r=abc",
        b"n,,n=us=2cer,r=abc",  # escapes are upper case
        b"n,,m=ext,n=user,r=abc",  # mandatory extension
        b"n,,n=user,r=abc,1=x",  # extension names are letters
        b"n,,n=user,r=abc,xx",
        b"x,,n=user,r=abc",  # unknown gs2 flag
        b"N,,n=user,r=abc",
        b"n,b=user,n=user,r=abc",  # authzid without "a="
        b"n,a=,n=user,r=abc",  # empty authzid
        b"n,a=us=er,n=user,r=abc",
        b"n,,n=\xffuser,r=abc",  # not UTF-8
        b"n,,n=us\x07er,r=abc",  # SASLprep: prohibited control character
        b"n,,n=\xd8\xa71,r=abc",  # SASLprep: bidi (ARABIC LETTER ALEF then DIGIT ONE)
    ],
)
def test_malformed_client_first_is_refused(message: bytes) -> None:
    with failure("malformed-request"):
        ScramServer("SCRAM-SHA-256").first(message)


def test_unknown_extensions_are_ignored() -> None:
    # RFC 5802 §7: unrecognized attributes "MUST be ignored".
    assert ScramServer("SCRAM-SHA-1").first(b"n,,n=user,r=abc,x=1,y=a=b") == "user"


def _ready_server() -> tuple[ScramServer, bytes]:
    server = ScramServer("SCRAM-SHA-1", nonce="S")
    server.first(b"n,,n=user,r=C")
    server.server_first(derive_scram("pw", "SCRAM-SHA-1", iterations=FAST))
    return server, base64.b64encode(b"\x00" * 20)


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"c=biws,r=CS",  # no proof
        b"r=CS,c=biws,p={proof}",  # wrong order
        b"c=biws,p={proof}",  # no nonce
        b"c=biws,r=CS,p={proof},x=1",  # proof must be last
        b"c=biws,r=CS,1=x,p={proof}",
        b"c=biws!,r=CS,p={proof}",  # bad base64 in c=
        b"c=biw,r=CS,p={proof}",  # unpadded
        b"c=bi=s,r=CS,p={proof}",
        b"c=biws,r=CS,p=AAAA=AAAAAAAAAAAAAAAAAAAAAAAA",  # padding in the middle
        b"c=biws,r=CS,p=not base64!",
        b"c=biws,r=CS,p=" + base64.b64encode(b"\x00" * 19),  # proof of the wrong length
        b"c=biws,r=CS,p=" + base64.b64encode(b"\x00" * 32),
        b"c=biws,r=C\xffS,p={proof}",  # not UTF-8
    ],
)
def test_malformed_client_final_is_refused(message: bytes) -> None:
    server, proof = _ready_server()
    with failure("malformed-request"):
        server.final(message.replace(b"{proof}", proof))


def test_extensions_in_client_final_are_ignored_but_covered_by_the_proof() -> None:
    client = ScramClient("SCRAM-SHA-1", "user", "pw")
    server = ScramServer("SCRAM-SHA-1")
    server.first(client.first())
    final = client.final(server.server_first(derive_scram("pw", "SCRAM-SHA-1", iterations=FAST)))
    without_proof, proof = final.rsplit(b",", 1)
    with failure("not-authorized"):  # the extension was not part of the signed AuthMessage
        server.final(without_proof + b",x=1," + proof)


def test_steps_out_of_order_are_a_programming_error() -> None:
    server = ScramServer("SCRAM-SHA-1")
    with pytest.raises(RuntimeError):
        server.server_first(None)
    with pytest.raises(RuntimeError):
        server.final(b"c=biws,r=x,p=AAAA")
    server.first(b"n,,n=user,r=abc")
    with pytest.raises(RuntimeError):
        server.first(b"n,,n=user,r=abc")


def test_a_failed_exchange_cannot_continue() -> None:
    server = ScramServer("SCRAM-SHA-1")
    with failure("malformed-request"):
        server.first(b"garbage")
    with pytest.raises(RuntimeError):
        server.server_first(None)


def test_unknown_mechanism_is_invalid_mechanism() -> None:
    with failure("invalid-mechanism"):
        ScramServer("SCRAM-MD5")
    with failure("invalid-mechanism"):
        ScramServer("SCRAM-SHA-1-PLUS")


def test_server_nonce_is_random_printable_and_checked() -> None:
    nonces = set()
    for _ in range(20):
        server = ScramServer("SCRAM-SHA-1")
        server.first(b"n,,n=user,r=abc")
        nonce = dict(a.split("=", 1) for a in server.server_first(None).decode().split(","))["r"]
        assert re.fullmatch(r"abc[\x21-\x2b\x2d-\x7e]{24,}", nonce)
        nonces.add(nonce)
    assert len(nonces) == 20
    with pytest.raises(ValueError):
        ScramServer("SCRAM-SHA-1", nonce="a,b")


def test_credentials_of_another_hash_are_refused() -> None:
    server = ScramServer("SCRAM-SHA-256")
    server.first(b"n,,n=user,r=abc")
    with pytest.raises(ValueError):
        server.server_first(derive_scram("pw", "SCRAM-SHA-1", iterations=FAST))


def test_sasl_failure_only_takes_rfc6120_conditions() -> None:
    assert SaslFailure("aborted").condition == "aborted"
    assert SaslFailure("not-authorized", "Bad").text == "Bad"
    assert str(SaslFailure("not-authorized", "Bad")) == "not-authorized: Bad"
    with pytest.raises(ValueError):
        SaslFailure("bad-password")


# --- key derivation -------------------------------------------------------------------------


def test_derive_scram_uses_random_salt_and_stores_no_password() -> None:
    a = derive_scram("pencil", "SCRAM-SHA-256", iterations=FAST)
    b = derive_scram("pencil", "SCRAM-SHA-256", iterations=FAST)
    assert len(a.salt) == 16 and a.salt != b.salt and a.stored_key != b.stored_key
    assert (a.iterations, len(a.stored_key), len(a.server_key)) == (FAST, 32, 32)
    assert b"pencil" not in repr(a).encode()


def test_derive_all_gives_each_mechanism_its_own_salt() -> None:
    creds = derive_all("pencil", iterations=FAST)
    assert set(creds) == set(HASHES) == {"SCRAM-SHA-1", "SCRAM-SHA-256"}
    assert len(creds["SCRAM-SHA-1"].stored_key) == 20
    assert len(creds["SCRAM-SHA-256"].stored_key) == 32
    assert creds["SCRAM-SHA-1"].salt != creds["SCRAM-SHA-256"].salt
    assert derive_all("pencil")["SCRAM-SHA-1"].iterations == 4096


def test_derive_scram_prepares_the_password_as_a_stored_string() -> None:
    salt = b"s" * 16
    assert derive_scram("I\u00adX", "SCRAM-SHA-1", salt=salt, iterations=FAST) == derive_scram(
        "IX", "SCRAM-SHA-1", salt=salt, iterations=FAST
    )
    with failure("malformed-request"):  # RFC 5802 §2.2: unassigned code points prohibited
        derive_scram("pw\u0221", "SCRAM-SHA-1", iterations=FAST)
    with failure("malformed-request"):
        derive_scram("pw\x07", "SCRAM-SHA-1", iterations=FAST)


def test_derive_scram_refuses_unknown_mechanisms_and_zero_iterations() -> None:
    with pytest.raises(ValueError):
        derive_scram("pw", "SCRAM-MD5")
    with pytest.raises(ValueError):
        derive_scram("pw", "SCRAM-SHA-1", iterations=0)


# --- SASLprep -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "prepared"),
    [
        # RFC 4013 §3 examples.
        ("I\u00adX", "IX"),
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),
        ("\u2168", "IX"),
        # Non-ASCII spaces become SPACE (§2.1), and NFKC composes.
        ("a\u00a0b", "a b"),
        ("a\u3000b", "a b"),
        ("e\u0301", "\u00e9"),
        ("", ""),
        ("\u05d0\u05d1", "\u05d0\u05d1"),
    ],
)
def test_saslprep(given: str, prepared: str) -> None:
    assert saslprep(given) == prepared


@pytest.mark.parametrize(
    "given",
    [
        "\u0007",  # RFC 4013 §3: prohibited character
        "\u0627\u0031",  # RFC 4013 §3: bidi check
        "a\x00b",
        "a\u0085b",
        "a\ue000b",
        "a\ufdd0b",
        "a\u200eb",
        "\u05d0a",
    ],
)
def test_saslprep_prohibited_output(given: str) -> None:
    with failure("malformed-request"):
        saslprep(given)


def test_saslprep_unassigned_only_in_queries() -> None:
    with failure("malformed-request"):
        saslprep("a\u0221")
    assert saslprep("a\u0221", allow_unassigned=True) == "a\u0221"
    assert saslprep("pw 😀", allow_unassigned=True) == "pw 😀"


# --- PLAIN ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "host", "expected"),
    [
        (b"\x00juliet\x00r0m30", None, ("", "juliet", "r0m30")),
        (b"juliet\x00juliet\x00r0m30", None, ("juliet", "juliet", "r0m30")),
        (b"juliet@example.com\x00juliet\x00pw", "example.com", ("juliet@example.com", "juliet", "pw")),
        (b"Juliet@Example.COM\x00juliet\x00pw", "example.com", ("Juliet@Example.COM", "juliet", "pw")),
        ("\x00j\u00fcliet\x00I\u00adX p\u00e4ss".encode(), None, ("", "j\u00fcliet", "IX p\u00e4ss")),
        ("\x00user\x00\u2168".encode(), None, ("", "user", "IX")),
        ("\x00user\x00pw \U0001f600".encode(), None, ("", "user", "pw \U0001f600")),  # query
    ],
)
def test_plain_parse(data: bytes, host: str | None, expected: tuple[str, str, str]) -> None:
    assert PlainServer.parse(data, host=host) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"juliet",
        b"juliet\x00r0m30",  # one NUL
        b"\x00juliet\x00r0m30\x00",  # three NULs
        b"a\x00b\x00c\x00d",
        b"\x00\x00r0m30",  # empty authcid
        b"\x00juliet\x00",  # empty password
        b"\x00\x00",
        "\x00juliet\x00\u00ad".encode(),  # empty after SASLprep
        b"\x00jul\xffiet\x00r0m30",  # not UTF-8
        b"\x00juliet\x00r0m\x0730",  # prohibited in password
        b"\x00jul\x07iet\x00r0m30",  # prohibited in authcid
        "\x00juliet\x00\u0627\u0031".encode(),  # bidi
    ],
)
def test_plain_malformed_shapes(data: bytes) -> None:
    with failure("malformed-request") as info:
        PlainServer.parse(data)
    assert b"r0m" not in str(info.value).encode()  # the password never shows up in errors


@pytest.mark.parametrize(
    ("data", "host"),
    [
        (b"romeo\x00juliet\x00r0m30", None),
        (b"romeo\x00juliet\x00r0m30", "example.com"),
        (b"juliet@example.com\x00juliet\x00r0m30", None),
        (b"juliet@example.net\x00juliet\x00r0m30", "example.com"),
        (b"juliet@example.com/res\x00juliet\x00r0m30", "example.com"),
        (b"romeo@example.com\x00juliet\x00r0m30", "example.com"),
    ],
)
def test_plain_authzid_mismatch(data: bytes, host: str | None) -> None:
    with failure("invalid-authzid"):
        PlainServer.parse(data, host=host)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_plain_verify_against_scram_credentials(mechanism: str) -> None:
    creds = derive_all("I\u00adX p\u00e4ss", iterations=FAST)[mechanism]
    assert PlainServer.verify("IX p\u00e4ss", creds, mechanism)
    assert PlainServer.verify("I\u00adX p\u00e4ss", creds, mechanism)
    assert not PlainServer.verify("IX pass", creds, mechanism)
    assert not PlainServer.verify("", creds, mechanism)
    assert not PlainServer.verify("IX p\u00e4ss\x07", creds, mechanism)  # fails SASLprep: False


def test_plain_verify_checks_both_keys() -> None:
    creds = derive_scram("pw", "SCRAM-SHA-256", iterations=FAST)
    tampered = ScramCredentials(creds.salt, creds.iterations, creds.stored_key, b"\x00" * 32)
    assert PlainServer.verify("pw", creds, "SCRAM-SHA-256")
    assert not PlainServer.verify("pw", tampered, "SCRAM-SHA-256")


def test_plain_verify_refuses_unknown_mechanism() -> None:
    creds = derive_scram("pw", "SCRAM-SHA-256", iterations=FAST)
    with pytest.raises(ValueError):
        PlainServer.verify("pw", creds, "PLAIN")


def test_plain_then_scram_share_credentials() -> None:
    """An account created once (derive_all) logs in with either mechanism."""
    creds = derive_all("pencil", iterations=FAST)
    authzid, authcid, password = PlainServer.parse(b"\x00user\x00pencil")
    assert all(PlainServer.verify(password, c, m) for m, c in creds.items())
    for mechanism in MECHANISMS:
        client = ScramClient(mechanism, authcid, "pencil")
        assert client.check(run_exchange(client, creds[mechanism], mechanism)[1])
