# tests: tests/core/test_sasl.py, tests/core/test_sasl_plus.py
"""SCRAM (RFC 5802, RFC 7677) server side, with channel binding (SCRAM-SHA-1-PLUS,
SCRAM-SHA-256-PLUS: RFC 5802 §6, XEP-0440), sans-IO.

- `ScramServer(mechanism, bindings=...)` runs one exchange; `bindings` are the connection's
  channel-binding data by type (xmppd/listeners/channel_binding.py). A -PLUS mechanism needs
  the client's "p=<type>" for a type we have; its data must come back in c= (else
  `not-authorized`: the client's TLS channel is not ours, a man in the middle).
- Downgrade detection (RFC 5802 §6): with `plus_offered` (we advertised a -PLUS mechanism on
  this stream), a client saying "y" (it would bind but thinks we cannot) fails.
- Unknown users and wrong passwords fail identically (`not-authorized`), and an unknown user
  still gets a plausible server-first-message (RFC 5802 §9).
Not here: mechanism offering (the stream), credentials (xmppd/sasl.py `derive_scram`).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

from storage.credentials import ScramCredentials
from xmppd.sasl import DEFAULT_ITERATIONS, HASHES, SALT_BYTES, check_authzid
from xmppd.sasl_errors import SaslFailure
from xmppd.saslprep import saslprep

PLUS = "-PLUS"


def base_mechanism(mechanism: str) -> str:
    """"SCRAM-SHA-256-PLUS" -> "SCRAM-SHA-256" (whose credentials it uses)."""
    return mechanism[:-len(PLUS)] if mechanism.endswith(PLUS) else mechanism


_PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # RFC 5802 §7 "printable": no ","
_SASLNAME = re.compile(r"(?:[^=,\x00]|=2C|=3D)+")  # RFC 5802 §7 "saslname"
_EXTENSION = re.compile(r"[A-Za-z]=[^\x00]*")  # RFC 5802 §7 "attr-val"
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")

# RFC 5802 §9: "the server SHOULD … respond with a … salt … that is … consistent for the same
# username" for unknown users, so probing cannot tell them from real ones. Per process: a
# restart changes the fake salts, as a password change would change the real ones.
_FAKE_SALT_KEY = secrets.token_bytes(32)


def _saslname(value: str) -> str:
    """Decode a saslname: "=2C" is ",", "=3D" is "=", any other "=" fails (RFC 5802 §5.1)."""
    if _SASLNAME.fullmatch(value) is None:
        raise SaslFailure("malformed-request", "Invalid username encoding")
    return value.replace("=2C", ",").replace("=3D", "=")


def _b64decode(value: str) -> bytes:
    """Strict base64 as RFC 5802 §7 defines it (RFC 4648 §4, padded, nothing else)."""
    try:
        if len(value) % 4 or _B64.fullmatch(value) is None:
            raise ValueError
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        # RFC 6120 §6.5.5 incorrect-encoding is about the base64 of the XML character data; a bad
        # field *inside* the SCRAM message "violates the syntax for the specified SASL mechanism"
        # (§6.5.8), so it is malformed-request.
        raise SaslFailure("malformed-request", "Invalid base64 in SCRAM message") from None


def _decode(message: bytes) -> str:
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslFailure("malformed-request", "SCRAM message is not UTF-8") from None


class ScramServer:
    """One SCRAM exchange, server side (RFC 5802 §5). Driven as::

        username = m.first(client_first)           # then look the account up
        server_first = m.server_first(creds or None)
        server_final = m.final(client_final)       # success: send it in <success/>

    Each step raises `SaslFailure` to end the exchange; calling steps out of order, or after a
    failure, is a programming error (`RuntimeError`). `first` sets `username` (SASLprep'd) and
    `authzid` ("" when absent); they name who authenticated once `final` returned (`succeeded`).

    Channel binding (RFC 5802 §6): a -PLUS mechanism takes only "p=<type>" for a type in
    `bindings`, and c= must then carry that type's data; the plain mechanisms take "n", and
    "y" unless `plus_offered` (then "y" is a downgrade and fails); "p" with a plain mechanism
    is malformed (RFC 5801 §5: only -PLUS negotiates binding).
    """

    username: str | None
    authzid: str | None

    def __init__(
        self,
        mechanism: str,
        *,
        nonce: str | None = None,
        host: str | None = None,
        fake_iterations: int = DEFAULT_ITERATIONS,
        bindings: Mapping[str, bytes] | None = None,
        plus_offered: bool = False,
    ) -> None:
        """Start an exchange for the client-chosen `mechanism`.

        Args:
            mechanism: a key of `HASHES`.
            nonce: the server's nonce part, for tests; random otherwise.
            host: the stream's domain, so an authzid "user@host" can be accepted.
            fake_iterations: iteration count shown to unknown users; use the count new
                credentials get, or the difference gives them away.
            bindings: the connection's channel-binding data by type (for -PLUS).
            plus_offered: a -PLUS mechanism was offered on this stream ("y" then fails).

        Raises:
            SaslFailure: `invalid-mechanism` for a mechanism we do not implement, or a -PLUS
                one on a connection without channel bindings.
        """
        self.plus = mechanism.endswith(PLUS)
        self.base = base_mechanism(mechanism)
        if self.base not in HASHES or (self.plus and not bindings):
            raise SaslFailure("invalid-mechanism")
        if nonce is None:
            nonce = secrets.token_urlsafe(24)  # base64url alphabet: printable, no ","
        elif _PRINTABLE.fullmatch(nonce) is None:
            raise ValueError("server nonce must be printable ASCII without ','")
        self.mechanism = mechanism
        self._hash = HASHES[self.base]
        self._bindings = dict(bindings or {})
        self._plus_offered = plus_offered
        self._cbind_data = b""
        self.binding: str | None = None       # the channel-binding type used, if any
        self._server_nonce = nonce
        self._host = host
        self._fake_iterations = fake_iterations
        self._step = 0
        self.username = None
        self.authzid = None
        self._gs2_header = b""
        self._client_first_bare = b""
        self._nonce = ""
        self._server_first = b""
        self._creds: ScramCredentials | None = None

    @property
    def succeeded(self) -> bool:
        """Whether `final` accepted the client's proof."""
        return self._step == 3

    def _begin(self, step: int) -> None:
        """Enter `step`; the exchange stays dead unless the step completes (see `_done`)."""
        if self._step != step:
            raise RuntimeError("SCRAM steps called out of order, or after a failure")
        self._step = -1

    def _done(self, step: int) -> None:
        self._step = step + 1

    def first(self, client_first: bytes) -> str:
        """Parse client-first-message (RFC 5802 §5.1, §7); return the SASLprep'd username.

        Raises:
            SaslFailure: `malformed-request` for bad syntax, bad escapes, a channel-binding
                request ("p=", see below) or a mandatory extension ("m="); `invalid-authzid`
                when the authzid names someone else.
        """
        self._begin(0)
        text = _decode(client_first)
        fields = text.split(",", 2)
        if len(fields) != 3:
            raise SaslFailure("malformed-request", "Missing GS2 header")
        flag, authzid_field, bare = fields
        self._channel_binding(flag)
        if authzid_field:
            if not authzid_field.startswith("a="):
                raise SaslFailure("malformed-request", "Invalid GS2 authzid")
            authzid = _saslname(authzid_field[2:])
        else:
            authzid = ""

        attributes = bare.split(",")
        if attributes[0].startswith("m="):
            # RFC 5802 §5.1: "m" is reserved for mandatory extensions; a server that does not
            # understand it "MUST fail the authentication".
            raise SaslFailure("malformed-request", "Mandatory extensions are not supported")
        if len(attributes) < 2 or not attributes[0].startswith("n="):
            raise SaslFailure("malformed-request", "Missing username")
        if not attributes[1].startswith("r=") or _PRINTABLE.fullmatch(attributes[1][2:]) is None:
            raise SaslFailure("malformed-request", "Missing or invalid client nonce")
        if any(_EXTENSION.fullmatch(a) is None for a in attributes[2:]):
            raise SaslFailure("malformed-request", "Invalid attribute")  # unknown ones: ignored

        # RFC 5802 §5.1: the username is SASLprep'd "as a query string" (unassigned allowed).
        username = saslprep(_saslname(attributes[0][2:]), allow_unassigned=True)
        if not username:
            raise SaslFailure("malformed-request", "Empty username")
        if authzid:
            authzid = saslprep(authzid, allow_unassigned=True)
        check_authzid(authzid, username, self._host)

        self.username = username
        self.authzid = authzid
        self._gs2_header = f"{flag},{authzid_field},".encode()
        self._client_first_bare = bare.encode()
        self._nonce = attributes[1][2:] + self._server_nonce
        self._done(0)
        return username

    def _channel_binding(self, flag: str) -> None:
        """The gs2 channel-binding flag against the mechanism (RFC 5802 §6)."""
        if flag.startswith("p="):
            if not self.plus:
                # "p" with SCRAM-SHA-* contradicts the mechanism the client chose (RFC 5801
                # §5): a protocol error, not bad credentials (Prosody agrees).
                raise SaslFailure("malformed-request", "Channel binding needs a -PLUS mechanism")
            kind = flag[2:]
            data = self._bindings.get(kind)
            if data is None:
                # §6: "the server does not support the indicated channel binding type" MUST
                # fail; the types we have are in <sasl-channel-binding/> (XEP-0440).
                raise SaslFailure("malformed-request", "Unsupported channel binding type")
            self.binding, self._cbind_data = kind, data
            return
        if flag not in ("n", "y"):
            raise SaslFailure("malformed-request", "Invalid GS2 channel binding flag")
        if self.plus:
            raise SaslFailure("malformed-request", "A -PLUS mechanism needs channel binding")
        if flag == "y" and self._plus_offered:
            # §6: "y" means the client would have bound but saw no -PLUS mechanism: we offered
            # one, so something between us removed it.
            raise SaslFailure("not-authorized")

    def server_first(self, creds: ScramCredentials | None) -> bytes:
        """Build server-first-message (RFC 5802 §5.1) for `creds`, or `None` for no such user.

        An unknown user gets a salt that is stable per (mechanism, username) and an exchange
        that fails only in `final`, the same shape as a wrong password (RFC 5802 §9).

        Raises:
            ValueError: `creds` does not belong to this mechanism's hash.
        """
        self._begin(1)
        if creds is None:
            assert self.username is not None
            # by the base mechanism: a real user has one salt for SCRAM-SHA-1 and its -PLUS
            ident = f"{self.base}\x00{self.username}".encode()
            salt = hmac.digest(_FAKE_SALT_KEY, ident, "sha256")[:SALT_BYTES]
            iterations = self._fake_iterations
        else:
            if len(creds.stored_key) != hashlib.new(self._hash).digest_size:
                raise ValueError(f"credentials do not match {self.mechanism}")
            salt, iterations = creds.salt, creds.iterations
        self._creds = creds
        self._server_first = (
            f"r={self._nonce},s={base64.b64encode(salt).decode()},i={iterations}".encode()
        )
        self._done(1)
        return self._server_first

    def final(self, client_final: bytes) -> bytes:
        """Check client-final-message (RFC 5802 §5.1, §7) and return `v=<ServerSignature>`.

        Raises:
            SaslFailure: `malformed-request` for bad syntax or base64; `not-authorized` for a
                wrong proof, an unknown user, a nonce or channel-binding mismatch.
        """
        self._begin(2)
        text = _decode(client_final)
        attributes = text.split(",")
        if (
            len(attributes) < 3
            or not attributes[0].startswith("c=")
            or not attributes[1].startswith("r=")
            or not attributes[-1].startswith("p=")
            or any(_EXTENSION.fullmatch(a) is None for a in attributes[2:-1])
        ):
            raise SaslFailure("malformed-request", "Invalid SCRAM client-final-message")
        channel_binding = _b64decode(attributes[0][2:])
        proof = _b64decode(attributes[-1][2:])
        digest_size = hashlib.new(self._hash).digest_size
        if len(proof) != digest_size:
            raise SaslFailure("malformed-request", "Invalid client proof length")

        without_proof = ",".join(attributes[:-1]).encode()  # the received bytes, re-encoded
        auth_message = b",".join((self._client_first_bare, self._server_first, without_proof))
        creds = self._creds
        # Unknown users run the same computation against a key nobody can match.
        stored_key = secrets.token_bytes(digest_size) if creds is None else creds.stored_key
        client_signature = hmac.digest(stored_key, auth_message, self._hash)
        client_key = (int.from_bytes(proof) ^ int.from_bytes(client_signature)).to_bytes(
            digest_size
        )
        proof_ok = hmac.compare_digest(hashlib.new(self._hash, client_key).digest(), stored_key)
        # RFC 5802 §5.1: c= must carry the gs2 header, then the channel-binding data for "p"
        # (none for "n"/"y"); r= the nonce.
        binding_ok = hmac.compare_digest(channel_binding, self._gs2_header + self._cbind_data)
        nonce_ok = hmac.compare_digest(attributes[1][2:].encode(), self._nonce.encode())
        if creds is None or not (proof_ok and binding_ok and nonce_ok):
            raise SaslFailure("not-authorized")
        signature = hmac.digest(creds.server_key, auth_message, self._hash)
        self._done(2)
        return b"v=" + base64.b64encode(signature)
