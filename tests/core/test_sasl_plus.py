"""SCRAM-SHA-1-PLUS / SCRAM-SHA-256-PLUS (RFC 5802 §6) and the downgrade rules of XEP-0440."""
from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest

from tests.core.test_sasl import FAST, ScramClient, failure
from xmppd.sasl import derive_scram
from xmppd.scram import ScramServer

EXPORTER = secrets.token_bytes(32)
END_POINT = secrets.token_bytes(32)
BINDINGS = {"tls-exporter": EXPORTER, "tls-server-end-point": END_POINT}


def plus_exchange(mechanism: str, kind: str, data: bytes, *, server_bindings: dict[str, bytes]
                  = BINDINGS) -> tuple[ScramServer, bytes, ScramClient]:
    base = mechanism.removesuffix("-PLUS")
    client = ScramClient(base, "juliet", "pw", flag=f"p={kind}")
    server = ScramServer(mechanism, bindings=server_bindings, plus_offered=True)
    server.first(client.first())
    server_first = server.server_first(derive_scram("pw", base, iterations=FAST))
    final = client.final(server_first, cbind=client.gs2_header.encode() + data)
    return server, server.final(final), client


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
@pytest.mark.parametrize("kind", ["tls-exporter", "tls-server-end-point"])
def test_plus_with_our_channel_binding_succeeds(mechanism: str, kind: str) -> None:
    server, server_final, client = plus_exchange(mechanism, kind, BINDINGS[kind])
    assert client.check(server_final) and server.succeeded
    assert server.binding == kind and server.base == mechanism.removesuffix("-PLUS")


@pytest.mark.parametrize("kind", ["tls-exporter", "tls-server-end-point"])
def test_channel_binding_mismatch_is_refused(kind: str) -> None:
    """The client's TLS channel is not ours (a man in the middle terminates it)."""
    with failure("not-authorized"):
        plus_exchange("SCRAM-SHA-256-PLUS", kind, secrets.token_bytes(32))


def test_binding_data_of_another_type_is_refused() -> None:
    with failure("not-authorized"):
        plus_exchange("SCRAM-SHA-256-PLUS", "tls-exporter", END_POINT)


def test_unsupported_binding_type_is_refused_at_once() -> None:
    server = ScramServer("SCRAM-SHA-256-PLUS", bindings={"tls-server-end-point": END_POINT})
    with failure("malformed-request"):
        server.first(b"p=tls-unique,,n=juliet,r=abc")


@pytest.mark.parametrize("flag", [b"n", b"y"])
def test_plus_mechanism_without_binding_request_is_malformed(flag: bytes) -> None:
    server = ScramServer("SCRAM-SHA-1-PLUS", bindings=BINDINGS, plus_offered=True)
    with failure("malformed-request"):
        server.first(flag + b",,n=juliet,r=abc")


def test_y_is_a_downgrade_once_plus_was_offered() -> None:
    """RFC 5802 §6: "y" says the client saw no -PLUS mechanism: we offered one."""
    server = ScramServer("SCRAM-SHA-256", plus_offered=True)
    with failure("not-authorized"):
        server.first(b"y,,n=juliet,r=abc")


def test_y_is_fine_where_plus_was_not_offered() -> None:
    client = ScramClient("SCRAM-SHA-256", "juliet", "pw", flag="y")
    server = ScramServer("SCRAM-SHA-256", plus_offered=False)
    server.first(client.first())
    final = server.final(client.final(server.server_first(
        derive_scram("pw", "SCRAM-SHA-256", iterations=FAST))))
    assert client.check(final)


def test_plus_needs_bindings() -> None:
    with failure("invalid-mechanism"):
        ScramServer("SCRAM-SHA-256-PLUS", bindings={})


def test_unknown_user_salt_is_the_same_with_and_without_plus() -> None:
    """A real user has one salt for SCRAM-SHA-256 and its -PLUS: so does an unknown one."""
    plain = ScramServer("SCRAM-SHA-256")
    plain.first(b"n,,n=nobody,r=abc")
    plus = ScramServer("SCRAM-SHA-256-PLUS", bindings=BINDINGS)
    plus.first(b"p=tls-exporter,,n=nobody,r=abc")
    salt = [dict(a.split("=", 1) for a in s.server_first(None).decode().split(","))["s"]
            for s in (plain, plus)]
    assert salt[0] == salt[1]


def test_slixmpp_scram_plus_with_tls_unique() -> None:
    """Interop: slixmpp's SCRAM-SHA-1-PLUS (tls-unique on TLS 1.2) against ScramServer."""
    from slixmpp.util.sasl import choose

    unique = secrets.token_bytes(12)

    def credentials(required: Any, optional: Any) -> dict[str, Any]:
        return {"username": "juliet", "password": "pw", "authzid": "",
                "channel_binding": unique}

    def security(settings: Any) -> dict[str, Any]:
        return {"encrypted": True, "unencrypted_scram": False, "binding_proposed": True,
                "tls_version": "TLSv1.2"}

    mech = choose(["SCRAM-SHA-1-PLUS"], credentials, security)
    server = ScramServer("SCRAM-SHA-1-PLUS", bindings={"tls-unique": unique},
                         plus_offered=True)
    server.first(bytes(mech.process()))
    server_first = server.server_first(derive_scram("pw", "SCRAM-SHA-1", iterations=FAST))
    final = server.final(bytes(mech.process(server_first)))
    mech.process(final)         # raises if our server signature is wrong
    assert server.succeeded and server.binding == "tls-unique"
    assert base64.b64decode(final[2:])
